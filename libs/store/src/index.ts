export type { Etcd3 } from "etcd3";
export * from "./commit-queue.js";
export * from "./election.js";
export * from "./etcd.js";
export * from "./event-store.js";
export * from "./keys.js";
export * from "./retention.js";
export * from "./verify.js";
