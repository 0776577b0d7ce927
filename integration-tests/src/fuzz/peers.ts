/**
 * The fuzzer's long-lived peers of the master, so that hostile input meets live state:
 * - a fake agent (registers small resources, heartbeats, and "runs" nothing: every launch is reported
 *   TASK_FAILED and every kill TASK_KILLED through NATS, as a real agent would report them);
 * - a fuzz framework (subscribes, holds the offers it gets, revives when it has none, acknowledges
 *   updates): its framework id, stream id and offers are what valid-looking hostile calls refer to;
 * - the pools of live ids (frameworks, tasks, agents, anchor apps) that references resolve to.
 * Both peers reconnect by themselves when the master goes away.
 */
import { randomUUID } from "node:crypto";
import {
  type AgentCommand,
  type AgentMessage,
  type FrameworkEvent,
  GetStateResponse,
  MasterClient,
} from "@drover/proto";
import {
  type Client,
  type ClientDuplexStream,
  type ClientReadableStream,
  credentials,
  Metadata,
} from "@grpc/grpc-js";
import { type JetStreamClient, JSONCodec } from "nats";
import { FUZZ_CLIENT_OPTIONS, rawUnary } from "./wire.js";

/** Metadata key of the framework calls' proof of the caller (the stream id of Subscribed). */
export const STREAM_ID_METADATA_KEY = "drover-stream-id";

const jc = JSONCodec();
const RETRY_MS = 250;

/** Waits until `cond()` holds, polling every 50 ms, at most `timeoutMs`; false on timeout. */
async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

export class FakeAgent {
  readonly agentId = `fz-fake-agent-${randomUUID().slice(0, 8)}`;
  private readonly client: MasterClient;
  private stream: ClientDuplexStream<AgentMessage, AgentCommand> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly publishing = new Set<Promise<unknown>>();
  registered = false;
  sessions = 0;
  launches = 0;
  kills = 0;
  publishFailures = 0;

  constructor(
    masterAddress: string,
    private readonly js: JetStreamClient,
  ) {
    this.client = new MasterClient(masterAddress, credentials.createInsecure(), FUZZ_CLIENT_OPTIONS);
  }

  start(): void {
    this.connect();
  }

  /** True once registered (false if `timeoutMs` passed first). */
  ready(timeoutMs: number): Promise<boolean> {
    return until(() => this.registered, timeoutMs);
  }

  private connect(): void {
    if (this.stopped) return;
    this.sessions++;
    const s = this.client.agentSession();
    this.stream = s;
    this.registered = false;
    s.on("data", (cmd: AgentCommand) => this.onCommand(cmd));
    s.on("error", () => undefined);
    s.on("status", () => {
      if (this.stream !== s) return;
      this.stream = undefined;
      this.registered = false;
      clearInterval(this.heartbeat);
      if (!this.stopped) this.retry = setTimeout(() => this.connect(), RETRY_MS);
    });
    s.write({
      message: {
        $case: "register",
        value: {
          agentId: this.agentId,
          hostname: "fuzz-agent",
          resources: { cpus: 4, mem: 4096, disk: 1024, ports: [{ begin: 31000, end: 31099 }] },
          attributes: [{ key: "fuzz", value: "yes" }],
          tasks: [],
          version: "fuzz",
        },
      },
    });
  }

  private onCommand(cmd: AgentCommand): void {
    const c = cmd.command;
    if (!c) return;
    if (c.$case === "registered") {
      this.registered = true;
      clearInterval(this.heartbeat);
      const every = Math.max(100, c.value.heartbeatIntervalMs || 2000);
      this.heartbeat = setInterval(() => {
        this.stream?.write({ message: { $case: "heartbeat", value: { timestampMs: Date.now() } } });
      }, every);
    } else if (c.$case === "launch") {
      this.launches++;
      const taskId = c.value.task?.taskId;
      if (taskId) this.report(taskId, "TASK_FAILED", "the fuzz agent runs nothing", 1);
    } else if (c.$case === "kill") {
      this.kills++;
      this.report(c.value.taskId, "TASK_KILLED", "killed by the fuzz agent");
    }
  }

  private report(taskId: string, state: string, message: string, exitCode?: number): void {
    const uuid = randomUUID();
    const msg = {
      agentId: this.agentId,
      taskId,
      status: {
        state,
        message,
        ...(exitCode === undefined ? {} : { exitCode }),
        timestampMs: Date.now(),
        uuid,
        source: "agent",
      },
    };
    const p = this.js
      .publish(`drover.status.${this.agentId}`, jc.encode(msg), { msgID: uuid, timeout: 5_000 })
      .catch(() => {
        this.publishFailures++;
      })
      .finally(() => this.publishing.delete(p));
    this.publishing.add(p);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    clearInterval(this.heartbeat);
    this.stream?.cancel();
    await Promise.allSettled([...this.publishing]);
    this.client.close();
  }
}

export class FuzzFramework {
  frameworkId = "";
  streamId = "";
  subscribed = false;
  /** Offers received and not yet rescinded (the fuzzer's inputs may use them). */
  readonly offers = new Map<string, string>();
  private readonly client: MasterClient;
  private stream: ClientReadableStream<FrameworkEvent> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private readonly maintain: NodeJS.Timeout;
  private lastRevive = 0;
  private stopped = false;
  sessions = 0;
  updates = 0;
  offersReceived = 0;

  constructor(masterAddress: string) {
    this.client = new MasterClient(masterAddress, credentials.createInsecure(), FUZZ_CLIENT_OPTIONS);
    this.maintain = setInterval(() => this.reviveIfIdle(), 1_000);
  }

  start(): void {
    this.connect();
  }

  ready(timeoutMs: number): Promise<boolean> {
    return until(() => this.subscribed, timeoutMs);
  }

  /** Metadata that proves this framework's subscription (empty until subscribed). */
  metadata(): Metadata {
    const md = new Metadata();
    if (this.streamId) md.set(STREAM_ID_METADATA_KEY, this.streamId);
    return md;
  }

  private connect(): void {
    if (this.stopped) return;
    this.sessions++;
    const s = this.client.subscribe({
      frameworkId: this.frameworkId,
      name: "drover-fuzz",
      role: "*",
      failoverTimeoutSeconds: 3600,
    });
    this.stream = s;
    s.on("data", (ev: FrameworkEvent) => this.onEvent(ev));
    s.on("error", () => undefined);
    s.on("status", () => {
      if (this.stream !== s) return;
      this.stream = undefined;
      this.subscribed = false;
      this.offers.clear();
      if (!this.stopped) this.retry = setTimeout(() => this.connect(), RETRY_MS);
    });
  }

  private onEvent(ev: FrameworkEvent): void {
    const e = ev.event;
    if (!e) return;
    switch (e.$case) {
      case "subscribed":
        this.frameworkId = e.value.frameworkId;
        // Subscribed.stream_id, when the proto has it (read loosely: older generated code lacks it)
        this.streamId = String((e.value as { streamId?: unknown }).streamId ?? "");
        this.subscribed = true;
        return;
      case "offers":
        for (const o of e.value.offers) this.offers.set(o.offerId, o.agentId);
        this.offersReceived += e.value.offers.length;
        return;
      case "rescind":
        this.offers.delete(e.value.offerId);
        return;
      case "update": {
        this.updates++;
        const st = e.value.status;
        if (st)
          this.client.acknowledge(
            { frameworkId: this.frameworkId, taskId: st.taskId, uuid: st.uuid, acks: [] },
            this.metadata(),
            { deadline: new Date(Date.now() + 5_000) },
            () => undefined,
          );
        return;
      }
      default:
        return;
    }
  }

  private reviveIfIdle(): void {
    if (!this.subscribed || this.offers.size > 0 || Date.now() - this.lastRevive < 2_000) return;
    this.lastRevive = Date.now();
    this.client.revive(
      { frameworkId: this.frameworkId },
      this.metadata(),
      { deadline: new Date(Date.now() + 5_000) },
      () => undefined,
    );
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    clearInterval(this.maintain);
    this.stream?.cancel();
    this.client.close();
  }
}

/** Live ids that references resolve to, refreshed from the master's GetState. */
export class LivePools {
  schedulerFrameworkId = "";
  otherFrameworkIds: string[] = [];
  ownTaskIds: string[] = [];
  schedulerTaskIds: string[] = [];
  allTaskIds: string[] = [];
  otherAgentIds: string[] = [];
  anchors: string[] = [];
  refreshes = 0;
  refreshFailures = 0;

  constructor(
    private readonly master: Client,
    private readonly framework: FuzzFramework,
    private readonly fakeAgentId: string,
  ) {}

  async refresh(timeoutMs: number): Promise<void> {
    const GET_STATE = "/drover.v1.Master/GetState";
    const a = await rawUnary(this.master, GET_STATE, Buffer.alloc(0), new Metadata(), timeoutMs);
    if (a.code !== 0 || !a.response) {
      this.refreshFailures++;
      return;
    }
    let state: GetStateResponse;
    try {
      state = GetStateResponse.decode(a.response);
    } catch {
      this.refreshFailures++;
      return;
    }
    this.refreshes++;
    const own = this.framework.frameworkId;
    const sched = state.frameworks.find((f) => f.name === "drover-scheduler" && f.connected);
    if (sched) this.schedulerFrameworkId = sched.frameworkId;
    this.otherFrameworkIds = state.frameworks
      .map((f) => f.frameworkId)
      .filter((id) => id !== own && id !== this.schedulerFrameworkId)
      .slice(-50);
    const recent = [...state.tasks].sort((x, y) => y.createdAtMs - x.createdAtMs);
    const ids = (fw?: string) =>
      recent
        .filter((t) => fw === undefined || t.info?.frameworkId === fw)
        .map((t) => t.info?.taskId ?? "")
        .filter(Boolean)
        .slice(0, 100);
    this.ownTaskIds = ids(own);
    this.schedulerTaskIds = ids(this.schedulerFrameworkId);
    this.allTaskIds = ids();
    this.otherAgentIds = state.agents
      .map((x) => x.agentId)
      .filter((id) => id !== this.fakeAgentId)
      .slice(-50);
  }

  /** A framework id seen by a Subscribe input (so later inputs can refer to it). */
  addFramework(id: string): void {
    if (!id || this.otherFrameworkIds.includes(id)) return;
    this.otherFrameworkIds.push(id);
    if (this.otherFrameworkIds.length > 50) this.otherFrameworkIds.shift();
  }
}
