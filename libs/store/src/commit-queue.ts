/**
 * Group commit. Changes submitted concurrently (status updates, launches, kills, expunges) are
 * packed into as few fenced transactions as etcd's limits allow (StoreLimits: operations and
 * bytes), instead of one round trip each. Each submission ("unit") is one or more aggregate
 * changes that commit together or not at all, with an optional guard.
 *
 * Order and consistency:
 * - A unit's guard runs at packing time, against the state as all earlier transactions left it
 *   (not as it was when the caller decided). If it returns false, nothing of the unit is written.
 *   A guard must read only its own unit's aggregates (or the caller's memory): units on other
 *   aggregates packed before it in the same transaction are not visible to it yet.
 * - Changes of one unit to the same aggregate are merged into one (events in order).
 * - Two units that touch the same aggregate never share a transaction, nor overlap in flight (up
 *   to 4 transactions are in flight at once, on disjoint aggregates): the later one waits, so it is
 *   prepared (and its guard evaluated) on top of the earlier one's result.
 *   Units on other aggregates may overtake a waiting unit; units on the same one never do.
 * - Every transaction carries the leader fence and, per aggregate, a compare of its projection
 *   key's mod revision with the one the cache holds (from the read, or from the last commit).
 * - A conflict (an aggregate moved on) re-reads the aggregates of the transaction and retries its
 *   units (3 times); any other failure rejects them, and their aggregates are re-read before
 *   their next commit (the outcome of an unanswered commit is unknown).
 */
import { ConflictError, FencedError, TooLargeError } from "@drover/common";
import type { Leadership } from "./election.js";
import type { AnyDef, EventStore, PreparedChange } from "./event-store.js";

export interface CachedEntry {
  state: unknown;
  version: number;
  /** The projection key's mod revision ("0": none), compared by the next commit. */
  modRevision: string;
  /** Read in the previous format: the next commit converts it (Change.legacy). */
  legacy?: boolean;
  /** A commit of this aggregate ended without a known outcome: re-read it before the next one. */
  stale?: boolean;
}

/**
 * The leader's in-memory view of its aggregates, by type. A type marked complete (loaded whole
 * at election, and this process the only writer) treats an unknown id as new (version 0)
 * without reading etcd; a wrong guess (a deleted aggregate's tombstone) is caught by the
 * compare and re-read.
 */
/** Told of every change of a cached aggregate's state (indexes kept incrementally). */
export type CacheListener = (id: string, before: unknown, after: unknown) => void;

/** What an aggregate the cache knows never existed is (shared: read-only, set() takes copies). */
const NEW_ENTRY: CachedEntry = Object.freeze({
  state: undefined,
  version: 0,
  modRevision: "0",
}) as CachedEntry;

export class AggregateCache {
  private readonly maps = new Map<string, Map<string, CachedEntry>>();
  private readonly complete = new Set<string>();
  private readonly listeners = new Map<string, CacheListener[]>();

  /** Calls `fn` whenever the state of an aggregate of `def` changes in the cache. */
  listen(def: AnyDef, fn: CacheListener): void {
    const l = this.listeners.get(def.name) ?? [];
    l.push(fn);
    this.listeners.set(def.name, l);
  }

  /** Sets an entry (the only way states change), telling the listeners. */
  set(def: AnyDef, id: string, entry: CachedEntry): void {
    const m = this.map(def);
    const before = m.get(id)?.state;
    m.set(id, entry);
    if (before !== entry.state)
      for (const fn of this.listeners.get(def.name) ?? []) fn(id, before, entry.state);
  }

  /** The entries of `def`, read-only: write with set(). */
  map(def: AnyDef): Map<string, CachedEntry> {
    let m = this.maps.get(def.name);
    if (!m) {
      m = new Map();
      this.maps.set(def.name, m);
    }
    return m;
  }

  /** Loads every projection of `def` from the store and marks the type complete. */
  async load(store: EventStore, def: AnyDef): Promise<void> {
    const m = this.map(def);
    for (const id of [...m.keys()]) this.set(def, id, { state: undefined, version: 0, modRevision: "0" });
    m.clear();
    for (const [id, v] of await store.load(def)) this.set(def, id, { ...v });
    this.complete.add(def.name);
  }

  /** The entry to commit on top of, or undefined when it must be read from the store first. */
  usable(def: AnyDef, id: string): CachedEntry | undefined {
    const e = this.map(def).get(id);
    if (e && !e.stale) return e;
    if (!e && this.complete.has(def.name)) return NEW_ENTRY;
    return undefined;
  }

  /** usable(def, id) === undefined, without building anything (the commit queue asks for every unit). */
  needsRead(def: AnyDef, id: string): boolean {
    const e = this.map(def).get(id);
    return e ? e.stale === true : !this.complete.has(def.name);
  }

  markStale(def: AnyDef, id: string): void {
    const e = this.map(def).get(id);
    if (e) e.stale = true;
    else if (this.complete.has(def.name))
      this.set(def, id, { state: undefined, version: 0, modRevision: "0", stale: true });
  }
}

export interface UnitChange {
  def: AnyDef;
  id: string;
  events: { type: string }[];
  /** Events the caller built from input it validated already: not parsed again (Change.trusted). */
  trusted?: boolean;
}

interface Unit {
  changes: UnitChange[];
  /** `<aggregate>/<id>` of each change (computed once). */
  keys: string[];
  guard: (() => boolean) | undefined;
  attempts: number;
  resolve(committed: boolean): void;
  reject(err: unknown): void;
}

/** What one transaction held, for metrics. */
export interface CommitReport {
  changes: number;
  ops: number;
  units: number;
  ms: number;
  ok: boolean;
}

export interface CommitQueueOptions {
  store: EventStore;
  /** Undefined only for tools and tests that write without leading. */
  leadership: Leadership | undefined;
  cache: AggregateCache;
  now: () => number;
  /** Called after each transaction (metrics). */
  onTransaction?: (r: CommitReport) => void;
}

/** How many waiting units are looked at (and their aggregates read) per transaction. */
const LOOKAHEAD = 1024;
const MAX_CONFLICT_ATTEMPTS = 3;
/** Transactions in flight at once. */
const MAX_TXNS_IN_FLIGHT = 4;

const keyOf = (c: UnitChange) => `${c.def.name}/${c.id}`;

/** One change per aggregate (events concatenated in order); changes without events dropped. */
function mergeByAggregate(changes: UnitChange[]): UnitChange[] {
  const byKey = new Map<string, UnitChange>();
  for (const c of changes) {
    if (c.events.length === 0) continue;
    const prev = byKey.get(keyOf(c));
    byKey.set(
      keyOf(c),
      prev
        ? {
            ...prev,
            events: [...prev.events, ...c.events],
            trusted: prev.trusted === true && c.trusted === true,
          }
        : c,
    );
  }
  return [...byKey.values()];
}

export class CommitQueue {
  private pending: Unit[] = [];
  private draining = false;
  /** Transactions sent and not answered yet, and the aggregates they hold. */
  private readonly inFlight = new Set<Promise<void>>();
  private readonly inFlightKeys = new Set<string>();

  constructor(private readonly o: CommitQueueOptions) {}

  /** Units waiting for a transaction. */
  get backlog(): number {
    return this.pending.length;
  }

  /**
   * Commits `changes` together (in some transaction with other units), if `guard` (evaluated in
   * commit order) allows. Resolves true when committed, false when the guard refused; rejects
   * with the store's error (FencedError, UnavailableError, TooLargeError for a unit larger than
   * one transaction, ConflictError after retries).
   */
  commit(changes: UnitChange[], guard?: () => boolean): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const merged = mergeByAggregate(changes);
      this.pending.push({ changes: merged, keys: merged.map(keyOf), guard, attempts: 0, resolve, reject });
      this.kick();
    });
  }

  /** Starts draining unless a drain runs (after a commit, and after a transaction completes). */
  private kick(): void {
    if (!this.draining && this.pending.length > 0) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.pending.length > 0) {
        // Several transactions in flight (on disjoint aggregates): etcd batches concurrent
        // proposals into one disk write, so the commit rate is not bounded by one round trip.
        if (this.inFlight.size >= MAX_TXNS_IN_FLIGHT) {
          await Promise.race(this.inFlight);
          continue;
        }
        await this.readMissing();
        const batch = this.pack();
        if (batch.length === 0) {
          // Everything left waits for an aggregate of a transaction in flight.
          if (this.inFlight.size > 0) await Promise.race(this.inFlight);
          continue;
        }
        const keys = batch.flatMap((b) => b.unit.keys);
        for (const k of keys) this.inFlightKeys.add(k);
        const sent: Promise<void> = this.send(batch).finally(() => {
          for (const k of keys) this.inFlightKeys.delete(k);
          this.inFlight.delete(sent);
          // A retried (conflict) or a waiting unit may be pending with no drain running.
          this.kick();
        });
        this.inFlight.add(sent);
      }
    } finally {
      // Synchronously with the loop's last look at `pending`: a commit() after this starts a new drain.
      this.draining = false;
    }
  }

  /** Reads from the store the aggregates of the next units that the cache cannot vouch for. */
  private async readMissing(): Promise<void> {
    const wanted = new Map<string, UnitChange>();
    for (const u of this.pending.slice(0, LOOKAHEAD))
      for (const c of u.changes) if (this.o.cache.needsRead(c.def, c.id)) wanted.set(keyOf(c), c);
    if (wanted.size === 0) return;
    const failed = new Map<string, unknown>();
    await Promise.all(
      [...wanted].map(async ([key, c]) => {
        try {
          this.o.cache.set(c.def, c.id, { ...(await this.o.store.get(c.def, c.id)) });
        } catch (err) {
          failed.set(key, err);
        }
      }),
    );
    if (failed.size === 0) return;
    this.pending = this.pending.filter((u) => {
      const err = u.changes.map((c) => failed.get(keyOf(c))).find((e) => e !== undefined);
      if (err === undefined) return true;
      u.reject(err);
      return false;
    });
  }

  /** Takes the units that fit in one transaction, in order (see the file comment). */
  private pack(): { unit: Unit; prepared: PreparedChange[] }[] {
    const limits = this.o.store.limits;
    const used = new Set<string>();
    const blocked = new Set<string>();
    const keep: Unit[] = [];
    const taken: { unit: Unit; prepared: PreparedChange[] }[] = [];
    let ops = 0;
    const fence = this.o.leadership ? 1 : 0;
    let compares = fence;
    let bytes = 0;
    // Once a unit does not fit, the transaction is full: the rest wait unprepared (preparing them
    // only to put them back would cost the whole backlog on every transaction).
    let full = false;
    const now = this.o.now();
    // Only a window of the backlog is looked at; the rest keeps its order behind it.
    const window = this.pending.length > LOOKAHEAD ? this.pending.slice(0, LOOKAHEAD) : this.pending;
    const rest = this.pending.length > LOOKAHEAD ? this.pending.slice(LOOKAHEAD) : [];
    for (let i = 0; i < window.length; i++) {
      const u = window[i] as Unit;
      if (full) {
        // Nothing more is taken: the rest keeps its order, unprepared (and unexamined).
        for (let j = i; j < window.length; j++) keep.push(window[j] as Unit);
        break;
      }
      const keys = u.keys;
      const wait = () => {
        for (const k of keys) blocked.add(k);
        keep.push(u);
      };
      if (keys.some((k) => used.has(k) || blocked.has(k) || this.inFlightKeys.has(k))) {
        wait();
        continue;
      }
      const entries = u.changes.map((c) => this.o.cache.usable(c.def, c.id));
      if (entries.some((e) => e === undefined)) {
        wait();
        continue;
      }
      let allowed: boolean;
      try {
        allowed = u.guard ? u.guard() : true;
      } catch (err) {
        u.reject(err);
        continue;
      }
      if (!allowed) {
        u.resolve(false);
        continue;
      }
      if (u.changes.length === 0) {
        u.resolve(true);
        continue;
      }
      let prepared: PreparedChange[];
      try {
        prepared = u.changes.map((c, j) => {
          const e = entries[j];
          return this.o.store.prepare(
            {
              def: c.def,
              id: c.id,
              expectedVersion: e?.version ?? 0,
              expectedModRevision: e?.modRevision ?? "0",
              legacy: e?.legacy ?? false,
              state: e?.state,
              events: c.events,
              ...(c.trusted ? { trusted: true } : {}),
            },
            now,
          );
        });
      } catch (err) {
        u.reject(err);
        continue;
      }
      const uOps = prepared.reduce((n, p) => n + p.ops.length, 0);
      const uCompares = prepared.reduce((n, p) => n + p.compares.length, 0);
      const uBytes = prepared.reduce((n, p) => n + p.bytes, 0);
      if (uOps > limits.maxTxnOps || fence + uCompares > limits.maxTxnOps || uBytes > limits.maxTxnBytes) {
        u.reject(
          new TooLargeError(
            `a change of ${uOps} operations and ${uBytes} bytes; one transaction takes at most ${limits.maxTxnOps} operations and ${limits.maxTxnBytes} bytes`,
          ),
        );
        continue;
      }
      if (
        ops + uOps > limits.maxTxnOps ||
        compares + uCompares > limits.maxTxnOps ||
        bytes + uBytes > limits.maxTxnBytes
      ) {
        full = true;
        wait();
        continue;
      }
      ops += uOps;
      compares += uCompares;
      bytes += uBytes;
      for (const k of keys) used.add(k);
      taken.push({ unit: u, prepared });
    }
    this.pending = rest.length > 0 ? keep.concat(rest) : keep;
    return taken;
  }

  private async send(batch: { unit: Unit; prepared: PreparedChange[] }[]): Promise<void> {
    const started = this.o.now();
    const prepared = batch.flatMap((b) => b.prepared);
    const report = (ok: boolean) =>
      this.o.onTransaction?.({
        changes: prepared.length,
        ops: prepared.reduce((n, p) => n + p.ops.length, 0),
        units: batch.length,
        ms: this.o.now() - started,
        ok,
      });
    let revision: string;
    try {
      revision = await this.o.store.commitPrepared(this.o.leadership, prepared);
    } catch (err) {
      report(false);
      for (const b of batch) for (const c of b.unit.changes) this.o.cache.markStale(c.def, c.id);
      if (err instanceof ConflictError) {
        const retry = batch.map((b) => b.unit).filter((u) => ++u.attempts < MAX_CONFLICT_ATTEMPTS);
        for (const b of batch) if (b.unit.attempts >= MAX_CONFLICT_ATTEMPTS) b.unit.reject(err);
        this.pending = [...retry, ...this.pending];
        return;
      }
      if (err instanceof FencedError) for (const u of this.pending.splice(0)) u.reject(err);
      for (const b of batch) b.unit.reject(err);
      return;
    }
    report(true);
    for (const b of batch) {
      for (const [j, c] of b.unit.changes.entries()) {
        const r = b.prepared[j]?.result;
        if (r) this.o.cache.set(c.def, c.id, { state: r.state, version: r.version, modRevision: revision });
      }
      b.unit.resolve(true);
    }
  }
}
