/**
 * The protobuf-encoded size of etcd requests (etcdserverpb.TxnRequest, RangeRequest), as the
 * etcd3 client sends them: a field is on the wire when it is present in the object (protobufjs
 * encodes a set field even when it holds the default value). etcd's size limits apply to these
 * bytes, so MemoryKv measures requests the same way.
 */
import type {
  ICompare,
  IDeleteRangeRequest,
  IPutRequest,
  IRangeRequest,
  IRequestOp,
  ITxnRequest,
} from "etcd3";

type Int = string | number | bigint | undefined;
type Bytes = Buffer | Uint8Array | string | undefined;

function varintSize(v: bigint): number {
  if (v < 0n) return 10; // int64 negatives take ten bytes
  let n = 1;
  let x = v;
  while (x >= 0x80n) {
    x >>= 7n;
    n += 1;
  }
  return n;
}

function bytesLength(b: Bytes): number {
  if (b === undefined) return 0;
  if (typeof b === "string") return Buffer.byteLength(b);
  return b.length;
}

function toBig(v: Int | boolean): bigint {
  if (typeof v === "boolean") return v ? 1n : 0n;
  if (v === undefined || v === "") return 0n;
  try {
    return BigInt(v);
  } catch {
    return 0n;
  }
}

/** Tag of a field: field numbers below 16 take one byte, below 2048 two. */
function tagSize(field: number): number {
  return field < 16 ? 1 : 2;
}

function intField(field: number, v: Int | boolean | unknown): number {
  if (v === undefined || v === null) return 0;
  return tagSize(field) + varintSize(toBig(v as Int | boolean));
}

function enumField(field: number, v: unknown): number {
  if (v === undefined || v === null) return 0;
  return tagSize(field) + 1;
}

function bytesField(field: number, b: Bytes | null): number {
  if (b === undefined || b === null) return 0;
  const len = bytesLength(b);
  return tagSize(field) + varintSize(BigInt(len)) + len;
}

function messageField(field: number, size: number): number {
  return tagSize(field) + varintSize(BigInt(size)) + size;
}

export function compareSize(c: ICompare): number {
  return (
    enumField(1, c.result) +
    enumField(2, c.target) +
    bytesField(3, c.key) +
    intField(4, c.version) +
    intField(5, c.create_revision) +
    intField(6, c.mod_revision) +
    bytesField(7, c.value) +
    intField(8, c.lease) +
    bytesField(64, c.range_end)
  );
}

export function rangeRequestSize(r: IRangeRequest): number {
  return (
    bytesField(1, r.key) +
    bytesField(2, r.range_end) +
    intField(3, r.limit) +
    intField(4, r.revision) +
    enumField(5, r.sort_order) +
    enumField(6, r.sort_target) +
    intField(7, r.serializable) +
    intField(8, r.keys_only) +
    intField(9, r.count_only) +
    intField(10, r.min_mod_revision) +
    intField(11, r.max_mod_revision) +
    intField(12, r.min_create_revision) +
    intField(13, r.max_create_revision)
  );
}

function putRequestSize(p: IPutRequest): number {
  return (
    bytesField(1, p.key) +
    bytesField(2, p.value) +
    intField(3, p.lease) +
    intField(4, p.prev_kv) +
    intField(5, p.ignore_value) +
    intField(6, p.ignore_lease)
  );
}

function deleteRangeRequestSize(d: IDeleteRangeRequest): number {
  return bytesField(1, d.key) + bytesField(2, d.range_end) + intField(3, d.prev_kv);
}

export function requestOpSize(op: IRequestOp): number {
  if (op.request_range) return messageField(1, rangeRequestSize(op.request_range));
  if (op.request_put) return messageField(2, putRequestSize(op.request_put));
  if (op.request_delete_range) return messageField(3, deleteRangeRequestSize(op.request_delete_range));
  if (op.request_txn) return messageField(4, txnRequestSize(op.request_txn));
  return 0;
}

export function txnRequestSize(t: ITxnRequest): number {
  let n = 0;
  for (const c of t.compare ?? []) n += messageField(1, compareSize(c));
  for (const op of t.success ?? []) n += messageField(2, requestOpSize(op));
  for (const op of t.failure ?? []) n += messageField(3, requestOpSize(op));
  return n;
}

/**
 * What etcd adds around a request in its raft entry (InternalRaftRequest: a header with a 64-bit
 * request id, and the request's own tag and length). etcd refuses a write whose entry is larger
 * than --max-request-bytes.
 */
export const RAFT_ENTRY_OVERHEAD = 17;

/** gRPC's receive limit of etcd is --max-request-bytes plus this (etcd's grpcOverheadBytes). */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;
