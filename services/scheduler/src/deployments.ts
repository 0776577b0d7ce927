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
import { errorMessage, FailedPreconditionError, type Logger, NotFoundError } from "@drover/common";
import {
  type AppRecord,
  appVersionOf,
  DeploymentAggregate,
  type DeploymentCounts,
  type DeploymentEvent,
  type DeploymentKind,
  type DeploymentRecord,
} from "@drover/core";
import type { AggregateRead, EventStore, Leadership, PreparedChange } from "@drover/store";
import type { ChangeHook } from "./apps.js";

/** The least time between two progress writes of one deployment. */
export const PROGRESS_WRITE_MS = 2000;

/** What the converge loop reports of one app's step. */
export interface StepReport {
  waitingFor: string;
  counts: DeploymentCounts;
  done: boolean;
}

/** What the converge loop needs: the running deployment of an app, and where to report. */
export interface DeploymentView {
  runningFor(appId: string): { id: string; toVersion: string } | undefined;
  observe(id: string, appId: string, step: StepReport): void;
}

type Entry = AggregateRead<DeploymentRecord> & { stale?: boolean };

export class DeploymentStore implements DeploymentView {
  private readonly byId = new Map<string, Entry>();
  /** Running deployment id per app. */
  private readonly running = new Map<string, string>();
  /** The latest step seen per deployment (fresher than the stored one). */
  private readonly live = new Map<string, { waitingFor: string; counts: Record<string, DeploymentCounts> }>();
  private readonly lastWriteMs = new Map<string, number>();
  private readonly flushTimers = new Map<string, NodeJS.Timeout>();
  private readonly ending = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly store: EventStore,
    private readonly leadership: Leadership,
    private readonly log: Logger,
  ) {}

  async load(): Promise<void> {
    for (const [, v] of await this.store.load(DeploymentAggregate)) {
      this.byId.set(v.state.id, v);
      if (v.state.state === "running") for (const a of v.state.apps) this.running.set(a.appId, v.state.id);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.flushTimers.values()) clearTimeout(t);
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
    const id = this.running.get(appId);
    if (id) await this.fresh(id);
  }

  runningFor(appId: string): { id: string; toVersion: string } | undefined {
    const id = this.running.get(appId);
    const d = id ? this.byId.get(id)?.state : undefined;
    const app = d?.apps.find((a) => a.appId === appId);
    return d && app ? { id: d.id, toVersion: app.toVersion } : undefined;
  }

  /** A deployment with its latest step (the live one while it runs on this leader). */
  get(id: string): DeploymentRecord {
    const d = this.byId.get(id)?.state;
    if (!d) throw new NotFoundError(`deployment ${id}`);
    return this.withLive(d);
  }

  /** Running deployments first (oldest first), then, with `ended`, the others newest first. */
  list(ended: boolean): DeploymentRecord[] {
    const all = [...this.byId.values()].flatMap((e) => (e.state ? [this.withLive(e.state)] : []));
    const running = all.filter((d) => d.state === "running").sort((a, b) => a.createdAtMs - b.createdAtMs);
    const done = ended
      ? all.filter((d) => d.state !== "running").sort((a, b) => b.updatedAtMs - a.updatedAtMs)
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
  startHook(appId: string, kind: DeploymentKind, force: boolean): ChangeHook & { id: string } {
    const id = randomUUID();
    let prepared: { running?: PreparedChange; runningId?: string; started?: PreparedChange } = {};
    return {
      id,
      changes: (version: string, before: AppRecord | undefined) => {
        const runningId = this.running.get(appId);
        if (runningId && !force)
          throw new FailedPreconditionError(
            `app ${appId} is locked by deployment ${runningId}; override with force (--force)`,
          );
        prepared = {};
        if (runningId) {
          prepared.runningId = runningId;
          prepared.running = this.prepare(runningId, [
            { type: "DeploymentCancelled", force: true, reason: `superseded by deployment ${id} (forced)` },
          ]);
        }
        prepared.started = this.prepareNew(id, {
          type: "DeploymentStarted",
          id,
          kind,
          apps: [
            {
              appId,
              ...(before ? { fromVersion: appVersionOf(before).version } : {}),
              toVersion: version,
            },
          ],
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
      },
    };
  }

  /** The hook of an app's removal: its running deployment is cancelled in the same transaction. */
  removeHook(appId: string): ChangeHook {
    let prepared: { id: string; change: PreparedChange } | undefined;
    return {
      changes: () => {
        const id = this.running.get(appId);
        prepared = id
          ? {
              id,
              change: this.prepare(id, [{ type: "DeploymentCancelled", force: true, reason: "app removed" }]),
            }
          : undefined;
        return prepared ? [prepared.change] : [];
      },
      committed: (revision) => {
        if (prepared) this.applied(prepared.id, prepared.change, revision);
      },
      failed: () => {
        if (prepared) this.markStale(prepared.id);
      },
    };
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
      if (this.ending.has(id)) return;
      this.ending.add(id);
      void this.serial(async () => {
        if (this.byId.get(id)?.state?.state === "running")
          await this.commit(id, [{ type: "DeploymentSucceeded" }]);
      })
        .then(() => this.log.info("deployment succeeded", { id, appId }))
        .catch((err: unknown) =>
          this.log.warn("recording a deployment's success failed", { id, err: errorMessage(err) }),
        )
        .finally(() => this.ending.delete(id));
      return;
    }
    const live = this.live.get(id) ?? { waitingFor: "", counts: {} };
    live.counts[appId] = step.counts;
    live.waitingFor = step.waitingFor;
    this.live.set(id, live);
    if (d.waitingFor === step.waitingFor || this.flushTimers.has(id)) return;
    const due = (this.lastWriteMs.get(id) ?? 0) + PROGRESS_WRITE_MS - Date.now();
    this.flushTimers.set(
      id,
      setTimeout(
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

  private async flush(id: string): Promise<void> {
    const d = this.byId.get(id)?.state;
    const live = this.live.get(id);
    if (this.stopped || !d || d.state !== "running" || !live || live.waitingFor === d.waitingFor) return;
    this.lastWriteMs.set(id, Date.now());
    await this.commit(id, [
      {
        type: "DeploymentProgressed",
        waitingFor: live.waitingFor.slice(0, 2000),
        counts: { ...live.counts },
      },
    ]);
  }

  private prepareNew(id: string, event: DeploymentEvent): PreparedChange {
    return this.store.prepare(
      { def: DeploymentAggregate, id, expectedVersion: 0, state: undefined, events: [event] },
      Date.now(),
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
      Date.now(),
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
    if (state.state === "running") for (const a of state.apps) this.running.set(a.appId, id);
    else {
      for (const a of state.apps) if (this.running.get(a.appId) === id) this.running.delete(a.appId);
      this.live.delete(id);
      const t = this.flushTimers.get(id);
      if (t) clearTimeout(t);
      this.flushTimers.delete(id);
    }
  }
}
