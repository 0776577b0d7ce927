/**
 * The agent: keeps a session with the master leader (register with resources, attributes
 * and the tasks it runs; heartbeats; launch and kill commands), runs tasks through the
 * executor and sends each status update to the master over JetStream until it is stored (updates
 * that come together share a message: StatusOutbox).
 */
import { randomUUID } from "node:crypto";
import { type Bus, publishStatuses, StatusOutbox } from "@drover/bus";
import { closedByLeader, errorMessage, LeaderClient, type Logger, leaderHint, sleep } from "@drover/common";
import type { AgentConfig } from "@drover/config";
import {
  formatIssues,
  isTerminal,
  type Resources,
  TaskInfoSchema,
  type TaskStatus,
  validate,
} from "@drover/core";
import {
  type AgentCommand,
  type AgentMessage,
  fromWireTaskInfo,
  MasterClient,
  type TaskInfo,
  toWireResources,
  toWireStatus,
} from "@drover/proto";
import type { Executor, ExecutorEvent } from "@drover/runtime";
import type { ClientDuplexStream } from "@grpc/grpc-js";
import { AgentHealth, type AgentHealthDeps, type HealthStatusUpdate } from "./health.js";

interface KnownTask {
  taskId: string;
  status: TaskStatus;
}

export interface AgentIdentity {
  agentId: string;
  hostname: string;
  resources: Resources;
  attributes: Record<string, string>;
}

export interface AgentOptions {
  /**
   * A random delay of up to this many ms added before each reconnection (default 0: none), so that
   * many agents whose master went away do not all re-register in the same instant.
   */
  reconnectJitterMs?: number;
  /** Told of each launch command carried out and each status update published (metrics). */
  onLaunch?: () => void;
  onStatusPublished?: () => void;
  /** The health checks' access to task containers (COMMAND checks, container IPs), and test hooks. */
  health?: Pick<AgentHealthDeps, "containers" | "store" | "clock" | "runCheck" | "probeReadiness">;
}

/** SIGTERM → SIGKILL wait of a kill that names none, of a task that has none of its own. */
const DEFAULT_KILL_GRACE_SECONDS = 5;

export class Agent {
  private readonly masters: LeaderClient<MasterClient>;
  private readonly tasks = new Map<string, KnownTask>();
  /** The kill grace of the tasks launched here that have one (TaskInfo.run.killGracePeriodSeconds). */
  private readonly killGrace = new Map<string, number>();
  private readonly statusChains = new Map<string, Promise<void>>();
  /** Status updates on their way to JetStream, several per message when they come together. */
  private readonly outbox: StatusOutbox;
  private readonly abort = new AbortController();
  private readonly health: AgentHealth;
  private stream: ClientDuplexStream<AgentMessage, AgentCommand> | undefined;
  private heartbeatMs = 2000;
  private sessionRegistered = false;

  constructor(
    private readonly id: AgentIdentity,
    readonly config: AgentConfig,
    private readonly executor: Executor,
    private readonly bus: Bus,
    private readonly log: Logger,
    private readonly options: AgentOptions = {},
  ) {
    this.masters = new LeaderClient(MasterClient, config.masters);
    this.outbox = new StatusOutbox((updates) =>
      publishStatuses(this.bus, this.id.agentId, updates, this.log, this.abort.signal),
    );
    this.health = new AgentHealth({
      ...options.health,
      log,
      publish: (taskId, update) => this.onHealthUpdate(taskId, update),
      kill: (taskId, grace) => this.executor.kill(taskId, grace),
    });
    executor.onEvent((e) => this.onExecutorEvent(e));
  }

  /** Re-attaches to the containers of a previous run (invariant 6), then runs the session loop. */
  async run(): Promise<void> {
    const recovered = await this.executor.recover();
    for (const r of recovered) {
      const status: TaskStatus = {
        state: r.state,
        message: r.message || "recovered after agent restart",
        ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}),
        timestampMs: Date.now(),
        uuid: randomUUID(),
        containerId: r.containerId,
        source: "agent",
        ...(r.ipAddresses?.length ? { ipAddresses: r.ipAddresses } : {}),
      };
      this.setStatus(r.taskId, status);
    }
    // The recovered tasks whose checks were kept (work dir) are checked again.
    this.health.recover(recovered.filter((r) => r.state === "TASK_RUNNING"));
    this.log.info("recovered containers", {
      count: recovered.length,
      running: recovered.filter((r) => !isTerminal(r.state)).length,
    });
    while (!this.abort.signal.aborted) {
      const err = await this.sessionOnce();
      if (this.abort.signal.aborted) break;
      const hint = leaderHint(err);
      if (hint) this.masters.follow(hint);
      // The leader closed this session itself (heartbeat timeout, a newer session): come back to it (D12).
      else if (!closedByLeader(err)) this.masters.rotate();
      this.log.info("master session ended; reconnecting", {
        err: errorMessage(err),
        next: this.masters.address,
      });
      const jitter = Math.random() * (this.options.reconnectJitterMs ?? 0);
      await sleep((hint ? 100 : 500) + jitter, this.abort.signal);
    }
  }

  /** True while a session with the master is open and registered. */
  get registered(): boolean {
    return this.sessionRegistered;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.health.close();
    this.stream?.cancel();
    this.masters.close();
    await Promise.allSettled([...this.statusChains.values()]);
  }

  private sessionOnce(): Promise<unknown> {
    return new Promise((resolve) => {
      const stream = this.masters.client().agentSession();
      this.stream = stream;
      let done = false;
      let registered = false;
      let heartbeat: NodeJS.Timeout | undefined;
      const finish = (err: unknown) => {
        if (done) return;
        done = true;
        this.sessionRegistered = false;
        if (heartbeat) clearInterval(heartbeat);
        stream.cancel();
        resolve(err);
      };
      stream.on("data", (cmd: AgentCommand) => {
        const c = cmd.command;
        if (!c) return;
        switch (c.$case) {
          case "registered":
            registered = true;
            this.sessionRegistered = true;
            this.heartbeatMs = c.value.heartbeatIntervalMs || 2000;
            this.log.info("registered with master", {
              master: this.masters.address,
              agentId: c.value.agentId,
            });
            heartbeat = setInterval(() => {
              if (!done)
                stream.write({ message: { $case: "heartbeat", value: { timestampMs: Date.now() } } });
            }, this.heartbeatMs);
            return;
          case "launch":
            if (c.value.task) this.launch(c.value.task);
            return;
          case "kill":
            this.kill(c.value.taskId, c.value.gracePeriodSeconds);
            return;
        }
      });
      stream.on("error", (err) => finish(err));
      stream.on("end", () => finish(new Error(registered ? "session ended by master" : "session refused")));
      stream.write({
        message: {
          $case: "register",
          value: {
            agentId: this.id.agentId,
            hostname: this.id.hostname,
            resources: toWireResources(this.id.resources),
            attributes: Object.entries(this.id.attributes).map(([key, value]) => ({ key, value })),
            tasks: [...this.tasks.values()]
              .filter((t) => !isTerminal(t.status.state))
              .map((t) => toWireStatus(t.taskId, this.id.agentId, t.status)),
            version: "0.1.0",
          },
        },
      });
    });
  }

  /** Invariant 4: a task id is launched at most once on this agent. */
  private launch(task: TaskInfo): void {
    if (this.tasks.has(task.taskId)) {
      this.log.debug("duplicate launch ignored", { taskId: task.taskId });
      return;
    }
    this.setStatus(task.taskId, {
      state: "TASK_STAGING",
      message: "received by agent",
      timestampMs: Date.now(),
      uuid: randomUUID(),
      source: "agent",
    });
    // A command is a boundary too (invariant 7): a launch that is not a valid task fails by its
    // field instead of running with made-up resources (D13).
    const checked = validate(TaskInfoSchema, fromWireTaskInfo(task));
    const problem = !checked.ok
      ? formatIssues(checked.issues)
      : checked.value.agentId !== this.id.agentId
        ? "agentId: not this agent"
        : !(checked.value.resources.cpus > 0 && checked.value.resources.mem > 0)
          ? "resources: cpus and mem must be > 0"
          : undefined;
    if (problem !== undefined || !checked.ok) {
      this.onExecutorEvent({
        taskId: task.taskId,
        state: "TASK_FAILED",
        message: `invalid launch from the master: ${problem}`,
        timestampMs: Date.now(),
      });
      return;
    }
    this.options.onLaunch?.();
    const grace = checked.value.run?.killGracePeriodSeconds;
    if (grace !== undefined) this.killGrace.set(task.taskId, grace);
    const ports = portsOf(task);
    const env: Record<string, string> = { ...task.env };
    // Mesos/Marathon convention: the task learns its host ports from PORT0…PORTn and PORT.
    for (const [i, p] of ports.entries()) env[`PORT${i}`] ??= String(p);
    if (ports[0] !== undefined) env.PORT ??= String(ports[0]);
    if (checked.value.run) this.health.launched(task.taskId, { ports, env, run: checked.value.run });
    this.executor
      .launch({
        taskId: task.taskId,
        appId: task.appId,
        frameworkId: task.frameworkId,
        agentId: this.id.agentId,
        // A command-only app's task names no image: it runs in the agent's default task image.
        image: task.container?.image || this.config.defaultImage,
        cmd: task.container?.cmd || undefined,
        ...(task.container?.args.length ? { args: [...task.container.args] } : {}),
        cpus: checked.value.resources.cpus,
        mem: checked.value.resources.mem,
        env,
        labels: task.labels,
        ports,
        ...(checked.value.run ? { run: checked.value.run } : {}),
      })
      .catch((err: unknown) => {
        this.onExecutorEvent({
          taskId: task.taskId,
          state: "TASK_FAILED",
          message: errorMessage(err),
          timestampMs: Date.now(),
        });
      });
  }

  /** `requested`: the master's (the framework's) grace for this kill; absent, the task's own, else 5 s. */
  private kill(taskId: string, requested: number | undefined): void {
    const grace = requested ?? this.killGrace.get(taskId) ?? DEFAULT_KILL_GRACE_SECONDS;
    this.health.stop(taskId);
    this.executor
      .kill(taskId, grace)
      .catch((err: unknown) => this.log.warn("kill failed", { taskId, err: errorMessage(err) }));
  }

  private onExecutorEvent(e: ExecutorEvent): void {
    const prev = this.tasks.get(e.taskId);
    if (prev && isTerminal(prev.status.state)) return;
    const status: TaskStatus = {
      state: e.state,
      message: e.message,
      ...(e.exitCode !== undefined ? { exitCode: e.exitCode } : {}),
      timestampMs: e.timestampMs,
      uuid: randomUUID(),
      ...(e.containerId ? { containerId: e.containerId } : {}),
      source: "agent",
      // Reported on RUNNING; the master keeps them on the later statuses (keepIpAddresses).
      ...(e.ipAddresses?.length ? { ipAddresses: e.ipAddresses } : {}),
    };
    // A task a health check killed says so in its terminal status (health.ts).
    this.setStatus(e.taskId, isTerminal(e.state) ? this.health.finished(e.taskId, status) : status);
    if (e.state === "TASK_RUNNING")
      this.health
        .running(e.taskId, e.containerId, e.timestampMs)
        .catch((err: unknown) =>
          this.log.warn("health checks not started", { taskId: e.taskId, err: errorMessage(err) }),
        );
  }

  /** The task's health or readiness changed: a TASK_RUNNING update carries it (newer than the last). */
  private onHealthUpdate(taskId: string, update: HealthStatusUpdate): void {
    const prev = this.tasks.get(taskId);
    if (prev?.status.state !== "TASK_RUNNING") return;
    this.setStatus(taskId, {
      ...prev.status,
      ...update,
      timestampMs: Math.max(Date.now(), prev.status.timestampMs + 1),
      uuid: randomUUID(),
      source: "agent",
    });
  }

  /** Records the status and sends it (in order per task) until JetStream has stored it. */
  /** The agent's tasks by state (metrics). */
  tasksByState(): Map<string, number> {
    const out = new Map<string, number>();
    for (const t of this.tasks.values()) out.set(t.status.state, (out.get(t.status.state) ?? 0) + 1);
    return out;
  }

  private setStatus(taskId: string, status: TaskStatus): void {
    this.tasks.set(taskId, { taskId, status });
    // The outbox keeps each task's updates in order (one message in flight per agent).
    const next = this.outbox
      .push({ taskId, status })
      .then(() => this.options.onStatusPublished?.())
      .catch((err: unknown) => this.log.error("status update dropped", { taskId, err: errorMessage(err) }));
    this.statusChains.set(taskId, next);
    void next.then(() => {
      if (this.statusChains.get(taskId) === next) {
        this.statusChains.delete(taskId);
        // Forget finished tasks once their final status is stored (the master owns them now).
        if (isTerminal(status.state)) setTimeout(() => this.forget(taskId), 60_000).unref();
      }
    });
  }

  private forget(taskId: string): void {
    const t = this.tasks.get(taskId);
    if (t && isTerminal(t.status.state)) {
      this.tasks.delete(taskId);
      this.killGrace.delete(taskId);
    }
  }
}

/** The host ports of a task, in the order the framework gave them (ranges expanded, at most 64). */
export function portsOf(task: TaskInfo): number[] {
  const out: number[] = [];
  for (const r of task.resources?.ports ?? []) {
    for (let p = r.begin; p <= r.end && out.length < 64; p++) out.push(p);
  }
  return out;
}
