/**
 * The master leader: the components that each own one table and its timers, started on
 * election and stopped when leadership ends (as Nomad's establishLeadership does):
 *
 *   MasterState     the aggregates (etcd, group commit)          state.ts
 *   TaskIndex       tasks by agent / framework, resources used   task-index.ts
 *   OfferBook       outstanding offers, totals, refusal filters  offers.ts
 *   AgentRegistry   agent sessions, liveness, lost and removed   agents.ts
 *   FrameworkRegistry  subscriptions, stream ids, failover       frameworks.ts
 *   TaskLifecycle   launch, status, kill, ack, expunge           tasks.ts
 *   AllocationLoop  DRF allocation, offers, expiry               allocator.ts
 *   EventRelay      committed events → NATS                      relay.ts
 *
 * This file wires them and answers the gRPC surface; decisions are in @drover/core.
 */
import type { Bus } from "@drover/bus";
import { consumeStatus } from "@drover/bus";
import { type Clock, InvalidArgumentError, type Logger, systemClock } from "@drover/common";
import type { MasterConfig } from "@drover/config";
import { addResources, emptyResources, evaluateLaunch, LIMITS, TaskAggregate } from "@drover/core";
import { fromWireResources, fromWireStatus, type fromWireTaskInfo, type RegisterAgent } from "@drover/proto";
import type { CommitReport, EventStore, Leadership, RetentionReport } from "@drover/store";
import { type AgentConn, AgentRegistry } from "./agents.js";
import { AllocationLoop, type AllocationReport } from "./allocator.js";
import type { MasterContext } from "./context.js";
import { type FrameworkConn, FrameworkRegistry } from "./frameworks.js";
import { OfferBook } from "./offers.js";
import { EventRelay } from "./relay.js";
import { parseRequest, RegisterAgentSchema } from "./requests.js";
import { RetentionLoop } from "./retention.js";
import { MasterState } from "./state.js";
import { TaskIndex } from "./task-index.js";
import { TaskLifecycle } from "./tasks.js";

export type { AgentConn } from "./agents.js";
export type { FrameworkConn } from "./frameworks.js";

/** How long, and how many, accepts are remembered for retries. */
const ACCEPT_MEMORY_MS = 10 * 60_000;
const ACCEPT_MEMORY_SIZE = 10_000;
/** The longest kill grace a framework may ask for (a year, as TaskInfo.run's). */
const MAX_KILL_GRACE_SECONDS = 86_400 * 365;

export interface AcceptRequest {
  frameworkId: string;
  offerIds: string[];
  tasks: { path: (string | number)[]; task: ReturnType<typeof fromWireTaskInfo> }[];
  refuseSeconds: number;
}

export interface MasterHooks {
  /** After each etcd transaction (metrics). */
  onTransaction?: (r: CommitReport) => void;
  /** After each allocation cycle (metrics). */
  onAllocation?: (r: AllocationReport) => void;
  /** After each log retention pass (metrics). */
  onRetention?: (r: RetentionReport) => void;
  /** After each accept: launched task count, or the error. */
  onAccept?: (launched: number, err?: unknown) => void;
  /** For each status update received from an agent. */
  onStatus?: () => void;
}

export class MasterLeader {
  readonly state: MasterState;
  readonly index = new TaskIndex();
  readonly offers: OfferBook;
  readonly agents: AgentRegistry;
  readonly frameworks: FrameworkRegistry;
  readonly tasks: TaskLifecycle;
  readonly allocation: AllocationLoop;
  private readonly relay: EventRelay | undefined;
  readonly retention: RetentionLoop | undefined;
  private readonly ctx: MasterContext;
  /** Recent accepts by request id (insertion order = age), so a retry gets the same answer. */
  private readonly recentAccepts = new Map<
    string,
    { frameworkId: string; result: Promise<string[]>; atMs: number }
  >();
  private stopStatus: (() => Promise<void>) | undefined;
  private stopped = false;

  constructor(
    readonly store: EventStore,
    private readonly bus: Bus | undefined,
    readonly leadership: Leadership,
    config: MasterConfig,
    private readonly log: Logger,
    clock: Clock = systemClock,
    private readonly hooks: MasterHooks = {},
  ) {
    this.state = new MasterState(store, leadership, log, () => clock.now(), hooks.onTransaction);
    this.state.listen(TaskAggregate, this.index.onChange);
    this.offers = new OfferBook(() => clock.now());
    const ctx: MasterContext = {
      state: this.state,
      index: this.index,
      offers: this.offers,
      clock,
      config,
      log,
    };
    this.ctx = ctx;
    this.agents = new AgentRegistry(ctx, {
      offersVoid: (agentId) => {
        for (const o of this.offers.removeOnAgent(agentId)) this.allocation.rescind(o.frameworkId, o.offerId);
      },
      unreachable: (agentId, silentMs) => this.tasks.markUnreachable(agentId, silentMs),
      lost: (agentId, awayMs) => this.tasks.markLost(agentId, awayMs),
    });
    this.frameworks = new FrameworkRegistry(ctx, {
      offersVoid: (frameworkId) => {
        for (const o of this.offers.removeOfFramework(frameworkId))
          this.allocation.rescind(frameworkId, o.offerId);
      },
      expired: (frameworkId) => this.tasks.killFrameworkTasks(frameworkId),
      changed: () => this.allocation.trigger(),
    });
    this.tasks = new TaskLifecycle(ctx, this.agents, this.frameworks, () => this.allocation.trigger());
    this.allocation = new AllocationLoop(ctx, this.agents, this.frameworks, this.tasks, hooks.onAllocation);
    this.relay = bus && store.etcd ? new EventRelay(store.etcd, store, bus, log) : undefined;
    this.retention = bus ? new RetentionLoop(ctx, store, leadership, bus, hooks.onRetention) : undefined;
  }

  async start(): Promise<void> {
    await this.state.load();
    this.agents.start();
    this.frameworks.start();
    this.tasks.start();
    this.allocation.start();
    await this.relay?.start();
    this.retention?.start();
    if (this.bus)
      this.stopStatus = await consumeStatus(this.bus, this.log, (m) => {
        this.hooks.onStatus?.();
        return this.tasks.onStatuses(m);
      });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.allocation.stop();
    this.retention?.stop();
    this.tasks.stop();
    this.agents.stop("master lost leadership");
    this.frameworks.stop("master lost leadership");
    await this.relay?.stop();
    await this.stopStatus?.().catch(() => undefined);
  }

  // ---------------------------------------------------------------- agents

  /** An agent (re-)registers on a new session. Returns the agent id. */
  async registerAgent(wire: RegisterAgent, conn: AgentConn): Promise<string> {
    const reg = parseRequest(RegisterAgentSchema, {
      agentId: wire.agentId,
      hostname: wire.hostname,
      resources: fromWireResources(wire.resources),
      attributes: Object.fromEntries(wire.attributes.map((a) => [a.key, a.value])),
      tasks: wire.tasks.map((s) => ({ taskId: s.taskId, status: fromWireStatus(s) })),
    });
    const { agentId, resources, attributes, tasks: reported } = reg;
    await this.state.commit([
      {
        kind: "agent",
        id: agentId,
        events: [{ type: "AgentRegistered", hostname: reg.hostname, resources, attributes }],
      },
    ]);
    this.agents.attach(agentId, conn);
    // The tasks the master believed on this agent when the session began: a task launched on the new
    // session while reconciliation awaits is not judged against the agent's (older) report.
    const expected = this.tasks.expectedOn(agentId);
    conn.send({
      command: {
        $case: "registered",
        value: { agentId, heartbeatIntervalMs: this.config().heartbeatIntervalMs },
      },
    });
    await this.tasks.reconcileAgent(agentId, reported, expected);
    this.log.info("agent registered", {
      agentId,
      hostname: reg.hostname,
      tasks: reported.length,
      cpus: resources.cpus,
      mem: resources.mem,
    });
    this.allocation.trigger();
    return agentId;
  }

  agentHeartbeat(agentId: string, conn: AgentConn): void {
    this.agents.heartbeat(agentId, conn);
  }

  agentDisconnected(agentId: string, conn: AgentConn): void {
    this.agents.detach(agentId, conn);
  }

  // ---------------------------------------------------------------- frameworks

  subscribe(
    req: { frameworkId: string; name: string; role: string; failoverTimeoutSeconds: number },
    conn: FrameworkConn,
  ): Promise<string> {
    return this.frameworks.subscribe(req, conn);
  }

  frameworkDisconnected(frameworkId: string, conn: FrameworkConn): void {
    this.frameworks.disconnected(frameworkId, conn);
  }

  /** See FrameworkRegistry.authorize: every framework call proves its subscription. */
  authorizeFramework(frameworkId: string, streamId: string | undefined): void {
    this.frameworks.authorize(frameworkId, streamId);
  }

  /**
   * An accept is a plan: checked by the pure evaluateLaunch, then committed. A retry of an
   * accept (same `requestId`, its answer lost) gets the first attempt's answer, not "offer unknown".
   */
  async accept(req: AcceptRequest, requestId?: string): Promise<string[]> {
    if (!requestId) return this.acceptOnce(req);
    const now = this.clock().now();
    for (const [id, r] of this.recentAccepts) {
      if (now - r.atMs < ACCEPT_MEMORY_MS && this.recentAccepts.size <= ACCEPT_MEMORY_SIZE) break;
      this.recentAccepts.delete(id);
    }
    const known = this.recentAccepts.get(requestId);
    if (known && known.frameworkId === req.frameworkId) return known.result;
    const result = this.acceptOnce(req);
    this.recentAccepts.set(requestId, { frameworkId: req.frameworkId, result, atMs: now });
    return result;
  }

  private async acceptOnce(req: AcceptRequest): Promise<string[]> {
    try {
      const launched = await this.acceptPlan(req);
      this.hooks.onAccept?.(launched.length);
      return launched;
    } catch (err) {
      this.hooks.onAccept?.(0, err);
      throw err;
    }
  }

  private async acceptPlan(req: AcceptRequest): Promise<string[]> {
    this.frameworks.requireSubscribed(req.frameworkId);
    if (req.offerIds.length > LIMITS.idsPerRequest || req.tasks.length > LIMITS.tasksPerMessage)
      throw new InvalidArgumentError([
        {
          path: req.offerIds.length > LIMITS.idsPerRequest ? "offerIds" : "operations",
          message: `at most ${LIMITS.idsPerRequest} offers and ${LIMITS.tasksPerMessage} tasks per accept`,
        },
      ]);
    const now = this.clock().now();
    const verdict = evaluateLaunch(
      {
        frameworkId: req.frameworkId,
        offerIds: req.offerIds,
        tasks: req.tasks.map((t) => ({ path: t.path, task: { ...t.task, frameworkId: req.frameworkId } })),
      },
      { offer: (id) => this.offers.offers.get(id), taskExists: (id) => this.state.tasks.has(id), nowMs: now },
    );
    if (!verdict.ok) throw new InvalidArgumentError(verdict.issues);
    const plan = verdict.plan;
    for (const o of plan.offers) this.offers.remove(o.offerId);
    const refuse = Number.isFinite(req.refuseSeconds) && req.refuseSeconds > 0 ? req.refuseSeconds : 0;
    // What the accept left of the offers is not offered to this framework again for `refuse` seconds.
    if (refuse > 0) this.offers.refuse(req.frameworkId, plan.agentId, now + refuse * 1000);
    if (plan.tasks.length === 0) {
      this.allocation.trigger();
      return [];
    }
    return this.tasks.launch(req.frameworkId, plan);
  }

  decline(req: { frameworkId: string; offerIds: string[]; refuseSeconds: number }): void {
    this.frameworks.requireSubscribed(req.frameworkId);
    if (req.offerIds.length > LIMITS.idsPerRequest)
      throw new InvalidArgumentError([
        { path: "offerIds", message: `at most ${LIMITS.idsPerRequest} offers` },
      ]);
    const now = this.clock().now();
    const refuse = Number.isFinite(req.refuseSeconds) && req.refuseSeconds >= 0 ? req.refuseSeconds : 5;
    for (const id of req.offerIds) {
      const o = this.offers.offers.get(id);
      if (!o || o.frameworkId !== req.frameworkId) continue;
      this.offers.remove(id);
      if (refuse > 0) this.offers.refuse(req.frameworkId, o.agentId, now + refuse * 1000);
    }
    this.allocation.trigger();
  }

  revive(frameworkId: string): void {
    this.frameworks.requireSubscribed(frameworkId);
    this.offers.revive(frameworkId);
    this.frameworks.revive(frameworkId);
  }

  suppress(frameworkId: string): void {
    this.frameworks.requireSubscribed(frameworkId);
    this.frameworks.suppress(frameworkId);
  }

  /** `gracePeriodSeconds`: this kill's SIGTERM → SIGKILL wait (absent: the task's own, else the agent's). */
  async kill(frameworkId: string, taskId: string, gracePeriodSeconds?: number): Promise<void> {
    this.frameworks.requireSubscribed(frameworkId);
    if (
      gracePeriodSeconds !== undefined &&
      !(gracePeriodSeconds >= 0 && gracePeriodSeconds <= MAX_KILL_GRACE_SECONDS)
    )
      throw new InvalidArgumentError([
        { path: "gracePeriodSeconds", message: `must be from 0 to ${MAX_KILL_GRACE_SECONDS}` },
      ]);
    await this.tasks.kill(frameworkId, taskId, gracePeriodSeconds);
  }

  acknowledge(frameworkId: string, taskId: string, uuid: string): void {
    this.frameworks.requireSubscribed(frameworkId);
    this.tasks.acknowledge(frameworkId, taskId, uuid);
  }

  acknowledgeMany(frameworkId: string, acks: { taskId: string; uuid: string }[]): string[] {
    this.frameworks.requireSubscribed(frameworkId);
    return this.tasks.acknowledgeMany(frameworkId, acks);
  }

  reconcile(frameworkId: string, taskIds: string[]) {
    this.frameworks.requireSubscribed(frameworkId);
    return this.tasks.reconcile(frameworkId, taskIds);
  }

  // ---------------------------------------------------------------- queries

  isAgentConnected(agentId: string): boolean {
    return this.agents.isConnected(agentId);
  }

  agentLastSeen(agentId: string): number {
    return this.agents.lastSeen(agentId);
  }

  isFrameworkConnected(frameworkId: string): boolean {
    return this.frameworks.isConnected(frameworkId);
  }

  isSuppressed(frameworkId: string): boolean {
    return this.frameworks.isSuppressed(frameworkId);
  }

  usedOn(agentId: string) {
    return this.index.usedOn(agentId);
  }

  /** Resources held by a framework: its active tasks and outstanding offers. */
  allocatedTo(frameworkId: string) {
    return addResources(this.index.usedBy(frameworkId), this.offers.offeredTo(frameworkId));
  }

  /** Tasks by state (an O(tasks) count, for metrics scrapes). */
  tasksByState(): Map<string, number> {
    return new Map(this.index.byState);
  }

  get connectedAgents(): number {
    return this.agents.connectedCount;
  }

  get connectedFrameworks(): number {
    return [...this.frameworks.connected()].length;
  }

  get commitBacklog(): number {
    return this.state.commitBacklog;
  }

  activeTasksOf(frameworkId: string): number {
    return this.index.activeTasksOf(frameworkId);
  }

  /** Total resources of the connected agents. */
  capacity() {
    let r = emptyResources();
    for (const a of this.agents.connected()) r = addResources(r, { ...a.resources, ports: [] });
    return r;
  }

  private config(): MasterConfig {
    return this.ctx.config;
  }

  private clock(): Clock {
    return this.ctx.clock;
  }
}
