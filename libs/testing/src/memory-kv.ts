/**
 * An in-memory etcd v3 KV with etcd's semantics, for unit tests: `KvApi` of @drover/store
 * (`txn`, `range`) with etcd3's request and response types.
 *
 * - MVCC: one global revision (1 when empty), incremented by each transaction that changes
 *   something; per key create_revision, mod_revision and version (a delete ends the key's life: a
 *   new put starts again at version 1 with a new create_revision). Every revision of every key is
 *   kept, so `range` reads at an older `revision`, until `compact(rev)`.
 * - Compares on VERSION, CREATE, MOD, VALUE and LEASE with EQUAL, NOT_EQUAL, GREATER, LESS, on one
 *   key or a range (`range_end`); a VALUE compare on a missing key is false, the others compare
 *   with 0 (as etcd's applyCompare).
 * - Ranges: one key, `[key, range_end)`, `range_end` "\0" (every key >= key), limit + more, count,
 *   keys_only, count_only, revision, min/max mod and create revision, sort.
 * - etcd's checks, in etcd's order, with etcd's errors (see etcd-errors.ts): gRPC's receive limit
 *   (max request bytes + 512 KiB), more than `maxTxnOps` in compares/success/failure, empty keys,
 *   duplicate keys in a branch (two puts of a key, or a put under a delete), a write whose raft
 *   entry is over `maxRequestBytes`, a read at a compacted or future revision.
 * - Keys and values are Buffers in responses; revisions, versions and counts are decimal strings
 *   (etcd3 loads its protos with `longs: String`).
 *
 * Fault injection: `freeze()` (calls wait until `unfreeze()`, or fail with DEADLINE_EXCEEDED after
 * `deadlineMs`), `failNext(n, err)`. Calls are applied in the order they are made. Not supported:
 * nested transactions (`request_txn`), leases (a lease id is stored, never expires), watches
 * (see `onWrite`).
 */
import { type Clock, systemClock, type Timer } from "@drover/common";
import type { KvApi } from "@drover/store";
import type {
  ICompare,
  IDeleteRangeRequest,
  IDeleteRangeResponse,
  IKeyValue,
  IPutRequest,
  IPutResponse,
  IRangeRequest,
  IRangeResponse,
  IRequestOp,
  IResponseHeader,
  IResponseOp,
  ITxnRequest,
  ITxnResponse,
} from "etcd3";
import { etcdErrors } from "./etcd-errors.js";
import { GRPC_OVERHEAD_BYTES, RAFT_ENTRY_OVERHEAD, rangeRequestSize, txnRequestSize } from "./proto-size.js";

/** etcd's defaults: --max-txn-ops 128, --max-request-bytes 1.5 MiB. */
export const ETCD_DEFAULT_LIMITS = { maxTxnOps: 128, maxRequestBytes: 1536 * 1024 } as const;

export interface MemoryKvOptions {
  /** --max-txn-ops (default 128). */
  maxTxnOps?: number;
  /** --max-request-bytes (default 1.5 MiB). */
  maxRequestBytes?: number;
  /** While frozen, a call fails with DEADLINE_EXCEEDED after this long; default: it waits for unfreeze(). */
  deadlineMs?: number;
  /** The clock of those deadlines (a FakeClock in tests); default the system clock. */
  clock?: Clock;
}

/** One transaction the store executed (after its checks passed). */
export interface TxnRecord {
  compares: number;
  success: number;
  failure: number;
  /** Operations executed: the success branch when it succeeded, else the failure branch. */
  ops: number;
  succeeded: boolean;
  /** It changed at least one key (and so took a new revision). */
  writes: boolean;
  /** The revision in its answer. */
  revision: number;
  /** Its size on the wire (protobuf). */
  bytes: number;
}

/** A call the store refused (etcd's checks) or that a fault made fail. */
export interface FailedCall {
  kind: "txn" | "range";
  error: Error;
  /** "refused": by etcd's checks; "injected": failNext or a frozen call's deadline. */
  why: "refused" | "injected";
}

/** One key changed by a transaction (see onWrite). */
export interface KvWrite {
  type: "put" | "delete";
  key: string;
  value: Buffer | undefined;
  revision: number;
}

export interface FreezeOptions {
  /** Overrides the store's deadlineMs for calls made while frozen. */
  deadlineMs?: number;
  /** A call that timed out is still applied at unfreeze (the client gave up; the write lands). */
  applyLate?: boolean;
}

export interface FailOptions {
  /** Only calls of this kind fail (default: any). */
  only?: "txn" | "range";
  /** The call is applied, and then fails: its outcome is unknown to the caller. */
  applied?: boolean;
}

interface Entry {
  /** mod_revision */
  rev: number;
  create: number;
  version: number;
  /** null: a tombstone (the key was deleted at `rev`). */
  value: Buffer | null;
  lease: string;
}

interface LiveEntry extends Entry {
  value: Buffer;
}

/** A key range: `end` undefined = the key alone, null = every key from `start` on. */
interface Span {
  start: string;
  end: string | null | undefined;
}

interface FailureSlot {
  error: () => Error;
  only: "txn" | "range" | undefined;
  applied: boolean;
}

interface Waiting {
  kind: "txn" | "range";
  run: () => void;
  timedOut: boolean;
  applyLate: boolean;
  timer: Timer | undefined;
}

const ZERO: Entry = { rev: 0, create: 0, version: 0, value: null, lease: "0" };
const EMPTY = Buffer.alloc(0);

const COMPARE_TARGETS: Record<string, number> = { version: 0, create: 1, mod: 2, value: 3, lease: 4 };
const COMPARE_RESULTS: Record<string, number> = { equal: 0, greater: 1, less: 2, not_equal: 3, notequal: 3 };
const SORT_ORDERS: Record<string, number> = { none: 0, ascend: 1, descend: 2 };
const SORT_TARGETS: Record<string, number> = { key: 0, version: 1, create: 2, mod: 3, value: 4 };

/** A proto enum given as its number, etcd3's name ("NotEqual") or the proto name ("NOT_EQUAL"). */
function enumValue(v: unknown, names: Record<string, number>, fallback: number): number {
  if (typeof v === "number") return v;
  if (typeof v === "string") {
    const n = names[v.toLowerCase()];
    if (n === undefined) throw new Error(`MemoryKv: unknown enum value ${v}`);
    return n;
  }
  return fallback;
}

/** Bytes as a "binary" string: one char per byte, so string order is etcd's byte order. */
function bin(b: Buffer | Uint8Array | string | undefined | null): string {
  if (b === undefined || b === null) return "";
  if (typeof b === "string") return Buffer.from(b).toString("latin1");
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");
}

function toBuffer(b: Buffer | Uint8Array | string | undefined | null): Buffer {
  if (b === undefined || b === null) return EMPTY;
  return Buffer.from(b as Uint8Array); // a copy: the caller may reuse its buffer
}

function num(v: string | number | bigint | undefined | null): number {
  if (v === undefined || v === null || v === "") return 0;
  return Number(v);
}

function big(v: string | number | bigint | undefined | null): bigint {
  if (v === undefined || v === null || v === "") return 0n;
  return BigInt(v);
}

function spanOf(key: Buffer | undefined, rangeEnd: Buffer | undefined): Span {
  const start = bin(key);
  if (rangeEnd === undefined || rangeEnd === null || rangeEnd.length === 0) return { start, end: undefined };
  const end = bin(rangeEnd);
  return { start, end: end === "\0" ? null : end };
}

function inSpan(s: Span, k: string): boolean {
  if (s.end === undefined) return k === s.start;
  return k >= s.start && (s.end === null || k < s.end);
}

function lowerBound(sorted: string[], k: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as string) < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function cmp(a: bigint | number, b: bigint | number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class MemoryKv implements KvApi {
  readonly maxTxnOps: number;
  readonly maxRequestBytes: number;
  /** Transactions executed (the checks passed), in order. */
  readonly transactions: TxnRecord[] = [];
  /** Calls refused by etcd's checks or failed by an injected fault, in order. */
  readonly failures: FailedCall[] = [];
  /** Range calls executed. */
  rangeCount = 0;

  private rev = 1;
  private compactRev = 0;
  private readonly history = new Map<string, Entry[]>();
  /** Every key with history, sorted (binary strings). */
  private readonly order: string[] = [];
  private readonly deadlineMs: number | undefined;
  private readonly clock: Clock;
  private frozen: FreezeOptions | undefined;
  private waiting: Waiting[] = [];
  private failSlots: FailureSlot[] = [];
  private readonly writeListeners = new Set<(w: KvWrite) => void>();

  constructor(options: MemoryKvOptions = {}) {
    this.maxTxnOps = options.maxTxnOps ?? ETCD_DEFAULT_LIMITS.maxTxnOps;
    this.maxRequestBytes = options.maxRequestBytes ?? ETCD_DEFAULT_LIMITS.maxRequestBytes;
    this.deadlineMs = options.deadlineMs;
    this.clock = options.clock ?? systemClock;
  }

  // ── KvApi ────────────────────────────────────────────────────────────────

  txn(req: ITxnRequest): Promise<ITxnResponse> {
    return this.call("txn", () => this.execTxn(req, true));
  }

  range(req: IRangeRequest): Promise<IRangeResponse> {
    return this.call("range", () => this.execRange(req, true));
  }

  // ── state ────────────────────────────────────────────────────────────────

  /** The current revision (1 for an empty store). */
  get revision(): number {
    return this.rev;
  }

  /** The revision of the last compaction (0: never compacted). */
  get compactedRevision(): number {
    return this.compactRev;
  }

  /** Transactions executed (successful or not; refused ones are in `failures`). */
  get txnCount(): number {
    return this.transactions.length;
  }

  /** Transactions that changed something. */
  get writeTxnCount(): number {
    return this.transactions.filter((t) => t.writes).length;
  }

  /** Forgets the recorded transactions, failures and range count (the data stays). */
  resetStats(): void {
    this.transactions.length = 0;
    this.failures.length = 0;
    this.rangeCount = 0;
  }

  /**
   * Drops the history before `rev` (etcd's Compact): a read at a revision below it then fails
   * with "mvcc: required revision has been compacted". Throws etcd's errors for a revision that
   * is already compacted or in the future.
   */
  compact(rev: number): void {
    if (rev > this.rev) throw etcdErrors.futureRevision();
    if (rev <= this.compactRev) throw etcdErrors.compacted();
    this.compactRev = rev;
    for (const [k, entries] of this.history) {
      let keep = 0;
      for (let i = entries.length - 1; i >= 0; i--) {
        if ((entries[i] as Entry).rev <= rev) {
          keep = (entries[i] as Entry).value === null ? i + 1 : i;
          break;
        }
      }
      if (keep > 0) entries.splice(0, keep);
      if (entries.length === 0) {
        this.history.delete(k);
        this.order.splice(lowerBound(this.order, k), 1);
      }
    }
  }

  /** Calls `fn` for each key a transaction changes, once it is applied (a watch, roughly). */
  onWrite(fn: (w: KvWrite) => void): () => void {
    this.writeListeners.add(fn);
    return () => this.writeListeners.delete(fn);
  }

  // ── direct access for test setup and assertions (no faults, not recorded) ──

  /** Executes a transaction now, with etcd's checks but without faults or records. */
  txnDirect(req: ITxnRequest): ITxnResponse {
    return this.execTxn(req, false);
  }

  /** Reads now, with etcd's checks but without faults or records. */
  rangeDirect(req: IRangeRequest): IRangeResponse {
    return this.execRange(req, false);
  }

  /** Puts one key (UTF-8 key); returns the new revision. */
  put(key: string, value: string | Buffer): number {
    return Number(
      this.txnDirect({ success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value) } }] })
        .header.revision,
    );
  }

  /** Deletes one key; true when it existed. */
  delete(key: string): boolean {
    const res = this.txnDirect({ success: [{ request_delete_range: { key: Buffer.from(key) } }] });
    return res.responses[0]?.response_delete_range?.deleted === "1";
  }

  /** One key's value as UTF-8 (at `revision`, default the current one), or undefined. */
  get(key: string, revision?: number): string | undefined {
    return this.getKv(key, revision)?.value.toString();
  }

  /** One key as etcd returns it, or undefined. */
  getKv(key: string, revision?: number): IKeyValue | undefined {
    return this.rangeDirect({ key: Buffer.from(key), ...(revision ? { revision } : {}) }).kvs[0];
  }

  /** The live keys starting with `prefix`, as UTF-8, in etcd's order. */
  keys(prefix = ""): string[] {
    return Object.keys(this.dump(prefix));
  }

  /** The live keys starting with `prefix` and their values, as UTF-8. */
  dump(prefix = ""): Record<string, string> {
    const out: Record<string, string> = {};
    const p = bin(Buffer.from(prefix));
    for (let i = lowerBound(this.order, p); i < this.order.length; i++) {
      const k = this.order[i] as string;
      if (!k.startsWith(p)) break;
      const e = this.latest(k);
      if (e) out[Buffer.from(k, "latin1").toString()] = e.value.toString();
    }
    return out;
  }

  // ── faults ───────────────────────────────────────────────────────────────

  /** From now on calls wait (etcd stopped answering) until unfreeze() or their deadline. */
  freeze(options: FreezeOptions = {}): void {
    this.frozen = options;
  }

  /** Answers again: waiting calls are applied in the order they were made. */
  unfreeze(): void {
    this.frozen = undefined;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) {
      w.timer?.cancel();
      if (!w.timedOut || w.applyLate) w.run();
    }
  }

  get isFrozen(): boolean {
    return this.frozen !== undefined;
  }

  /** Calls that wait because the store is frozen. */
  get waitingCalls(): number {
    return this.waiting.filter((w) => !w.timedOut).length;
  }

  /**
   * The next `n` calls (of the kind `only`, default any) fail with `error` (default: etcd3's
   * UNAVAILABLE). With `applied` the call is executed first: the caller cannot know it landed.
   */
  failNext(n = 1, error?: Error | (() => Error), options: FailOptions = {}): void {
    const make = typeof error === "function" ? error : error ? () => error : etcdErrors.unavailable;
    for (let i = 0; i < n; i++)
      this.failSlots.push({ error: make, only: options.only, applied: options.applied ?? false });
  }

  /** Drops the faults not yet used by failNext. */
  clearFailures(): void {
    this.failSlots = [];
  }

  private call<T>(kind: "txn" | "range", run: () => T): Promise<T> {
    const slotAt = this.failSlots.findIndex((s) => s.only === undefined || s.only === kind);
    if (slotAt >= 0) {
      const [slot] = this.failSlots.splice(slotAt, 1) as [FailureSlot];
      if (slot.applied) {
        try {
          run();
        } catch {
          // its own failure is lost with the answer
        }
      }
      const error = slot.error();
      this.failures.push({ kind, error, why: "injected" });
      return Promise.reject(error);
    }
    if (!this.frozen) {
      try {
        return Promise.resolve(run());
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const frozen = this.frozen;
    return new Promise<T>((resolve, reject) => {
      const w: Waiting = {
        kind,
        timedOut: false,
        applyLate: frozen.applyLate ?? false,
        timer: undefined,
        run: () => {
          if (w.timedOut) {
            try {
              run();
            } catch {
              // nobody waits for this answer any more
            }
            return;
          }
          try {
            resolve(run());
          } catch (err) {
            reject(err);
          }
        },
      };
      this.waiting.push(w);
      const deadlineMs = frozen.deadlineMs ?? this.deadlineMs;
      if (deadlineMs !== undefined)
        w.timer = this.clock.setTimeout(() => {
          w.timedOut = true;
          if (!w.applyLate) this.waiting = this.waiting.filter((x) => x !== w);
          const error = etcdErrors.deadlineExceeded(deadlineMs);
          this.failures.push({ kind, error, why: "injected" });
          reject(error);
        }, deadlineMs);
    });
  }

  // ── etcd ─────────────────────────────────────────────────────────────────

  private header(): IResponseHeader {
    return {
      cluster_id: "14841639068965178418",
      member_id: "10276657743932975437",
      revision: String(this.rev),
      raft_term: "2",
    };
  }

  private refuse(kind: "txn" | "range", error: Error, record: boolean): never {
    if (record) this.failures.push({ kind, error, why: "refused" });
    throw error;
  }

  private execTxn(req: ITxnRequest, record: boolean): ITxnResponse {
    const compare = req.compare ?? [];
    const success = req.success ?? [];
    const failure = req.failure ?? [];
    const bytes = txnRequestSize(req);
    const grpcMax = this.maxRequestBytes + GRPC_OVERHEAD_BYTES;
    if (bytes > grpcMax) this.refuse("txn", etcdErrors.messageTooLarge(bytes, grpcMax), record);
    // etcd's kvServer.Txn: checkTxnRequest, then checkIntervals per branch.
    const refused =
      this.checkTxnRequest(compare, success, failure) ?? checkIntervals(success) ?? checkIntervals(failure);
    if (refused) this.refuse("txn", refused, record);
    // Read-only transactions are served without raft; writes go through raft and its size limit.
    const readOnly = [...success, ...failure].every((op) => op.request_range !== undefined);
    if (!readOnly && bytes + RAFT_ENTRY_OVERHEAD > this.maxRequestBytes)
      this.refuse("txn", etcdErrors.requestTooLarge(), record);

    const succeeded = compare.every((c) => this.applyCompare(c));
    const ops = succeeded ? success : failure;
    // etcd's checkRequests on the branch taken, before anything is applied.
    for (const op of ops) {
      const err = this.checkApply(op);
      if (err) this.refuse("txn", err, record);
    }
    const newRev = this.rev + 1;
    const writes: KvWrite[] = [];
    const responses = ops.map((op) => this.applyOp(op, newRev, writes));
    if (writes.length > 0) this.rev = newRev;
    const header = this.header();
    for (const r of responses) {
      const inner = r.response_range ?? r.response_put ?? r.response_delete_range;
      if (inner) inner.header = header;
    }
    if (record)
      this.transactions.push({
        compares: compare.length,
        success: success.length,
        failure: failure.length,
        ops: ops.length,
        succeeded,
        writes: writes.length > 0,
        revision: this.rev,
        bytes,
      });
    for (const w of writes) for (const fn of this.writeListeners) fn(w);
    return { header, succeeded, responses };
  }

  private execRange(req: IRangeRequest, record: boolean): IRangeResponse {
    const bytes = rangeRequestSize(req);
    const grpcMax = this.maxRequestBytes + GRPC_OVERHEAD_BYTES;
    if (bytes > grpcMax) this.refuse("range", etcdErrors.messageTooLarge(bytes, grpcMax), record);
    if (!req.key || req.key.length === 0) this.refuse("range", etcdErrors.emptyKey(), record);
    const err = this.checkRevision(req.revision);
    if (err) this.refuse("range", err, record);
    if (record) this.rangeCount += 1;
    const res = this.read(req);
    res.header = this.header();
    return res;
  }

  /** etcd's checkTxnRequest (v3rpc/key.go). */
  private checkTxnRequest(
    compare: ICompare[],
    success: IRequestOp[],
    failure: IRequestOp[],
  ): Error | undefined {
    if (Math.max(compare.length, success.length, failure.length) > this.maxTxnOps)
      return etcdErrors.tooManyOps();
    for (const c of compare) if (!c.key || c.key.length === 0) return etcdErrors.emptyKey();
    for (const op of [...success, ...failure]) {
      if (op.request_txn) throw new Error("MemoryKv does not support nested transactions (request_txn)");
      const r = op.request_range ?? op.request_delete_range;
      if (r && (!r.key || r.key.length === 0)) return etcdErrors.emptyKey();
      const p = op.request_put;
      if (p) {
        if (!p.key || p.key.length === 0) return etcdErrors.emptyKey();
        if (p.ignore_value && p.value && p.value.length > 0) return etcdErrors.valueProvided();
        if (p.ignore_lease && big(p.lease) !== 0n) return etcdErrors.leaseProvided();
      }
    }
    return undefined;
  }

  private checkRevision(revision: string | number | undefined): Error | undefined {
    const rev = num(revision);
    if (rev <= 0) return undefined;
    if (rev > this.rev) return etcdErrors.futureRevision();
    if (rev < this.compactRev) return etcdErrors.compacted();
    return undefined;
  }

  /** etcd's checkRequests for one operation of the branch taken. */
  private checkApply(op: IRequestOp): Error | undefined {
    if (op.request_range) return this.checkRevision(op.request_range.revision);
    const p = op.request_put;
    if (p && (p.ignore_value || p.ignore_lease) && !this.latest(bin(p.key))) return etcdErrors.keyNotFound();
    return undefined;
  }

  private applyCompare(c: ICompare): boolean {
    const target = enumValue(c.target, COMPARE_TARGETS, 0);
    const result = enumValue(c.result, COMPARE_RESULTS, 0);
    const live = this.keysIn(spanOf(c.key, c.range_end))
      .map((k) => this.latest(k))
      .filter((e): e is LiveEntry => e !== undefined);
    if (live.length === 0) {
      // etcd: "nil == empty string in grpc; no way to represent missing value"
      if (target === 3) return false;
      return compareEntry(c, target, result, ZERO);
    }
    return live.every((e) => compareEntry(c, target, result, e));
  }

  /** One operation's answer; like proto-loader's (oneofs: true) it names its case in `response`. */
  private applyOp(op: IRequestOp, newRev: number, writes: KvWrite[]): IResponseOp {
    // A read without a revision sees the writes of this transaction before it (they are appended).
    if (op.request_range)
      return {
        response_range: this.read(op.request_range),
        response: "response_range",
      } as unknown as IResponseOp;
    if (op.request_put)
      return {
        response_put: this.applyPut(op.request_put, newRev, writes),
        response: "response_put",
      } as unknown as IResponseOp;
    if (op.request_delete_range)
      return {
        response_delete_range: this.applyDelete(op.request_delete_range, newRev, writes),
        response: "response_delete_range",
      } as unknown as IResponseOp;
    throw new Error("MemoryKv: an operation with no request");
  }

  private applyPut(p: IPutRequest, newRev: number, writes: KvWrite[]): IPutResponse {
    const k = bin(p.key);
    const cur = this.latest(k);
    const value = p.ignore_value && cur ? cur.value : toBuffer(p.value);
    const lease = p.ignore_lease && cur ? cur.lease : String(big(p.lease));
    this.append(k, {
      rev: newRev,
      create: cur ? cur.create : newRev,
      version: cur ? cur.version + 1 : 1,
      value,
      lease,
    });
    writes.push({ type: "put", key: Buffer.from(k, "latin1").toString(), value, revision: newRev });
    return {
      header: this.header(),
      prev_kv: (p.prev_kv && cur ? kvOf(k, cur, false) : null) as IKeyValue,
    };
  }

  private applyDelete(d: IDeleteRangeRequest, newRev: number, writes: KvWrite[]): IDeleteRangeResponse {
    const prev: IKeyValue[] = [];
    let deleted = 0;
    for (const k of this.keysIn(spanOf(d.key, d.range_end))) {
      const cur = this.latest(k);
      if (!cur) continue;
      deleted += 1;
      if (d.prev_kv) prev.push(kvOf(k, cur, false));
      this.append(k, { rev: newRev, create: 0, version: 0, value: null, lease: "0" });
      writes.push({
        type: "delete",
        key: Buffer.from(k, "latin1").toString(),
        value: undefined,
        revision: newRev,
      });
    }
    return { header: this.header(), deleted: String(deleted), prev_kvs: prev };
  }

  /** etcd's Range (etcdserver apply): count before pruning, prune, sort, then limit. */
  private read(r: IRangeRequest): IRangeResponse {
    const rev = num(r.revision) > 0 ? num(r.revision) : Number.POSITIVE_INFINITY;
    let found: [string, LiveEntry][] = [];
    for (const k of this.keysIn(spanOf(r.key, r.range_end))) {
      const e = this.at(k, rev);
      if (e) found.push([k, e]);
    }
    const count = found.length;
    if (r.count_only) return { header: this.header(), kvs: [], more: false, count: String(count) };
    const minMod = num(r.min_mod_revision);
    const maxMod = num(r.max_mod_revision);
    const minCreate = num(r.min_create_revision);
    const maxCreate = num(r.max_create_revision);
    found = found.filter(
      ([, e]) =>
        !(maxMod !== 0 && e.rev > maxMod) &&
        !(minMod !== 0 && e.rev < minMod) &&
        !(maxCreate !== 0 && e.create > maxCreate) &&
        !(minCreate !== 0 && e.create < minCreate),
    );
    const target = enumValue(r.sort_target, SORT_TARGETS, 0);
    let order = enumValue(r.sort_order, SORT_ORDERS, 0);
    if (target !== 0 && order === 0) order = 1;
    else if (target === 0 && order === 1) order = 0; // already in key order
    if (order !== 0) {
      const key = ([, e]: [string, LiveEntry]): number => {
        switch (target) {
          case 1:
            return e.version;
          case 2:
            return e.create;
          case 3:
            return e.rev;
          default:
            return 0;
        }
      };
      const by = (a: [string, LiveEntry], b: [string, LiveEntry]): number => {
        if (target === 0) return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
        if (target === 4) return Buffer.compare(a[1].value, b[1].value);
        return key(a) - key(b);
      };
      found.sort((a, b) => (order === 2 ? by(b, a) : by(a, b)));
    }
    const limit = num(r.limit);
    let more = false;
    if (limit > 0 && found.length > limit) {
      found = found.slice(0, limit);
      more = true;
    }
    return {
      header: this.header(),
      kvs: found.map(([k, e]) => kvOf(k, e, r.keys_only ?? false)),
      more,
      count: String(count),
    };
  }

  private keysIn(s: Span): string[] {
    if (s.end === undefined) return this.history.has(s.start) ? [s.start] : [];
    const out: string[] = [];
    for (let i = lowerBound(this.order, s.start); i < this.order.length; i++) {
      const k = this.order[i] as string;
      if (!inSpan(s, k)) break;
      out.push(k);
    }
    return out;
  }

  /** The key's live entry as of `rev`, or undefined. */
  private at(k: string, rev: number): LiveEntry | undefined {
    const entries = this.history.get(k);
    if (!entries) return undefined;
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i] as Entry;
      if (e.rev <= rev) return e.value === null ? undefined : (e as LiveEntry);
    }
    return undefined;
  }

  private latest(k: string): LiveEntry | undefined {
    return this.at(k, Number.POSITIVE_INFINITY);
  }

  private append(k: string, e: Entry): void {
    let entries = this.history.get(k);
    if (!entries) {
      entries = [];
      this.history.set(k, entries);
      this.order.splice(lowerBound(this.order, k), 0, k);
    }
    entries.push(e);
  }
}

function kvOf(k: string, e: LiveEntry, keysOnly: boolean): IKeyValue {
  return {
    key: Buffer.from(k, "latin1"),
    create_revision: String(e.create),
    mod_revision: String(e.rev),
    version: String(e.version),
    value: keysOnly ? Buffer.alloc(0) : Buffer.from(e.value),
    lease: e.lease,
  };
}

function compareEntry(c: ICompare, target: number, result: number, e: Entry): boolean {
  let d: number;
  switch (target) {
    case 0:
      d = cmp(BigInt(e.version), big(c.version));
      break;
    case 1:
      d = cmp(BigInt(e.create), big(c.create_revision));
      break;
    case 2:
      d = cmp(BigInt(e.rev), big(c.mod_revision));
      break;
    case 3:
      d = Buffer.compare(e.value ?? EMPTY, toBuffer(c.value));
      break;
    case 4:
      d = cmp(BigInt(e.lease), big(c.lease));
      break;
    default:
      throw new Error(`MemoryKv: unknown compare target ${target}`);
  }
  switch (result) {
    case 0:
      return d === 0;
    case 1:
      return d > 0;
    case 2:
      return d < 0;
    case 3:
      return d !== 0;
    default:
      throw new Error(`MemoryKv: unknown compare result ${result}`);
  }
}

/** etcd's checkIntervals: no two puts of one key, no put of a key a delete of the same branch covers. */
function checkIntervals(ops: IRequestOp[]): Error | undefined {
  const dels: Span[] = [];
  for (const op of ops)
    if (op.request_delete_range)
      dels.push(spanOf(op.request_delete_range.key, op.request_delete_range.range_end));
  const puts = new Set<string>();
  for (const op of ops) {
    if (!op.request_put) continue;
    const k = bin(op.request_put.key);
    if (puts.has(k) || dels.some((d) => inSpan(d, k))) return etcdErrors.duplicateKey();
    puts.add(k);
  }
  return undefined;
}
