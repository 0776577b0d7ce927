/**
 * The app aggregates, owned by the scheduler leader (event-sourced, fenced writes). Apps are
 * known by their Marathon id (`/group/app`); the store keys them by `appIdToKey` (`group_app`),
 * since an etcd aggregate id holds no "/".
 *
 * Versions (Marathon's): every change is a new version (`nextAppVersion`), carried by its event.
 * A change of `instances` alone is a scale (AppScaled), an identical definition no change at all.
 * The definition of each earlier version is kept under `/drover/app-versions/<app key>/<version>`,
 * written in the transaction of the change that supersedes it (the current version is the
 * projection); the same transaction drops the oldest beyond `maxVersions` (one range delete), and
 * a create or a delete clears them all.
 */
import {
  AlreadyExistsError,
  FencedError,
  InvalidArgumentError,
  NotFoundError,
  TooLargeError,
} from "@drover/common";
import {
  APP_LIMITS,
  AppAggregate,
  type AppEvent,
  type AppRecord,
  type AppSpec,
  type AppVersionEntry,
  AppVersionEntrySchema,
  AppVersionSchema,
  appChangeKind,
  appIdToKey,
  appVersionEntry,
  appVersionOf,
  cycleIssue,
  type DependencyNode,
  dependencyGraph,
  findCycle,
  nextAppVersion,
  parseAppSpecJson,
  parseAppVersion,
  parseConstraints,
  versionsToKeep,
} from "@drover/core";
import {
  type AggregateRead,
  appVersionKey,
  appVersionsPrefix,
  type EventStore,
  type Leadership,
  type PreparedChange,
  prefixEnd,
} from "@drover/store";
import { notYetHonoured } from "./support.js";

type IRequestOp = PreparedChange["ops"][number];

/**
 * Changes of other aggregates committed in the transaction of an app's change (a deployment that
 * starts with a config change, one that ends with the app). Called inside the app's serial
 * section, with the version the change makes and the app before it; may throw to refuse the
 * change (nothing is written then).
 */
export interface ChangeHook {
  changes(version: string, before: AppRecord | undefined): PreparedChange[];
  /** The transaction committed at `revision`. */
  committed(revision: string): void;
  /** The outcome is unknown or it failed: re-read before the next commit. */
  failed(): void;
}

/** One app's change within a change of several apps (applyAll). */
export interface MadeChange {
  appId: string;
  change: "create" | "remove" | "scale" | "config";
  /** The version the change makes (a removal: the app's last). */
  version: string;
  before: AppRecord | undefined;
}

/** The hook of a change of several apps (a group): what commits with it, given what it makes. */
export interface ManyChangeHook {
  changes(made: readonly MadeChange[]): PreparedChange[];
  committed(revision: string): void;
  failed(): void;
}

/** Versions kept per app by default (Marathon's `--max_versions`). */
export const DEFAULT_MAX_APP_VERSIONS = 50;

export class AppStore {
  /** `stale`: a commit ended without a known outcome; re-read before the next commit. */
  private readonly apps = new Map<string, AggregateRead<AppRecord> & { stale?: boolean }>();
  /** The current record of every app, kept with `apps` (setEntry): what records() hands out, no copy. */
  private readonly current = new Map<string, AppRecord>();
  /** The earlier versions stored per app, oldest first; read from the store when unknown. */
  private readonly stored = new Map<string, string[]>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: EventStore,
    private readonly leadership: Leadership,
    /** Versions kept per app, the current one included (at least 1). */
    private readonly maxVersions = DEFAULT_MAX_APP_VERSIONS,
  ) {}

  async load(): Promise<void> {
    for (const v of (await this.store.load(AppAggregate)).values()) this.setEntry(v.state.spec.id, v);
  }

  /**
   * Every app as last committed, by id: a live read-only view (no copy per call: the converge loop
   * and the offer rounds read it for every app). Copy it before awaiting if a snapshot is needed.
   */
  records(): ReadonlyMap<string, AppRecord> {
    return this.current;
  }

  private setEntry(id: string, entry: AggregateRead<AppRecord> & { stale?: boolean }): void {
    this.apps.set(id, entry);
    if (entry.state) this.current.set(id, entry.state);
    else this.current.delete(id);
  }

  get(id: string): { state: AppRecord; version: number } {
    const e = this.apps.get(id);
    if (!e?.state) throw new NotFoundError(`app ${id}`);
    return { state: e.state, version: e.version };
  }

  /** The app as last committed, or undefined. */
  record(id: string): AppRecord | undefined {
    return this.apps.get(id)?.state;
  }

  /** How many versions are kept per app (the current one included). */
  get versionsKept(): number {
    return this.maxVersions;
  }

  /** The app's versions, newest first: the current one and the earlier ones kept (at most maxVersions). */
  async versions(id: string): Promise<string[]> {
    const { state } = this.get(id);
    const current = appVersionOf(state).version;
    const earlier = (await this.storedVersions(id)).filter((v) => v < current);
    return [current, ...earlier.reverse()].slice(0, this.maxVersions);
  }

  /** The app's definition as of `version` (any ISO-8601 form); NotFoundError when it is not kept. */
  async version(id: string, version: string): Promise<AppVersionEntry> {
    const v = parseAppVersion(version);
    if (v === undefined)
      throw new InvalidArgumentError([
        { path: "version", message: "must be an ISO-8601 time, e.g. 2026-11-29T19:13:37.123Z" },
      ]);
    const { state } = this.get(id);
    if (appVersionOf(state).version === v) return appVersionEntry(state);
    const kv = await this.store.readAt(Buffer.from(appVersionKey(appIdToKey(id), v)), "0");
    if (!kv) throw new NotFoundError(`version ${v} of app ${id}`);
    let json: unknown;
    try {
      json = JSON.parse(kv.value.toString());
    } catch {
      json = undefined;
    }
    const entry = AppVersionEntrySchema.safeParse(json);
    // etcd is a boundary too: a value that is not a version entry is reported, not served.
    if (!entry.success) throw new Error(`invalid stored version ${v} of app ${id}: ${entry.error.message}`);
    return entry.data;
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
  create(spec: AppSpec, requestId?: string, hook?: ChangeHook) {
    return this.serial(async () => {
      const existing = (await this.entry(spec.id)).state;
      if (existing) {
        if (requestId && existing.createdBy === requestId) return existing;
        throw new AlreadyExistsError(`app ${spec.id}`);
      }
      this.refuseCycle(spec);
      return this.commit(
        spec.id,
        (version) => [{ type: "AppCreated", spec, ...(requestId ? { requestId } : {}), version }],
        hook,
      );
    });
  }

  /**
   * Replaces the app's definition: a config change, a scale when only `instances` differs (as
   * Marathon: no restart, lastConfigChangeAt stays), nothing at all when it is identical.
   */
  update(id: string, spec: AppSpec, onConfigChange?: ChangeHook) {
    return this.serial(async () => {
      if (spec.id !== id)
        throw new InvalidArgumentError([{ path: "id", message: `must be ${id} (the app being updated)` }]);
      const current = await this.existing(id);
      switch (appChangeKind(current.spec, spec)) {
        case "none":
          return current;
        case "scale":
          return this.commit(id, (version) => [{ type: "AppScaled", instances: spec.instances, version }]);
        case "config":
          this.refuseCycle(spec);
          return this.commit(id, (version) => [{ type: "AppUpdated", spec, version }], onConfigChange);
      }
    });
  }

  /**
   * A new config version with the same definition (Marathon's restart): every task runs an older
   * configuration afterwards, and the deployment `hook` starts replaces them.
   */
  restart(id: string, hook?: ChangeHook) {
    return this.serial(async () => {
      const current = await this.existing(id);
      return this.commit(id, (version) => [{ type: "AppUpdated", spec: current.spec, version }], hook);
    });
  }

  scale(id: string, instances: number, hook?: ChangeHook) {
    return this.serial(async () => {
      if (!Number.isInteger(instances) || instances < 0 || instances > APP_LIMITS.maxInstances)
        throw new InvalidArgumentError([
          { path: "instances", message: `must be an integer from 0 to ${APP_LIMITS.maxInstances}` },
        ]);
      const current = await this.existing(id);
      // The same count is no change (no new version).
      if (current.spec.instances === instances) return current;
      return this.commit(id, (version) => [{ type: "AppScaled", instances, version }], hook);
    });
  }

  remove(id: string, hook?: ChangeHook) {
    return this.serial(async () => {
      await this.existing(id);
      await this.commit(id, () => [{ type: "AppDeleted" }], hook);
    });
  }

  /**
   * Changes several apps in one transaction (a group's change): `target` maps each app id to its
   * new definition, or to undefined to remove it. Every change or none: a change too large for one
   * transaction is refused (TooLargeError) with nothing written. `plan` sees what the change makes
   * before anything is written (it may refuse); `hook` commits with it. Returns what changed.
   */
  applyAll(
    target: ReadonlyMap<string, AppSpec | undefined>,
    hook: ManyChangeHook,
    opts: { dryRun?: boolean } = {},
  ): Promise<MadeChange[]> {
    return this.serial(async () => {
      const now = Date.now();
      const made: MadeChange[] = [];
      const prepared: PreparedChange[] = [];
      const nodes = new Map<string, DependencyNode>();
      for (const [id, e] of this.apps) if (e.state) nodes.set(id, e.state.spec);
      for (const [id, spec] of [...target].sort(([a], [b]) => (a < b ? -1 : 1))) {
        const entry = await this.entry(id);
        const before = entry.state;
        if (spec && spec.id !== id)
          throw new InvalidArgumentError([{ path: "id", message: `must be ${id}` }]);
        const version = nextAppVersion(before, now);
        let events: AppEvent[];
        let change: MadeChange["change"];
        if (!before && !spec) continue;
        if (!before && spec) {
          change = "create";
          events = [{ type: "AppCreated", spec, version }];
        } else if (before && !spec) {
          change = "remove";
          events = [{ type: "AppDeleted" }];
        } else if (before && spec) {
          const kind = appChangeKind(before.spec, spec);
          if (kind === "none") continue;
          change = kind;
          events =
            kind === "scale"
              ? [{ type: "AppScaled", instances: spec.instances, version }]
              : [{ type: "AppUpdated", spec, version }];
        } else continue;
        if (spec) nodes.set(id, spec);
        else nodes.delete(id);
        made.push({
          appId: id,
          change,
          version: change === "remove" && before ? appVersionOf(before).version : version,
          before,
        });
        if (opts.dryRun) continue;
        const p = this.prepareApp(id, entry, events, now);
        const versions = await this.versionOps(id, before, events, version);
        prepared.push({ ...p, ops: [...p.ops, ...versions.ops] });
      }
      const cycle = findCycle(dependencyGraph([...nodes.values()]));
      if (cycle) throw new InvalidArgumentError([cycleIssue(cycle)]);
      if (made.length === 0 || opts.dryRun) return made;
      const extra = hook.changes(made);
      let revision: string;
      try {
        revision = await this.store.commitPrepared(this.leadership, [...prepared, ...extra]);
      } catch (err) {
        hook.failed();
        for (const m of made) {
          this.stored.delete(m.appId);
          const e = this.apps.get(m.appId);
          if (e && !(err instanceof FencedError)) e.stale = true;
        }
        if (err instanceof TooLargeError)
          throw new TooLargeError(
            `a change of ${made.length} apps does not fit one transaction (${err.message}): change fewer apps at once`,
          );
        throw err;
      }
      prepared.forEach((p, i) => {
        const m = made[i];
        if (!m) return;
        const state = p.result.state as AppRecord | undefined;
        this.setEntry(m.appId, { state, version: p.result.version, modRevision: revision });
        this.stored.delete(m.appId);
      });
      hook.committed(revision);
      return made;
    });
  }

  /** Refuses `spec` when its dependencies close a cycle with the other apps' (naming the cycle). */
  private refuseCycle(spec: AppSpec): void {
    if (spec.dependencies.length === 0) return;
    const nodes: DependencyNode[] = [{ id: spec.id, dependencies: spec.dependencies }];
    for (const [id, e] of this.apps) if (e.state && id !== spec.id) nodes.push(e.state.spec);
    const cycle = findCycle(dependencyGraph(nodes));
    if (cycle) throw new InvalidArgumentError([cycleIssue(cycle)]);
  }

  /** The app as last committed (re-read when stale); NotFoundError when there is none. */
  private async existing(id: string): Promise<AppRecord> {
    const state = (await this.entry(id)).state;
    if (!state) throw new NotFoundError(`app ${id}`);
    return state;
  }

  /** The app as last committed; read from the store when unknown or stale. */
  private async entry(id: string): Promise<AggregateRead<AppRecord>> {
    let entry = this.apps.get(id);
    if (!entry || entry.stale) {
      entry = await this.store.get(AppAggregate, appIdToKey(id));
      this.setEntry(id, entry);
      this.stored.delete(id);
    }
    return entry;
  }

  /** The app's change of `events` on top of `entry` (its compares: the entry's version and revision). */
  private prepareApp(
    id: string,
    entry: AggregateRead<AppRecord>,
    events: AppEvent[],
    now: number,
  ): PreparedChange {
    return this.store.prepare(
      {
        def: AppAggregate,
        id: appIdToKey(id),
        expectedVersion: entry.version,
        expectedModRevision: entry.modRevision,
        legacy: entry.legacy ?? false,
        state: entry.state,
        events,
      },
      now,
    );
  }

  /** `events` makes the change's events from the version it makes. */
  private async commit(
    id: string,
    events: (version: string) => AppEvent[],
    hook?: ChangeHook,
  ): Promise<AppRecord | undefined> {
    const entry = await this.entry(id);
    const now = Date.now();
    const version = nextAppVersion(entry.state, now);
    const made = events(version);
    const extra = hook?.changes(version, entry.state) ?? [];
    const prepared = this.prepareApp(id, entry, made, now);
    let kept: string[] | undefined;
    let revision: string;
    try {
      const versions = await this.versionOps(id, entry.state, made, version);
      kept = versions.kept;
      try {
        revision = await this.store.commitPrepared(this.leadership, [
          { ...prepared, ops: [...prepared.ops, ...versions.ops] },
          ...extra,
        ]);
      } catch (err) {
        if (!(err instanceof TooLargeError) || versions.ops.length === 0) throw err;
        // A definition near the size limit: the earlier version's definition and the change do not
        // fit one transaction. The definition goes first: it is true once written (that version
        // exists), so a change that fails after it leaves nothing wrong.
        await this.store.commitRaw(this.leadership, [], versions.ops);
        revision = await this.store.commitPrepared(this.leadership, [prepared, ...extra]);
      }
    } catch (err) {
      if (extra.length > 0) hook?.failed();
      // A conflict or an unanswered commit: re-read before the next commit (the view stays listed).
      this.stored.delete(id);
      if (!(err instanceof FencedError)) {
        const e = this.apps.get(id);
        if (e) e.stale = true;
      }
      throw err;
    }
    const r = prepared.result;
    const state = r.state as AppRecord | undefined;
    this.setEntry(id, { state, version: r.version, modRevision: revision });
    if (extra.length > 0) hook?.committed(revision);
    if (state && kept) this.stored.set(id, kept);
    else this.stored.delete(id);
    return state;
  }

  /**
   * The operations on the app's stored versions that go with `events`: a create or a delete clears
   * them; any other change stores the version it supersedes and drops the oldest beyond
   * maxVersions. `kept`: the stored versions after it, oldest first.
   */
  private async versionOps(
    id: string,
    state: AppRecord | undefined,
    events: AppEvent[],
    next: string,
  ): Promise<{ ops: IRequestOp[]; kept: string[] }> {
    const prefix = Buffer.from(appVersionsPrefix(appIdToKey(id)));
    const clear: IRequestOp = { request_delete_range: { key: prefix, range_end: prefixEnd(prefix) } };
    if (!state || events.some((e) => e.type === "AppDeleted" || e.type === "AppCreated"))
      return { ops: [clear], kept: [] };
    const stored = await this.storedVersions(id);
    const superseded = appVersionEntry(state);
    const { keep, drop } = versionsToKeep([...stored, superseded.version], next, this.maxVersions);
    const ops: IRequestOp[] = [];
    const storedSet = new Set(stored);
    if (drop.some((v) => storedSet.has(v))) {
      // Every dropped version is older than every kept one: one range delete, whatever the count.
      const oldestKept = keep[0];
      ops.push(
        oldestKept === undefined
          ? clear
          : {
              request_delete_range: {
                key: prefix,
                range_end: Buffer.from(appVersionKey(appIdToKey(id), oldestKept)),
              },
            },
      );
    }
    if (keep.includes(superseded.version) && !storedSet.has(superseded.version))
      ops.push({
        request_put: {
          key: Buffer.from(appVersionKey(appIdToKey(id), superseded.version)),
          value: Buffer.from(JSON.stringify(superseded)),
        },
      });
    return { ops, kept: keep };
  }

  /** The app's earlier versions in the store, oldest first (read once, then kept up to date). */
  private async storedVersions(id: string): Promise<string[]> {
    let list = this.stored.get(id);
    if (!list) {
      const prefix = appVersionsPrefix(appIdToKey(id));
      list = (await this.store.keys(prefix))
        .map((k) => k.slice(prefix.length))
        .filter((v) => AppVersionSchema.safeParse(v).success)
        .sort();
      this.stored.set(id, list);
    }
    return list;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }
}
