/**
 * The launch backoff of every app, kept in etcd so that a scheduler failover does not reset it: a
 * crash-looping app would otherwise get a fresh launch at once from every new leader.
 *
 * The decisions stay pure in @drover/core (recordFailure, recordHealthy); this is the I/O shell:
 * a Map the driver reads and writes as before, which writes what changed in the background.
 * - One key per app, `/drover/meta/scheduler/backoff/<app key>`, holding its BackoffState and the
 *   config version it belongs to; written when the state changes (a failure raised the delay),
 *   deleted when it is back to the initial state (a reset).
 * - Coalesced: the changes of FLUSH_MS go out together, in fenced transactions of up to
 *   TXN_OPS keys, and an app that changed several times writes only its latest state. A failure
 *   storm over 1,000 apps is a handful of transactions, not 1,000 writes.
 * - Read once by a new leader before its first converge (`load`).
 * - An entry belongs to the app's config version (`lastConfigChangeAt`; Marathon keys its rate
 *   limiter by app id and config version): after a config change the app starts afresh, a scale
 *   keeps its backoff.
 * A write that fails for another reason than fencing is retried at the next flush; until it lands
 * a failover may lose the latest change (at most FLUSH_MS plus the store's answer).
 */
import { coalesce, errorMessage, FencedError, type Logger } from "@drover/common";
import { appIdToKey, type BackoffState, keyToAppId } from "@drover/core";
import { type EventStore, type Leadership, META_PREFIX, type PreparedChange } from "@drover/store";
import { z } from "zod";

type Op = PreparedChange["ops"][number];

export const BACKOFF_PREFIX = `${META_PREFIX}scheduler/backoff/`;
export const backoffKey = (appId: string): string => `${BACKOFF_PREFIX}${appIdToKey(appId)}`;

/** How long changes gather before they are written. */
export const FLUSH_MS = 200;
/** Keys per transaction (etcd takes 128 operations at most). */
const TXN_OPS = 100;

/** A stored backoff (etcd is a boundary: checked on load). */
const StoredBackoffSchema = z.strictObject({
  failures: z.number().int().min(0),
  delayUntilMs: z.number().min(0),
  lastFailureMs: z.number().min(0),
  /** The app's lastConfigChangeAt when the state was recorded. */
  configVersion: z.string().max(64),
});

export interface PersistedBackoffDeps {
  store: EventStore;
  leadership: Leadership;
  log: Logger;
  /** The app's current config version (lastConfigChangeAt); undefined when the app does not exist. */
  configVersion(appId: string): string | undefined;
  flushMs?: number;
}

const isInitial = (s: BackoffState): boolean =>
  s.failures === 0 && s.delayUntilMs === 0 && s.lastFailureMs === 0;

export class PersistedBackoff extends Map<string, BackoffState> {
  /** The config version each entry belongs to. */
  private readonly belongsTo = new Map<string, string>();
  /** What etcd holds per app (the JSON written), as far as this leader knows. */
  private readonly persisted = new Map<string, string>();
  /** Keys to delete at the next flush whatever they hold (invalid values). */
  private readonly garbage = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly flusher: { trigger(): void; cancel(): void };
  private stopped = false;

  constructor(private readonly deps: PersistedBackoffDeps) {
    super();
    this.flusher = coalesce(
      () => this.flush(),
      deps.flushMs ?? FLUSH_MS,
      (err) => deps.log.warn("writing the launch backoff failed", { err: errorMessage(err) }),
    );
  }

  /** Reads every app's backoff from etcd (before the first converge). */
  async load(): Promise<void> {
    const { store } = this.deps;
    for await (const page of store.scan(BACKOFF_PREFIX, await store.revision()))
      for (const kv of page) {
        const key = kv.key.toString();
        const text = kv.value.toString();
        const appId = keyToAppId(key.slice(BACKOFF_PREFIX.length));
        const parsed = StoredBackoffSchema.safeParse(safeJson(text));
        if (!parsed.success || backoffKey(appId) !== key) {
          this.deps.log.warn("ignoring an invalid stored launch backoff", { key: key.slice(0, 200) });
          this.garbage.add(key);
          continue;
        }
        const { configVersion, ...state } = parsed.data;
        super.set(appId, state);
        this.belongsTo.set(appId, configVersion);
        this.persisted.set(appId, text);
        // Apps deleted, or changed, while no leader wrote: their keys go at the first flush.
        if (this.deps.configVersion(appId) !== configVersion) this.dirty.add(appId);
      }
    if (this.dirty.size > 0 || this.garbage.size > 0) this.flusher.trigger();
  }

  /** The app's backoff for its current config version (undefined: none, or an earlier config's). */
  override get(appId: string): BackoffState | undefined {
    const s = super.get(appId);
    if (s === undefined) return undefined;
    return this.belongsTo.get(appId) === this.deps.configVersion(appId) ? s : undefined;
  }

  override set(appId: string, s: BackoffState): this {
    const configVersion = this.deps.configVersion(appId) ?? "";
    const same = super.get(appId) === s && this.belongsTo.get(appId) === configVersion;
    super.set(appId, s);
    this.belongsTo.set(appId, configVersion);
    // The driver sets every app's state on every converge: most are the same object, or initial.
    if (same || (isInitial(s) && !this.persisted.has(appId) && !this.dirty.has(appId))) return this;
    this.dirty.add(appId);
    if (!this.stopped) this.flusher.trigger();
    return this;
  }

  override delete(appId: string): boolean {
    const had = super.delete(appId);
    this.belongsTo.delete(appId);
    if (this.persisted.has(appId)) {
      this.dirty.add(appId);
      if (!this.stopped) this.flusher.trigger();
    }
    return had;
  }

  /**
   * Drops, at the next flush, the keys of apps deleted or changed since they were written (the
   * driver no longer sets a deleted app's state). Call after an app changed.
   */
  prune(): void {
    let any = false;
    for (const appId of this.persisted.keys())
      if (this.belongsTo.get(appId) !== this.deps.configVersion(appId)) {
        this.dirty.add(appId);
        any = true;
      }
    if (any && !this.stopped) this.flusher.trigger();
  }

  /** Stops writing (the term ended: the fence would refuse the writes anyway). */
  stop(): void {
    this.stopped = true;
    this.flusher.cancel();
  }

  /** What etcd should hold for the app: its state, or nothing (initial, or the app is gone). */
  private wanted(appId: string): string | undefined {
    const s = super.get(appId);
    const configVersion = this.deps.configVersion(appId);
    if (!s || configVersion === undefined || isInitial(s) || this.belongsTo.get(appId) !== configVersion)
      return undefined;
    return JSON.stringify({ ...s, configVersion });
  }

  /** Writes the changes gathered since the last flush (see the file comment). */
  async flush(): Promise<void> {
    if (this.stopped) return;
    const writes: { appId?: string; key: string; value: string | undefined }[] = [];
    for (const key of this.garbage) writes.push({ key, value: undefined });
    this.garbage.clear();
    for (const appId of this.dirty) {
      const value = this.wanted(appId);
      if (value !== this.persisted.get(appId)) writes.push({ appId, key: backoffKey(appId), value });
    }
    this.dirty.clear();
    for (let i = 0; i < writes.length; i += TXN_OPS) {
      const chunk = writes.slice(i, i + TXN_OPS);
      const ops: Op[] = chunk.map((w) =>
        w.value === undefined
          ? { request_delete_range: { key: Buffer.from(w.key) } }
          : { request_put: { key: Buffer.from(w.key), value: Buffer.from(w.value) } },
      );
      try {
        await this.deps.store.commitRaw(this.deps.leadership, [], ops);
      } catch (err) {
        if (err instanceof FencedError) {
          this.stop();
          return;
        }
        // Retried at the next flush (each app then writes its latest state).
        for (const w of writes.slice(i)) {
          if (w.appId !== undefined) this.dirty.add(w.appId);
          else this.garbage.add(w.key);
        }
        this.flusher.trigger();
        throw err;
      }
      for (const w of chunk) {
        if (w.appId === undefined) continue;
        if (w.value === undefined) this.persisted.delete(w.appId);
        else this.persisted.set(w.appId, w.value);
      }
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
