/**
 * The event-sourced store on etcd. `commit` appends events and updates the projections
 * they change in ONE transaction that (1) compares each projection key's mod revision with the
 * one the caller read (optimistic concurrency) and (2) compares the leader key's create revision
 * (fencing). A projection carries its aggregate's version (`{"v":N,"s":state}`), and a deleted
 * aggregate leaves a tombstone (`{"v":N,"d":true}`), so a change of one event costs two
 * operations. Events and projections are validated with zod on the way in and out: etcd is a
 * boundary too.
 */
import { ConflictError, FencedError, TooLargeError } from "@drover/common";
import type { AggregateDef, EventEnvelope } from "@drover/core";
import {
  CompareResult,
  CompareTarget,
  type Etcd3,
  type ICompare,
  type IKeyValue,
  type IRangeRequest,
  type IRangeResponse,
  type IRequestOp,
  type ITxnRequest,
  type ITxnResponse,
} from "etcd3";
import { z } from "zod";
import type { Leadership } from "./election.js";
import { storeCall } from "./etcd.js";
import {
  LOG_PREFIX,
  logKey,
  META_PREFIX,
  parseLogKey,
  STATE_PREFIX,
  stateKey,
  statePrefix,
  VERSION_PREFIX,
  versionKey,
  versionPrefix,
} from "./keys.js";

/** Any aggregate definition: the store handles heterogeneous aggregates in one transaction. */
// biome-ignore lint/suspicious/noExplicitAny: heterogeneous aggregates (the one place this is declared)
export type AnyDef = AggregateDef<any, any>;

/**
 * A change of one aggregate, on top of what the caller read. A change at a version > 0 must say
 * which mod revision of the projection key it read (the type requires it).
 */
export type Change<S = unknown, E extends { type: string } = { type: string }> = ChangeOf<S, E> &
  (
    | { expectedVersion: 0; expectedModRevision?: string }
    | {
        expectedVersion: number;
        /**
         * The mod revision of the projection key the caller read (`AggregateRead.modRevision`),
         * or the revision of the caller's last commit of the aggregate
         * (`CommitResult.results[].modRevision`): the transaction fails with ConflictError if
         * the key changed since. "0" (the default for a new aggregate) when there was none.
         */
        expectedModRevision: string;
      }
  );

interface ChangeOf<S, E extends { type: string }> {
  def: AggregateDef<S, E>;
  id: string;
  /** Version the caller read; 0 for a new aggregate. */
  expectedVersion: number;
  /**
   * The aggregate was read in the previous format (`AggregateRead.legacy`: a bare state and a
   * `/drover/version/...` key): this commit converts it and deletes the version key.
   */
  legacy?: boolean;
  /** The state the caller read at expectedVersion. */
  state: S | undefined;
  events: E[];
  /**
   * The events were built by this process from input it validated at its boundary (the wire,
   * NATS, etcd on load): they are not parsed with the aggregate's schema again (a cost per event
   * at load). Anything else (tools, tests, replays) leaves it unset and is parsed.
   */
  trusted?: boolean;
}

/** A change turned into transaction parts by EventStore.prepare (see CommitQueue for packing). */
export interface PreparedChange {
  /** `<aggregate>/<id>` */
  key: string;
  /** The projection's mod revision (and, for the previous format, its version key). */
  compares: ICompare[];
  ops: IRequestOp[];
  /** Estimated bytes on the wire (keys, values, framing). */
  bytes: number;
  /** What the change leads to; its mod revision is the revision of the transaction that commits it. */
  result: { id: string; version: number; state: unknown };
}

export interface CommitResult {
  revision: string;
  /** `modRevision`: the projection key's mod revision now (the transaction's revision). */
  results: { id: string; version: number; state: unknown; modRevision: string }[];
}

/** One aggregate as read from the store: what a commit on top of it needs (see Change). */
export interface AggregateRead<S> {
  /** Undefined: it does not exist (never did, or deleted: then version > 0). */
  state: S | undefined;
  version: number;
  /** The projection key's mod revision; "0" when there is none. */
  modRevision: string;
  /** Stored in the previous format (see Change.legacy). */
  legacy?: boolean;
}

export interface Loaded<S> extends AggregateRead<S> {
  state: S;
}

/**
 * A projection as stored: `{"v":N,"s":state}`, the tombstone `{"v":N,"d":true}`, or, in the
 * previous format, the bare state (its version in `/drover/version/...`). A value that is not
 * exactly one of the first two shapes is taken for the previous format (no state has only the
 * fields `v` and `s` or `d`).
 */
export type StoredProjection =
  | { kind: "state"; version: number; state: unknown }
  | { kind: "deleted"; version: number }
  | { kind: "legacy"; state: unknown };

/** The value of a projection key: the state with its version, or a tombstone (state undefined). */
export function projectionValue(version: number, state: unknown): string {
  return state === undefined
    ? JSON.stringify({ v: version, d: true })
    : JSON.stringify({ v: version, s: state });
}

/**
 * The projection envelope (etcd is a boundary: checked here; the state inside is checked with
 * its aggregate's schema). A value in neither form is the previous format's bare state.
 */
const ProjectionSchema = z.union([
  z.strictObject({ v: z.number().int().min(1), s: z.unknown().refine((s) => s !== null && s !== undefined) }),
  z.strictObject({ v: z.number().int().min(1), d: z.literal(true) }),
]);

export function parseProjection(text: string): StoredProjection {
  const json = safeJson(text);
  const p = ProjectionSchema.safeParse(json);
  if (!p.success) return { kind: "legacy", state: json };
  return "d" in p.data
    ? { kind: "deleted", version: p.data.v }
    : { kind: "state", version: p.data.v, state: p.data.s };
}

const EnvelopeSchema = z.object({
  aggregate: z.string().min(1),
  id: z.string().min(1),
  version: z.number().int().min(1),
  atMs: z.number(),
  event: z.looseObject({ type: z.string() }),
});

/** A stored event, checked (etcd is a boundary too); the error names the key. */
export function parseEnvelope(key: string, text: string): EventEnvelope {
  const checked = EnvelopeSchema.safeParse(safeJson(text));
  if (!checked.success)
    throw new Error(`invalid event at ${key}: ${checked.error.issues[0]?.message ?? "not JSON"}`);
  return checked.data;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * What one etcd transaction may hold. etcd refuses more than `--max-txn-ops` operations
 * (default 128) and requests over `--max-request-bytes` (default 1.5 MiB); a write beyond
 * either is refused here, before it is sent, with TooLargeError.
 */
export interface StoreLimits {
  maxTxnOps: number;
  maxTxnBytes: number;
}

export const DEFAULT_STORE_LIMITS: StoreLimits = {
  maxTxnOps: 128,
  // 1.5 MiB less a margin for etcd's own framing of the request.
  maxTxnBytes: 1536 * 1024 - 64 * 1024,
};

const EMPTY_KEY = Buffer.alloc(0);

/** Keys per page when reading a prefix (the log, the projections): values are at most ~512 KiB, so a page stays far below the client's 64 MiB message limit. */
export const SCAN_PAGE_SIZE = 100;
/** What a later page aims at (from the average size of the values of the previous one), and its cap. */
const SCAN_PAGE_BYTES = 4 * 1024 * 1024;
const SCAN_MAX_PAGE_SIZE = 10_000;

/** Bytes a request op costs on the wire, roughly: key, value and framing. */
function opBytes(op: IRequestOp): number {
  const put = op.request_put;
  if (put) return Buffer.byteLength(put.key as Buffer) + Buffer.byteLength(put.value as Buffer) + 16;
  const del = op.request_delete_range;
  if (del) return Buffer.byteLength(del.key as Buffer) + 16;
  return 64;
}

function compareBytes(c: ICompare): number {
  return Buffer.byteLength(c.key as Buffer) + 32;
}

/** Throws TooLargeError when the transaction would exceed `limits`. */
export function checkTxnSize(compare: ICompare[], success: IRequestOp[], limits: StoreLimits): void {
  if (compare.length > limits.maxTxnOps || success.length > limits.maxTxnOps)
    throw new TooLargeError(
      `a transaction of ${Math.max(compare.length, success.length)} operations; the store takes at most ${limits.maxTxnOps}`,
    );
  let bytes = 0;
  for (const c of compare) bytes += compareBytes(c);
  for (const op of success) bytes += opBytes(op);
  if (bytes > limits.maxTxnBytes)
    throw new TooLargeError(`a transaction of ${bytes} bytes; the store takes at most ${limits.maxTxnBytes}`);
}

/**
 * The part of etcd's KV API the store uses: `Etcd3.kv`, or an in-memory fake with the same
 * semantics for unit tests (libs/testing MemoryKv: revisions, compares, the operation limit).
 */
export interface KvApi {
  txn(req: ITxnRequest): Promise<ITxnResponse>;
  range(req: IRangeRequest): Promise<IRangeResponse>;
}

export class EventStore {
  /** Called for each projection that fails validation on load (it is skipped). */
  onInvalid: ((key: string, problem: string) => void) | undefined;
  private readonly kv: KvApi;
  private readonly client: Etcd3 | undefined;
  /**
   * Aggregate types in which `load` found no version key of the previous format (none is ever
   * written again): their creates need no compare on it, and their reads no look-up of it.
   */
  private readonly legacyFree = new Set<string>();

  /** `backend`: an etcd client, or a KvApi (tests). */
  constructor(
    backend: Etcd3 | KvApi,
    readonly limits: StoreLimits = DEFAULT_STORE_LIMITS,
  ) {
    if ("kv" in backend) {
      this.client = backend;
      this.kv = backend.kv;
    } else {
      this.client = undefined;
      this.kv = backend;
    }
  }

  /** The etcd client (watches: the relay); undefined for an in-memory store. */
  get etcd(): Etcd3 | undefined {
    return this.client;
  }

  /** One key's value, or null. */
  private async value(key: string): Promise<string | null> {
    const res = await this.kv.range({ key: Buffer.from(key) });
    const kv = res.kvs[0];
    return kv ? kv.value.toString() : null;
  }

  /**
   * Commits the changes atomically. Throws FencedError when `leadership` no longer holds
   * (the caller must step down), ConflictError when an aggregate moved on, TooLargeError when
   * the transaction would exceed the store's limits (nothing is sent).
   */
  async commit(
    leadership: Leadership | undefined,
    changes: Change<unknown, { type: string }>[],
    nowMs: number,
  ): Promise<CommitResult> {
    const prepared = changes.filter((c) => c.events.length > 0).map((c) => this.prepare(c, nowMs));
    if (prepared.length === 0) return { revision: "0", results: [] };
    const revision = await this.commitPrepared(leadership, prepared);
    return { revision, results: prepared.map((p) => ({ ...p.result, modRevision: revision })) };
  }

  /**
   * One change as the parts of a transaction: its compares (the projection key's mod revision),
   * its operations (one per event, one for the projection) and the state it leads to. Pure:
   * nothing is sent. The events are validated with the aggregate's schema (a failure is a bug of
   * the caller), unless the change is `trusted`.
   */
  prepare(ch: Change<unknown, { type: string }>, nowMs: number): PreparedChange {
    const def = ch.def as AnyDef;
    if (ch.expectedVersion > 0 && ch.expectedModRevision === undefined)
      throw new Error(
        `a change of ${def.name}/${ch.id} at version ${ch.expectedVersion} without its mod revision`,
      );
    const sKey = Buffer.from(stateKey(def.name, ch.id));
    // The previous format's version key: only for a legacy aggregate or a create in a type not
    // known to be free of it (not built for the rest).
    const needsVKey = ch.legacy === true || (ch.expectedVersion === 0 && !this.legacyFree.has(def.name));
    const vKey = needsVKey ? Buffer.from(versionKey(def.name, ch.id)) : EMPTY_KEY;
    const compares: ICompare[] = [
      {
        key: sKey,
        target: CompareTarget.Mod,
        result: CompareResult.Equal,
        mod_revision: ch.expectedModRevision ?? "0",
      },
    ];
    if (ch.legacy && ch.expectedVersion > 0)
      compares.push({
        key: vKey,
        target: CompareTarget.Value,
        result: CompareResult.Equal,
        value: Buffer.from(String(ch.expectedVersion)),
      });
    else if (ch.legacy || (ch.expectedVersion === 0 && !this.legacyFree.has(def.name)))
      // A create: no aggregate of the previous format was deleted under this id either.
      compares.push({ key: vKey, target: CompareTarget.Version, result: CompareResult.Equal, version: 0 });
    const ops: IRequestOp[] = [];
    let state = ch.state;
    let version = ch.expectedVersion;
    for (const event of ch.events) {
      const parsed = ch.trusted ? event : def.eventSchema.parse(event);
      version += 1;
      state = def.apply(state, parsed, { id: ch.id, atMs: nowMs });
      const envelope: EventEnvelope = { aggregate: def.name, id: ch.id, version, atMs: nowMs, event: parsed };
      ops.push({
        request_put: {
          key: Buffer.from(logKey(def.name, ch.id, version)),
          value: Buffer.from(JSON.stringify(envelope)),
        },
      });
    }
    // A deleted aggregate leaves a tombstone: its version goes on while its events exist.
    ops.push({ request_put: { key: sKey, value: Buffer.from(projectionValue(version, state)) } });
    if (ch.legacy) ops.push({ request_delete_range: { key: vKey } });
    let bytes = 0;
    for (const c of compares) bytes += compareBytes(c);
    for (const op of ops) bytes += opBytes(op);
    return { key: `${def.name}/${ch.id}`, compares, ops, bytes, result: { id: ch.id, version, state } };
  }

  /**
   * A fenced transaction of raw operations (retention's deletions and checkpoints), within the
   * store's limits. Throws FencedError when leadership is gone, ConflictError when a compare failed.
   */
  async commitRaw(
    leadership: Leadership | undefined,
    compare: ICompare[],
    ops: IRequestOp[],
  ): Promise<string> {
    const all: ICompare[] = leadership ? [leadership.fence(), ...compare] : [...compare];
    if (leadership && !leadership.isLeader()) throw new FencedError("not leader any more");
    checkTxnSize(all, ops, this.limits);
    const res = await storeCall("a commit", () => this.kv.txn({ compare: all, success: ops, failure: [] }));
    if (!res.succeeded) {
      if (leadership) {
        const check = await storeCall("a leadership check", () =>
          this.kv.txn({ compare: [leadership.fence()], success: [], failure: [] }),
        );
        if (!check.succeeded) {
          await leadership.resign().catch(() => undefined);
          throw new FencedError();
        }
      }
      throw new ConflictError("a raw transaction");
    }
    return res.header.revision;
  }

  /** Sends prepared changes as ONE fenced transaction; returns its revision (see commit for errors). */
  async commitPrepared(leadership: Leadership | undefined, prepared: PreparedChange[]): Promise<string> {
    const compare: ICompare[] = [];
    if (leadership) {
      if (!leadership.isLeader()) throw new FencedError("not leader any more");
      compare.push(leadership.fence());
    }
    const success: IRequestOp[] = [];
    for (const p of prepared) {
      compare.push(...p.compares);
      success.push(...p.ops);
    }
    checkTxnSize(compare, success, this.limits);
    const failure: IRequestOp[] = leadership ? [{ request_range: { key: Buffer.from(leadership.key) } }] : [];
    const res = await storeCall("a commit", () => this.kv.txn({ compare, success, failure }));
    if (!res.succeeded) {
      if (leadership) {
        const kv = res.responses[0]?.response_range?.kvs[0];
        if (!kv || kv.create_revision !== leadership.createRevision) {
          await leadership.resign().catch(() => undefined);
          throw new FencedError();
        }
      }
      throw new ConflictError(prepared.map((p) => p.key).join(", "));
    }
    return res.header.revision;
  }

  /**
   * Reads every projection of an aggregate type with its version and mod revision; tombstones
   * (deleted aggregates) are left out.
   */
  async load<S, E extends { type: string }>(def: AggregateDef<S, E>): Promise<Map<string, Loaded<S>>> {
    const revision = await this.revision();
    // Version keys of the previous format (none once every aggregate of the type was converted).
    const versions = await this.legacyVersions(revision, versionPrefix(def.name));
    const out = new Map<string, Loaded<S>>();
    const states: [string, string, string][] = [];
    for await (const page of this.scan(statePrefix(def.name), revision))
      for (const kv of page) states.push([kv.key.toString(), kv.value.toString(), kv.mod_revision]);
    for (const [key, value, modRevision] of states) {
      const id = key.slice(statePrefix(def.name).length);
      const stored = parseProjection(value);
      if (stored.kind === "deleted") continue;
      const checked = def.stateSchema.safeParse(stored.state);
      if (!checked.success) {
        // One corrupt value must not stop every replica from leading (invariant 7): skip it, loudly.
        this.onInvalid?.(`${def.name}/${id}`, checked.error.message);
        continue;
      }
      out.set(
        id,
        stored.kind === "state"
          ? { state: checked.data, version: stored.version, modRevision }
          : {
              state: checked.data,
              version: versions.get(`${def.name}/${id}`) ?? 0,
              modRevision,
              legacy: true,
            },
      );
    }
    if (versions.size === 0) this.legacyFree.add(def.name);
    return out;
  }

  /**
   * One aggregate's state, version and mod revision (version > 0 with no state: it was deleted).
   * Reads the previous format's version key only when the projection is not in the current one.
   */
  async get<S, E extends { type: string }>(def: AggregateDef<S, E>, id: string): Promise<AggregateRead<S>> {
    return storeCall(`a read of ${def.name}/${id}`, async () => {
      const res = await this.kv.range({ key: Buffer.from(stateKey(def.name, id)) });
      const kv = res.kvs[0];
      const stored = kv ? parseProjection(kv.value.toString()) : undefined;
      if (kv && stored?.kind === "state")
        return {
          state: def.stateSchema.parse(stored.state),
          version: stored.version,
          modRevision: kv.mod_revision,
        };
      if (kv && stored?.kind === "deleted")
        return { state: undefined, version: stored.version, modRevision: kv.mod_revision };
      if (!kv && this.legacyFree.has(def.name)) return { state: undefined, version: 0, modRevision: "0" };
      // The previous format (a bare state, or none), read at the same revision as the state key.
      const old = await this.kv.range({
        key: Buffer.from(versionKey(def.name, id)),
        revision: res.header.revision,
      });
      const version = old.kvs[0] ? Number(old.kvs[0].value.toString()) : 0;
      const state = stored?.kind === "legacy" ? def.stateSchema.parse(stored.state) : undefined;
      if (!kv && version === 0) return { state: undefined, version: 0, modRevision: "0" };
      return { state, version, modRevision: kv ? kv.mod_revision : "0", legacy: true };
    });
  }

  /** One key as of `revision` (value and revisions), or undefined. */
  async readAt(key: Buffer, revision: string): Promise<IKeyValue | undefined> {
    const res = await storeCall("a read", () => this.kv.range({ key, revision }));
    return res.kvs[0];
  }

  /** The previous format's version keys under `prefix` as of `revision`, by `<aggregate>/<id>`. */
  async legacyVersions(revision: string, prefix = VERSION_PREFIX): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for await (const page of this.scan(prefix, revision))
      for (const kv of page)
        out.set(kv.key.toString().slice(VERSION_PREFIX.length), Number(kv.value.toString()));
    return out;
  }

  /** The store's current revision (a point in time to pin paged reads to). */
  async revision(): Promise<string> {
    const res = await storeCall("a read of the revision", () =>
      this.kv.range({ key: Buffer.from(LOG_PREFIX), limit: 1, keys_only: true }),
    );
    return res.header.revision;
  }

  /**
   * Every key under `prefix` as of `revision`, in key order, a page at a time: works for any
   * number of keys (one range of everything would exceed gRPC's message limit).
   */
  async *scan(prefix: string, revision: string, pageSize = SCAN_PAGE_SIZE) {
    const end = prefixEnd(Buffer.from(prefix));
    let from = Buffer.from(prefix);
    // The first page is small enough for the largest values; later pages are sized from the
    // values seen (small projections: thousands per page, so 100,000 tasks load in tens of
    // round trips, not a thousand). An answer over the message limit halves the page.
    let limit = pageSize;
    for (;;) {
      let res: IRangeResponse;
      try {
        res = await storeCall(`a read of ${prefix}`, () =>
          this.kv.range({ key: from, range_end: end, limit, revision }),
        );
      } catch (err) {
        if (err instanceof TooLargeError && limit > 1) {
          limit = Math.max(1, Math.floor(limit / 2));
          continue;
        }
        throw err;
      }
      if (res.kvs.length > 0) yield res.kvs;
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) return;
      from = Buffer.concat([last.key, Buffer.from([0])]);
      if (pageSize === SCAN_PAGE_SIZE) {
        let bytes = 0;
        for (const kv of res.kvs) bytes += kv.key.length + kv.value.length;
        const avg = Math.max(1, bytes / res.kvs.length);
        limit = Math.max(SCAN_PAGE_SIZE, Math.min(SCAN_MAX_PAGE_SIZE, Math.floor(SCAN_PAGE_BYTES / avg)));
      }
    }
  }

  /**
   * The keys under `prefix`, without their values, in key order (a page of up to
   * SCAN_MAX_PAGE_SIZE at a time), as of `revision` ("0": the latest).
   */
  async keys(prefix: string, revision = "0"): Promise<string[]> {
    const end = prefixEnd(Buffer.from(prefix));
    const out: string[] = [];
    let from = Buffer.from(prefix);
    for (;;) {
      const res = await storeCall(`a read of ${prefix}`, () =>
        this.kv.range({ key: from, range_end: end, limit: SCAN_MAX_PAGE_SIZE, revision, keys_only: true }),
      );
      for (const kv of res.kvs) out.push(kv.key.toString());
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) return out;
      // Later pages at the revision of the first, so the list is one point in time.
      if (revision === "0") revision = res.header.revision;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  /**
   * The log as of `revision`, a page at a time, in key order: per aggregate, in version order
   * (which is all a replay needs). Each event is checked; an error names its key.
   */
  async *logPages(revision: string): AsyncGenerator<EventEnvelope[]> {
    for await (const page of this.scan(LOG_PREFIX, revision)) {
      const out: EventEnvelope[] = [];
      for (const kv of page) {
        const key = kv.key.toString();
        if (!parseLogKey(key)) throw new Error(`malformed log key ${key.slice(0, 200)}`);
        out.push(parseEnvelope(key, kv.value.toString()));
      }
      yield out;
    }
  }

  /**
   * The projections as of `revision`, a page at a time, by `<aggregate>/<id>`, tombstones
   * included (kind "deleted"); a state is raw JSON (not validated).
   */
  async *projectionPages(revision: string): AsyncGenerator<[string, StoredProjection][]> {
    for await (const page of this.scan(STATE_PREFIX, revision))
      yield page.map((kv) => [
        kv.key.toString().slice(STATE_PREFIX.length),
        parseProjection(kv.value.toString()),
      ]);
  }

  /** A fenced no-op transaction: resolves only if `leadership` still holds in etcd. */
  async confirmLeader(leadership: Leadership): Promise<void> {
    if (!leadership.isLeader()) throw new FencedError("not leader any more");
    const res = await storeCall("a leadership check", () =>
      this.kv.txn({ compare: [leadership.fence()], success: [], failure: [] }),
    );
    if (!res.succeeded) {
      await leadership.resign().catch(() => undefined);
      throw new FencedError();
    }
  }

  async getMeta(name: string): Promise<string | undefined> {
    return (await storeCall("a read", () => this.value(`${META_PREFIX}${name}`))) ?? undefined;
  }

  /** A fenced write of a metadata key. */
  async putMeta(leadership: Leadership | undefined, name: string, value: string): Promise<void> {
    const compare = leadership ? [leadership.fence()] : [];
    checkTxnSize(
      compare,
      [{ request_put: { key: Buffer.from(`${META_PREFIX}${name}`), value: Buffer.from(value) } }],
      this.limits,
    );
    const res = await storeCall("a metadata write", () =>
      this.kv.txn({
        compare,
        success: [{ request_put: { key: Buffer.from(`${META_PREFIX}${name}`), value: Buffer.from(value) } }],
        failure: [],
      }),
    );
    if (!res.succeeded) {
      await leadership?.resign().catch(() => undefined);
      throw new FencedError();
    }
  }
}

/** The end of etcd's range for every key that starts with `prefix`. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] ?? 0) < 0xff) {
      end[i] = (end[i] ?? 0) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
