/**
 * The errors a real etcd gives, as the etcd3 client hands them to its caller. etcd answers with a
 * gRPC status (code + details, e.g. INVALID_ARGUMENT "etcdserver: too many operations in txn
 * request"); grpc-js turns it into an Error whose message is `<code> <NAME>: <details>`, and
 * etcd3's castGrpcError re-creates it as the class of that code (GRPCInvalidArgumentError, …)
 * with the same message. MemoryKv throws exactly these, so code that catches etcd's failures by
 * class (storeError in @drover/store) sees what it would see in production.
 */
import {
  GRPCDeadlineExceededError,
  type GRPCGenericError,
  GRPCInvalidArgumentError,
  GRPCOutOfRangeError,
  GRPCResourceExhastedError,
  GRPCUnavailableError,
} from "etcd3";

/** etcd's own texts (the `details` of its gRPC statuses: server/etcdserver/api/v3rpc/rpctypes). */
export const ETCD_MESSAGES = {
  tooManyOps: "etcdserver: too many operations in txn request",
  requestTooLarge: "etcdserver: request is too large",
  duplicateKey: "etcdserver: duplicate key given in txn request",
  emptyKey: "etcdserver: key is not provided",
  keyNotFound: "etcdserver: key not found",
  valueProvided: "etcdserver: value is provided",
  leaseProvided: "etcdserver: lease is provided",
  compacted: "etcdserver: mvcc: required revision has been compacted",
  futureRevision: "etcdserver: mvcc: required revision is a future revision",
} as const;

type Ctor = new (message: string) => GRPCGenericError;

/** As grpc-js formats a status (`${code} ${Status[code]}: ${details}`), cast by etcd3. */
function grpc(ctor: Ctor, code: number, name: string, details: string): GRPCGenericError {
  return new ctor(`${code} ${name}: ${details}`);
}

export const etcdErrors = {
  /** More than --max-txn-ops operations in the compares, the success or the failure branch. */
  tooManyOps: () => grpc(GRPCInvalidArgumentError, 3, "INVALID_ARGUMENT", ETCD_MESSAGES.tooManyOps),
  /** A write whose raft entry is over --max-request-bytes. */
  requestTooLarge: () => grpc(GRPCInvalidArgumentError, 3, "INVALID_ARGUMENT", ETCD_MESSAGES.requestTooLarge),
  /** A request over gRPC's receive limit (--max-request-bytes + 512 KiB): refused before etcd sees it. */
  messageTooLarge: (size: number, max: number) =>
    grpc(
      GRPCResourceExhastedError,
      8,
      "RESOURCE_EXHAUSTED",
      `grpc: received message larger than max (${size} vs. ${max})`,
    ),
  /** Two puts of one key, or a put of a key a delete of the same branch covers. */
  duplicateKey: () => grpc(GRPCInvalidArgumentError, 3, "INVALID_ARGUMENT", ETCD_MESSAGES.duplicateKey),
  emptyKey: () => grpc(GRPCInvalidArgumentError, 3, "INVALID_ARGUMENT", ETCD_MESSAGES.emptyKey),
  keyNotFound: () => grpc(GRPCInvalidArgumentError, 3, "INVALID_ARGUMENT", ETCD_MESSAGES.keyNotFound),
  valueProvided: () => grpc(GRPCInvalidArgumentError, 3, "INVALID_ARGUMENT", ETCD_MESSAGES.valueProvided),
  leaseProvided: () => grpc(GRPCInvalidArgumentError, 3, "INVALID_ARGUMENT", ETCD_MESSAGES.leaseProvided),
  compacted: () => grpc(GRPCOutOfRangeError, 11, "OUT_OF_RANGE", ETCD_MESSAGES.compacted),
  futureRevision: () => grpc(GRPCOutOfRangeError, 11, "OUT_OF_RANGE", ETCD_MESSAGES.futureRevision),
  /** The client's deadline passed without an answer (a frozen or partitioned etcd). */
  deadlineExceeded: (ms: number) =>
    grpc(
      GRPCDeadlineExceededError,
      4,
      "DEADLINE_EXCEEDED",
      `Deadline exceeded after ${(ms / 1000).toFixed(3)}s`,
    ),
  /** No connection to any etcd endpoint. */
  unavailable: () =>
    grpc(
      GRPCUnavailableError,
      14,
      "UNAVAILABLE",
      "No connection established. Last error: connect ECONNREFUSED",
    ),
};
