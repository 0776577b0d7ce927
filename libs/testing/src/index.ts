/**
 * @drover/testing: an in-process harness for unit tests of the master and the scheduler, without
 * etcd, NATS or Docker. See README.md.
 */
export * from "./builders.js";
export * from "./etcd-errors.js";
export * from "./fake-clock.js";
export * from "./leadership.js";
export * from "./memory-kv.js";
export * from "./memory-store.js";
export { RAFT_ENTRY_OVERHEAD, txnRequestSize } from "./proto-size.js";
export * from "./recording.js";
