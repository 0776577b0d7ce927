/** The real EventStore of @drover/store on a MemoryKv, with a leadership: the usual test setup. */
import { DEFAULT_STORE_LIMITS, EventStore, type StoreLimits } from "@drover/store";
import { memoryLeadership, type TestLeadership } from "./leadership.js";
import { MemoryKv, type MemoryKvOptions } from "./memory-kv.js";

export interface MemoryStore {
  kv: MemoryKv;
  store: EventStore;
  leadership: TestLeadership;
}

/** A MemoryKv, an EventStore on it, and a leadership of `service` (default "master") in it. */
export function memoryStore(
  options: MemoryKvOptions & { service?: string; limits?: StoreLimits } = {},
): MemoryStore {
  const kv = new MemoryKv(options);
  const store = new EventStore(kv, options.limits ?? DEFAULT_STORE_LIMITS);
  const leadership = memoryLeadership(kv, options.service ?? "master");
  return { kv, store, leadership };
}
