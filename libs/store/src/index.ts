import { Etcd3 } from "etcd3";

export * from "./election.js";
export * from "./event-store.js";
export * from "./keys.js";
export * from "./verify.js";

export function connectEtcd(endpoints: string[]): Etcd3 {
  return new Etcd3({ hosts: endpoints, dialTimeout: 3000 });
}
export type { Etcd3 } from "etcd3";
