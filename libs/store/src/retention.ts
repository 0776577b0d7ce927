/**
 * Log retention: the event log does not grow forever. Events older than the retention, and
 * already published on NATS (at or below `publishedRevision`), are removed; what they built is
 * kept as a checkpoint per aggregate (`/drover/checkpoint/<aggregate>/<id>`: the state and
 * version after the last removed event), so verify-log replays the retained window from it. An
 * aggregate that no longer exists (deleted) and whose every event is past retention disappears
 * entirely: events, checkpoint and tombstone (or the previous format's version key), guarded by
 * the tombstone's mod revision; its id may then start again at version 1.
 *
 * Every write is fenced and packed within the store's limits; a run can stop anywhere and the
 * next one continues (each aggregate's removal and checkpoint are one atomic step).
 */
import { AGGREGATES } from "@drover/core";
import { CompareResult, CompareTarget, type ICompare, type IRequestOp } from "etcd3";
import { z } from "zod";
import type { Leadership } from "./election.js";
import { type AnyDef, type EventStore, parseEnvelope, parseProjection } from "./event-store.js";
import {
  CHECKPOINT_PREFIX,
  checkpointKey,
  LOG_PREFIX,
  logKey,
  parseLogKey,
  stateKey,
  versionKey,
} from "./keys.js";

export const CheckpointSchema = z.strictObject({
  /** The version of the last event folded into `state`. */
  version: z.number().int().min(1),
  /** The aggregate's state after that event (absent: it did not exist then). */
  state: z.unknown().optional(),
  /** When the checkpoint was written. */
  atMs: z.number(),
});
export type Checkpoint = z.infer<typeof CheckpointSchema>;

export interface RetentionOptions {
  /** Events older than this (by their commit time) may be removed. */
  retentionMs: number;
  nowMs: number;
  /** Only events at or below this etcd revision are removed (the relay has published them). */
  publishedRevision: bigint;
}

export interface RetentionReport {
  /** Events removed from the log. */
  events: number;
  /** Aggregates checkpointed (some of their events removed). */
  checkpointed: number;
  /** Deleted aggregates removed entirely. */
  removed: number;
  transactions: number;
}

interface Group {
  aggregate: string;
  id: string;
  events: { version: number; atMs: number; event: unknown; revision: bigint }[];
}

type Step = { compare: ICompare[]; ops: IRequestOp[]; tally: () => void };

/** Deleted aggregates whose removal waits for the read of their tombstones (read together). */
const TOMBSTONE_READS = 64;

/** Removes the events past retention (see the file comment). */
export async function pruneLog(
  store: EventStore,
  leadership: Leadership | undefined,
  o: RetentionOptions,
): Promise<RetentionReport> {
  const report: RetentionReport = { events: 0, checkpointed: 0, removed: 0, transactions: 0 };
  const revision = await store.revision();
  const checkpoints = await readCheckpoints(store, revision);
  const cutoff = o.nowMs - o.retentionMs;
  let batch: Step[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    await store.commitRaw(
      leadership,
      batch.flatMap((b) => b.compare),
      batch.flatMap((b) => b.ops),
    );
    for (const b of batch) b.tally();
    report.transactions += 1;
    batch = [];
  };
  const add = async (step: Step) => {
    const ops = batch.reduce((n, b) => n + b.ops.length, 0);
    const compares = batch.reduce((n, b) => n + b.compare.length, 0) + 1;
    if (
      ops + step.ops.length > store.limits.maxTxnOps ||
      compares + step.compare.length > store.limits.maxTxnOps
    )
      await flush();
    batch.push(step);
  };
  // Deleted aggregates whose every event goes: their tombstones are read (at `revision`, as the
  // log) so that the removal compares the tombstone's mod revision.
  let gone: { g: Group; last: number; logRange: IRequestOp; cpKey: Buffer }[] = [];
  const removeGone = async () => {
    const reads = gone;
    gone = [];
    const steps = await Promise.all(reads.map((r) => goneStep(store, revision, r.g, r.last)));
    for (const [i, found] of steps.entries()) {
      const r = reads[i];
      if (!found || !r) continue; // the projection is not what the log left: verify-log reports it
      await add({
        compare: found.compare,
        ops: [r.logRange, { request_delete_range: { key: r.cpKey } }, ...found.ops],
        tally: () => {
          report.events += r.g.events.length;
          report.removed += 1;
        },
      });
    }
  };
  const handle = async (g: Group) => {
    const def = AGGREGATES[g.aggregate] as AnyDef | undefined;
    if (!def) return;
    let k = 0;
    while (k < g.events.length) {
      const e = g.events[k];
      if (!e || e.atMs >= cutoff || e.revision > o.publishedRevision) break;
      k += 1;
    }
    if (k === 0) return;
    const cp = checkpoints.get(`${g.aggregate}/${g.id}`);
    let state: unknown = cp?.state;
    for (const e of g.events.slice(0, k)) {
      const parsed = def.eventSchema.safeParse(e.event);
      if (!parsed.success) return; // verify-log reports it; retention never hides it
      state = def.apply(state, parsed.data, { id: g.id, atMs: e.atMs });
    }
    const first = g.events[0]?.version ?? 1;
    const last = g.events[k - 1]?.version ?? first;
    const logRange: IRequestOp = {
      request_delete_range: {
        key: Buffer.from(logKey(g.aggregate, g.id, first)),
        range_end: Buffer.from(logKey(g.aggregate, g.id, last + 1)),
      },
    };
    const cpKey = Buffer.from(checkpointKey(g.aggregate, g.id));
    if (k === g.events.length && state === undefined) {
      // Gone for good: nothing of it remains (if nothing was written to it meanwhile).
      gone.push({ g, last, logRange, cpKey });
      if (gone.length >= TOMBSTONE_READS) await removeGone();
      return;
    }
    await add({
      compare: [] as ICompare[],
      ops: [
        logRange,
        {
          request_put: {
            key: cpKey,
            value: Buffer.from(JSON.stringify({ version: last, state, atMs: o.nowMs } satisfies Checkpoint)),
          },
        },
      ],
      tally: () => {
        report.events += k;
        report.checkpointed += 1;
      },
    });
  };

  let current: Group | undefined;
  for await (const page of store.scan(LOG_PREFIX, revision)) {
    for (const kv of page) {
      const key = kv.key.toString();
      const k = parseLogKey(key);
      if (!k) continue;
      const env = parseEnvelope(key, kv.value.toString());
      if (!current || current.aggregate !== k.aggregate || current.id !== k.id) {
        if (current) await handle(current);
        current = { aggregate: k.aggregate, id: k.id, events: [] };
      }
      current.events.push({
        version: k.version,
        atMs: env.atMs,
        event: env.event,
        revision: BigInt(kv.mod_revision),
      });
    }
  }
  if (current) await handle(current);
  await removeGone();
  await flush();
  return report;
}

/**
 * How to remove what is left of a deleted aggregate besides its events, whose last one is
 * `last`: its tombstone (compared on its mod revision), or, in the previous format, its version
 * key (compared on its value, with no projection). Undefined when the projection at `revision`
 * is neither (it disagrees with the log: nothing is removed).
 */
async function goneStep(
  store: EventStore,
  revision: string,
  g: Group,
  last: number,
): Promise<{ compare: ICompare[]; ops: IRequestOp[] } | undefined> {
  const sKey = Buffer.from(stateKey(g.aggregate, g.id));
  const projection = await store.readAt(sKey, revision);
  if (projection) {
    const stored = parseProjection(projection.value.toString());
    if (stored.kind !== "deleted" || stored.version !== last) return undefined;
    return {
      compare: [
        {
          key: sKey,
          target: CompareTarget.Mod,
          result: CompareResult.Equal,
          mod_revision: projection.mod_revision,
        },
      ],
      ops: [{ request_delete_range: { key: sKey } }],
    };
  }
  const vKey = Buffer.from(versionKey(g.aggregate, g.id));
  const version = await store.readAt(vKey, revision);
  if (!version || version.value.toString() !== String(last)) return undefined;
  return {
    compare: [
      {
        key: vKey,
        target: CompareTarget.Value,
        result: CompareResult.Equal,
        value: Buffer.from(String(last)),
      },
      { key: sKey, target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: "0" },
    ],
    ops: [{ request_delete_range: { key: vKey } }],
  };
}

/** Every checkpoint as of `revision`, by `<aggregate>/<id>`. */
export async function readCheckpoints(store: EventStore, revision: string): Promise<Map<string, Checkpoint>> {
  const out = new Map<string, Checkpoint>();
  for await (const page of store.scan(CHECKPOINT_PREFIX, revision))
    for (const kv of page) {
      const key = kv.key.toString();
      let parsed: unknown;
      try {
        parsed = JSON.parse(kv.value.toString());
      } catch {
        parsed = undefined;
      }
      const cp = CheckpointSchema.safeParse(parsed);
      if (!cp.success) throw new Error(`invalid checkpoint at ${key.slice(0, 200)}`);
      out.set(key.slice(CHECKPOINT_PREFIX.length), cp.data);
    }
  return out;
}
