/**
 * What the master does while it leads: agent sessions, framework subscriptions, offers,
 * launches and kills, status updates from JetStream, and the periodic checks (offer
 * timeouts, lost agents, framework failover, terminal task expiry). Decisions that are pure
 * (allocation, status ordering) come from @drover/core; this class is the I/O shell.
 */
import { randomUUID } from "node:crypto";
import { type Bus, consumeStatus, type StatusMessage } from "@drover/bus";
import {
  coalesce,
  errorMessage,
  FailedPreconditionError,
  InvalidArgumentError,
  type Logger,
  NotFoundError,
  PermissionDeniedError,
  quote,
  STREAM_ID_METADATA_KEY,
} from "@drover/common";
import type { MasterConfig } from "@drover/config";
import {
  addResources,
  allocate,
  DEFAULT_ROLE,
  emptyResources,
  evaluateLaunch,
  isActive,
  isTerminal,
  LIMITS,
  type Resources,
  shouldApplyStatus,
  type TaskInfo,
  type TaskRecord,
  type TaskState,
  type TaskStatus,
} from "@drover/core";
import type { AgentCommand, FrameworkEvent, RegisterAgent } from "@drover/proto";
import {
  fromWireResources,
  fromWireStatus,
  type fromWireTaskInfo,
  toWireResources,
  toWireStatus,
  toWireTaskInfo,
} from "@drover/proto";
import type { EventStore, Leadership } from "@drover/store";
import { OfferBook } from "./offers.js";
import { EventRelay } from "./relay.js";
import { parseRequest, RegisterAgentSchema, SubscribeSchema } from "./requests.js";
import { MasterState } from "./state.js";

export interface AgentConn {
  send(cmd: AgentCommand): void;
  close(reason: string): void;
}

export interface FrameworkConn {
  send(ev: FrameworkEvent): void;
  close(reason: string): void;
}

interface AgentSession {
  conn: AgentConn;
  lastSeenMs: number;
}

interface FrameworkSession {
  conn: FrameworkConn;
  /** Handed to the framework in `subscribed`; its calls must carry it (drover-stream-id). */
  streamId: string;
}

export class MasterLeader {
  readonly state: MasterState;
  readonly offers = new OfferBook();
  private readonly agentSessions = new Map<string, AgentSession>();
  /** When each known agent's session went away (or when this leader started). */
  private readonly agentGoneSince = new Map<string, number>();
  private readonly frameworkSessions = new Map<string, FrameworkSession>();
  private readonly frameworkGoneSince = new Map<string, number>();
  /** Frameworks that asked for no offers (until they revive). */
  private readonly suppressed = new Set<string>();
  /** Status updates sent to frameworks and not yet acknowledged: taskId → status uuid. */
  private readonly unacked = new Map<string, { frameworkId: string; uuid: string; sentAtMs: number }>();
  private readonly timers: NodeJS.Timeout[] = [];
  /** Launches accepted whose tasks are being committed: their resources are in use already. */
  private readonly pendingLaunches = new Set<{
    frameworkId: string;
    agentId: string;
    resources: Resources;
  }>();
  /** Periodic checks in progress (a check never overlaps itself). */
  private readonly checking = new Set<string>();
  private readonly relay: EventRelay;
  private stopStatus: (() => Promise<void>) | undefined;
  private readonly allocation: { trigger(): void; cancel(): void };
  private readonly startedAtMs = Date.now();
  private stopped = false;

  constructor(
    readonly store: EventStore,
    private readonly bus: Bus,
    readonly leadership: Leadership,
    private readonly config: MasterConfig,
    private readonly log: Logger,
  ) {
    this.state = new MasterState(store, leadership, log);
    const etcd = store.etcd;
    if (!etcd) throw new Error("the master's relay needs an etcd-backed store");
    this.relay = new EventRelay(etcd, bus, log);
    this.allocation = coalesce(
      () => this.allocate(),
      20,
      (err) => log.error("allocation failed", { err: errorMessage(err) }),
    );
  }

  async start(): Promise<void> {
    await this.state.load();
    const now = Date.now();
    for (const id of this.state.agents.keys()) this.agentGoneSince.set(id, now);
    for (const id of this.state.frameworks.keys()) this.frameworkGoneSince.set(id, now);
    await this.relay.start();
    this.stopStatus = await consumeStatus(this.bus, this.log, (m) => this.onStatus(m));
    const every = (ms: number, fn: () => Promise<void> | void) => {
      this.timers.push(
        setInterval(() => {
          Promise.resolve(fn()).catch((err: unknown) =>
            this.log.error("periodic task failed", { err: errorMessage(err) }),
          );
        }, ms),
      );
    };
    every(this.config.allocationIntervalMs, () => this.allocation.trigger());
    every(1000, () => this.expireOffers());
    every(1000, () => this.checkAgents());
    every(1000, () => this.checkFrameworks());
    every(this.config.heartbeatIntervalMs, () => this.heartbeat());
    every(10_000, () => this.resendUnacked());
    every(15_000, () => this.expungeTerminalTasks());
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.allocation.cancel();
    for (const s of this.agentSessions.values()) s.conn.close("master lost leadership");
    for (const s of this.frameworkSessions.values()) s.conn.close("master lost leadership");
    this.agentSessions.clear();
    this.frameworkSessions.clear();
    await this.relay.stop();
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
    const now = Date.now();
    await this.state.commit(
      [
        {
          kind: "agent",
          id: agentId,
          events: [{ type: "AgentRegistered", hostname: reg.hostname, resources, attributes }],
        },
      ],
      now,
    );
    const previous = this.agentSessions.get(agentId);
    if (previous && previous.conn !== conn) previous.conn.close("replaced by a new session");
    this.agentSessions.set(agentId, { conn, lastSeenMs: now });
    this.agentGoneSince.delete(agentId);
    // The tasks the master believed on this agent when the session began: a task launched on the new
    // session while reconciliation awaits is not judged against the agent's (older) report.
    const known = new Set(
      this.state
        .allTasks()
        .filter((t) => t.info.agentId === agentId)
        .map((t) => t.info.taskId),
    );
    conn.send({
      command: {
        $case: "registered",
        value: { agentId, heartbeatIntervalMs: this.config.heartbeatIntervalMs },
      },
    });
    await this.reconcileAgentTasks(agentId, reported, known, conn, now);
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

  /** Invariant 5: the agent's reality and the master's view are brought together. */
  private async reconcileAgentTasks(
    agentId: string,
    reported: { taskId: string; status: TaskStatus }[],
    known: Set<string>,
    conn: AgentConn,
    now: number,
  ): Promise<void> {
    const reportedIds = new Set(reported.map((r) => r.taskId));
    for (const r of reported) {
      const known = this.state.task(r.taskId);
      if (
        !known ||
        known.info.agentId !== agentId ||
        isTerminal(known.status.state) ||
        known.status.state === "TASK_KILLING"
      ) {
        // Unknown, foreign, finished or being killed: it must not run.
        conn.send({ command: { $case: "kill", value: { taskId: r.taskId, gracePeriodSeconds: 5 } } });
        continue;
      }
      if (shouldApplyStatus(known.status.state, r.status.state))
        await this.applyStatus(known, { ...r.status, source: "reconciliation" });
    }
    for (const t of this.state.allTasks()) {
      if (!known.has(t.info.taskId) || isTerminal(t.status.state) || reportedIds.has(t.info.taskId)) continue;
      await this.applyStatus(t, {
        state: t.status.state === "TASK_KILLING" ? "TASK_KILLED" : "TASK_LOST",
        message: "task not found on its agent after re-registration",
        timestampMs: now,
        uuid: randomUUID(),
        source: "reconciliation",
      });
    }
  }

  agentHeartbeat(agentId: string, conn: AgentConn): void {
    const s = this.agentSessions.get(agentId);
    if (s && s.conn === conn) s.lastSeenMs = Date.now();
  }

  agentDisconnected(agentId: string, conn: AgentConn): void {
    const s = this.agentSessions.get(agentId);
    if (!s || s.conn !== conn) return;
    this.agentSessions.delete(agentId);
    this.agentGoneSince.set(agentId, Date.now());
    for (const o of this.offers.removeWhere((x) => x.agentId === agentId))
      this.rescind(o.frameworkId, o.offerId);
    this.log.warn("agent disconnected", { agentId });
  }

  private async checkAgents(): Promise<void> {
    if (this.checking.has("agents")) return;
    this.checking.add("agents");
    try {
      await this.checkAgentsOnce();
    } finally {
      this.checking.delete("agents");
    }
  }

  private async checkAgentsOnce(): Promise<void> {
    const now = Date.now();
    for (const [agentId, s] of this.agentSessions) {
      if (now - s.lastSeenMs > Math.max(5 * this.config.heartbeatIntervalMs, 10_000)) {
        s.conn.close("heartbeat timeout");
        this.agentDisconnected(agentId, s.conn);
      }
    }
    const lostAfter =
      Math.max(this.config.agentLostTimeoutSeconds, this.config.agentReregisterTimeoutSeconds) * 1000;
    for (const [agentId, since] of this.agentGoneSince) {
      if (now - since < lostAfter) continue;
      for (const t of this.state.allTasks()) {
        if (t.info.agentId !== agentId || isTerminal(t.status.state)) continue;
        await this.applyStatus(t, {
          state: "TASK_LOST",
          message: `agent ${agentId} did not come back within ${lostAfter / 1000} s`,
          timestampMs: now,
          uuid: randomUUID(),
          source: "master",
        });
      }
      // Only once every task is marked: a failed commit is retried by the next check.
      if (this.agentGoneSince.get(agentId) === since) this.agentGoneSince.delete(agentId);
    }
  }

  // ---------------------------------------------------------------- status

  private async onStatus(m: StatusMessage): Promise<void> {
    const task = this.state.task(m.taskId);
    if (!task) {
      // Acknowledging drops the update for good: first prove through etcd that this process still
      // leads (a deposed leader throws here, so the message is redelivered to the real leader).
      await this.state.confirmLeader();
      this.log.debug("status for unknown task ignored", { taskId: m.taskId });
      return;
    }
    if (task.info.agentId !== m.agentId) {
      this.log.warn("status from a foreign agent ignored", { taskId: m.taskId, agentId: m.agentId });
      return;
    }
    if (!shouldApplyStatus(task.status.state, m.status.state)) return;
    if (task.status.state === "TASK_KILLING" && m.status.state === "TASK_FAILED") {
      await this.applyStatus(task, { ...m.status, state: "TASK_KILLED" });
      return;
    }
    await this.applyStatus(task, m.status);
  }

  /** Commits a status change and forwards it to the task's framework. Idempotent by state ordering. */
  private async applyStatus(task: TaskRecord, status: TaskStatus): Promise<void> {
    const id = task.info.taskId;
    const applies = () => {
      const c = this.state.task(id);
      return c !== undefined && shouldApplyStatus(c.status.state, status.state);
    };
    if (!applies()) return;
    // The guard re-checks in commit order: a decision taken before an earlier queued commit landed
    // (say KILLING decided while FINISHED was being written) must not overwrite it.
    const ok = await this.state.commit(
      [{ kind: "task", id, events: [{ type: "TaskStatusUpdated", status }] }],
      Date.now(),
      applies,
    );
    if (!ok) return;
    this.forwardStatus(task.info, status);
    if (isTerminal(status.state)) this.allocation.trigger();
  }

  private forwardStatus(info: TaskInfo, status: TaskStatus): void {
    const fw = this.frameworkSessions.get(info.frameworkId);
    this.unacked.set(info.taskId, { frameworkId: info.frameworkId, uuid: status.uuid, sentAtMs: Date.now() });
    fw?.conn.send({
      event: {
        $case: "update",
        value: { status: toWireStatus(info.taskId, info.agentId, status), appId: info.appId },
      },
    });
  }

  private resendUnacked(): void {
    const now = Date.now();
    for (const [taskId, u] of this.unacked) {
      const t = this.state.task(taskId);
      if (!t) {
        this.unacked.delete(taskId);
        continue;
      }
      if (now - u.sentAtMs < 10_000) continue;
      this.forwardStatus(t.info, t.status);
    }
  }

  // ---------------------------------------------------------------- frameworks

  async subscribe(
    req: { frameworkId: string; name: string; role: string; failoverTimeoutSeconds: number },
    conn: FrameworkConn,
  ): Promise<string> {
    req = parseRequest(SubscribeSchema, req);
    const frameworkId = req.frameworkId || `fw-${randomUUID()}`;
    await this.state.commit(
      [
        {
          kind: "framework",
          id: frameworkId,
          events: [
            {
              type: "FrameworkSubscribed",
              name: req.name,
              role: req.role || "*",
              failoverTimeoutSeconds: req.failoverTimeoutSeconds,
            },
          ],
        },
      ],
      Date.now(),
    );
    const prev = this.frameworkSessions.get(frameworkId);
    if (prev && prev.conn !== conn) {
      prev.conn.close("framework re-subscribed on a new connection");
      for (const o of this.offers.removeWhere((x) => x.frameworkId === frameworkId)) void o;
    }
    const streamId = randomUUID();
    this.frameworkSessions.set(frameworkId, { conn, streamId });
    this.frameworkGoneSince.delete(frameworkId);
    this.suppressed.delete(frameworkId);
    conn.send({
      event: {
        $case: "subscribed",
        value: { frameworkId, heartbeatIntervalMs: this.config.heartbeatIntervalMs, streamId },
      },
    });
    this.log.info("framework subscribed", { frameworkId, name: req.name });
    this.allocation.trigger();
    return frameworkId;
  }

  frameworkDisconnected(frameworkId: string, conn: FrameworkConn): void {
    const s = this.frameworkSessions.get(frameworkId);
    if (!s || s.conn !== conn) return;
    this.frameworkSessions.delete(frameworkId);
    this.frameworkGoneSince.set(frameworkId, Date.now());
    this.offers.removeWhere((o) => o.frameworkId === frameworkId);
    this.log.warn("framework disconnected", { frameworkId });
    this.allocation.trigger();
  }

  private async checkFrameworks(): Promise<void> {
    if (this.checking.has("frameworks")) return;
    this.checking.add("frameworks");
    try {
      await this.checkFrameworksOnce();
    } finally {
      this.checking.delete("frameworks");
    }
  }

  private async checkFrameworksOnce(): Promise<void> {
    const now = Date.now();
    for (const [frameworkId, since] of this.frameworkGoneSince) {
      const fw = this.state.framework(frameworkId);
      if (!fw) {
        this.frameworkGoneSince.delete(frameworkId);
        continue;
      }
      if (now - since < fw.failoverTimeoutSeconds * 1000) continue;
      this.log.warn("framework failover timeout: killing its tasks", { frameworkId });
      for (const t of this.state.allTasks()) {
        if (t.info.frameworkId === frameworkId && isActive(t.status.state))
          await this.killTask(t, "framework failover timeout");
      }
      await this.state.commit(
        [
          {
            kind: "framework",
            id: frameworkId,
            events: [{ type: "FrameworkRemoved", reason: "failover timeout" }],
          },
        ],
        now,
        () => !this.frameworkSessions.has(frameworkId),
      );
      // Only once done: a failed commit is retried by the next check.
      if (this.frameworkGoneSince.get(frameworkId) === since) this.frameworkGoneSince.delete(frameworkId);
    }
  }

  /**
   * A framework call is allowed only from the connection that holds the framework's
   * subscription: the caller proves it with the subscription's stream id. Unknown framework →
   * NOT_FOUND; known but not subscribed → FAILED_PRECONDITION; another caller → PERMISSION_DENIED.
   */
  authorizeFramework(frameworkId: string, streamId: string | undefined): void {
    this.requireSubscribed(frameworkId);
    const s = this.frameworkSessions.get(frameworkId);
    if (!streamId || s?.streamId !== streamId)
      throw new PermissionDeniedError(
        `framework ${frameworkId} is subscribed on another connection: the call's ${STREAM_ID_METADATA_KEY} is ${streamId ? "not the subscription's" : "missing"}`,
      );
  }

  private requireSubscribed(frameworkId: string): void {
    if (frameworkId === "")
      throw new InvalidArgumentError([{ path: "frameworkId", message: "must not be empty" }]);
    if (this.frameworkSessions.has(frameworkId)) return;
    if (!this.state.framework(frameworkId)) throw new NotFoundError(`framework ${quote(frameworkId)}`);
    throw new FailedPreconditionError(`framework ${quote(frameworkId)} is not subscribed`);
  }

  // ---------------------------------------------------------------- offers

  /**
   * After a failover the new leader offers nothing until every known agent has re-registered
   * or agentReregisterTimeoutSeconds has passed, so frameworks never decide on a partial view.
   */
  private awaitingReregistration(now: number): boolean {
    if (now - this.startedAtMs >= this.config.agentReregisterTimeoutSeconds * 1000) return false;
    for (const id of this.state.agents.keys()) if (!this.agentSessions.has(id)) return true;
    return false;
  }

  private allocate(): void {
    if (this.stopped) return;
    const now = Date.now();
    if (this.awaitingReregistration(now)) return;
    const usedByAgent = new Map<string, ReturnType<typeof emptyResources>>();
    const usedByFramework = new Map<string, ReturnType<typeof emptyResources>>();
    for (const t of this.state.allTasks()) {
      if (isTerminal(t.status.state)) continue;
      usedByAgent.set(
        t.info.agentId,
        addResources(usedByAgent.get(t.info.agentId) ?? emptyResources(), t.info.resources),
      );
      usedByFramework.set(
        t.info.frameworkId,
        addResources(usedByFramework.get(t.info.frameworkId) ?? emptyResources(), t.info.resources),
      );
    }
    for (const p of this.pendingLaunches) {
      usedByAgent.set(p.agentId, addResources(usedByAgent.get(p.agentId) ?? emptyResources(), p.resources));
      usedByFramework.set(
        p.frameworkId,
        addResources(usedByFramework.get(p.frameworkId) ?? emptyResources(), p.resources),
      );
    }
    const agents = [];
    for (const [agentId] of this.agentSessions) {
      const a = this.state.agent(agentId);
      if (!a) continue;
      agents.push({
        agentId,
        hostname: a.hostname,
        total: a.resources,
        used: usedByAgent.get(agentId) ?? emptyResources(),
        offered: this.offers.offeredOn(agentId),
        attributes: a.attributes,
        connected: true,
      });
    }
    const frameworks = [...this.frameworkSessions.keys()].map((frameworkId) => ({
      frameworkId,
      role: this.state.framework(frameworkId)?.role ?? DEFAULT_ROLE,
      connected: true,
      suppressed: this.suppressed.has(frameworkId),
      allocated: addResources(
        usedByFramework.get(frameworkId) ?? emptyResources(),
        this.offers.offeredTo(frameworkId),
      ),
    }));
    if (agents.length === 0 || frameworks.length === 0) return;
    const grants = allocate(agents, frameworks, this.offers.activeFilters(now), now, {
      minAllocatable: { cpus: this.config.minAllocatableCpus, mem: this.config.minAllocatableMem },
      roles: this.config.roles,
    });
    const byFramework = new Map<string, FrameworkEvent & { event: { $case: "offers" } }>();
    for (const g of grants) {
      const a = this.state.agent(g.agentId);
      if (!a) continue;
      const offer = this.offers.create(
        g.frameworkId,
        g.agentId,
        g.resources,
        now + this.config.offerTimeoutSeconds * 1000,
      );
      let ev = byFramework.get(g.frameworkId);
      if (!ev) {
        ev = { event: { $case: "offers", value: { offers: [] } } };
        byFramework.set(g.frameworkId, ev);
      }
      ev.event.value.offers.push({
        offerId: offer.offerId,
        frameworkId: g.frameworkId,
        agentId: g.agentId,
        hostname: a.hostname,
        resources: toWireResources(g.resources),
        attributes: Object.entries(a.attributes).map(([key, value]) => ({ key, value })),
      });
    }
    for (const [frameworkId, ev] of byFramework) this.frameworkSessions.get(frameworkId)?.conn.send(ev);
  }

  private rescind(frameworkId: string, offerId: string): void {
    this.frameworkSessions.get(frameworkId)?.conn.send({ event: { $case: "rescind", value: { offerId } } });
  }

  private expireOffers(): void {
    const now = Date.now();
    const expired = this.offers.removeWhere((o) => o.expiresAtMs <= now);
    for (const o of expired) {
      this.rescind(o.frameworkId, o.offerId);
      // As a decline with the default filter: a framework that sits on offers does not get the same
      // agent straight back, so it cannot hoard an agent from the others.
      this.offers.refuse(o.frameworkId, o.agentId, now + 5000);
    }
    if (expired.length > 0) this.allocation.trigger();
  }

  async accept(req: {
    frameworkId: string;
    offerIds: string[];
    tasks: { path: (string | number)[]; task: ReturnType<typeof fromWireTaskInfo> }[];
    refuseSeconds: number;
  }): Promise<string[]> {
    this.requireSubscribed(req.frameworkId);
    if (req.offerIds.length > LIMITS.idsPerRequest || req.tasks.length > LIMITS.tasksPerMessage)
      throw new InvalidArgumentError([
        {
          path: req.offerIds.length > LIMITS.idsPerRequest ? "offerIds" : "operations",
          message: `at most ${LIMITS.idsPerRequest} offers and ${LIMITS.tasksPerMessage} tasks per accept`,
        },
      ]);
    const verdict = evaluateLaunch(
      {
        frameworkId: req.frameworkId,
        offerIds: req.offerIds,
        tasks: req.tasks.map((t) => ({ path: t.path, task: { ...t.task, frameworkId: req.frameworkId } })),
      },
      {
        offer: (id) => this.offers.offers.get(id),
        taskExists: (id) => this.state.tasks.has(id),
        nowMs: Date.now(),
      },
    );
    if (!verdict.ok) throw new InvalidArgumentError(verdict.issues);
    const { offers, tasks, need } = verdict.plan;

    const now = Date.now();
    for (const o of offers) this.offers.remove(o.offerId);
    const agentId = offers[0]?.agentId ?? "";
    const refuse = Number.isFinite(req.refuseSeconds) && req.refuseSeconds > 0 ? req.refuseSeconds : 0;
    // What the accept left of the offers is not offered to this framework again for `refuse` seconds.
    if (refuse > 0) this.offers.refuse(req.frameworkId, agentId, now + refuse * 1000);
    if (tasks.length > 0) {
      // The offers are gone and the tasks are not committed yet: until they are, their resources
      // count as used, or an allocation in between would lend them to another framework.
      const pending = { frameworkId: req.frameworkId, agentId, resources: need };
      this.pendingLaunches.add(pending);
      // One unit per task: group commit packs them into transactions within etcd's limits, so an
      // accept of any size commits; if the store fails part-way, the accept is partial and says
      // exactly which tasks were launched. Each task's guard re-checks, in commit order, that its id
      // is still new (a concurrent accept may have taken it meanwhile).
      const outcomes = await Promise.allSettled(
        tasks.map((t) =>
          this.state.commit(
            [
              {
                kind: "task" as const,
                id: t.taskId,
                events: [
                  {
                    type: "TaskLaunched" as const,
                    info: t,
                    status: {
                      state: "TASK_STAGING" as TaskState,
                      message: "launch sent to agent",
                      timestampMs: now,
                      uuid: randomUUID(),
                      source: "master" as const,
                    },
                  },
                ],
              },
            ],
            now,
            () => (this.state.tasks.get(t.taskId)?.version ?? 0) === 0,
          ),
        ),
      ).finally(() => this.pendingLaunches.delete(pending));
      const launched = tasks.filter((_, i) => {
        const o = outcomes[i];
        return o?.status === "fulfilled" && o.value;
      });
      const session = this.agentSessions.get(agentId);
      for (const t of launched)
        session?.conn.send({ command: { $case: "launch", value: { task: toWireTaskInfo(t) } } });
      this.allocation.trigger();
      if (launched.length === 0) {
        const failure = outcomes.find((o) => o.status === "rejected");
        if (failure) throw failure.reason;
        throw new InvalidArgumentError([
          { path: "operations.launch.tasks", message: "a task with one of these ids already exists" },
        ]);
      }
      if (launched.length < tasks.length)
        this.log.warn("accept launched only part of its tasks", {
          frameworkId: req.frameworkId,
          launched: launched.length,
          of: tasks.length,
        });
      return launched.map((t) => t.taskId);
    }
    this.allocation.trigger();
    return tasks.map((t) => t.taskId);
  }

  decline(req: { frameworkId: string; offerIds: string[]; refuseSeconds: number }): void {
    this.requireSubscribed(req.frameworkId);
    if (req.offerIds.length > LIMITS.idsPerRequest)
      throw new InvalidArgumentError([
        { path: "offerIds", message: `at most ${LIMITS.idsPerRequest} offers` },
      ]);
    const now = Date.now();
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
    this.requireSubscribed(frameworkId);
    this.offers.revive(frameworkId);
    this.suppressed.delete(frameworkId);
    this.allocation.trigger();
  }

  suppress(frameworkId: string): void {
    this.requireSubscribed(frameworkId);
    this.suppressed.add(frameworkId);
    for (const o of this.offers.removeWhere((x) => x.frameworkId === frameworkId))
      this.rescind(frameworkId, o.offerId);
    this.allocation.trigger();
  }

  isSuppressed(frameworkId: string): boolean {
    return this.suppressed.has(frameworkId);
  }

  /** Resources held by a framework: its active tasks and outstanding offers. */
  allocatedTo(frameworkId: string) {
    let r = this.offers.offeredTo(frameworkId);
    for (const t of this.state.allTasks())
      if (t.info.frameworkId === frameworkId && !isTerminal(t.status.state))
        r = addResources(r, t.info.resources);
    return r;
  }

  /** Total resources of the connected agents. */
  capacity() {
    let r = emptyResources();
    for (const id of this.agentSessions.keys()) {
      const a = this.state.agent(id);
      if (a) r = addResources(r, { ...a.resources, ports: [] });
    }
    return r;
  }

  async kill(frameworkId: string, taskId: string): Promise<void> {
    this.requireSubscribed(frameworkId);
    const t = this.state.task(taskId);
    if (!t || t.info.frameworkId !== frameworkId) throw new NotFoundError(`task ${taskId}`);
    if (isTerminal(t.status.state)) {
      this.forwardStatus(t.info, t.status);
      return;
    }
    await this.killTask(t, "killed by its framework");
  }

  private async killTask(t: TaskRecord, why: string): Promise<void> {
    if (t.status.state !== "TASK_KILLING") {
      await this.applyStatus(t, {
        state: "TASK_KILLING",
        message: why,
        timestampMs: Date.now(),
        uuid: randomUUID(),
        source: "master",
      });
    }
    this.agentSessions
      .get(t.info.agentId)
      ?.conn.send({ command: { $case: "kill", value: { taskId: t.info.taskId, gracePeriodSeconds: 5 } } });
  }

  /**
   * The framework has seen status `uuid` of its task. Acknowledging an update that is no longer
   * the pending one (a duplicate, an older update) is a no-op; a task that is not the
   * framework's is NOT_FOUND.
   */
  acknowledge(frameworkId: string, taskId: string, uuid: string): void {
    this.requireSubscribed(frameworkId);
    const t = this.state.task(taskId);
    if (!t || t.info.frameworkId !== frameworkId) throw new NotFoundError(`task ${quote(taskId)}`);
    if (uuid === "") throw new InvalidArgumentError([{ path: "uuid", message: "must not be empty" }]);
    const u = this.unacked.get(taskId);
    if (u && u.frameworkId === frameworkId && u.uuid === uuid) this.unacked.delete(taskId);
  }

  reconcile(frameworkId: string, taskIds: string[]): ReturnType<typeof toWireStatus>[] {
    this.requireSubscribed(frameworkId);
    if (taskIds.length > LIMITS.idsPerRequest)
      throw new InvalidArgumentError([{ path: "taskIds", message: `at most ${LIMITS.idsPerRequest} tasks` }]);
    const now = Date.now();
    const out = [];
    const wanted =
      taskIds.length > 0
        ? taskIds
        : this.state
            .allTasks()
            .filter((t) => t.info.frameworkId === frameworkId)
            .map((t) => t.info.taskId);
    for (const id of wanted) {
      const t = this.state.task(id);
      const status =
        t && t.info.frameworkId === frameworkId
          ? toWireStatus(id, t.info.agentId, t.status)
          : toWireStatus(id, "", {
              state: "TASK_GONE",
              message: "unknown task",
              timestampMs: now,
              uuid: randomUUID(),
              source: "reconciliation",
            });
      out.push(status);
      this.frameworkSessions
        .get(frameworkId)
        ?.conn.send({ event: { $case: "update", value: { status, appId: t?.info.appId ?? "" } } });
    }
    return out;
  }

  private heartbeat(): void {
    const timestampMs = Date.now();
    for (const s of this.frameworkSessions.values())
      s.conn.send({ event: { $case: "heartbeat", value: { timestampMs } } });
  }

  private async expungeTerminalTasks(): Promise<void> {
    const cutoff = Date.now() - this.config.terminalTaskRetentionSeconds * 1000;
    const old = this.state.allTasks().filter((t) => isTerminal(t.status.state) && t.updatedAtMs < cutoff);
    // One unit per task: group commit packs them within etcd's limits, so any backlog is swept.
    const results = await Promise.allSettled(
      old.map((t) =>
        this.state.commit(
          [{ kind: "task" as const, id: t.info.taskId, events: [{ type: "TaskExpunged" as const }] }],
          Date.now(),
          () => {
            const cur = this.state.task(t.info.taskId);
            return cur !== undefined && isTerminal(cur.status.state);
          },
        ),
      ),
    );
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length > 0)
      this.log.warn("expunging terminal tasks failed; retried at the next sweep", {
        failed: failed.length,
        of: old.length,
        err: errorMessage((failed[0] as PromiseRejectedResult).reason),
      });
  }

  // ---------------------------------------------------------------- queries

  isAgentConnected(agentId: string): boolean {
    return this.agentSessions.has(agentId);
  }

  agentLastSeen(agentId: string): number {
    return this.agentSessions.get(agentId)?.lastSeenMs ?? 0;
  }

  isFrameworkConnected(frameworkId: string): boolean {
    return this.frameworkSessions.has(frameworkId);
  }

  usedOn(agentId: string) {
    let r = emptyResources();
    for (const t of this.state.allTasks())
      if (t.info.agentId === agentId && !isTerminal(t.status.state)) r = addResources(r, t.info.resources);
    return r;
  }

  get uptimeMs(): number {
    return Date.now() - this.startedAtMs;
  }
}
