/**
 * The deployments (aggregate `deployment`, keyed by id), owned by the scheduler leader.
 *
 * A deployment starts in the transaction of the app change that needs it (a config change, a
 * restart), through the ChangeHook given to AppStore, so there is never a changed app without its
 * deployment nor the reverse. One running deployment per app: a second change is refused naming
 * it, unless forced (then the running one is cancelled in the same transaction). The converge loop
 * (framework.ts) carries the deployment out with core's rollingStep and reports each step here
 * (`observe`): what it waits for is written only when the words change, at most once per
 * PROGRESS_WRITE_MS per deployment; the end is one write. A new leader loads the running
 * deployments and goes on: the planner re-derives everything from the tasks.
 *
 * Lock order: a caller that changes an app under a deployment holds this store's queue
 * (`serial`) while it waits for AppStore's; AppStore never waits for this one.
 */
import { randomUUID } from "node:crypto";
import {
  type Clock,
  errorMessage,
  FailedPreconditionError,
  type Logger,
  NotFoundError,
  systemClock,
  type Timer,
} from "@drover/common";
import {
  type AppRecord,
  allActionsDone,
  appVersionOf,
  currentStep,
  type DependencyNode,
  DeploymentAggregate,
  type DeploymentApp,
  type DeploymentCounts,
  type DeploymentEvent,
  type DeploymentKind,
  type DeploymentRecord,
  deadlinePassed,
  deadlineReason,
  isTrackingKind,
  type ProgressMark,
  planSteps,
  stepOfApp,
  stepsOf,
  trackProgress,
} from "@drover/core";
import type { AggregateRead, EventStore, Leadership, PreparedChange } from "@drover/store";
import type { ChangeHook, MadeChange, ManyChangeHook } from "./apps.js";
import { AppLockedError } from "./locks.js";

/** The least time between two progress writes of one deployment. */
export const PROGRESS_WRITE_MS = 2000;

/** What the converge loop reports of one app's step. */
export interface StepReport {
  waitingFor: string;
  counts: DeploymentCounts;
  done: boolean;
  /** The app's progress deadline (DROVER_PROGRESS_DEADLINE_SECONDS), absent: none. */
  progressDeadlineMs?: number;
}

/** The running deployment of an app, as the converge loop plans with it. */
export interface RunningDeployment {
  id: string;
  toVersion: string;
  /** A canary deployment not promoted yet. */
  canaryInstances?: number;
  /** A rollback's instances that already run its target definition (DeploymentApp.sameConfig). */
  sameConfig?: { from: string; until: string };
  /** The app's action waits for an earlier step of the plan (in words); it must not move yet. */
  heldBy?: string;
  /**
   * A deployment that follows what the converge loop does anyway (a create, a scale): the app
   * converges as without one, and the deployment ends once its instances all run healthy and ready.
   */
  tracking?: boolean;
}

/** Ended deployments removed per transaction, and how often the retention runs. */
export const PRUNE_BATCH = 10;
export const PRUNE_EVERY_MS = 10 * 60_000;

/** How often the progress deadlines are checked. */
export const DEADLINE_CHECK_MS = 500;

/** What a deployment whose deadline passed is handed to (it fails it and rolls it back). */
export type DeadlineHandler = (id: string, reason: string) => Promise<void>;

/** What startHook may add to a deployment. */
export interface StartOptions {
  canaryInstances?: number;
  sameConfig?: { from: string; until: string };
  /** How the running deployment ends (default: cancelled with force, superseded by the new one). */
  supersede?: (newId: string) => DeploymentEvent;
}

/** What groupHook may add to a deployment of several apps. */
export interface GroupStartOptions {
  /** Default "group". */
  kind?: DeploymentKind;
  /** The running deployment this one rolls back, and how it ends (in the same transaction). */
  supersedes?: string;
  end?: (newId: string) => DeploymentEvent;
  /** Per app: the instances that already run the definition it goes back to (DeploymentApp.sameConfig). */
  sameConfig?: ReadonlyMap<string, { from: string; until: string }>;
}

/** What the converge loop needs: the running deployment of an app, and where to report. */
export interface DeploymentView {
  runningFor(appId: string): RunningDeployment | undefined;
  observe(id: string, appId: string, step: StepReport): void;
  /**
   * The StopApplication actions not done yet of removed apps: `held` while an earlier step runs
   * (a dependent stops first), so the app's tasks are not killed yet.
   */
  stops(): Iterable<{ id: string; appId: string; held: boolean }>;
}

type Entry = AggregateRead<DeploymentRecord> & { stale?: boolean };

export class DeploymentStore implements DeploymentView {
  private readonly byId = new Map<string, Entry>();
  /** Running deployment id per app. */
  private readonly running = new Map<string, string>();
  /** The latest step seen per deployment (fresher than the stored one): words and counts per app. */
  private readonly live = new Map<
    string,
    { words: Map<string, string>; waitingFor: string; counts: Record<string, DeploymentCounts> }
  >();
  private readonly lastWriteMs = new Map<string, number>();
  private readonly flushTimers = new Map<string, Timer>();
  private readonly ending = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  /** Progress marks per deployment and app, and each deployment's deadline (this leader's clock). */
  private readonly marks = new Map<string, Map<string, ProgressMark>>();
  private readonly deadlines = new Map<string, number>();
  private readonly expiring = new Set<string>();
  private deadlineTimer: Timer | undefined;
  private pruneTimer: Timer | undefined;
  private onDeadline: DeadlineHandler | undefined;
  /** Deployments (by app) whose start was committed without a known outcome: read again before use. */
  private readonly unknownStarts = new Map<string, string>();

  constructor(
    private readonly store: EventStore,
    private readonly leadership: Leadership,
    private readonly log: Logger,
    private readonly clock: Clock = systemClock,
  ) {}

  async load(): Promise<void> {
    for (const [, v] of await this.store.load(DeploymentAggregate)) {
      this.byId.set(v.state.id, v);
      if (v.state.state === "running") for (const a of v.state.apps) this.running.set(a.appId, v.state.id);
    }
  }

  /**
   * Starts checking progress deadlines: a deployment past its deadline is handed to `handler`
   * once (the scheduler fails it and rolls it back). The clock of a deployment starts at its first
   * step seen by this leader (a failover restarts it).
   */
  watchDeadlines(handler: DeadlineHandler): void {
    this.onDeadline = handler;
    this.deadlineTimer ??= this.clock.setInterval(
      () => this.checkDeadlines(this.clock.now()),
      DEADLINE_CHECK_MS,
    );
  }

  private checkDeadlines(now: number): void {
    if (this.stopped || !this.onDeadline) return;
    for (const [id, deadlineMs] of this.deadlines) {
      const d = this.byId.get(id)?.state;
      if (d?.state !== "running") {
        this.deadlines.delete(id);
        this.marks.delete(id);
        continue;
      }
      const marks = this.marks.get(id);
      if (!marks || this.expiring.has(id)) continue;
      // The deployment made progress when any of its apps did: the latest of their marks counts.
      const latest = Math.max(...[...marks.values()].map((m) => m.sinceMs));
      if (!deadlinePassed({ newHealthy: 0, old: 0, sinceMs: latest }, deadlineMs, now)) continue;
      this.expiring.add(id);
      const reason = deadlineReason(deadlineMs, this.withLive(d).waitingFor);
      this.log.warn("deployment deadline passed", { id, reason });
      void this.onDeadline(id, reason)
        .catch((err: unknown) =>
          this.log.warn("failing a deployment past its deadline failed", { id, err: errorMessage(err) }),
        )
        .finally(() => this.expiring.delete(id));
    }
  }

  /**
   * Removes ended deployments past the retention (DeploymentRemoved): those beyond the `kept`
   * newest ended ones, and those ended more than `keptMs` ago. Running ones are never removed.
   * Returns how many were removed. Batches of PRUNE_BATCH per transaction.
   */
  prune(kept: number, keptMs: number, now = this.clock.now()): Promise<number> {
    return this.serial(async () => {
      const ended = [...this.byId.values()]
        .filter((e) => e.state && e.state.state !== "running" && !e.stale)
        .sort(newestEndFirst)
        .flatMap((e) => (e.state ? [e.state] : []));
      const gone = ended.filter((d, i) => i >= kept || now - d.updatedAtMs > keptMs).map((d) => d.id);
      let removed = 0;
      for (let i = 0; i < gone.length && !this.stopped; i += PRUNE_BATCH) {
        const ids = gone.slice(i, i + PRUNE_BATCH);
        const changes = ids.map((id) => this.prepare(id, [{ type: "DeploymentRemoved" }]));
        try {
          const revision = await this.store.commitPrepared(this.leadership, changes);
          ids.forEach((id, j) => {
            const c = changes[j];
            if (c) this.applied(id, c, revision);
            this.byId.delete(id);
          });
          removed += ids.length;
        } catch (err) {
          for (const id of ids) this.markStale(id);
          throw err;
        }
      }
      return removed;
    });
  }

  /** Prunes now and every `everyMs` (see prune); failures are logged and retried at the next round. */
  keepPruned(kept: number, keptMs: number, everyMs = PRUNE_EVERY_MS): void {
    const run = () =>
      void this.prune(kept, keptMs)
        .then((n) => {
          if (n > 0) this.log.info("ended deployments removed", { removed: n });
        })
        .catch((err: unknown) =>
          this.log.warn("removing ended deployments failed", { err: errorMessage(err) }),
        );
    run();
    this.pruneTimer ??= this.clock.setInterval(run, everyMs);
  }

  /** Ends a canary phase: the rolling upgrade goes on. */
  promote(id: string): Promise<DeploymentRecord> {
    return this.serial(async () => {
      await this.fresh(id);
      const d = this.get(id);
      if (d.state !== "running")
        throw new FailedPreconditionError(`deployment ${id} is ${d.state}, not running`);
      if (d.canaryInstances === undefined)
        throw new FailedPreconditionError(
          `deployment ${id} is not a canary deployment (or already promoted)`,
        );
      await this.commit(id, [{ type: "DeploymentPromoted" }]);
      // The promoted upgrade's clock starts now.
      this.marks.delete(id);
      return this.get(id);
    });
  }

  /** Ends a running deployment as failed (a deadline passed and nothing to roll back). Call within serial. */
  async fail(id: string, reason: string): Promise<void> {
    if (this.byId.get(id)?.state?.state !== "running") return;
    await this.commit(id, [{ type: "DeploymentFailed", reason: reason.slice(0, 2000) }]);
  }

  stop(): void {
    this.stopped = true;
    this.deadlineTimer?.cancel();
    this.deadlineTimer = undefined;
    this.pruneTimer?.cancel();
    this.pruneTimer = undefined;
    for (const t of this.flushTimers.values()) t.cancel();
    this.flushTimers.clear();
  }

  /** Runs `fn` alone among this store's writers (see the lock order above). */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Re-reads the app's running deployment when its last commit had no known outcome (before a hook). */
  async freshFor(appId: string): Promise<void> {
    const unknown = this.unknownStarts.get(appId);
    if (unknown !== undefined) {
      const read = await this.store.get(DeploymentAggregate, unknown);
      this.unknownStarts.delete(appId);
      if (read.state) {
        this.byId.set(unknown, read);
        this.index(unknown, read.state);
      }
    }
    const id = this.running.get(appId);
    if (id) await this.fresh(id);
  }

  /** Looks up the deployments whose start ended without a known outcome (the scheduler's tick). */
  async resolveUnknown(): Promise<void> {
    for (const appId of [...this.unknownStarts.keys()]) await this.freshFor(appId);
  }

  runningFor(appId: string): RunningDeployment | undefined {
    const id = this.running.get(appId);
    const d = id ? this.byId.get(id)?.state : undefined;
    const app = d?.apps.find((a) => a.appId === appId);
    if (!d || !app || d.doneApps?.includes(appId)) return undefined;
    const steps = stepsOf(d);
    // A removed app's StopApplication is carried out through stops(), not by converging the app.
    if (steps.some((s) => s.actions.some((a) => a.appId === appId && a.action === "StopApplication")))
      return undefined;
    const mine = stepOfApp(steps, appId);
    const now = currentStep(d);
    return {
      id: d.id,
      toVersion: app.toVersion,
      ...(isTrackingKind(d.kind) ? { tracking: true } : {}),
      ...(mine !== undefined && mine > now
        ? { heldBy: `${appId}: waiting for step ${now + 1} of ${steps.length} (${stepWords(steps[now])})` }
        : {}),
      ...(d.canaryInstances !== undefined ? { canaryInstances: d.canaryInstances } : {}),
      ...(app.sameConfig ? { sameConfig: app.sameConfig } : {}),
    };
  }

  *stops(): Iterable<{ id: string; appId: string; held: boolean }> {
    for (const e of this.byId.values()) {
      const d = e.state;
      if (d?.state !== "running" || !d.steps) continue;
      const done = new Set(d.doneApps ?? []);
      const now = currentStep(d);
      for (const [i, step] of d.steps.entries())
        for (const a of step.actions)
          if (a.action === "StopApplication" && !done.has(a.appId))
            yield { id: d.id, appId: a.appId, held: i > now };
    }
  }

  /** A deployment with its latest step (the live one while it runs on this leader). */
  get(id: string): DeploymentRecord {
    const d = this.byId.get(id)?.state;
    if (!d) throw new NotFoundError(`deployment ${id}`);
    return this.withLive(d);
  }

  /** Running deployments first (oldest first), then, with `ended`, the others newest first. */
  list(ended: boolean): DeploymentRecord[] {
    const entries = [...this.byId.values()];
    const running = entries
      .flatMap((e) => (e.state?.state === "running" ? [this.withLive(e.state)] : []))
      .sort((a, b) => a.createdAtMs - b.createdAtMs);
    const done = ended
      ? entries
          .filter((e) => e.state && e.state.state !== "running")
          .sort(newestEndFirst)
          .flatMap((e) => (e.state ? [e.state] : []))
      : [];
    return [...running, ...done];
  }

  private withLive(d: DeploymentRecord): DeploymentRecord {
    const l = d.state === "running" ? this.live.get(d.id) : undefined;
    if (!l) return d;
    return {
      ...d,
      waitingFor: l.waitingFor,
      apps: d.apps.map((a) => {
        const c = l.counts[a.appId];
        return c ? { ...a, counts: c } : a;
      }),
    };
  }

  /**
   * The hook of a change that starts a deployment of `appId` (`id` is set once it committed).
   * Refuses with FAILED_PRECONDITION when one runs, unless `force` (it is cancelled then).
   */
  startHook(
    appId: string,
    kind: DeploymentKind,
    force: boolean | undefined,
    opts: StartOptions = {},
  ): ChangeHook & { id: string } {
    const id = randomUUID();
    let prepared: { running?: PreparedChange; runningId?: string; started?: PreparedChange } = {};
    return {
      id,
      changes: (version: string, before: AppRecord | undefined) => {
        const runningId = this.running.get(appId);
        const running = runningId ? this.byId.get(runningId)?.state : undefined;
        // A deployment that only follows a create or a scale locks nothing: it is superseded.
        const soft = running !== undefined && isTrackingKind(running.kind);
        prepared = {};
        if (runningId && !soft && !force && kind !== "remove") {
          // A scale asked without a lock check (gRPC's ScaleApp): the running deployment goes on
          // with the new count, no deployment of its own.
          if (kind === "scale" && force === undefined) return [];
          throw new AppLockedError(appId, [runningId]);
        }
        if (runningId) {
          prepared.runningId = runningId;
          prepared.running = this.prepare(runningId, [
            opts.supersede?.(id) ?? {
              type: "DeploymentCancelled",
              force: true,
              reason:
                kind === "remove"
                  ? "app removed"
                  : soft
                    ? `superseded by deployment ${id}`
                    : `superseded by deployment ${id} (forced)`,
            },
          ]);
        }
        const app: DeploymentApp = {
          appId,
          ...(before ? { fromVersion: appVersionOf(before).version } : {}),
          toVersion: kind === "remove" && before ? appVersionOf(before).version : version,
          ...(opts.sameConfig ? { sameConfig: opts.sameConfig } : {}),
        };
        prepared.started = this.prepareNew(id, {
          type: "DeploymentStarted",
          id,
          kind,
          apps: [app],
          steps: stepsOfKind(kind, appId),
          ...(opts.canaryInstances !== undefined ? { canaryInstances: opts.canaryInstances } : {}),
        });
        return [prepared.running, prepared.started].filter((c): c is PreparedChange => c !== undefined);
      },
      committed: (revision: string) => {
        if (prepared.running && prepared.runningId)
          this.applied(prepared.runningId, prepared.running, revision);
        if (prepared.started) this.applied(id, prepared.started, revision);
      },
      failed: () => {
        if (prepared.runningId) this.markStale(prepared.runningId);
        // The commit may have landed: look for the new deployment before the next change of the app.
        if (prepared.started) this.unknownStarts.set(appId, id);
      },
    };
  }

  /**
   * The hook of a change of several apps (a group): one deployment whose plan is core's planSteps
   * over what the change makes (`original` and `target`: the apps' dependencies before and after).
   * Refuses naming the running deployments of the apps it changes, unless `force` (they are
   * cancelled in the same transaction). `id` is set once it committed; `steps` once planned.
   */
  groupHook(
    groupId: string,
    force: boolean,
    original: readonly DependencyNode[],
    target: readonly DependencyNode[],
    opts: GroupStartOptions = {},
  ): ManyChangeHook & { id: string; planned(): DeploymentRecord["steps"] } {
    const id = randomUUID();
    let prepared: PreparedChange[] = [];
    let cancelled: string[] = [];
    let steps: DeploymentRecord["steps"];
    return {
      id,
      planned: () => steps,
      changes: (made: readonly MadeChange[]) => {
        const blocking = [...new Set(made.flatMap((m) => this.running.get(m.appId) ?? []))].sort();
        const locking = blocking.filter((b) => {
          const k = this.byId.get(b)?.state?.kind;
          return k !== undefined && !isTrackingKind(k);
        });
        if (locking.length > 0 && !force)
          throw new AppLockedError(
            made
              .filter((m) => locking.includes(this.running.get(m.appId) ?? ""))
              .map((m) => m.appId)
              .join(", "),
            locking,
          );
        steps = planSteps(
          made.map((m) => ({ appId: m.appId, change: m.change })),
          original,
          target,
        );
        cancelled = blocking;
        prepared = [
          ...blocking.map((b) =>
            this.prepare(b, [
              (b === opts.supersedes ? opts.end?.(id) : undefined) ?? {
                type: "DeploymentCancelled",
                force: true,
                reason: `superseded by deployment ${id} (forced)`,
              },
            ]),
          ),
          this.prepareNew(id, {
            type: "DeploymentStarted",
            id,
            kind: opts.kind ?? "group",
            ...(groupId ? { groupId } : {}),
            apps: made.map((m) => {
              const same = opts.sameConfig?.get(m.appId);
              return {
                appId: m.appId,
                ...(m.before ? { fromVersion: appVersionOf(m.before).version } : {}),
                toVersion: m.version,
                ...(same ? { sameConfig: same } : {}),
              };
            }),
            steps,
          }),
        ];
        return prepared;
      },
      committed: (revision) => {
        cancelled.forEach((b, i) => {
          const c = prepared[i];
          if (c) this.applied(b, c, revision);
        });
        const started = prepared[cancelled.length];
        if (started) this.applied(id, started, revision);
      },
      failed: () => {
        for (const b of cancelled) this.markStale(b);
        const started = prepared[cancelled.length];
        if (started)
          for (const a of (started.result.state as DeploymentRecord | undefined)?.apps ?? [])
            this.unknownStarts.set(a.appId, id);
      },
    };
  }

  /**
   * The hook of an app's removal: its running deployment is cancelled and a `remove` deployment
   * (StopApplication, done once no task of the app is active) starts, in the same transaction.
   */
  removeHook(appId: string): ChangeHook & { id: string } {
    return this.startHook(appId, "remove", true);
  }

  /** Ends a running deployment (cancel --force, or a cancel whose rollback needs nothing). Call within serial. */
  async cancel(id: string, reason: string, force: boolean, rollbackId?: string): Promise<DeploymentRecord> {
    const d = this.get(id);
    if (d.state !== "running")
      throw new FailedPreconditionError(`deployment ${id} is ${d.state}, not running`);
    await this.commit(id, [
      { type: "DeploymentCancelled", force, reason, ...(rollbackId ? { rollbackId } : {}) },
    ]);
    return this.get(id);
  }

  /** The converge loop's report of one app's step: success, or progress when its words change. */
  observe(id: string, appId: string, step: StepReport): void {
    if (this.stopped) return;
    const d = this.byId.get(id)?.state;
    if (d?.state !== "running") return;
    if (step.done) {
      const key = `${id} ${appId}`;
      if (this.ending.has(key) || d.doneApps?.includes(appId)) return;
      this.ending.add(key);
      void this.serial(async () => {
        await this.fresh(id);
        const cur = this.byId.get(id)?.state;
        if (cur?.state !== "running" || cur.doneApps?.includes(appId)) return;
        const counts = { [appId]: step.counts };
        const moving = stepsOf(cur).flatMap((s) => s.actions.filter((a) => a.action !== "StartApplication"));
        const events: DeploymentEvent[] = !allActionsDone(cur, [appId])
          ? [{ type: "DeploymentActionsDone", appIds: [appId], counts }]
          : moving.length <= 1
            ? [{ type: "DeploymentSucceeded", counts }]
            : [{ type: "DeploymentActionsDone", appIds: [appId], counts }, { type: "DeploymentSucceeded" }];
        await this.commit(id, events);
        this.log.info(
          events.length === 1 && events[0]?.type === "DeploymentActionsDone"
            ? "deployment action done"
            : "deployment succeeded",
          { id, appId },
        );
      })
        .catch((err: unknown) =>
          this.log.warn("recording a deployment's progress failed", { id, err: errorMessage(err) }),
        )
        .finally(() => this.ending.delete(key));
      return;
    }
    const tracking = isTrackingKind(d.kind);
    if (!tracking) this.track(id, appId, d, step);
    const live = this.live.get(id) ?? { words: new Map<string, string>(), waitingFor: "", counts: {} };
    live.counts[appId] = step.counts;
    live.words.set(appId, step.waitingFor);
    live.waitingFor = waitingWords(d, live.words);
    this.live.set(id, live);
    // A tracking deployment's words stay in memory (GetDeployment shows them live): no write per change.
    if (tracking || d.waitingFor === live.waitingFor || this.flushTimers.has(id)) return;
    const due = (this.lastWriteMs.get(id) ?? 0) + PROGRESS_WRITE_MS - this.clock.now();
    this.flushTimers.set(
      id,
      this.clock.setTimeout(
        () => {
          this.flushTimers.delete(id);
          void this.serial(() => this.flush(id)).catch((err: unknown) =>
            this.log.warn("recording a deployment's progress failed", { id, err: errorMessage(err) }),
          );
        },
        Math.max(0, due),
      ),
    );
  }

  /** Keeps the app's progress mark and the deployment's deadline (see core's deadline.ts). */
  private track(id: string, appId: string, d: DeploymentRecord, step: StepReport): void {
    if (step.progressDeadlineMs === undefined) {
      this.deadlines.delete(id);
      return;
    }
    this.deadlines.set(id, step.progressDeadlineMs);
    const marks = this.marks.get(id) ?? new Map<string, ProgressMark>();
    this.marks.set(id, marks);
    const canary = d.canaryInstances;
    const held = canary !== undefined && step.counts.newHealthy >= Math.min(canary, step.counts.instances);
    marks.set(
      appId,
      trackProgress({
        // A new leader goes on from the mark last recorded (the clock does not restart on failover).
        mark: marks.get(appId) ?? d.marks?.[appId],
        counts: { newHealthy: step.counts.newHealthy, old: step.counts.old },
        nowMs: this.clock.now(),
        held,
      }),
    );
  }

  private async flush(id: string): Promise<void> {
    const d = this.byId.get(id)?.state;
    const live = this.live.get(id);
    if (this.stopped || !d || d.state !== "running" || !live || live.waitingFor === d.waitingFor) return;
    const marks = this.marks.get(id);
    this.lastWriteMs.set(id, this.clock.now());
    await this.commit(id, [
      {
        type: "DeploymentProgressed",
        waitingFor: live.waitingFor.slice(0, 2000),
        counts: { ...live.counts },
        ...(marks && marks.size > 0 ? { marks: Object.fromEntries(marks) } : {}),
      },
    ]);
  }

  private prepareNew(id: string, event: DeploymentEvent): PreparedChange {
    return this.store.prepare(
      { def: DeploymentAggregate, id, expectedVersion: 0, state: undefined, events: [event] },
      this.clock.now(),
    );
  }

  private prepare(id: string, events: DeploymentEvent[]): PreparedChange {
    const e = this.byId.get(id);
    if (!e) throw new NotFoundError(`deployment ${id}`);
    return this.store.prepare(
      {
        def: DeploymentAggregate,
        id,
        expectedVersion: e.version,
        expectedModRevision: e.modRevision,
        legacy: e.legacy ?? false,
        state: e.state,
        events,
      },
      this.clock.now(),
    );
  }

  private async commit(id: string, events: DeploymentEvent[]): Promise<void> {
    await this.fresh(id);
    const change = this.prepare(id, events);
    try {
      const revision = await this.store.commitPrepared(this.leadership, [change]);
      this.applied(id, change, revision);
    } catch (err) {
      this.markStale(id);
      throw err;
    }
  }

  /** Re-reads a deployment whose last commit ended without a known outcome. */
  private async fresh(id: string): Promise<void> {
    const e = this.byId.get(id);
    if (!e?.stale) return;
    const read = await this.store.get(DeploymentAggregate, id);
    this.byId.set(id, read);
    this.index(id, read.state);
  }

  private markStale(id: string): void {
    const e = this.byId.get(id);
    if (e) e.stale = true;
  }

  private applied(id: string, change: PreparedChange, revision: string): void {
    const state = change.result.state as DeploymentRecord | undefined;
    this.byId.set(id, { state, version: change.result.version, modRevision: revision });
    this.index(id, state);
  }

  private index(id: string, state: DeploymentRecord | undefined): void {
    if (!state) return;
    if (state.state === "running") {
      for (const a of state.apps) this.running.set(a.appId, id);
      const words = this.live.get(id)?.words;
      for (const a of state.doneApps ?? []) words?.delete(a);
    } else {
      for (const a of state.apps) if (this.running.get(a.appId) === id) this.running.delete(a.appId);
      this.live.delete(id);
      this.marks.delete(id);
      this.deadlines.delete(id);
      const t = this.flushTimers.get(id);
      t?.cancel();
      this.flushTimers.delete(id);
    }
  }
}

/** The plan of a one-app deployment of `kind` (Marathon's: a create starts, then scales). */
function stepsOfKind(kind: DeploymentKind, appId: string): DeploymentRecord["steps"] {
  switch (kind) {
    case "create":
      return [
        { actions: [{ action: "StartApplication", appId }] },
        { actions: [{ action: "ScaleApplication", appId }] },
      ];
    case "scale":
      return [{ actions: [{ action: "ScaleApplication", appId }] }];
    case "remove":
      return [{ actions: [{ action: "StopApplication", appId }] }];
    default:
      return [{ actions: [{ action: "RestartApplication", appId }] }];
  }
}

/** A step's actions in words: `RestartApplication /db, ScaleApplication /web`. */
function stepWords(step: { actions: { action: string; appId: string }[] } | undefined): string {
  return (step?.actions ?? []).map((a) => `${a.action} ${a.appId}`).join(", ");
}

/**
 * What a running deployment waits for: the words of the current step's apps (in the plan's order),
 * after `step i of n` when the plan has several steps.
 */
export function waitingWords(d: DeploymentRecord, words: ReadonlyMap<string, string>): string {
  const steps = stepsOf(d);
  const now = currentStep(d);
  const step = steps[now];
  const parts = (step?.actions ?? []).flatMap((a) => {
    const w = words.get(a.appId);
    return w ? [w] : [];
  });
  const text = parts.length > 0 ? parts.join("; ") : [...words.values()].filter(Boolean).join("; ");
  return steps.length > 1 && step ? `step ${now + 1} of ${steps.length}: ${text || stepWords(step)}` : text;
}

/**
 * Ended deployments, the last to end first: by end time, then by the etcd revision of their last
 * change (two ending in the same millisecond keep the order in which they ended).
 */
function newestEndFirst(
  a: { state?: DeploymentRecord | undefined; modRevision: string },
  b: { state?: DeploymentRecord | undefined; modRevision: string },
): number {
  const byTime = (b.state?.updatedAtMs ?? 0) - (a.state?.updatedAtMs ?? 0);
  if (byTime !== 0) return byTime;
  const ra = BigInt(a.modRevision || "0");
  const rb = BigInt(b.modRevision || "0");
  return ra === rb ? 0 : rb > ra ? 1 : -1;
}
