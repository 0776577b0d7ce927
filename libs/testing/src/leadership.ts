/**
 * A Leadership (libs/store election.ts) on a MemoryKv, without leases or campaigns: the election
 * key `/drover/election/<service>/<lease hex>` is created at once, and `fence()` is the same
 * create-revision compare as LeaderElection's, so a fenced write fails exactly as it does on etcd
 * once the key is gone or re-created.
 */
import type { Leadership } from "@drover/store";
import { ELECTION_PREFIX } from "@drover/store";
import { CompareResult, CompareTarget, type ICompare } from "etcd3";
import type { MemoryKv } from "./memory-kv.js";

export interface TestLeadership extends Leadership {
  /**
   * Loses the leadership in etcd: the election key is deleted (an expired lease, an operator, a
   * newer leader), so every fenced write fails from now on. With `recreate`, a key of the same
   * name is created again (another create revision: the fence still fails). With `notify`, the
   * term also ends locally (`lost` resolves, isLeader() is false), as LeaderElection's watch of
   * its key would notice; without it, the process goes on believing it leads, and only the fence
   * stops it: the case fencing exists for.
   */
  depose(options?: { notify?: boolean; recreate?: boolean }): void;
  /** How many times resign() was called (EventStore resigns after a fenced write). */
  readonly resignCount: number;
  /** Why the term ended, once it did. */
  readonly endedBecause: string | undefined;
}

let leaseSeq = 0;

/**
 * Creates the election key of `service` in `kv` (directly: no fault applies) and returns its
 * Leadership. Each call is a new candidate with its own key; nothing checks for other candidates.
 */
export function memoryLeadership(
  kv: MemoryKv,
  service: string,
  options: { value?: string } = {},
): TestLeadership {
  leaseSeq += 1;
  const lease = 0x694d_0000_0000n + BigInt(leaseSeq);
  const key = `${ELECTION_PREFIX}${service}/${lease.toString(16)}`;
  const value = options.value ?? `${service}-test:${leaseSeq}`;
  const put = kv.txnDirect({
    compare: [
      {
        key: Buffer.from(key),
        target: CompareTarget.Create,
        result: CompareResult.Equal,
        create_revision: 0,
      },
    ],
    success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value), lease: String(lease) } }],
    failure: [],
  });
  if (!put.succeeded) throw new Error(`election key ${key} exists already`);
  const createRevision = put.header.revision;

  let ended: string | undefined;
  let resignCount = 0;
  let lostResolve: () => void = () => {};
  const lost = new Promise<void>((r) => {
    lostResolve = r;
  });
  const end = (why: string) => {
    if (ended !== undefined) return;
    ended = why;
    lostResolve();
  };
  const fence = (): ICompare => ({
    key: Buffer.from(key),
    target: CompareTarget.Create,
    result: CompareResult.Equal,
    create_revision: createRevision,
  });

  return {
    service,
    key,
    createRevision,
    lost,
    isLeader: () => ended === undefined,
    fence,
    resign: async () => {
      resignCount += 1;
      end("resigned");
      // As LeaderElection.resign: delete the key only if it is still ours (a store call like any other).
      await kv
        .txn({
          compare: [fence()],
          success: [{ request_delete_range: { key: Buffer.from(key) } }],
          failure: [],
        })
        .catch(() => undefined);
    },
    depose: (opts = {}) => {
      kv.delete(key);
      if (opts.recreate) kv.put(key, `${value} (re-created)`);
      if (opts.notify) end("deposed");
    },
    get resignCount() {
      return resignCount;
    },
    get endedBecause() {
      return ended;
    },
  };
}
