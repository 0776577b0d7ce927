/**
 * Test data builders: fluent and immutable (every call returns a new builder, so a base builder
 * can be shared and varied), with defaults that fit together (agent "a1", app "web", task
 * "web.1" on "a1", framework "fw-1"):
 *
 *   const agent = anAgent().id("a1").cpus(4).mem(8192).ports(31000, 32000).attrs({ rack: "r1" }).build();
 *   const app = anApp().id("web").instances(3).cpus(0.1).mem(32).build();
 *   const offer = anOffer().on(agent).id("o-7").build();
 *   const task = aTask().app("web").on("a1").state("TASK_RUNNING").build();
 *
 * `build()` gives the domain object (validated with @drover/core's schemas where there is one);
 * `toWire()` the @drover/proto message where the master or a framework receives one.
 */
import {
  type AgentEvent,
  type AgentLedger,
  type AgentRecord,
  AgentRecordSchema,
  type AppEvent,
  type AppRecord,
  type AppSpec,
  AppSpecSchema,
  emptyResources,
  type PortRange,
  type Resources,
  ResourcesSchema,
  type TaskEvent,
  type TaskInfo,
  TaskInfoSchema,
  type TaskRecord,
  TaskRecordSchema,
  type TaskState,
  type TaskStatus,
  TaskStatusSchema,
} from "@drover/core";
import {
  toWireResources,
  toWireStatus,
  toWireTaskInfo,
  type Offer as WireOffer,
  type RegisterAgent as WireRegisterAgent,
  type TaskInfo as WireTaskInfo,
} from "@drover/proto";
import { TEST_EPOCH_MS } from "./fake-clock.js";

/** A task an agent reports when it (re-)registers. */
export interface ReportedTask {
  taskId: string;
  status: TaskStatus;
}

/** What an agent sends to register (RegisterAgent), in domain shape (the master's RegisterAgentRequest). */
export interface AgentRegistration {
  agentId: string;
  hostname: string;
  resources: Resources;
  attributes: Record<string, string>;
  tasks: ReportedTask[];
}

/** An offer with every field the master, the allocator and frameworks use (OutstandingOffer, LaunchOffer, OfferView, FrameworkOffer). */
export interface TestOffer {
  offerId: string;
  frameworkId: string;
  agentId: string;
  hostname: string;
  resources: Resources;
  attributes: Record<string, string>;
  expiresAtMs: number;
}

function copyResources(r: Resources): Resources {
  return {
    cpus: r.cpus,
    mem: r.mem,
    disk: r.disk,
    ports: r.ports.map((p) => ({ begin: p.begin, end: p.end })),
  };
}

function toAttributes(a: Record<string, string>): { key: string; value: string }[] {
  return Object.entries(a).map(([key, value]) => ({ key, value }));
}

// ── agents ───────────────────────────────────────────────────────────────────

interface AgentProps {
  agentId: string;
  hostname: string | undefined;
  resources: Resources;
  attributes: Record<string, string>;
  tasks: ReportedTask[];
}

export class AgentBuilder {
  constructor(private readonly p: Readonly<AgentProps>) {}

  private with(patch: Partial<AgentProps>): AgentBuilder {
    return new AgentBuilder({ ...this.p, ...patch });
  }

  private withResources(patch: Partial<Resources>): AgentBuilder {
    return this.with({ resources: { ...this.p.resources, ...patch } });
  }

  id(agentId: string): AgentBuilder {
    return this.with({ agentId });
  }

  /** Default: `<agentId>.test`. */
  hostname(hostname: string): AgentBuilder {
    return this.with({ hostname });
  }

  cpus(cpus: number): AgentBuilder {
    return this.withResources({ cpus });
  }

  mem(mem: number): AgentBuilder {
    return this.withResources({ mem });
  }

  disk(disk: number): AgentBuilder {
    return this.withResources({ disk });
  }

  /** One range of host ports, `begin..end` inclusive (replaces the ranges set before). */
  ports(begin: number, end: number): AgentBuilder {
    return this.withResources({ ports: [{ begin, end }] });
  }

  portRanges(...ranges: PortRange[]): AgentBuilder {
    return this.withResources({ ports: ranges.map((r) => ({ begin: r.begin, end: r.end })) });
  }

  noPorts(): AgentBuilder {
    return this.withResources({ ports: [] });
  }

  resources(resources: Resources): AgentBuilder {
    return this.with({ resources: copyResources(resources) });
  }

  /** Adds attributes (later values win). */
  attrs(attributes: Record<string, string>): AgentBuilder {
    return this.with({ attributes: { ...this.p.attributes, ...attributes } });
  }

  /** A task the agent reports running (re-registration): a task builder, or an id and a state. */
  reporting(task: TaskBuilder | string, state: TaskState = "TASK_RUNNING"): AgentBuilder {
    const t = typeof task === "string" ? aTask().id(task).on(this.p.agentId).state(state) : task;
    return this.with({ tasks: [...this.p.tasks, t.reported()] });
  }

  build(): AgentRegistration {
    return {
      agentId: this.p.agentId,
      hostname: this.p.hostname ?? `${this.p.agentId}.test`,
      resources: ResourcesSchema.parse(copyResources(this.p.resources)),
      attributes: { ...this.p.attributes },
      tasks: this.p.tasks.map((t) => ({ taskId: t.taskId, status: { ...t.status } })),
    };
  }

  /** The RegisterAgent message an agent sends. */
  toWire(version = "test"): WireRegisterAgent {
    const a = this.build();
    return {
      agentId: a.agentId,
      hostname: a.hostname,
      resources: toWireResources(a.resources),
      attributes: toAttributes(a.attributes),
      tasks: a.tasks.map((t) => toWireStatus(t.taskId, a.agentId, t.status)),
      version,
    };
  }

  /** The master's ledger of this agent (nothing used or offered unless given; connected). */
  ledger(options: { used?: Resources; offered?: Resources; connected?: boolean } = {}): AgentLedger {
    const a = this.build();
    return {
      agentId: a.agentId,
      hostname: a.hostname,
      total: a.resources,
      used: options.used ? copyResources(options.used) : emptyResources(),
      offered: options.offered ? copyResources(options.offered) : emptyResources(),
      attributes: a.attributes,
      connected: options.connected ?? true,
    };
  }

  /** The AgentRegistered event the master commits. */
  registered(): AgentEvent {
    const a = this.build();
    return {
      type: "AgentRegistered",
      hostname: a.hostname,
      resources: a.resources,
      attributes: a.attributes,
    };
  }

  /** The agent's projection, registered at `atMs`. */
  record(atMs: number = TEST_EPOCH_MS): AgentRecord {
    const a = this.build();
    return AgentRecordSchema.parse({
      agentId: a.agentId,
      hostname: a.hostname,
      resources: a.resources,
      attributes: a.attributes,
      registeredAtMs: atMs,
      firstRegisteredAtMs: atMs,
    });
  }
}

/** An agent "a1" with 4 cpus, 8192 MiB, 10240 MiB of disk, ports 31000-32000, no attributes, no tasks. */
export function anAgent(): AgentBuilder {
  return new AgentBuilder({
    agentId: "a1",
    hostname: undefined,
    resources: { cpus: 4, mem: 8192, disk: 10240, ports: [{ begin: 31000, end: 32000 }] },
    attributes: {},
    tasks: [],
  });
}

// ── apps ─────────────────────────────────────────────────────────────────────

/** A Marathon app definition as given (before normalization). */
type AppProps = {
  id: string;
  container?: { type?: string; docker: { image: string } };
  cmd?: string | undefined;
  instances: number;
  cpus: number;
  mem: number;
  disk: number;
  env: Record<string, string>;
  labels: Record<string, string>;
  portDefinitions?: { port: number }[];
  requirePorts?: boolean;
};

export class AppBuilder {
  constructor(private readonly p: Readonly<AppProps>) {}

  private with(patch: Partial<AppProps>): AppBuilder {
    return new AppBuilder({ ...this.p, ...patch });
  }

  id(id: string): AppBuilder {
    return this.with({ id });
  }

  image(image: string): AppBuilder {
    return this.with({ container: { type: "DOCKER", docker: { image } } });
  }

  cmd(cmd: string | undefined): AppBuilder {
    return this.with({ cmd });
  }

  instances(instances: number): AppBuilder {
    return this.with({ instances });
  }

  cpus(cpus: number): AppBuilder {
    return this.with({ cpus });
  }

  mem(mem: number): AppBuilder {
    return this.with({ mem });
  }

  disk(disk: number): AppBuilder {
    return this.with({ disk });
  }

  /** Adds environment variables. */
  env(env: Record<string, string>): AppBuilder {
    return this.with({ env: { ...this.p.env, ...env } });
  }

  /** Adds labels. */
  labels(labels: Record<string, string>): AppBuilder {
    return this.with({ labels: { ...this.p.labels, ...labels } });
  }

  /** Host ports per instance: 0 for any free port, another number for that port (requirePorts). */
  ports(...ports: number[]): AppBuilder {
    return this.with({
      portDefinitions: ports.map((port) => ({ port })),
      requirePorts: ports.some((p) => p !== 0),
    });
  }

  /** The normalized definition, checked by AppSpecSchema (throws on a value the API would refuse). */
  build(): AppSpec {
    return AppSpecSchema.parse(this.unchecked());
  }

  /** The definition as given, not validated (for tests of bad input). */
  unchecked(): Record<string, unknown> {
    return structuredClone({ ...this.p }) as Record<string, unknown>;
  }

  created(): AppEvent {
    return { type: "AppCreated", spec: this.build() };
  }

  record(atMs: number = TEST_EPOCH_MS): AppRecord {
    return { spec: this.build(), createdAtMs: atMs, updatedAtMs: atMs };
  }
}

/** An app "/web": 1 instance of drover/busybox:1 with 0.1 cpus and 32 MiB, no ports. */
export function anApp(): AppBuilder {
  return new AppBuilder({
    id: "web",
    container: { type: "DOCKER", docker: { image: "drover/busybox:1" } },
    instances: 1,
    cpus: 0.1,
    mem: 32,
    disk: 0,
    env: {},
    labels: {},
    portDefinitions: [],
  });
}

// ── offers ───────────────────────────────────────────────────────────────────

export class OfferBuilder {
  constructor(private readonly p: Readonly<TestOffer>) {}

  private with(patch: Partial<TestOffer>): OfferBuilder {
    return new OfferBuilder({ ...this.p, ...patch });
  }

  private withResources(patch: Partial<Resources>): OfferBuilder {
    return this.with({ resources: { ...this.p.resources, ...patch } });
  }

  id(offerId: string): OfferBuilder {
    return this.with({ offerId });
  }

  framework(frameworkId: string): OfferBuilder {
    return this.with({ frameworkId });
  }

  /** On this agent: its id, hostname, attributes, and all its resources. */
  on(agent: AgentRegistration | AgentBuilder): OfferBuilder {
    const a = agent instanceof AgentBuilder ? agent.build() : agent;
    return this.with({
      agentId: a.agentId,
      hostname: a.hostname,
      attributes: { ...a.attributes },
      resources: copyResources(a.resources),
    });
  }

  agent(agentId: string): OfferBuilder {
    return this.with({ agentId, hostname: `${agentId}.test` });
  }

  hostname(hostname: string): OfferBuilder {
    return this.with({ hostname });
  }

  cpus(cpus: number): OfferBuilder {
    return this.withResources({ cpus });
  }

  mem(mem: number): OfferBuilder {
    return this.withResources({ mem });
  }

  disk(disk: number): OfferBuilder {
    return this.withResources({ disk });
  }

  ports(begin: number, end: number): OfferBuilder {
    return this.withResources({ ports: [{ begin, end }] });
  }

  noPorts(): OfferBuilder {
    return this.withResources({ ports: [] });
  }

  resources(resources: Resources): OfferBuilder {
    return this.with({ resources: copyResources(resources) });
  }

  attrs(attributes: Record<string, string>): OfferBuilder {
    return this.with({ attributes: { ...this.p.attributes, ...attributes } });
  }

  expiresAt(expiresAtMs: number): OfferBuilder {
    return this.with({ expiresAtMs });
  }

  build(): TestOffer {
    return {
      ...this.p,
      resources: ResourcesSchema.parse(copyResources(this.p.resources)),
      attributes: { ...this.p.attributes },
    };
  }

  /** The Offer message a framework receives. */
  toWire(): WireOffer {
    const o = this.build();
    return {
      offerId: o.offerId,
      frameworkId: o.frameworkId,
      agentId: o.agentId,
      hostname: o.hostname,
      resources: toWireResources(o.resources),
      attributes: toAttributes(o.attributes),
    };
  }
}

/** Offer "o-1" to "fw-1" of all of agent "a1" (as anAgent()), expiring a minute after TEST_EPOCH_MS. */
export function anOffer(): OfferBuilder {
  const a = anAgent().build();
  return new OfferBuilder({
    offerId: "o-1",
    frameworkId: "fw-1",
    agentId: a.agentId,
    hostname: a.hostname,
    resources: a.resources,
    attributes: a.attributes,
    expiresAtMs: TEST_EPOCH_MS + 60_000,
  });
}

// ── tasks ────────────────────────────────────────────────────────────────────

interface TaskProps {
  taskId: string | undefined;
  name: string | undefined;
  appId: string;
  agentId: string;
  frameworkId: string;
  image: string;
  cmd: string | undefined;
  resources: Resources;
  env: Record<string, string>;
  labels: Record<string, string>;
  state: TaskState;
  message: string;
  exitCode: number | undefined;
  uuid: string | undefined;
  containerId: string | undefined;
  source: TaskStatus["source"];
  atMs: number;
  createdAtMs: number | undefined;
}

export class TaskBuilder {
  constructor(private readonly p: Readonly<TaskProps>) {}

  private with(patch: Partial<TaskProps>): TaskBuilder {
    return new TaskBuilder({ ...this.p, ...patch });
  }

  private withResources(patch: Partial<Resources>): TaskBuilder {
    return this.with({ resources: { ...this.p.resources, ...patch } });
  }

  /** Default: `<appId>.1`. */
  id(taskId: string): TaskBuilder {
    return this.with({ taskId });
  }

  /** Default: the app id. */
  name(name: string): TaskBuilder {
    return this.with({ name });
  }

  app(appId: string): TaskBuilder {
    return this.with({ appId });
  }

  /** On this agent (an id or a built agent). */
  on(agent: string | AgentRegistration): TaskBuilder {
    return this.with({ agentId: typeof agent === "string" ? agent : agent.agentId });
  }

  framework(frameworkId: string): TaskBuilder {
    return this.with({ frameworkId });
  }

  image(image: string): TaskBuilder {
    return this.with({ image });
  }

  cmd(cmd: string | undefined): TaskBuilder {
    return this.with({ cmd });
  }

  cpus(cpus: number): TaskBuilder {
    return this.withResources({ cpus });
  }

  mem(mem: number): TaskBuilder {
    return this.withResources({ mem });
  }

  disk(disk: number): TaskBuilder {
    return this.withResources({ disk });
  }

  /** Host ports `begin..end` (replaces those set before); `ports(31000)` is one port. */
  ports(begin: number, end: number = begin): TaskBuilder {
    return this.withResources({ ports: [{ begin, end }] });
  }

  resources(resources: Resources): TaskBuilder {
    return this.with({ resources: copyResources(resources) });
  }

  env(env: Record<string, string>): TaskBuilder {
    return this.with({ env: { ...this.p.env, ...env } });
  }

  labels(labels: Record<string, string>): TaskBuilder {
    return this.with({ labels: { ...this.p.labels, ...labels } });
  }

  /** The latest status: its state, and optionally its message and exit code. */
  state(state: TaskState, details: { message?: string; exitCode?: number } = {}): TaskBuilder {
    return this.with({ state, message: details.message ?? "", exitCode: details.exitCode });
  }

  /** The status' uuid (default derived from the task id and state). */
  uuid(uuid: string): TaskBuilder {
    return this.with({ uuid });
  }

  containerId(containerId: string): TaskBuilder {
    return this.with({ containerId });
  }

  source(source: TaskStatus["source"]): TaskBuilder {
    return this.with({ source });
  }

  /** When the latest status was taken (and the record updated); the record was created then too unless createdAt is set. */
  at(atMs: number): TaskBuilder {
    return this.with({ atMs });
  }

  createdAt(createdAtMs: number): TaskBuilder {
    return this.with({ createdAtMs });
  }

  private taskId(): string {
    return this.p.taskId ?? `${this.p.appId}.1`;
  }

  /** What the framework asked to launch (TaskInfo), validated. */
  info(): TaskInfo {
    return TaskInfoSchema.parse({
      taskId: this.taskId(),
      name: this.p.name ?? this.p.appId,
      agentId: this.p.agentId,
      frameworkId: this.p.frameworkId,
      appId: this.p.appId,
      image: this.p.image,
      ...(this.p.cmd !== undefined ? { cmd: this.p.cmd } : {}),
      resources: copyResources(this.p.resources),
      env: { ...this.p.env },
      labels: { ...this.p.labels },
    });
  }

  /** The latest status, validated. */
  status(): TaskStatus {
    return TaskStatusSchema.parse({
      state: this.p.state,
      message: this.p.message,
      ...(this.p.exitCode !== undefined ? { exitCode: this.p.exitCode } : {}),
      timestampMs: this.p.atMs,
      uuid: this.p.uuid ?? `${this.taskId()}/${this.p.state}`,
      ...(this.p.containerId !== undefined ? { containerId: this.p.containerId } : {}),
      source: this.p.source,
    });
  }

  /** The task as the master stores it (TaskRecord), validated. */
  build(): TaskRecord {
    return TaskRecordSchema.parse({
      info: this.info(),
      status: this.status(),
      createdAtMs: this.p.createdAtMs ?? this.p.atMs,
      updatedAtMs: this.p.atMs,
    });
  }

  /** The task as an agent reports it when it registers. */
  reported(): ReportedTask {
    return { taskId: this.taskId(), status: this.status() };
  }

  /** The TaskLaunched event (with the builder's status; the master launches in TASK_STAGING). */
  launched(): TaskEvent {
    return { type: "TaskLaunched", info: this.info(), status: this.status() };
  }

  /** A TaskStatusUpdated event to the builder's status. */
  updated(): TaskEvent {
    return { type: "TaskStatusUpdated", status: this.status() };
  }

  /** The TaskInfo message a framework sends in an Accept (and the master in a launch). */
  toWire(): WireTaskInfo {
    return toWireTaskInfo(this.info());
  }
}

/** Task "web.1" of app "web" on agent "a1" for framework "fw-1": 0.1 cpus, 32 MiB, TASK_RUNNING at TEST_EPOCH_MS. */
export function aTask(): TaskBuilder {
  return new TaskBuilder({
    taskId: undefined,
    name: undefined,
    appId: "web",
    agentId: "a1",
    frameworkId: "fw-1",
    image: "drover/busybox:1",
    cmd: undefined,
    resources: { cpus: 0.1, mem: 32, disk: 0, ports: [] },
    env: {},
    labels: {},
    state: "TASK_RUNNING",
    message: "",
    exitCode: undefined,
    uuid: undefined,
    containerId: undefined,
    source: "agent",
    atMs: TEST_EPOCH_MS,
    createdAtMs: undefined,
  });
}
