/**
 * Replays the event log and checks that it rebuilds the stored projections exactly, with their
 * versions (invariant 2); a deleted aggregate's tombstone must carry the version its events reach.
 * Used by `drover admin verify-log` and the tests.
 *
 * The log and the projections are read a page at a time at one pinned revision, so it works
 * for a log of any size (a single range of the whole log exceeds gRPC's message limit long
 * before etcd's space quota). Only the rebuilt projections are held in memory.
 */
import { isDeepStrictEqual } from "node:util";
import { AGGREGATES } from "@drover/core";
import type { EventStore } from "./event-store.js";
import { readCheckpoints } from "./retention.js";

export interface VerifyReport {
  ok: boolean;
  events: number;
  aggregates: number;
  projections: number;
  /** The etcd revision the log and the projections were read at. */
  revision: string;
  mismatches: { key: string; problem: string }[];
}

/** At most this many mismatches are listed (the count is exact). */
const MAX_LISTED = 1000;

export async function verifyLog(store: EventStore): Promise<VerifyReport> {
  // One point in time for both reads: a commit between two unpinned reads would look like a mismatch.
  const revision = await store.revision();
  const rebuilt = new Map<string, unknown>();
  const versions = new Map<string, number>();
  // Retention removed the oldest events: their aggregates replay from the checkpoint they left.
  for (const [key, cp] of await readCheckpoints(store, revision)) {
    versions.set(key, cp.version);
    if (cp.state !== undefined) rebuilt.set(key, JSON.parse(JSON.stringify(cp.state)) as unknown);
  }
  const mismatches: VerifyReport["mismatches"] = [];
  let mismatchCount = 0;
  const mismatch = (key: string, problem: string) => {
    mismatchCount += 1;
    if (mismatches.length < MAX_LISTED) mismatches.push({ key, problem });
  };
  let events = 0;
  for await (const page of store.logPages(revision)) {
    for (const env of page) {
      events += 1;
      const key = `${env.aggregate}/${env.id}`;
      const def = AGGREGATES[env.aggregate];
      if (!def) {
        mismatch(key, `unknown aggregate type ${env.aggregate}`);
        continue;
      }
      const expected = (versions.get(key) ?? 0) + 1;
      if (env.version !== expected) mismatch(key, `version ${env.version} where ${expected} was expected`);
      versions.set(key, env.version);
      const parsed = def.eventSchema.safeParse(env.event);
      if (!parsed.success) {
        mismatch(key, `invalid event at version ${env.version}: ${parsed.error.message}`);
        continue;
      }
      const next = def.apply(rebuilt.get(key), parsed.data, { id: env.id, atMs: env.atMs });
      if (next === undefined) rebuilt.delete(key);
      else rebuilt.set(key, JSON.parse(JSON.stringify(next)) as unknown);
    }
  }
  // Versions of the previous format (a bare state next to a version key); none once converted.
  const legacy = await store.legacyVersions(revision);
  let projections = 0;
  const seen = new Set<string>();
  for await (const page of store.projectionPages(revision)) {
    for (const [key, stored] of page) {
      seen.add(key);
      const replayed = versions.get(key);
      if (stored.kind === "deleted") {
        if (replayed === undefined) mismatch(key, "tombstone without events");
        else if (rebuilt.has(key)) mismatch(key, "tombstone where the replay has a state");
        else if (stored.version !== replayed)
          mismatch(key, `tombstone at version ${stored.version} where the replay is at ${replayed}`);
        continue;
      }
      projections += 1;
      const version = stored.kind === "state" ? stored.version : legacy.get(key);
      if (!rebuilt.has(key)) mismatch(key, "projection without events (or deleted by them)");
      else if (!isDeepStrictEqual(stored.state, rebuilt.get(key)))
        mismatch(key, "projection differs from replay");
      else if (version !== replayed)
        mismatch(key, `projection at version ${version ?? "(none)"} where the replay is at ${replayed}`);
    }
  }
  for (const key of rebuilt.keys()) if (!seen.has(key)) mismatch(key, "projection missing");
  // A deleted aggregate keeps its version while its events exist: a tombstone (or, in the
  // previous format, its version key).
  for (const [key, version] of versions)
    if (!rebuilt.has(key) && !seen.has(key) && legacy.get(key) !== version)
      mismatch(key, "tombstone missing");
  if (mismatchCount > mismatches.length)
    mismatches.push({ key: "", problem: `and ${mismatchCount - mismatches.length} more mismatches` });
  return {
    ok: mismatchCount === 0,
    events,
    aggregates: versions.size,
    projections,
    revision,
    mismatches,
  };
}
