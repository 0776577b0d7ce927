/**
 * The scheduler as a framework of the master, built on the framework SDK (which holds the
 * subscription, follows the master leader and acknowledges updates). It keeps the view of its
 * tasks and turns offers into launches with the pure core (reconcileApp + placeInstances).
 * Every handler and `converge` run one at a time, in order, so the task view never changes
 * under a decision between its awaits. Crash-looping apps back off.
 */
import { randomUUID } from "node:crypto";
import {
  coalesce,
  errorMessage,
  forEachLimit,
  InvalidArgumentError,
  type Logger,
  UnavailableError,
} from "@drover/common";
import type { SchedulerConfig } from "@drover/config";
import {
  type AgentFacts,
  type AppRecord,
  type AppSpec,
  appPortDemand,
  appResources,
  appVersionOf,
  assignReservations,
  type BackoffPolicy,
  type BackoffState,
  type Constraint,
  cameBackReplaced,
  canLaunch,
  type DeclinedFunnel,
  explainAgents,
  hostPortsByIndex,
  type InstanceDemand,
  initialBackoff,
  isActive,
  isResident,
  isTerminal,
  type Placement,
  type PlacementResult,
  parseConstraints,
  persistentVolumeName,
  placeInstances,
  type Reservation,
  type RollingStep,
  reconcileApp,
  recordFailure,
  recordHealthy,
  residentLaunches,
  rollingStep,
  type TaskState,
  taskEnv,
  taskIdPrefix,
  taskRunOf,
  type UnplacedReason,
  type Verdict,
} from "@drover/core";
import { Framework, type FrameworkOffer, type TaskSpec, type TaskUpdate } from "@drover/framework";
import { fromWireState, type Task } from "@drover/proto";
import { dependencyWait } from "./dependencies.js";
import {
  deadlineOf,
  deploymentTasks,
  explainStep,
  isHealthy,
  isNewTask,
  isOldHealthy,
  isReady,
} from "./deployment-step.js";
import type { DeploymentView } from "./deployments.js";
import { reasonToText } from "./reasons.js";

export interface TaskEntry {
  taskId: string;
  appId: string;
  agentId: string;
  state: TaskState;
  createdAtMs: number;
  runningSinceMs?: number;
  killRequested: boolean;
  /** TASK_UNREACHABLE since (the time of the update that said so): the app's unreachableStrategy counts from it. */
  unreachableSinceMs?: number;
  /** Came back from TASK_UNREACHABLE after its replacement was due: killed first if the app has too many. */
  replaced?: boolean;
  /** The latest health and readiness its checks reported (absent: no checks, or no answer yet). */
  health?: TaskUpdate["health"];
  readiness?: TaskUpdate["readiness"];
  /** The task's IP addresses as its last status carries them (Marathon's `ipAddresses`). */
  ipAddresses?: string[];
  /** Resident apps: the reservation (agent and volumes) the task uses. */
  reservationId?: string;
  /** The app version it was launched with (TaskRun.appVersion); absent: unknown (counts as old). */
  appVersion?: string;
  /** The host ports it was launched with (absent: unknown). */
  ports?: number[];
}

/** The last task of an app that failed (Marathon's lastTaskFailure), as this leader saw it. */
export interface TaskFailure {
  taskId: string;
  agentId: string;
  state: TaskState;
  message: string;
  timestampMs: number;
  appVersion?: string;
}

export interface QueueEntry {
  appId: string;
  waiting: number;
  reasons: UnplacedReason[];
  sinceMs: number;
  offersSeen: number;
  backoffUntilMs: number;
  /** The last offers' funnel: each agent once, at its first reason (Marathon's rejectSummaryLastOffers). */
  declined?: DeclinedFunnel;
  /** Since the app began to wait (Marathon's launch attempt): offers processed, unused, and the funnel summed. */
  attempt?: LaunchAttempt;
  /** The master refused or failed the last launch of this app: why, and when it is tried again. */
  launchFailure?: LaunchFailure;
  /** Launches held until a dependency is healthy (dependencies.ts): what it waits for. */
  dependency?: string;
}

export interface LaunchAttempt {
  startedMs: number;
  processed: number;
  unused: number;
  declined: DeclinedFunnel;
  /** When an offer was last used for the app in this attempt; 0: none yet. */
  lastUsedMs: number;
}

/** An offer of the last round an app could not use, and why (Marathon's lastUnusedOffers). */
export interface UnusedOffer {
  offer: FrameworkOffer;
  verdicts: Verdict[];
  atMs: number;
}

interface Waiting {
  reasons: UnplacedReason[];
  sinceMs: number;
  offersSeen: number;
  declined: DeclinedFunnel;
  attempt: LaunchAttempt;
}

function addFunnel(a: DeclinedFunnel, b: DeclinedFunnel): DeclinedFunnel {
  return {
    constraint: a.constraint + b.constraint,
    cpus: a.cpus + b.cpus,
    mem: a.mem + b.mem,
    disk: a.disk + b.disk,
    ports: a.ports + b.ports,
  };
}

export interface LaunchFailure {
  message: string;
  attempts: number;
  retryAtMs: number;
}

/** Tasks placed on one round of offers (the rest wait for the next round). */
const MAX_LAUNCHES_PER_ROUND = 4000;

/** Accepts of one round of offers sent at once. */
const ACCEPTS_IN_FLIGHT = 512;

/** An accept refused only for its offers (expired, rescinded, unknown): not the app's fault. */
function offerOnly(err: unknown): boolean {
  return (
    err instanceof InvalidArgumentError &&
    err.issues.length > 0 &&
    err.issues.every((i) => i.path.startsWith("offerIds"))
  );
}

/** Backoff after a failed accept: 1 s doubling to 30 s (never a tight retry loop). */
const LAUNCH_RETRY = { initialMs: 1000, maxMs: 30_000 } as const;

/** What the driver reports (metrics); every hook is optional. */
export interface FrameworkObserver {
  offers?(n: number): void;
  accept?(launched: number, ok: boolean): void;
  offerRound?(ms: number): void;
  /** A converge planned `planned` of the `apps` apps (all of them on a full pass). */
  converged?(planned: number, apps: number): void;
}

/** What the driver uses of the framework SDK (Framework; a fake in unit tests). */
export type FrameworkClient = Pick<
  Framework,
  | "frameworkId"
  | "master"
  | "run"
  | "stop"
  | "launch"
  | "decline"
  | "revive"
  | "kill"
  | "reconcile"
  | "listTasks"
  | "listWireTasks"
  | "listWireTaskPage"
>;

export interface FrameworkDeps {
  config: SchedulerConfig;
  log: Logger;
  observer?: FrameworkObserver;
  /** Makes the framework SDK (default: a Framework subscribed to config.masters). */
  connect?: (
    options: ConstructorParameters<typeof Framework>[0],
    handlers: ConstructorParameters<typeof Framework>[1],
  ) => FrameworkClient;
  apps(): ReadonlyMap<string, AppRecord>;
  /**
   * Whether this replica still leads (D8): checked before every kill and accept, so a replica
   * whose term ended (or that was paused past its lease) sends no command from a stale view.
   * Default: always.
   */
  leading?(): boolean;
  loadFrameworkId(): Promise<string | undefined>;
  saveFrameworkId(id: string): Promise<void>;
  /** The launch backoff per app: kept in etcd by the leader (backoff-store.ts); default in memory. */
  backoff?: Map<string, BackoffState>;
  /** Reservations of resident apps (local persistent volumes); without it, they are never placed. */
  residency?: ResidencyView;
  /** Running deployments: their apps converge with rollingStep instead of reconcileApp. */
  deployments?: DeploymentView;
  /** A second workload next to the apps (jobs' runs: jobs/runner.ts). */
  workload?: Workload;
}

/**
 * A workload other than apps (jobs' runs) that shares the driver's offer handling, placement
 * (constraints included), task view and kill path. Its tasks are grouped under ids for which `owns`
 * holds (in the task's appId); they are neither an app's instances nor orphans of a removed app.
 */
export interface Workload {
  owns(appId: string): boolean;
  /** What it needs now, given the task view: launch demands, kills, when to look again. Synchronous. */
  plan(nowMs: number, tasks: Pick<TaskView, "appIds" | "ofApp">): WorkloadPlan;
  /** The task of one placement for `appId` (one of its demands). */
  taskOf(appId: string, offer: FrameworkOffer, ports: number[]): TaskSpec & { appId: string };
  /** One of its tasks ended; the view has dropped it (`entry` is how it was, if it was in the view). */
  ended(entry: TaskEntry, u: TaskUpdate): void;
  /**
   * After each subscription, before the first converge: what ended while no leader listened (the
   * master's terminal tasks of an id, as updates), so that nothing is launched again for it.
   */
  reconcile?(endedTasks: (appId: string) => Promise<TaskUpdate[]>): Promise<void>;
}

export interface WorkloadPlan {
  demands: InstanceDemand[];
  kill: string[];
  wakeAtMs?: number;
}

/** What the driver needs of the reservations of resident apps (services/scheduler/src/residency.ts). */
export interface ResidencyView {
  of(appId: string): readonly Reservation[];
  reserve(appId: string, reservations: Reservation[]): Promise<void>;
  apps(): string[];
  release(appId: string): Promise<void>;
}

/** The label that names a resident task's reservation (read back after a failover). */
export const RESERVATION_LABEL = "drover.reservation";

/** The view of the framework's tasks, indexed by app (no scan of every task per app). */
export class TaskView extends Map<string, TaskEntry> {
  private readonly byApp = new Map<string, Map<string, TaskEntry>>();
  /** Active tasks per app per agent (what placement spreads against), kept as tasks come and go. */
  readonly activeByAppAgent = new Map<string, Map<string, number>>();

  override set(taskId: string, t: TaskEntry): this {
    const prev = super.get(taskId);
    if (prev) this.uncount(prev);
    if (prev && prev.appId !== t.appId) this.byApp.get(prev.appId)?.delete(taskId);
    if (isActive(t.state)) {
      const m = this.activeByAppAgent.get(t.appId) ?? new Map<string, number>();
      m.set(t.agentId, (m.get(t.agentId) ?? 0) + 1);
      this.activeByAppAgent.set(t.appId, m);
    }
    super.set(taskId, t);
    let m = this.byApp.get(t.appId);
    if (!m) {
      m = new Map();
      this.byApp.set(t.appId, m);
    }
    m.set(taskId, t);
    return this;
  }

  override delete(taskId: string): boolean {
    const prev = super.get(taskId);
    if (prev) {
      this.uncount(prev);
      const m = this.byApp.get(prev.appId);
      m?.delete(taskId);
      if (m?.size === 0) this.byApp.delete(prev.appId);
    }
    return super.delete(taskId);
  }

  override clear(): void {
    this.byApp.clear();
    this.activeByAppAgent.clear();
    super.clear();
  }

  /**
   * Counted as active when it entered the view: a state changed in place stays active (only
   * non-terminal states are kept; a terminal update removes the task).
   */
  private uncount(t: TaskEntry): void {
    if (!isActive(t.state)) return;
    const m = this.activeByAppAgent.get(t.appId);
    const n = (m?.get(t.agentId) ?? 0) - 1;
    if (n > 0) m?.set(t.agentId, n);
    else {
      m?.delete(t.agentId);
      if (m?.size === 0) this.activeByAppAgent.delete(t.appId);
    }
  }

  /** The apps that have tasks in the view. */
  appIds(): Iterable<string> {
    return this.byApp.keys();
  }

  /** The tasks of one app. */
  ofApp(appId: string): Iterable<TaskEntry> {
    return this.byApp.get(appId)?.values() ?? [];
  }
}

/** What the converge loop does for one app now (reconcileApp's plan, or rollingStep's in a deployment). */
interface AppPlan {
  launch: number;
  kill: string[];
  expunge: string[];
  waitingForBackoffUntilMs?: number;
  recheckAtMs?: number;
  /** What holds the app's launches: a dependency, or an earlier step of its deployment's plan. */
  waitingForDependency?: string;
  rolling: { id: string; step: RollingStep } | undefined;
  /** A create's or a scale's deployment (by id): the app converges as without one; it is told when done. */
  tracking?: string;
}

export class FrameworkDriver {
  readonly tasks = new TaskView();
  readonly backoff: Map<string, BackoffState>;
  /** Why each app's waiting instances were not placed, from the last offers seen. */
  private readonly waiting = new Map<string, Waiting>();
  /** The last round of offers (for lastUnusedOffers, explained on request). */
  private lastOffers: { offers: FrameworkOffer[]; atMs: number } = { offers: [], atMs: 0 };
  /** Apps whose last launch the master failed, until their retry time (cleared by a launch that commits). */
  private readonly launchFailures = new Map<string, LaunchFailure>();
  /** The last failed task per app (kept in memory by this leader: lastTaskFailure of the HTTP API). */
  private readonly failures = new Map<string, TaskFailure>();
  /** The last health failure of a new instance per app under deployment (see explainStep). */
  private readonly lastHealthFailure = new Map<string, { taskId: string; cause: string }>();
  private fw: FrameworkClient | undefined;
  private ready = false;
  private stopped = false;
  private reviveTimer: NodeJS.Timeout | undefined;
  private reviveAtMs = Number.POSITIVE_INFINITY;
  private recheckTimer: NodeJS.Timeout | undefined;
  private recheckAtMs = Number.POSITIVE_INFINITY;
  private queueTail: Promise<unknown> = Promise.resolve();
  private readonly convergeSoon: { trigger(): void; cancel(): void };
  /** Tasks in accepts sent or queued and not answered yet. */
  private accepting = 0;
  /**
   * Hostname and attributes of every agent seen in an offer: constraints count an app's instances
   * by the agents they run on, also agents that offer nothing now.
   */
  private readonly agentFacts = new Map<string, AgentFacts>();
  /**
   * What the next converge plans: every app (`allDirty`: the app set, a deployment or the time may
   * have changed anything), or only the apps whose tasks changed (`dirty`) and those that still
   * move (`moving`). A steady app (its instances running, nothing to do) is planned again only
   * when one of its tasks changes or on a full pass (every converge() call: app events, the
   * scheduler's tick, deployments, rechecks). So converge costs O(apps that move), not O(apps).
   */
  private allDirty = true;
  private readonly dirty = new Set<string>();
  /**
   * Apps whose last plan launches, kills, waits (backoff, dependency, a step of its deployment) or
   * belongs to a deployment: planned on every converge and every offer round.
   */
  private readonly moving = new Set<string>();
  /** Apps other apps depend on: a change of one of their tasks re-plans every app. */
  private dependedOn = new Set<string>();

  constructor(private readonly deps: FrameworkDeps) {
    this.backoff = deps.backoff ?? new Map();
    this.convergeSoon = coalesce(
      () => this.serial(() => this.convergeNow()),
      50,
      (err) => deps.log.error("converge failed", { err: errorMessage(err) }),
    );
  }

  /** The app's launch backoff (Marathon's backoffSeconds, backoffFactor, maxLaunchDelaySeconds). */
  private policyOf(appId: string): BackoffPolicy {
    const app = this.deps.apps().get(appId)?.spec;
    return {
      initialMs: (app?.backoffSeconds ?? 1) * 1000,
      factor: app?.backoffFactor ?? 1.15,
      maxMs: (app?.maxLaunchDelaySeconds ?? 300) * 1000,
      resetAfterMs: 30_000,
    };
  }

  get frameworkId(): string | undefined {
    return this.fw?.frameworkId;
  }

  /** Loads the persisted framework id and prepares the subscription; call before serving requests. */
  async init(): Promise<void> {
    const c = this.deps.config;
    const frameworkId = await this.deps.loadFrameworkId();
    const connect = this.deps.connect ?? ((o, h) => new Framework(o, h));
    this.fw = connect(
      {
        masters: c.masters,
        name: c.frameworkName,
        role: c.role,
        failoverTimeoutSeconds: c.failoverTimeoutSeconds,
        ...(frameworkId ? { frameworkId } : {}),
      },
      {
        subscribed: (id) => this.serial(() => this.onSubscribed(id)),
        offers: (offers) => this.serial(() => this.onOffers(offers)),
        update: (u) => this.serial(() => this.onUpdate(u)),
        disconnected: (reason) => {
          this.ready = false;
          this.deps.log.info("framework subscription ended; reconnecting", { reason });
        },
      },
    );
  }

  /** Runs the subscription until stop(); the SDK reconnects to the leader whenever it drops. */
  async run(): Promise<void> {
    await this.sdk().run();
  }

  stop(): void {
    this.stopped = true;
    this.convergeSoon.cancel();
    this.ready = false;
    if (this.reviveTimer) clearTimeout(this.reviveTimer);
    if (this.recheckTimer) clearTimeout(this.recheckTimer);
    this.fw?.stop();
  }

  /** This framework's tasks, as the master knows them (for the operator API). */
  async listTasks(
    appId: string,
    includeTerminal: boolean,
    page: { pageSize: number; pageToken: string } = { pageSize: 0, pageToken: "" },
  ): Promise<{ tasks: Task[]; nextPageToken: string }> {
    // Never an empty list for "not known yet": during a failover the caller must retry, not believe it.
    if (!this.frameworkId || !this.ready)
      throw new UnavailableError("the scheduler is not subscribed to the master yet; retry");
    if (page.pageSize === 0 && page.pageToken === "")
      return { tasks: await this.sdk().listWireTasks({ appId, includeTerminal }), nextPageToken: "" };
    return this.sdk().listWireTaskPage({ appId, includeTerminal, ...page });
  }

  /** Kills surplus and orphaned tasks; revives offers when tasks are missing. Plans every app. */
  converge(): Promise<void> {
    this.allDirty = true;
    return this.serial(() => this.convergeNow());
  }

  /** The app's tasks changed: plan it on the next converge (and every app when others depend on it). */
  private markDirty(appId: string): void {
    if (this.dependedOn.has(appId)) this.allDirty = true;
    else this.dirty.add(appId);
  }

  private leads(): boolean {
    if (this.deps.leading?.() ?? true) return true;
    this.deps.log.warn("not leading any more: no command sent to the master");
    return false;
  }

  private sdk(): FrameworkClient {
    if (!this.fw) throw new Error("FrameworkDriver.init() was not called");
    return this.fw;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queueTail.then(fn, fn);
    this.queueTail = p.catch((err: unknown) =>
      this.deps.log.error("framework handler failed", { err: errorMessage(err) }),
    );
    return p;
  }

  private async onSubscribed(frameworkId: string): Promise<void> {
    await this.deps.saveFrameworkId(frameworkId);
    // Rebuild the task view from the master before launching anything (no duplicates after a failover).
    const tasks = await this.sdk().listTasks();
    const seen = new Set<string>();
    for (const t of tasks) {
      seen.add(t.taskId);
      const prev = this.tasks.get(t.taskId);
      this.tasks.set(t.taskId, {
        taskId: t.taskId,
        appId: absoluteAppId(t.appId),
        agentId: t.agentId,
        state: t.state,
        createdAtMs: t.createdAtMs,
        ...(t.state === "TASK_RUNNING" ? { runningSinceMs: prev?.runningSinceMs ?? t.updatedAtMs } : {}),
        killRequested: prev?.killRequested ?? t.state === "TASK_KILLING",
        ...(t.state === "TASK_UNREACHABLE"
          ? { unreachableSinceMs: prev?.unreachableSinceMs ?? t.updatedAtMs }
          : {}),
        ...(prev?.replaced ? { replaced: true } : {}),
        ...(t.health ? { health: t.health } : {}),
        ...(t.readiness ? { readiness: t.readiness } : {}),
        ...(t.ipAddresses ? { ipAddresses: t.ipAddresses } : {}),
        ...(t.labels[RESERVATION_LABEL] ? { reservationId: t.labels[RESERVATION_LABEL] } : {}),
        ...((t.appVersion ?? prev?.appVersion) ? { appVersion: t.appVersion ?? prev?.appVersion } : {}),
        ...(t.ports && t.ports.length > 0 ? { ports: t.ports } : prev?.ports ? { ports: prev.ports } : {}),
      });
    }
    for (const id of [...this.tasks.keys()]) if (!seen.has(id)) this.tasks.delete(id);
    await this.deps.workload
      ?.reconcile?.((appId) => this.endedTasksOf(appId))
      .catch((err: unknown) => this.deps.log.warn("reconciling job runs failed", { err: errorMessage(err) }));
    this.ready = true;
    this.deps.log.info("framework subscribed", {
      frameworkId,
      tasks: this.tasks.size,
      master: this.sdk().master,
    });
    // The task view was rebuilt: every app is planned.
    this.allDirty = true;
    await this.convergeNow();
  }

  /** The master's terminal tasks of `appId` (retained for a while), as updates. */
  private async endedTasksOf(appId: string): Promise<TaskUpdate[]> {
    const wire = await this.sdk().listWireTasks({ appId, includeTerminal: true });
    return wire.flatMap((t) => {
      const state = t.status ? fromWireState(t.status.state) : undefined;
      if (!t.info || !t.status || !state || !isTerminal(state)) return [];
      return [
        {
          taskId: t.info.taskId,
          agentId: t.info.agentId,
          appId: t.info.appId,
          state,
          message: t.status.message,
          ...(t.status.exitCode !== undefined ? { exitCode: t.status.exitCode } : {}),
          timestampMs: t.status.timestampMs || t.updatedAtMs,
          uuid: t.status.uuid,
        },
      ];
    });
  }

  private async onUpdate(u: TaskUpdate): Promise<void> {
    const now = Date.now();
    const entry = this.tasks.get(u.taskId);
    if (entry) this.noteHealthFailure(entry, u);
    if (isTerminal(u.state)) {
      if (entry) {
        this.tasks.delete(u.taskId);
        const owned = this.deps.workload?.owns(entry.appId) ?? false;
        if (owned) this.deps.workload?.ended(entry, u);
        const failed =
          !owned && u.state !== "TASK_FINISHED" && u.state !== "TASK_GONE" && !entry.killRequested;
        if (failed) {
          this.failures.set(entry.appId, {
            taskId: u.taskId,
            agentId: entry.agentId,
            state: u.state,
            message: u.message,
            timestampMs: u.timestampMs || now,
            ...(entry.appVersion ? { appVersion: entry.appVersion } : {}),
          });
          this.backoff.set(
            entry.appId,
            recordFailure(this.backoff.get(entry.appId) ?? initialBackoff(), now, this.policyOf(entry.appId)),
          );
          this.deps.log.warn("task failed", {
            taskId: u.taskId,
            state: u.state,
            appId: entry.appId,
            message: u.message,
          });
        }
      } else if (u.appId && this.deps.workload?.owns(u.appId)) {
        // Not in the view (it ended before this leader listed the tasks): the workload still hears of it.
        this.deps.workload.ended(
          {
            taskId: u.taskId,
            appId: u.appId,
            agentId: u.agentId,
            state: u.state,
            createdAtMs: now,
            killRequested: false,
          },
          u,
        );
      }
    } else if (entry) {
      entry.state = u.state;
      if (u.health) entry.health = u.health;
      if (u.readiness) entry.readiness = u.readiness;
      if (u.ipAddresses) entry.ipAddresses = u.ipAddresses;
      if (u.state === "TASK_RUNNING" && entry.runningSinceMs === undefined)
        entry.runningSinceMs = u.timestampMs || now;
    } else if (u.appId) {
      this.tasks.set(u.taskId, {
        taskId: u.taskId,
        appId: absoluteAppId(u.appId),
        agentId: u.agentId,
        state: u.state,
        createdAtMs: now,
        killRequested: false,
        ...(u.ipAddresses ? { ipAddresses: u.ipAddresses } : {}),
      });
    }
    if (!isTerminal(u.state)) this.noteUnreachable(u, now);
    const appId = entry?.appId ?? (u.appId ? absoluteAppId(u.appId) : undefined);
    if (appId !== undefined) this.markDirty(appId);
    else this.allDirty = true;
    // Updates arrive in floods at scale: converge once per burst, not once per update.
    this.convergeSoon.trigger();
  }

  /** Keeps the last health failure of an app's new instances (what a deployment says it waits for). */
  private noteHealthFailure(entry: TaskEntry, u: TaskUpdate): void {
    if (!this.deps.deployments?.runningFor(entry.appId)) return;
    const cause =
      u.health?.healthy === false
        ? u.health.lastFailureCause
        : u.reason === "REASON_TASK_UNHEALTHY_CHECK_STATUS"
          ? u.message
          : undefined;
    if (cause) this.lastHealthFailure.set(entry.appId, { taskId: entry.taskId, cause });
  }

  /**
   * Keeps when a task became unreachable (the update's time), and when it comes back whether it
   * had been replaced meanwhile (cameBackReplaced, by the app's unreachableStrategy).
   */
  private noteUnreachable(u: TaskUpdate, now: number): void {
    const e = this.tasks.get(u.taskId);
    if (!e) return;
    if (u.state === "TASK_UNREACHABLE") {
      e.unreachableSinceMs ??= u.timestampMs || now;
      return;
    }
    if (e.unreachableSinceMs === undefined) return;
    const strategy = this.deps.apps().get(e.appId)?.spec.unreachableStrategy;
    if (cameBackReplaced(e.unreachableSinceMs, now, strategy)) e.replaced = true;
    e.unreachableSinceMs = undefined;
    this.deps.log.info("unreachable task is back", {
      taskId: u.taskId,
      state: u.state,
      replaced: e.replaced,
    });
  }

  private async convergeNow(): Promise<void> {
    if (!this.ready || !this.frameworkId || this.stopped) return;
    const now = Date.now();
    const apps = this.deps.apps();
    const full = this.allDirty;
    const planned: Iterable<string> = full ? apps.keys() : new Set([...this.dirty, ...this.moving]);
    this.allDirty = false;
    this.dirty.clear();
    if (full) {
      this.moving.clear();
      this.dependedOn = new Set();
      for (const app of apps.values()) for (const d of app.spec.dependencies) this.dependedOn.add(d);
    }
    let reviveAt = Number.POSITIVE_INFINITY;
    const kills: string[] = [];
    // Tasks of apps that no longer exist (by app: no walk over every task per converge), except
    // those a deployment stops later (a removed app stops after the removed apps that depend on it).
    const stops = [...(this.deps.deployments?.stops() ?? [])];
    const heldStops = new Set(stops.filter((s) => s.held).map((s) => s.appId));
    for (const appId of this.tasks.appIds())
      if (!apps.has(appId) && !heldStops.has(appId) && !this.deps.workload?.owns(appId))
        for (const t of this.tasks.ofApp(appId))
          if (isActive(t.state) && !t.killRequested) kills.push(t.taskId);
    this.reportStops(stops.filter((s) => !s.held));
    for (const appId of this.deps.residency?.apps() ?? [])
      if (!apps.has(appId) && this.leads())
        await this.deps.residency
          ?.release(appId)
          .catch((err: unknown) =>
            this.deps.log.warn("releasing reservations failed", { appId, err: errorMessage(err) }),
          );
    // The other workload's plan (jobs' runs): the launch failures of what it still demands are kept.
    const other = this.deps.workload?.plan(now, this.tasks);
    const otherDemands = new Set(other?.demands.map((d) => d.appId));
    for (const id of [...this.waiting.keys(), ...this.launchFailures.keys(), ...this.failures.keys()])
      if (!apps.has(id) && !otherDemands.has(id)) {
        this.waiting.delete(id);
        this.launchFailures.delete(id);
        this.failures.delete(id);
      }
    let plannedCount = 0;
    for (const appId of planned) {
      const app = apps.get(appId);
      if (!app) {
        this.moving.delete(appId);
        continue;
      }
      plannedCount++;
      const plan = this.plan(appId, app, now);
      const moves =
        plan.launch > 0 ||
        plan.kill.length > 0 ||
        plan.expunge.length > 0 ||
        plan.waitingForBackoffUntilMs !== undefined ||
        plan.waitingForDependency !== undefined ||
        plan.recheckAtMs !== undefined ||
        plan.rolling !== undefined ||
        plan.tracking !== undefined;
      if (moves) this.moving.add(appId);
      else this.moving.delete(appId);
      if (plan.launch > 0) reviveAt = now;
      else if (plan.waitingForBackoffUntilMs !== undefined)
        reviveAt = Math.min(reviveAt, plan.waitingForBackoffUntilMs);
      kills.push(...plan.kill);
      // Expunged: killed through the master (TASK_GONE while its agent is away), forgotten on that update.
      for (const id of plan.expunge) {
        if (this.tasks.get(id)?.killRequested) continue;
        this.deps.log.info("expunging unreachable task", { taskId: id, appId });
        kills.push(id);
      }
      if (plan.recheckAtMs !== undefined) this.scheduleRecheck(plan.recheckAtMs);
      if (plan.rolling) this.report(appId, app, plan.rolling, plan.waitingForBackoffUntilMs);
      else if (plan.tracking) this.reportTracking(appId, app, plan.tracking, plan);
      else this.lastHealthFailure.delete(appId);
    }
    this.deps.observer?.converged?.(plannedCount, apps.size);
    if (other && other.demands.length > 0) reviveAt = now;
    kills.push(...(other?.kill ?? []));
    if (other?.wakeAtMs !== undefined) this.scheduleRecheck(other.wakeAtMs);
    if (kills.length > 0 && !this.leads()) return;
    for (const id of kills) {
      const t = this.tasks.get(id);
      if (!t || t.killRequested) continue;
      // An unreachable task of a resident app keeps its reservation until its agent comes back: a
      // kill now would end it in the master (TASK_GONE) while its container may still write to the
      // volume, and free the reservation for a second writer.
      const owner = apps.get(t.appId);
      if (t.state === "TASK_UNREACHABLE" && owner && isResident(owner.spec)) continue;
      t.killRequested = true;
      await this.sdk()
        .kill(id, apps.get(t.appId)?.spec.taskKillGracePeriodSeconds)
        .catch((err: unknown) => {
          t.killRequested = false;
          this.markDirty(t.appId);
          this.deps.log.warn("kill failed", { taskId: id, err: errorMessage(err) });
        });
    }
    if (reviveAt < Number.POSITIVE_INFINITY) this.scheduleRevive(reviveAt);
  }

  /** Converges again at `atMs` (an unreachable task becomes inactive or due for expunging); an earlier request wins. */
  private scheduleRecheck(atMs: number): void {
    if (this.recheckTimer && this.recheckAtMs <= atMs) return;
    if (this.recheckTimer) clearTimeout(this.recheckTimer);
    this.recheckAtMs = atMs;
    this.recheckTimer = setTimeout(
      () => {
        this.recheckTimer = undefined;
        this.recheckAtMs = Number.POSITIVE_INFINITY;
        this.allDirty = true;
        if (!this.stopped) this.convergeSoon.trigger();
      },
      Math.max(0, atMs - Date.now()),
    );
  }

  /** Revives offers at `atMs` (now, or when a backoff ends); an earlier request wins. */
  private scheduleRevive(atMs: number): void {
    if (this.reviveTimer && this.reviveAtMs <= atMs) return;
    if (this.reviveTimer) clearTimeout(this.reviveTimer);
    this.reviveAtMs = atMs;
    this.reviveTimer = setTimeout(
      () => {
        this.reviveTimer = undefined;
        this.reviveAtMs = Number.POSITIVE_INFINITY;
        if (!this.ready || this.stopped) return;
        this.sdk()
          .revive()
          .catch((err: unknown) => this.deps.log.debug("revive failed", { err: errorMessage(err) }));
      },
      Math.max(0, atMs - Date.now()),
    );
  }

  /**
   * A create's or a scale's deployment is done once exactly `instances` tasks are active, none is
   * being killed, and all run healthy and ready (Marathon's ScaleApplication); until then it says how
   * many are and what holds the others.
   */
  private reportTracking(appId: string, app: AppRecord, id: string, plan: AppPlan): void {
    const n = app.spec.instances;
    let active = 0;
    let healthy = 0;
    let going = 0;
    for (const t of this.tasks.ofApp(appId)) {
      if (!isActive(t.state)) continue;
      if (t.killRequested || t.state === "TASK_KILLING") {
        going++;
        continue;
      }
      active++;
      // A task of an earlier config (left by a forced cancel) is judged by its own checks.
      if (isNewTask(app, t) ? isHealthy(app, t) && isReady(app, t) : isOldHealthy(t)) healthy++;
    }
    const done = active === n && healthy === n && going === 0;
    const parts = [`${appId}: ${healthy} of ${n} instances running healthy and ready`];
    if (going > 0) parts.push(`${going} stopping`);
    if (plan.waitingForDependency) parts.push(plan.waitingForDependency);
    if (plan.waitingForBackoffUntilMs !== undefined)
      parts.push(
        `launches held by crash-loop backoff until ${new Date(plan.waitingForBackoffUntilMs).toISOString()}`,
      );
    const w = this.waiting.get(appId);
    if (w && active < n) parts.push(`not placed: ${w.reasons.map(reasonToText).join(", ")}`);
    this.deps.deployments?.observe(id, appId, {
      waitingFor: done ? "" : parts.join("; "),
      counts: {
        old: 0,
        new: active,
        newHealthy: healthy,
        healthy,
        minHealthy: 0,
        maxInstances: n,
        instances: n,
      },
      done,
    });
  }

  /** A StopApplication is done once no task of the removed app is active any more. */
  private reportStops(stops: readonly { id: string; appId: string }[]): void {
    for (const s of stops) {
      let left = 0;
      for (const t of this.tasks.ofApp(s.appId)) if (isActive(t.state)) left++;
      this.deps.deployments?.observe(s.id, s.appId, {
        waitingFor: left > 0 ? `${s.appId}: waiting for ${left} instance(s) to stop` : "",
        counts: {
          old: left,
          new: 0,
          newHealthy: 0,
          healthy: 0,
          minHealthy: 0,
          maxInstances: 0,
          instances: 0,
        },
        done: left === 0,
      });
    }
  }

  /** Reports an app's deployment step to the deployments (progress, success). */
  private report(
    appId: string,
    app: AppRecord,
    rolling: { id: string; step: RollingStep },
    backoffUntilMs: number | undefined,
  ): void {
    const { step } = rolling;
    const w = this.waiting.get(appId);
    const tasks = [...this.tasks.ofApp(appId)];
    const dependency = step.launch > 0 ? this.dependencyWait(app) : undefined;
    const explained = explainStep(app, tasks, step, {
      ...(backoffUntilMs !== undefined ? { backoffUntilMs } : {}),
      ...(w && step.launch > 0 ? { unplaced: w.reasons.map(reasonToText).join(", ") } : {}),
      ...(this.lastHealthFailure.has(appId) ? { lastFailure: this.lastHealthFailure.get(appId) } : {}),
    });
    const waitingFor = dependency ? `${explained}; ${dependency}` : explained;
    this.deps.deployments?.observe(rolling.id, appId, {
      waitingFor,
      counts: { ...step.counts, instances: app.spec.instances },
      done: step.done,
      ...deadlineOf(app),
    });
  }

  /**
   * What reconcileApp says of `appId` now, or, while a deployment of the app runs, rollingStep
   * (launches still wait for the app's backoff; unreachable tasks are still expunged as the app's
   * unreachableStrategy says); `record` keeps the refreshed backoff (queries pass false).
   */
  private plan(appId: string, app: AppRecord, now: number, record = true) {
    const own = this.planOwn(appId, app, now, record);
    // Dependencies order starts and upgrades (Marathon): they hold an app's first start (no task
    // of it active) and its deployment's launches, not the replacement of a task that died.
    const starting = own.launch > 0 && (own.rolling !== undefined || !this.hasActiveTask(appId));
    const wait = starting ? this.dependencyWait(app) : undefined;
    return { ...own, ...(wait ? { launch: 0, waitingForDependency: wait } : {}) };
  }

  private hasActiveTask(appId: string): boolean {
    for (const t of this.tasks.ofApp(appId)) if (isActive(t.state) && !t.killRequested) return true;
    return false;
  }

  /** What `app`'s launches wait for among its dependencies (dependencies.ts), if anything. */
  private dependencyWait(app: AppRecord): string | undefined {
    if (app.spec.dependencies.length === 0) return undefined;
    return dependencyWait(app, {
      apps: this.deps.apps(),
      tasksOf: (id) => this.tasks.ofApp(id),
      deploying: (id) => this.deps.deployments?.runningFor(id) !== undefined,
    });
  }

  private planOwn(appId: string, app: AppRecord, now: number, record: boolean): AppPlan {
    const base = this.reconcilePlan(appId, app, now, record);
    const deployment = this.deps.deployments?.runningFor(appId);
    if (!deployment) return { ...base, rolling: undefined };
    if (deployment.tracking && deployment.heldBy === undefined)
      return { ...base, rolling: undefined, tracking: deployment.id };
    // An action of a later step of the plan: the app does not move yet (no launch, no kill but
    // the expunges of its unreachable strategy).
    if (deployment.heldBy !== undefined)
      return {
        launch: 0,
        kill: [] as string[],
        expunge: base.expunge,
        ...(base.recheckAtMs !== undefined ? { recheckAtMs: base.recheckAtMs } : {}),
        rolling: undefined,
        waitingForDependency: deployment.heldBy,
      };
    const tasks = [...this.tasks.ofApp(appId)];
    const step = rollingStep({
      instances: app.spec.instances,
      strategy: app.spec.upgradeStrategy,
      resident: isResident(app.spec),
      tasks: deploymentTasks(app, tasks, deployment.sameConfig),
      ...(deployment.canaryInstances !== undefined ? { canaryInstances: deployment.canaryInstances } : {}),
    });
    const b = this.backoff.get(appId) ?? initialBackoff();
    const held = step.launch > 0 && !canLaunch(b, now);
    const expunge = new Set(base.expunge);
    return {
      launch: held ? 0 : step.launch,
      kill: step.kill.filter((id) => !expunge.has(id)),
      expunge: base.expunge,
      ...(held ? { waitingForBackoffUntilMs: b.delayUntilMs } : {}),
      ...(base.recheckAtMs !== undefined ? { recheckAtMs: base.recheckAtMs } : {}),
      rolling: { id: deployment.id, step },
    };
  }

  private reconcilePlan(appId: string, app: AppRecord, now: number, record: boolean) {
    // Runs for every app on every converge and offer round: one pass over the app's tasks, the
    // entries handed to reconcileApp as they are (it reads them, never keeps or changes them).
    let b = this.backoff.get(appId) ?? initialBackoff();
    const backedOff = b.failures !== 0 || b.delayUntilMs !== 0 || b.lastFailureMs !== 0;
    const policy = backedOff ? this.policyOf(appId) : undefined;
    const live: TaskEntry[] = [];
    for (const t of this.tasks.ofApp(appId)) {
      if (policy !== undefined && t.runningSinceMs !== undefined)
        b = recordHealthy(b, t.runningSinceMs, now, policy);
      if (!t.killRequested) live.push(t);
    }
    if (record && backedOff) this.backoff.set(appId, b);
    return reconcileApp({
      instances: app.spec.instances,
      tasks: live,
      backoff: b,
      nowMs: now,
      killSelection: app.spec.killSelection,
      unreachableStrategy: app.spec.unreachableStrategy,
    });
  }

  private async onOffers(offers: FrameworkOffer[]): Promise<void> {
    const started = performance.now();
    this.deps.observer?.offers?.(offers.length);
    try {
      await this.placeOffers(offers);
    } finally {
      this.deps.observer?.offerRound?.(performance.now() - started);
    }
  }

  private async placeOffers(offers: FrameworkOffer[]): Promise<void> {
    if (!this.ready || this.stopped || !this.leads()) {
      this.decline(
        offers.map((o) => o.offerId),
        1,
      );
      return;
    }
    const now = Date.now();
    const apps = this.deps.apps();
    const demands: InstanceDemand[] = [];
    const pinnedByApp = new Map<string, Reservation[]>();
    // Only apps that may launch: those the last converge saw move, and those changed since (all
    // apps until a full converge has run).
    const candidates: Iterable<string> = this.allDirty
      ? apps.keys()
      : new Set([...this.moving, ...this.dirty]);
    for (const appId of candidates) {
      const app = apps.get(appId);
      if (!app) continue;
      const plan = this.plan(appId, app, now);
      const failure = this.launchFailures.get(appId);
      if (failure && failure.retryAtMs > now) continue;
      if (plan.launch === 0) continue;
      const demand = demandOf(appId, app.spec, plan.launch);
      if (!isResident(app.spec)) {
        demands.push(demand);
        continue;
      }
      // A resident app: an instance whose reservation is free runs again where its volumes are.
      if (!this.deps.residency) continue;
      const inUse = new Set<string>();
      for (const t of this.tasks.ofApp(appId))
        if (t.reservationId && isActive(t.state)) inUse.add(t.reservationId);
      const { pinned, fresh } = residentLaunches(this.deps.residency.of(appId), inUse, plan.launch);
      pinnedByApp.set(appId, pinned);
      const byHost = new Map<string, number>();
      for (const r of pinned) byHost.set(r.hostname, (byHost.get(r.hostname) ?? 0) + 1);
      for (const [hostname, count] of byHost)
        demands.push({
          ...demand,
          count,
          constraints: [
            ...(demand.constraints ?? []),
            { field: "hostname", operator: "IS" as const, value: hostname },
          ],
        });
      if (fresh > 0) demands.push({ ...demand, count: fresh });
    }
    // The other workload's launches (jobs' runs) are placed with the apps' in one pass.
    for (const d of this.deps.workload?.plan(now, this.tasks).demands ?? [])
      if ((this.launchFailures.get(d.appId)?.retryAtMs ?? 0) <= now) demands.push(d);
    const existing = this.tasks.activeByAppAgent;
    // At most a round's worth of launches: a round that takes longer than the offer timeout to
    // accept fails on expired offers (Marathon's launch tokens play the same part). The rest of
    // the demand waits for the next offers, a second later.
    // Tasks of earlier rounds still being accepted count against this round (backpressure when
    // the master is slower than the offers: the offers go back, to come again a second later).
    let budget = MAX_LAUNCHES_PER_ROUND - this.accepting;
    if (budget <= 0 && demands.length > 0) {
      this.decline(
        offers.map((o) => o.offerId),
        1,
      );
      return;
    }
    const capped = demands.flatMap((d) => {
      const count = Math.min(d.count, budget);
      budget -= count;
      return count > 0 ? [{ ...d, count }] : [];
    });
    for (const o of offers)
      this.agentFacts.set(o.agentId, { hostname: o.hostname, attributes: o.attributes });
    const result = placeInstances(offers, capped, existing, { agents: this.agentFacts });
    this.lastOffers = { offers, atMs: now };
    this.recordWaiting(capped, result, offers.length, now);
    const byOffer = new Map<
      string,
      { offer: FrameworkOffer; tasks: (TaskSpec & { appId: string })[]; reserve: Map<string, Reservation[]> }
    >();
    const offerById = new Map(offers.map((o) => [o.offerId, o]));
    const reservationsOf = this.reservationsFor(result.placements, offerById, pinnedByApp, now);
    for (const [i, p] of result.placements.entries()) {
      const app = apps.get(p.appId);
      const offer = offerById.get(p.offerId);
      const other = !app && offer && this.deps.workload?.owns(p.appId) ? this.deps.workload : undefined;
      if ((!app && !other) || !offer) continue;
      const entry = byOffer.get(p.offerId) ?? {
        offer,
        tasks: [] as (TaskSpec & { appId: string })[],
        reserve: new Map<string, Reservation[]>(),
      };
      const reservation = reservationsOf.get(i);
      entry.tasks.push(
        app
          ? taskSpecOf(app.spec, offer, p.ports, reservation?.id, appVersionOf(app).version)
          : (other as Workload).taskOf(p.appId, offer, p.ports),
      );
      if (reservation?.created)
        entry.reserve.set(p.appId, [...(entry.reserve.get(p.appId) ?? []), reservation.created]);
      byOffer.set(p.offerId, entry);
    }
    const unused = offers.map((o) => o.offerId).filter((id) => !byOffer.has(id));
    // Every planned task enters the view before the first accept is sent.
    for (const { offer, tasks } of byOffer.values())
      for (const t of tasks)
        this.tasks.set(t.taskId, {
          taskId: t.taskId,
          appId: t.appId,
          agentId: offer.agentId,
          state: "TASK_STAGING",
          createdAtMs: now,
          killRequested: false,
          ...(t.labels?.[RESERVATION_LABEL] ? { reservationId: t.labels[RESERVATION_LABEL] } : {}),
          ...(t.run?.appVersion ? { appVersion: t.run.appVersion } : {}),
          ...(t.ports && t.ports.length > 0 ? { ports: [...t.ports] } : {}),
        });
    // What this round does not use goes back first, so the master can offer it again meanwhile.
    if (unused.length > 0) this.decline(unused, demands.length > 0 ? 1 : 30);
    // Accepts go out together (the master commits concurrent accepts in shared transactions), and
    // the round does not wait for them: status updates and the next offers are handled meanwhile
    // (the view already holds every planned task, and each answer applies to it at once).
    const accepts = [...byOffer.values()];
    const count = accepts.reduce((n, a) => n + a.tasks.length, 0);
    this.accepting += count;
    void forEachLimit(accepts, ACCEPTS_IN_FLIGHT, (a) =>
      this.accept(a.offer, a.tasks, now, a.reserve),
    ).finally(() => {
      this.accepting -= count;
    });
  }

  /** One accept of a round, and what its answer means for the view. */
  private async accept(
    offer: FrameworkOffer,
    tasks: (TaskSpec & { appId: string })[],
    now: number,
    reserve: ReadonlyMap<string, Reservation[]> = new Map(),
  ): Promise<void> {
    // New reservations are stored before the tasks that use them are launched.
    for (const [appId, reservations] of reserve) {
      try {
        await this.deps.residency?.reserve(appId, reservations);
      } catch (err) {
        for (const t of tasks) if (t.appId === appId) this.tasks.delete(t.taskId);
        tasks = tasks.filter((t) => t.appId !== appId);
        this.recordLaunchFailure(appId, `could not store the volume reservation: ${errorMessage(err)}`, now);
      }
    }
    if (tasks.length === 0) return;
    try {
      // An accept may launch part of its tasks (the master says which): the others leave the view.
      const launched = new Set(await this.sdk().launch(offer, tasks, 1));
      this.deps.observer?.accept?.(launched.size, true);
      for (const t of tasks) if (!launched.has(t.taskId)) this.tasks.delete(t.taskId);
      for (const appId of new Set(tasks.map((t) => t.appId))) {
        const all = tasks.filter((t) => t.appId === appId);
        if (all.some((t) => launched.has(t.taskId))) this.launchFailures.delete(appId);
        else this.recordLaunchFailure(appId, "the master launched none of the tasks", now);
      }
      this.deps.log.debug("launched", { tasks: launched.size, of: tasks.length, agentId: offer.agentId });
    } catch (err) {
      // Ambiguous: the master may have committed the launch before the answer was lost (a retry then
      // finds the offer gone). Ask the master what it knows of these tasks instead of guessing.
      this.deps.log.warn("accept failed; reconciling its tasks", {
        offerId: offer.offerId,
        err: errorMessage(err),
      });
      this.deps.observer?.accept?.(0, false);
      // An offer that expired or was rescinded is nobody's fault: the tasks go back to waiting for
      // the next offer. Anything else counts against the apps (backoff, and `app why` says it).
      if (offerOnly(err)) {
        // Refused for its offer: certainly nothing was launched, no need to ask the master.
        for (const t of tasks) this.tasks.delete(t.taskId);
        return;
      }
      for (const appId of new Set(tasks.map((t) => t.appId)))
        this.recordLaunchFailure(appId, errorMessage(err), now);
      await this.forgetUnknown(tasks.map((t) => t.taskId));
    }
  }

  /**
   * The reservation of each placement of a resident app (by placement index): on each agent, the
   * free reservations pinned there first, then new ones (`created`, to store before the launch).
   */
  private reservationsFor(
    placements: readonly Placement[],
    offerById: ReadonlyMap<string, FrameworkOffer>,
    pinnedByApp: ReadonlyMap<string, Reservation[]>,
    now: number,
  ): Map<number, { id: string; created?: Reservation }> {
    const out = new Map<number, { id: string; created?: Reservation }>();
    const groups = new Map<string, number[]>();
    for (const [i, p] of placements.entries()) {
      const pinned = pinnedByApp.get(p.appId);
      if (!pinned) continue;
      const key = `${p.appId}\u0000${p.agentId}`;
      groups.set(key, [...(groups.get(key) ?? []), i]);
    }
    for (const indexes of groups.values()) {
      const first = placements[indexes[0] ?? -1];
      const offer = first && offerById.get(first.offerId);
      if (!first || !offer) continue;
      // A volume lives on its host's Docker daemon: an agent that came back with a new id on the
      // same host (a wiped work dir) finds it there, so a reservation is matched by host too.
      const onAgent = (pinnedByApp.get(first.appId) ?? []).filter(
        (r) => r.agentId === first.agentId || r.hostname === offer.hostname,
      );
      const { ids, created } = assignReservations(
        first.agentId,
        offer.hostname,
        indexes.length,
        onAgent,
        () => randomUUID().replaceAll("-", "").slice(0, 12),
        now,
      );
      const createdById = new Map(created.map((r) => [r.id, r]));
      indexes.forEach((placement, k) => {
        const id = ids[k];
        if (id === undefined) return;
        const c = createdById.get(id);
        out.set(placement, c ? { id, created: c } : { id });
      });
    }
    return out;
  }

  /** The next try of `appId`'s launch waits 1 s, doubling to 30 s while the master keeps failing it. */
  private recordLaunchFailure(appId: string, message: string, now: number): void {
    const attempts = (this.launchFailures.get(appId)?.attempts ?? 0) + 1;
    const delay = Math.min(LAUNCH_RETRY.maxMs, LAUNCH_RETRY.initialMs * 2 ** (attempts - 1));
    this.launchFailures.set(appId, { message, attempts, retryAtMs: now + delay });
    this.scheduleRevive(now + delay);
  }

  /** Explicit reconciliation: tasks the master does not know (TASK_GONE) leave the view. */
  private async forgetUnknown(taskIds: string[]): Promise<void> {
    try {
      for (const s of await this.sdk().reconcile(taskIds))
        if (s.state === "TASK_GONE") this.tasks.delete(s.taskId);
    } catch (err) {
      // Could not ask: drop them; if they do run, the next re-subscription finds them again.
      for (const id of taskIds) this.tasks.delete(id);
      this.deps.log.warn("reconcile failed", { err: errorMessage(err) });
    }
  }

  /** Gives offers back (not awaited: an offer not declined expires at the master anyway). */
  private decline(offerIds: string[], refuseSeconds: number): void {
    if (offerIds.length === 0) return;
    this.sdk()
      .decline(offerIds, refuseSeconds)
      .catch((err: unknown) => this.deps.log.debug("decline failed", { err: errorMessage(err) }));
  }

  /**
   * Keeps, per app, why its waiting instances were not placed on the offers just seen, and sums the
   * offers of its launch attempt (from when it began to wait until nothing of it waits).
   */
  private recordWaiting(
    demands: { appId: string; count: number }[],
    result: PlacementResult,
    offersSeen: number,
    now: number,
  ): void {
    const usedBy = new Map<string, Set<string>>();
    for (const p of result.placements) {
      const used = usedBy.get(p.appId) ?? new Set<string>();
      used.add(p.offerId);
      usedBy.set(p.appId, used);
    }
    const unplacedOf = new Map(result.unplaced.map((u) => [u.appId, u]));
    for (const d of demands) {
      const unplaced = unplacedOf.get(d.appId);
      if (!unplaced || unplaced.count === 0) {
        this.waiting.delete(d.appId);
        continue;
      }
      const used = usedBy.get(d.appId)?.size ?? 0;
      const before = this.waiting.get(d.appId)?.attempt;
      const attempt: LaunchAttempt = {
        startedMs: before?.startedMs ?? now,
        processed: (before?.processed ?? 0) + offersSeen,
        unused: (before?.unused ?? 0) + offersSeen - used,
        declined: before ? addFunnel(before.declined, unplaced.declined) : unplaced.declined,
        lastUsedMs: used > 0 ? now : (before?.lastUsedMs ?? 0),
      };
      this.waiting.set(d.appId, {
        reasons: unplaced.reasons,
        sinceMs: now,
        offersSeen,
        declined: unplaced.declined,
        attempt,
      });
    }
  }

  /**
   * The offers of the last round that `appId` could not use, each with why (its verdicts for one
   * more instance, judged now against the app's current instances); empty when it is not waiting.
   * Costs O(agents that offered): called on request, never per round.
   */
  unusedOffers(appId: string): UnusedOffer[] {
    const app = this.deps.apps().get(appId);
    if (!app || !this.waiting.has(appId)) return [];
    const { offers, atMs } = this.lastOffers;
    const verdicts = explainAgents(offers, demandOf(appId, app.spec, 1), this.tasks.activeByAppAgent, {
      agents: this.agentFacts,
    });
    const byAgent = new Map(verdicts.map((v) => [v.agentId, v.verdicts]));
    return offers.flatMap((offer) => {
      const v = byAgent.get(offer.agentId) ?? [];
      return v.length > 0 ? [{ offer, verdicts: v, atMs }] : [];
    });
  }

  /** Apps with instances waiting to be placed, with the reasons from the last offers seen. */
  queue(now = Date.now()): QueueEntry[] {
    const out: QueueEntry[] = [];
    for (const [appId, app] of this.deps.apps()) {
      const plan = this.plan(appId, app, now, false);
      const missing =
        plan.launch > 0
          ? plan.launch
          : plan.waitingForBackoffUntilMs !== undefined || plan.waitingForDependency !== undefined
            ? this.missing(appId, app)
            : 0;
      if (missing === 0) continue;
      const w = this.waiting.get(appId);
      const failure = this.launchFailures.get(appId);
      out.push({
        appId,
        waiting: missing,
        reasons: w?.reasons ?? (failure ? [] : [{ kind: "no_offers" }]),
        sinceMs: w?.sinceMs ?? 0,
        offersSeen: w?.offersSeen ?? 0,
        backoffUntilMs: plan.waitingForBackoffUntilMs ?? 0,
        ...(w ? { declined: w.declined, attempt: w.attempt } : {}),
        ...(failure ? { launchFailure: failure } : {}),
        ...(plan.waitingForDependency ? { dependency: plan.waitingForDependency } : {}),
      });
    }
    return out.sort((a, b) => a.appId.localeCompare(b.appId));
  }

  private missing(appId: string, app: AppRecord): number {
    let active = 0;
    for (const t of this.tasks.ofApp(appId)) if (isActive(t.state) && !t.killRequested) active++;
    return Math.max(0, app.spec.instances - active);
  }

  /** Tasks in the view by state (metrics). */
  tasksByState(): Map<string, number> {
    const out = new Map<string, number>();
    for (const t of this.tasks.values()) out.set(t.state, (out.get(t.state) ?? 0) + 1);
    return out;
  }

  counts(appId: string): { running: number; staged: number } {
    let running = 0;
    let staged = 0;
    for (const t of this.tasks.ofApp(appId)) {
      if (t.killRequested) continue;
      if (t.state === "TASK_RUNNING") running++;
      else if (isActive(t.state)) staged++;
    }
    return { running, staged };
  }

  /** The app's last failed task seen by this leader (Marathon's lastTaskFailure), if any. */
  lastFailure(appId: string): TaskFailure | undefined {
    return this.failures.get(appId);
  }

  /** The hostname of an agent, as its offers name it (undefined until one was seen). */
  hostOf(agentId: string): string | undefined {
    return this.agentFacts.get(agentId)?.hostname;
  }

  /**
   * Kills tasks at an operator's request (Marathon's task kill): each active one is marked
   * killRequested (its end is no failure and it no longer counts as an instance, so the app's
   * converge replaces it unless its instances were lowered), then `before` runs (the scale-down that
   * goes with a kill commits first, in the same turn: no converge sees the kill without it), then the
   * kills are sent. Tasks unknown or already being killed are left out of the answer.
   */
  killTasks(
    taskIds: readonly string[],
    before?: (tasks: TaskEntry[]) => Promise<void>,
  ): Promise<TaskEntry[]> {
    return this.serial(async () => {
      if (!this.frameworkId || !this.ready)
        throw new UnavailableError("the scheduler is not subscribed to the master yet; retry");
      const found: TaskEntry[] = [];
      for (const id of new Set(taskIds)) {
        const t = this.tasks.get(id);
        if (t && isActive(t.state) && !t.killRequested) found.push(t);
      }
      await before?.(found);
      if (found.length > 0 && !this.leads()) throw new UnavailableError("not leading any more; retry");
      const apps = this.deps.apps();
      for (const t of found) {
        t.killRequested = true;
        await this.sdk()
          .kill(t.taskId, apps.get(t.appId)?.spec.taskKillGracePeriodSeconds)
          .catch((err: unknown) => {
            t.killRequested = false;
            this.deps.log.warn("kill failed", { taskId: t.taskId, err: errorMessage(err) });
          });
        this.markDirty(t.appId);
      }
      this.convergeSoon.trigger();
      return found;
    });
  }

  backoffUntil(appId: string): number {
    const b = this.backoff.get(appId);
    return b && b.delayUntilMs > Date.now() ? b.delayUntilMs : 0;
  }
}

/**
 * The task of one placement, as Marathon builds it: the docker image (none for a command-only
 * app: the agent's default image), cmd through the shell or args without one, and the
 * environment Marathon gives a task (MESOS_TASK_ID, MARATHON_APP_*, PORT0.., PORT_<NAME>, PORTS,
 * HOST, the app's labels and env).
 */
export function taskSpecOf(
  app: AppSpec,
  offer: FrameworkOffer,
  ports: number[],
  reservationId?: string,
  /** The app version the task runs (TaskRun.appVersion, MARATHON_APP_VERSION). */
  appVersion?: string,
): TaskSpec & { appId: string } {
  const taskId = `${taskIdPrefix(app.id)}${randomUUID()}`;
  const hostPorts = hostPortsByIndex(app, ports);
  const version = appVersion !== undefined ? { version: appVersion } : {};
  const env = taskEnv(app, { taskId, host: offer.hostname, hostPorts, ...version });
  const run = taskRunOf(app, {
    hostPorts,
    ...(appVersion !== undefined ? { appVersion } : {}),
    ...(reservationId !== undefined
      ? { persistentVolumeName: (path: string) => persistentVolumeName(app.id, reservationId, path) }
      : {}),
  });
  return {
    taskId,
    name: app.id,
    appId: app.id,
    image: app.container?.docker?.image ?? "",
    ...(app.cmd !== undefined ? { cmd: app.cmd } : {}),
    ...(app.cmd === undefined && app.args && app.args.length > 0 ? { args: [...app.args] } : {}),
    cpus: app.cpus,
    mem: app.mem,
    disk: app.disk,
    ports,
    env: { ...env, DROVER_TASK_ID: taskId, DROVER_APP_ID: app.id },
    labels: { ...app.labels, ...(reservationId !== undefined ? { [RESERVATION_LABEL]: reservationId } : {}) },
    ...(Object.keys(run).length > 0 ? { run } : {}),
  };
}

/** Tasks launched before app ids were Marathon paths name their app `web`, not `/web`. */
export function absoluteAppId(appId: string): string {
  return appId.startsWith("/") ? appId : `/${appId}`;
}

const parsedConstraints = new WeakMap<AppSpec, Constraint[]>();

/** The app's constraints, parsed once per definition (checked when the app was accepted). */
/** What placing `count` more instances of an app asks of the offers. */
function demandOf(appId: string, spec: AppSpec, count: number): InstanceDemand {
  return {
    appId,
    count,
    resources: appResources(spec),
    ...appPortDemand(spec),
    ...(spec.constraints.length > 0 ? { constraints: constraintsOf(spec) } : {}),
  };
}

function constraintsOf(app: AppSpec): Constraint[] {
  let c = parsedConstraints.get(app);
  if (!c) {
    const v = parseConstraints(app.constraints);
    c = v.ok ? v.value : [];
    parsedConstraints.set(app, c);
  }
  return c;
}
