/**
 * The task lifecycle: launches (one commit unit per task, packed by group commit), status
 * updates from agents (applied in state order, forwarded to the framework and resent until
 * acknowledged), kills, reconciliation with an agent's report, unreachable and lost agents'
 * tasks, and the sweep that expunges terminal tasks. Its timers: resend unacknowledged updates
 * (10 s) and expunge (15 s).
 *
 * Unreachable agents: their active tasks (STAGING, STARTING, RUNNING) become TASK_UNREACHABLE;
 * while the agent is away, no update but a terminal one changes them (the agent's report at
 * re-registration brings them back to RUNNING). A framework's kill of an unreachable task is
 * TASK_GONE at once (Marathon's expunge: the framework forgets it), and the agent is told to kill
 * it if it comes back (reconcileAgentReport kills reported tasks the master holds terminal).
 */
import { randomUUID } from "node:crypto";
import type { StatusMessage, TaskStatusUpdates } from "@drover/bus";
import { errorMessage, InvalidArgumentError, NotFoundError, quote } from "@drover/common";
import {
  addResources,
  emptyResources,
  isActive,
  isTerminal,
  keepIpAddresses,
  type LaunchPlan,
  LIMITS,
  type Resources,
  reconcileAgentReport,
  shouldApplyTaskStatus,
  type TaskInfo,
  type TaskRecord,
  type TaskState,
  type TaskStatus,
} from "@drover/core";
import { toWireStatus, toWireTaskInfo } from "@drover/proto";
import type { AgentRegistry } from "./agents.js";
import type { MasterContext } from "./context.js";
import type { FrameworkRegistry } from "./frameworks.js";

/**
 * An unacknowledged update is sent again after 10 s, then after twice as long each time up to
 * 10 minutes (Mesos's status update retry): a framework that is slow to acknowledge at scale is
 * not flooded with the same updates again, which would slow it further.
 */
const RESEND_MIN_MS = 10_000;
const RESEND_MAX_MS = 600_000;
/** How often the unacknowledged updates are checked for one due again. */
const RESEND_CHECK_MS = 5_000;
const EXPUNGE_EVERY_MS = 15_000;

/**
 * The grace of a kill sent to an agent: the framework's for this kill, else the task's own
 * (TaskInfo.run.killGracePeriodSeconds); absent, the agent decides (the task's, else 5 s).
 */
function killGraceOf(info: TaskInfo, requested?: number): { gracePeriodSeconds?: number } {
  const grace = requested ?? info.run?.killGracePeriodSeconds;
  return grace === undefined ? {} : { gracePeriodSeconds: grace };
}

export class TaskLifecycle {
  /** Status updates sent to frameworks and not yet acknowledged: taskId → status uuid. */
  private readonly unacked = new Map<
    string,
    { frameworkId: string; uuid: string; attempts: number; nextAtMs: number }
  >();
  /** Launches accepted whose tasks are being committed: their resources are in use already (by agent, by framework). */
  private readonly pendingByAgent = new Map<string, Resources[]>();
  private readonly pendingByFramework = new Map<string, Resources[]>();
  private readonly timers: { cancel(): void }[] = [];
  private sweeping = false;

  constructor(
    private readonly ctx: MasterContext,
    private readonly agents: AgentRegistry,
    private readonly frameworks: FrameworkRegistry,
    /** Resources were freed or taken: the allocator should run. */
    private readonly changed: () => void,
  ) {}

  start(): void {
    this.timers.push(
      this.ctx.clock.setInterval(() => this.resendUnacked(), RESEND_CHECK_MS),
      this.ctx.clock.setInterval(() => void this.expunge(), EXPUNGE_EVERY_MS),
    );
  }

  stop(): void {
    for (const t of this.timers) t.cancel();
  }

  /** Resources of launches being committed, per agent and per framework (the allocator adds them). */
  pendingOn(agentId: string): Resources {
    return sum(this.pendingByAgent.get(agentId));
  }

  /** Whether launches on the agent are being committed (pendingOn is empty otherwise). */
  hasPendingOn(agentId: string): boolean {
    return this.pendingByAgent.has(agentId);
  }

  pendingFor(frameworkId: string): Resources {
    return sum(this.pendingByFramework.get(frameworkId));
  }

  /**
   * Commits the plan's tasks (TASK_STAGING), one unit per task, and sends each committed one to
   * its agent. Returns the ids launched: all of them, or (if the store failed part-way) exactly
   * those committed. Throws when none was.
   */
  async launch(frameworkId: string, plan: LaunchPlan): Promise<string[]> {
    const { agentId, tasks, need } = plan;
    const now = this.ctx.clock.now();
    // The offers are gone and the tasks are not committed yet: until they are, their resources
    // count as used, or an allocation in between would lend them to another framework.
    const pending = need;
    push(this.pendingByAgent, agentId, pending);
    push(this.pendingByFramework, frameworkId, pending);
    const outcomes = await Promise.allSettled(
      tasks.map((t) =>
        this.ctx.state.commit(
          [
            {
              kind: "task" as const,
              id: t.taskId,
              events: [
                {
                  type: "TaskLaunched" as const,
                  // Its app's repeated parts shared with its other tasks (intern.ts).
                  info: this.ctx.state.interner.info(t),
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
          // Re-checked in commit order: a concurrent accept may have taken the id meanwhile.
          () => (this.ctx.state.tasks.get(t.taskId)?.version ?? 0) === 0,
        ),
      ),
    ).finally(() => {
      pull(this.pendingByAgent, agentId, pending);
      pull(this.pendingByFramework, frameworkId, pending);
    });
    const launched = tasks.filter((_, i) => {
      const o = outcomes[i];
      return o?.status === "fulfilled" && o.value;
    });
    for (const t of launched)
      this.agents.send(agentId, { command: { $case: "launch", value: { task: toWireTaskInfo(t) } } });
    this.changed();
    if (launched.length === 0) {
      const failure = outcomes.find((o) => o.status === "rejected");
      if (failure) throw failure.reason;
      throw new InvalidArgumentError([
        { path: "operations", message: "a task with one of these ids already exists" },
      ]);
    }
    if (launched.length < tasks.length)
      this.ctx.log.warn("accept launched only part of its tasks", {
        frameworkId,
        launched: launched.length,
        of: tasks.length,
      });
    return launched.map((t) => t.taskId);
  }

  /** A status update from an agent (JetStream); resolves once persisted (then it is acknowledged). */
  async onStatus(m: StatusMessage): Promise<void> {
    const task = this.ctx.state.task(m.taskId);
    if (!task) {
      // Acknowledging drops the update for good: first prove through etcd that this process still
      // leads (a deposed leader throws here, so the message is redelivered to the real leader).
      await this.ctx.state.confirmLeader();
      this.ctx.log.debug("status for unknown task ignored", { taskId: m.taskId });
      return;
    }
    if (task.info.agentId !== m.agentId) {
      this.ctx.log.warn("status from a foreign agent ignored", { taskId: m.taskId, agentId: m.agentId });
      return;
    }
    const status = this.decide(task.status, m.status, m.agentId);
    if (status) await this.apply(task, status);
  }

  /**
   * One task's updates from one status message, in order (STARTING and RUNNING sent together):
   * each is decided against the status the previous one leaves, and those that apply are committed
   * as ONE change of the task (its events in order, one group commit: the log keeps every one).
   * The framework is sent the last of them (as a resend would: only the latest status of a task
   * is resent until acknowledged). If the task changed before the commit (a kill, say), they are
   * applied one at a time instead.
   */
  async onStatuses(u: TaskStatusUpdates): Promise<void> {
    const single = u.statuses.length === 1 ? u.statuses[0] : undefined;
    if (single) return this.onStatus({ agentId: u.agentId, taskId: u.taskId, status: single });
    const task = this.ctx.state.task(u.taskId);
    const oneByOne = async () => {
      for (const status of u.statuses) await this.onStatus({ agentId: u.agentId, taskId: u.taskId, status });
    };
    if (!task || task.info.agentId !== u.agentId) return oneByOne();
    const from = task.status;
    const apply: TaskStatus[] = [];
    let current = from;
    for (const s of u.statuses) {
      const status = this.decide(current, s, u.agentId);
      if (!status) continue;
      apply.push(status);
      current = status;
    }
    const [first] = apply;
    if (!first) return;
    if (apply.length === 1) return this.apply(task, first);
    const ok = await this.ctx.state.commit(
      [
        {
          kind: "task",
          id: u.taskId,
          events: apply.map((status) => ({ type: "TaskStatusUpdated" as const, status })),
        },
      ],
      this.ctx.clock.now(),
      // In commit order: decided on this very status (a change in between decides again, one by one).
      () => this.ctx.state.task(u.taskId)?.status === from,
    );
    if (!ok) return oneByOne();
    // The framework is told the latest: the earlier ones of the batch are superseded already (and
    // a framework is only ever sure of the latest: that one is resent until acknowledged).
    this.forward(task.info, apply[apply.length - 1] as TaskStatus);
    if (apply.some((s) => isTerminal(s.state))) this.changed();
  }

  /** What an agent's update of a task whose status is `current` changes: the status to apply, or none. */
  private decide(current: TaskStatus, update: TaskStatus, agentId: string): TaskStatus | undefined {
    // A same-state update applies when it is a newer health or readiness update (task-health.ts).
    if (!shouldApplyTaskStatus(current, update)) return undefined;
    // An update sent before the agent went away (delivered late, or resent) does not bring its task
    // back while the agent is away: its report at re-registration does. A terminal one is final.
    if (
      current.state === "TASK_UNREACHABLE" &&
      !isTerminal(update.state) &&
      !this.agents.isConnected(agentId)
    )
      return undefined;
    // An update without addresses (a health update, the terminal status) keeps the known ones.
    const kept = keepIpAddresses(current, update);
    if (current.state === "TASK_KILLING" && update.state === "TASK_FAILED")
      return this.ctx.state.interner.status({ ...kept, state: "TASK_KILLED" });
    return this.ctx.state.interner.status(kept);
  }

  /**
   * Commits a status change (or a health or readiness change of the same state) and forwards it to
   * the task's framework. Idempotent by state ordering and the status's time (shouldApplyTaskStatus).
   */
  async apply(task: TaskRecord, next: TaskStatus, also: () => boolean = () => true): Promise<void> {
    const id = task.info.taskId;
    const current = this.ctx.state.task(id);
    if (current === undefined) return;
    // The master's own statuses (KILLING, UNREACHABLE, LOST, ...) keep the task's known addresses.
    const status = keepIpAddresses(current.status, next);
    // `also`: a further condition of the caller's, re-checked in commit order with the state's.
    const applies = () => {
      const c = this.ctx.state.task(id);
      return c !== undefined && shouldApplyTaskStatus(c.status, status) && also();
    };
    if (!shouldApplyTaskStatus(current.status, status) || !also()) return;
    // The guard re-checks in commit order: a decision taken before an earlier queued commit landed
    // (say KILLING decided while FINISHED was being written) must not overwrite it.
    const ok = await this.ctx.state.commit(
      [{ kind: "task", id, events: [{ type: "TaskStatusUpdated", status }] }],
      this.ctx.clock.now(),
      applies,
    );
    if (!ok) return;
    this.forward(task.info, status);
    if (isTerminal(status.state)) this.changed();
  }

  private forward(info: TaskInfo, status: TaskStatus): void {
    // The same update sent again backs off; a new update starts again at the minimum.
    const prev = this.unacked.get(info.taskId);
    const attempts = prev && prev.uuid === status.uuid ? prev.attempts + 1 : 0;
    this.unacked.set(info.taskId, {
      frameworkId: info.frameworkId,
      uuid: status.uuid,
      attempts,
      nextAtMs: this.ctx.clock.now() + Math.min(RESEND_MAX_MS, RESEND_MIN_MS * 2 ** attempts),
    });
    this.frameworks.sendUpdate(info.frameworkId, info.taskId, {
      event: {
        $case: "update",
        value: { status: toWireStatus(info.taskId, info.agentId, status), appId: info.appId },
      },
    });
  }

  private resendUnacked(): void {
    const now = this.ctx.clock.now();
    for (const [taskId, u] of this.unacked) {
      const t = this.ctx.state.task(taskId);
      if (!t) {
        this.unacked.delete(taskId);
        continue;
      }
      if (now >= u.nextAtMs) this.forward(t.info, t.status);
    }
  }

  /**
   * The framework has seen status `uuid` of its task. Acknowledging an update that is no longer
   * the pending one (a duplicate, an older update) is a no-op; a task that is not the
   * framework's is NOT_FOUND.
   */
  acknowledge(frameworkId: string, taskId: string, uuid: string): void {
    const t = this.ctx.state.task(taskId);
    if (!t || t.info.frameworkId !== frameworkId) throw new NotFoundError(`task ${quote(taskId)}`);
    if (uuid === "") throw new InvalidArgumentError([{ path: "uuid", message: "must not be empty" }]);
    const u = this.unacked.get(taskId);
    if (u && u.frameworkId === frameworkId && u.uuid === uuid) this.unacked.delete(taskId);
  }

  /**
   * Several acknowledgements in one call. A task the master does not know as the framework's is
   * not an error here (it may have been expunged meanwhile): it is returned, the others apply.
   */
  acknowledgeMany(frameworkId: string, acks: { taskId: string; uuid: string }[]): string[] {
    if (acks.length > LIMITS.idsPerRequest)
      throw new InvalidArgumentError([
        { path: "acks", message: `at most ${LIMITS.idsPerRequest} acknowledgements per call` },
      ]);
    acks.forEach((a, i) => {
      if (a.uuid === "")
        throw new InvalidArgumentError([{ path: `acks[${i}].uuid`, message: "must not be empty" }]);
    });
    const unknown: string[] = [];
    for (const { taskId, uuid } of acks) {
      const t = this.ctx.state.task(taskId);
      if (!t || t.info.frameworkId !== frameworkId) {
        unknown.push(taskId);
        continue;
      }
      const u = this.unacked.get(taskId);
      if (u && u.frameworkId === frameworkId && u.uuid === uuid) this.unacked.delete(taskId);
    }
    return unknown;
  }

  /** Updates sent and not yet acknowledged (metrics, tests). */
  get unacknowledged(): number {
    return this.unacked.size;
  }

  /**
   * A framework kills its task (a finished one gets its final status again), with its own grace
   * period if it gives one.
   */
  async kill(frameworkId: string, taskId: string, gracePeriodSeconds?: number): Promise<void> {
    const t = this.ctx.state.task(taskId);
    if (!t || t.info.frameworkId !== frameworkId) throw new NotFoundError(`task ${quote(taskId)}`);
    if (isTerminal(t.status.state)) {
      this.forward(t.info, t.status);
      return;
    }
    await this.killTask(t, "killed by its framework", gracePeriodSeconds);
  }

  private async killTask(t: TaskRecord, why: string, gracePeriodSeconds?: number): Promise<void> {
    const agentId = t.info.agentId;
    if (t.status.state === "TASK_UNREACHABLE" && !this.agents.isConnected(agentId)) {
      // Nobody can kill it now: it is gone for the framework, and killed if its agent comes back.
      await this.apply(
        t,
        {
          state: "TASK_GONE",
          message: `${why} while its agent was unreachable; killed if the agent comes back`,
          timestampMs: this.ctx.clock.now(),
          uuid: randomUUID(),
          source: "master",
        },
        () => !this.agents.isConnected(agentId),
      );
      const now = this.ctx.state.task(t.info.taskId);
      if (!now || isTerminal(now.status.state)) return;
    }
    if (t.status.state !== "TASK_KILLING") {
      await this.apply(t, {
        state: "TASK_KILLING",
        message: why,
        timestampMs: this.ctx.clock.now(),
        uuid: randomUUID(),
        source: "master",
      });
    }
    this.agents.send(agentId, {
      command: {
        $case: "kill",
        value: { taskId: t.info.taskId, ...killGraceOf(t.info, gracePeriodSeconds) },
      },
    });
  }

  /** Kills every active task of a framework (its failover timeout passed). */
  async killFrameworkTasks(frameworkId: string): Promise<void> {
    for (const id of [...this.ctx.index.tasksOfFramework(frameworkId)]) {
      const t = this.ctx.state.task(id);
      if (t && isActive(t.status.state)) await this.killTask(t, "framework failover timeout");
    }
  }

  /** The latest statuses of the framework's tasks (all of them when `taskIds` is empty); unknown → GONE. */
  reconcile(frameworkId: string, taskIds: string[]): ReturnType<typeof toWireStatus>[] {
    if (taskIds.length > LIMITS.idsPerRequest)
      throw new InvalidArgumentError([{ path: "taskIds", message: `at most ${LIMITS.idsPerRequest} tasks` }]);
    const now = this.ctx.clock.now();
    const wanted = taskIds.length > 0 ? taskIds : [...this.ctx.index.tasksOfFramework(frameworkId)];
    const out = [];
    for (const id of wanted) {
      const t = this.ctx.state.task(id);
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
      this.frameworks.sendUpdate(frameworkId, id, {
        event: { $case: "update", value: { status, appId: t?.info.appId ?? "" } },
      });
    }
    return out;
  }

  /** The tasks the master has on `agentId` now (taken when its session begins). */
  expectedOn(agentId: string): TaskRecord[] {
    return [...this.ctx.index.tasksOnAgent(agentId)].flatMap((id) => this.ctx.state.task(id) ?? []);
  }

  /** Invariant 5: the agent's report and the master's view are brought together. */
  async reconcileAgent(
    agentId: string,
    reported: { taskId: string; status: TaskStatus }[],
    expected: TaskRecord[],
  ): Promise<void> {
    const plan = reconcileAgentReport(agentId, reported, expected, (id) => this.ctx.state.task(id));
    for (const taskId of plan.kill) {
      const info = this.ctx.state.task(taskId)?.info;
      this.agents.send(agentId, {
        command: { $case: "kill", value: { taskId, ...(info ? killGraceOf(info) : {}) } },
      });
    }
    const now = this.ctx.clock.now();
    await Promise.all([
      ...plan.apply.map((a) => this.apply(a.task, a.status)),
      ...plan.missing.map((m) =>
        this.apply(m.task, {
          state: m.state,
          message: m.message,
          timestampMs: now,
          uuid: randomUUID(),
          source: "reconciliation",
        }),
      ),
    ]);
  }

  /**
   * The agent has not been heard from for the heartbeat timeout: its STAGING, STARTING and RUNNING
   * tasks are TASK_UNREACHABLE (unless it is back by the time each is committed). A KILLING task
   * stays KILLING: the kill is carried out if the agent comes back.
   */
  async markUnreachable(agentId: string, silentMs: number): Promise<void> {
    const now = this.ctx.clock.now();
    const away = () => !this.agents.isConnected(agentId);
    const tasks = this.expectedOn(agentId).filter(
      (t) => !isTerminal(t.status.state) && t.status.state !== "TASK_KILLING",
    );
    await Promise.all(
      tasks.map((t) =>
        this.apply(
          t,
          {
            state: "TASK_UNREACHABLE",
            message: `agent ${agentId} not heard from for ${Math.round(silentMs / 1000)} s`,
            timestampMs: now,
            uuid: randomUUID(),
            source: "master",
          },
          away,
        ),
      ),
    );
  }

  /** The agent is gone for too long: its active tasks are TASK_LOST. */
  async markLost(agentId: string, awayMs: number): Promise<void> {
    const now = this.ctx.clock.now();
    const tasks = this.expectedOn(agentId).filter((t) => !isTerminal(t.status.state));
    await Promise.all(
      tasks.map((t) =>
        this.apply(t, {
          state: "TASK_LOST",
          message: `agent ${agentId} did not come back within ${Math.round(awayMs / 1000)} s`,
          timestampMs: now,
          uuid: randomUUID(),
          source: "master",
        }),
      ),
    );
  }

  /** Expunges the tasks terminal for longer than the retention (any backlog: group commit packs them). */
  async expunge(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const cutoff = this.ctx.clock.now() - this.ctx.config.terminalTaskRetentionSeconds * 1000;
      const due = [...this.ctx.index.terminal].filter(([, at]) => at < cutoff).map(([id]) => id);
      const results = await Promise.allSettled(
        due.map((id) =>
          this.ctx.state.commit(
            [{ kind: "task" as const, id, events: [{ type: "TaskExpunged" as const }] }],
            this.ctx.clock.now(),
            () => {
              const cur = this.ctx.state.task(id);
              return cur !== undefined && isTerminal(cur.status.state);
            },
          ),
        ),
      );
      for (const id of due) if (!this.ctx.state.task(id)) this.unacked.delete(id);
      const failed = results.filter((r) => r.status === "rejected");
      if (failed.length > 0)
        this.ctx.log.warn("expunging terminal tasks failed; retried at the next sweep", {
          failed: failed.length,
          of: due.length,
          err: errorMessage((failed[0] as PromiseRejectedResult).reason),
        });
    } finally {
      this.sweeping = false;
    }
  }
}

function sum(list: Resources[] | undefined): Resources {
  let r = emptyResources();
  for (const x of list ?? []) r = addResources(r, x);
  return r;
}

function push(m: Map<string, Resources[]>, key: string, r: Resources): void {
  const l = m.get(key);
  if (l) l.push(r);
  else m.set(key, [r]);
}

function pull(m: Map<string, Resources[]>, key: string, r: Resources): void {
  const l = m.get(key);
  if (!l) return;
  const i = l.indexOf(r);
  if (i >= 0) l.splice(i, 1);
  if (l.length === 0) m.delete(key);
}
