/**
 * The event-sourced store on etcd. `commit` appends events and updates the projections
 * they change in ONE transaction that (1) compares each aggregate's version (optimistic
 * concurrency) and (2) compares the leader key's create revision (fencing). Events and
 * projections are validated with zod on the way in and out: etcd is a boundary too.
 */
import { ConflictError, FencedError, TooLargeError } from "@drover/common";
import type { AggregateDef, EventEnvelope } from "@drover/core";
import {
  CompareResult,
  CompareTarget,
  type Etcd3,
  type ICompare,
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
} from "./keys.js";

/** Any aggregate definition: the store handles heterogeneous aggregates in one transaction. */
// biome-ignore lint/suspicious/noExplicitAny: heterogeneous aggregates (the one place this is declared)
export type AnyDef = AggregateDef<any, any>;

export interface Change<S = unknown, E extends { type: string } = { type: string }> {
  def: AggregateDef<S, E>;
  id: string;
  /** Version the caller read; 0 for a new aggregate. */
  expectedVersion: number;
  /** The state the caller read at expectedVersion. */
  state: S | undefined;
  events: E[];
}

/** A change turned into transaction parts by EventStore.prepare (see CommitQueue for packing). */
export interface PreparedChange {
  /** `<aggregate>/<id>` */
  key: string;
  compare: ICompare;
  ops: IRequestOp[];
  /** Estimated bytes on the wire (keys, values, framing). */
  bytes: number;
  result: { id: string; version: number; state: unknown };
}

export interface CommitResult {
  revision: string;
  results: { id: string; version: number; state: unknown }[];
}

export interface Loaded<S> {
  state: S;
  version: number;
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

/** Keys per page when reading a prefix (the log, the projections): values are at most ~512 KiB, so a page stays far below the client's 64 MiB message limit. */
export const SCAN_PAGE_SIZE = 100;

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
    return { revision, results: prepared.map((p) => p.result) };
  }

  /**
   * One change as the parts of a transaction: its version compare, its operations (events,
   * projection, version) and the state it leads to. Pure: nothing is sent. The events are
   * validated with the aggregate's schema (a failure is a bug of the caller).
   */
  prepare(ch: Change<unknown, { type: string }>, nowMs: number): PreparedChange {
    const def = ch.def as AnyDef;
    const vKey = Buffer.from(versionKey(def.name, ch.id));
    const compare: ICompare =
      ch.expectedVersion === 0
        ? { key: vKey, target: CompareTarget.Version, result: CompareResult.Equal, version: 0 }
        : {
            key: vKey,
            target: CompareTarget.Value,
            result: CompareResult.Equal,
            value: Buffer.from(String(ch.expectedVersion)),
          };
    const ops: IRequestOp[] = [];
    let state = ch.state;
    let version = ch.expectedVersion;
    for (const event of ch.events) {
      const parsed = def.eventSchema.parse(event);
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
    const sKey = Buffer.from(stateKey(def.name, ch.id));
    if (state === undefined) ops.push({ request_delete_range: { key: sKey } });
    else ops.push({ request_put: { key: sKey, value: Buffer.from(JSON.stringify(state)) } });
    ops.push({ request_put: { key: vKey, value: Buffer.from(String(version)) } });
    let bytes = compareBytes(compare);
    for (const op of ops) bytes += opBytes(op);
    return { key: `${def.name}/${ch.id}`, compare, ops, bytes, result: { id: ch.id, version, state } };
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
      compare.push(p.compare);
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

  /** Reads every projection of an aggregate type with its version. */
  async load<S, E extends { type: string }>(def: AggregateDef<S, E>): Promise<Map<string, Loaded<S>>> {
    const revision = await this.revision();
    const versions = new Map<string, string>();
    for await (const page of this.scan(`${VERSION_PREFIX}${def.name}/`, revision))
      for (const kv of page) versions.set(kv.key.toString(), kv.value.toString());
    const out = new Map<string, Loaded<S>>();
    const states: [string, string][] = [];
    for await (const page of this.scan(statePrefix(def.name), revision))
      for (const kv of page) states.push([kv.key.toString(), kv.value.toString()]);
    for (const [key, value] of states) {
      const id = key.slice(statePrefix(def.name).length);
      const version = Number(versions.get(versionKey(def.name, id)) ?? "0");
      const parsed = safeJson(value);
      const checked = def.stateSchema.safeParse(parsed);
      if (!checked.success) {
        // One corrupt value must not stop every replica from leading (invariant 7): skip it, loudly.
        this.onInvalid?.(`${def.name}/${id}`, checked.error.message);
        continue;
      }
      out.set(id, { state: checked.data, version });
    }
    return out;
  }

  /** One aggregate's projection and version (version > 0 with no state: it was deleted). */
  async get<S, E extends { type: string }>(
    def: AggregateDef<S, E>,
    id: string,
  ): Promise<{ state: S | undefined; version: number }> {
    const [value, version] = await storeCall(`a read of ${def.name}/${id}`, () =>
      Promise.all([this.value(stateKey(def.name, id)), this.value(versionKey(def.name, id))]),
    );
    return {
      state: value === null ? undefined : def.stateSchema.parse(JSON.parse(value)),
      version: version === null ? 0 : Number(version),
    };
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
    for (;;) {
      const res = await storeCall(`a read of ${prefix}`, () =>
        this.kv.range({ key: from, range_end: end, limit: pageSize, revision }),
      );
      if (res.kvs.length > 0) yield res.kvs;
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) return;
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

  /** The projections as of `revision`, a page at a time, as raw JSON by `<aggregate>/<id>`. */
  async *projectionPages(revision: string): AsyncGenerator<[string, unknown][]> {
    for await (const page of this.scan(STATE_PREFIX, revision))
      yield page.map((kv) => [kv.key.toString().slice(STATE_PREFIX.length), safeJson(kv.value.toString())]);
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
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] ?? 0) < 0xff) {
      end[i] = (end[i] ?? 0) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
