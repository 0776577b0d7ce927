/**
 * The app aggregates, owned by the scheduler leader (event-sourced, fenced writes). Apps are
 * known by their Marathon id (`/group/app`); the store keys them by `appIdToKey` (`group_app`),
 * since an etcd aggregate id holds no "/".
 */
import { AlreadyExistsError, FencedError, InvalidArgumentError, NotFoundError } from "@drover/common";
import {
  APP_LIMITS,
  AppAggregate,
  type AppEvent,
  type AppRecord,
  type AppSpec,
  appIdToKey,
  parseAppSpecJson,
  parseConstraints,
} from "@drover/core";
import type { AggregateRead, EventStore, Leadership } from "@drover/store";
import { notYetHonoured } from "./support.js";

export class AppStore {
  /** `stale`: a commit ended without a known outcome; re-read before the next commit. */
  private readonly apps = new Map<string, AggregateRead<AppRecord> & { stale?: boolean }>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: EventStore,
    private readonly leadership: Leadership,
  ) {}

  async load(): Promise<void> {
    for (const v of (await this.store.load(AppAggregate)).values()) this.apps.set(v.state.spec.id, v);
  }

  records(): Map<string, AppRecord> {
    const out = new Map<string, AppRecord>();
    for (const [id, e] of this.apps) if (e.state) out.set(id, e.state);
    return out;
  }

  get(id: string): { state: AppRecord; version: number } {
    const e = this.apps.get(id);
    if (!e?.state) throw new NotFoundError(`app ${id}`);
    return { state: e.state, version: e.version };
  }

  /** A Marathon app definition, normalized; refused by field where Drover cannot run it (yet). */
  static parse(json: string): AppSpec {
    const v = parseAppSpecJson(json);
    if (!v.ok) throw new InvalidArgumentError(v.issues);
    const unsupported = notYetHonoured(v.value);
    if (unsupported.length > 0) throw new InvalidArgumentError(unsupported);
    // Placement's own reading of the constraints (both syntaxes; values checked by operator).
    const constraints = parseConstraints(v.value.constraints);
    if (!constraints.ok) throw new InvalidArgumentError(constraints.issues);
    return v.value;
  }

  /**
   * Creates the app. `requestId` makes a retried create (its first answer lost) answer with the
   * app it created, not ALREADY_EXISTS.
   */
  create(spec: AppSpec, requestId?: string) {
    return this.serial(async () => {
      const existing = (await this.entry(spec.id)).state;
      if (existing) {
        if (requestId && existing.createdBy === requestId) return existing;
        throw new AlreadyExistsError(`app ${spec.id}`);
      }
      return this.commit(spec.id, [{ type: "AppCreated", spec, ...(requestId ? { requestId } : {}) }]);
    });
  }

  update(id: string, spec: AppSpec) {
    return this.serial(async () => {
      if (spec.id !== id)
        throw new InvalidArgumentError([{ path: "id", message: `must be ${id} (the app being updated)` }]);
      this.get(id);
      return this.commit(id, [{ type: "AppUpdated", spec }]);
    });
  }

  scale(id: string, instances: number) {
    return this.serial(async () => {
      if (!Number.isInteger(instances) || instances < 0 || instances > APP_LIMITS.maxInstances)
        throw new InvalidArgumentError([
          { path: "instances", message: `must be an integer from 0 to ${APP_LIMITS.maxInstances}` },
        ]);
      this.get(id);
      return this.commit(id, [{ type: "AppScaled", instances }]);
    });
  }

  remove(id: string) {
    return this.serial(async () => {
      this.get(id);
      await this.commit(id, [{ type: "AppDeleted" }]);
    });
  }

  /** The app as last committed; read from the store when unknown or stale. */
  private async entry(id: string): Promise<AggregateRead<AppRecord>> {
    let entry = this.apps.get(id);
    if (!entry || entry.stale) {
      entry = await this.store.get(AppAggregate, appIdToKey(id));
      this.apps.set(id, entry);
    }
    return entry;
  }

  private async commit(id: string, events: AppEvent[]): Promise<AppRecord | undefined> {
    const entry = await this.entry(id);
    let res: Awaited<ReturnType<EventStore["commit"]>>;
    try {
      res = await this.store.commit(
        this.leadership,
        [
          {
            def: AppAggregate,
            id: appIdToKey(id),
            expectedVersion: entry.version,
            expectedModRevision: entry.modRevision,
            legacy: entry.legacy ?? false,
            state: entry.state,
            events,
          },
        ],
        Date.now(),
      );
    } catch (err) {
      // A conflict or an unanswered commit: re-read before the next commit (the view stays listed).
      if (!(err instanceof FencedError)) {
        const e = this.apps.get(id);
        if (e) e.stale = true;
      }
      throw err;
    }
    const r = res.results[0];
    if (r)
      this.apps.set(id, {
        state: r.state as AppRecord | undefined,
        version: r.version,
        modRevision: r.modRevision,
      });
    return r?.state as AppRecord | undefined;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }
}
