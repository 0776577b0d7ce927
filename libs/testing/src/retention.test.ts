/**
 * Log retention (pruneLog of @drover/store) on MemoryKv: checkpoints, and a deleted aggregate's
 * tombstone removed with its last events, guarded by its mod revision.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConflictError } from "@drover/common";
import { AppAggregate, type AppEvent } from "@drover/core";
import {
  type AggregateRead,
  CHECKPOINT_PREFIX,
  type EventStore,
  LOG_PREFIX,
  logKey,
  pruneLog,
  STATE_PREFIX,
  stateKey,
  verifyLog,
  versionKey,
} from "@drover/store";
import { anApp } from "./builders.js";
import { TEST_EPOCH_MS } from "./fake-clock.js";
import type { TestLeadership } from "./leadership.js";
import { memoryStore } from "./memory-store.js";

const OLD = TEST_EPOCH_MS;
const HOUR = 3600_000;
const NOW = OLD + 3 * HOUR;
const everything = { retentionMs: HOUR, nowMs: NOW, publishedRevision: 1n << 62n };

async function commit(
  store: EventStore,
  leadership: TestLeadership,
  id: string,
  events: AppEvent[],
  atMs: number,
): Promise<void> {
  const cur: AggregateRead<unknown> = await store.get(AppAggregate, id);
  await store.commit(
    leadership,
    [
      {
        def: AppAggregate,
        id,
        expectedVersion: cur.version,
        expectedModRevision: cur.modRevision,
        legacy: cur.legacy ?? false,
        state: cur.state,
        events,
      },
    ] as Parameters<EventStore["commit"]>[1],
    atMs,
  );
}

test("retention removes a deleted aggregate's tombstone with its last events, and checkpoints the others", async () => {
  const { kv, store, leadership } = memoryStore();
  await commit(store, leadership, "kept", [anApp().id("kept").created()], OLD);
  await commit(store, leadership, "kept", [{ type: "AppScaled", instances: 2 }], OLD);
  await commit(store, leadership, "gone", [anApp().id("gone").created(), { type: "AppDeleted" }], OLD);
  // Deleted, but its last event is recent: its tombstone stays with that event.
  await commit(store, leadership, "recent", [anApp().id("recent").created()], OLD);
  await commit(store, leadership, "recent", [{ type: "AppDeleted" }], NOW);
  assert.deepEqual(JSON.parse(kv.get(stateKey("app", "gone")) ?? "null"), { v: 2, d: true });

  const report = await pruneLog(store, leadership, everything);
  assert.deepEqual(report, { events: 5, checkpointed: 2, removed: 1, transactions: 1 });
  assert.deepEqual(kv.keys(`${LOG_PREFIX}app/`), [logKey("app", "recent", 2)]);
  assert.deepEqual(kv.keys(`${CHECKPOINT_PREFIX}app/`), [
    `${CHECKPOINT_PREFIX}app/kept`,
    `${CHECKPOINT_PREFIX}app/recent`,
  ]);
  assert.deepEqual(kv.keys(`${STATE_PREFIX}app/`), [stateKey("app", "kept"), stateKey("app", "recent")]);
  assert.deepEqual(JSON.parse(kv.get(stateKey("app", "recent")) ?? "null"), { v: 2, d: true });
  assert.equal((await verifyLog(store)).ok, true);

  // Nothing of "gone" is left: its id starts again at version 1.
  assert.deepEqual(await store.get(AppAggregate, "gone"), { state: undefined, version: 0, modRevision: "0" });
  await commit(store, leadership, "gone", [anApp().id("gone").created()], NOW);
  assert.equal((await store.get(AppAggregate, "gone")).version, 1);
  // "recent" continues from its tombstone.
  await commit(store, leadership, "recent", [anApp().id("recent").created()], NOW);
  assert.equal((await store.get(AppAggregate, "recent")).version, 3);
  const v = await verifyLog(store);
  assert.equal(v.ok, true, JSON.stringify(v.mismatches));
});

test("a tombstone written to after retention read it is not removed: the transaction fails, nothing is lost", async () => {
  const { kv, store, leadership } = memoryStore();
  await commit(store, leadership, "gone", [anApp().id("gone").created(), { type: "AppDeleted" }], OLD);
  // Between retention's reads and its transaction, the aggregate is created again.
  const range = kv.range.bind(kv);
  let recreated = false;
  kv.range = async (req) => {
    const res = await range(req);
    if (!recreated && req.key?.toString() === stateKey("app", "gone") && req.revision) {
      recreated = true;
      const read = await store.get(AppAggregate, "gone");
      await store.commit(
        leadership,
        [
          {
            def: AppAggregate,
            id: "gone",
            expectedVersion: read.version,
            expectedModRevision: read.modRevision,
            state: read.state,
            events: [anApp().id("gone").created()],
          },
        ] as Parameters<EventStore["commit"]>[1],
        NOW,
      );
    }
    return res;
  };
  await assert.rejects(pruneLog(store, leadership, everything), ConflictError);
  assert.equal(recreated, true);
  assert.equal(kv.keys(`${LOG_PREFIX}app/gone/`).length, 3);
  assert.equal((await store.get(AppAggregate, "gone")).version, 3);
  assert.equal((await verifyLog(store)).ok, true);
  // The next run finds a live aggregate and checkpoints it.
  kv.range = range;
  const report = await pruneLog(store, leadership, { ...everything, nowMs: NOW + 2 * HOUR });
  assert.deepEqual(report, { events: 3, checkpointed: 1, removed: 0, transactions: 1 });
  assert.equal((await verifyLog(store)).ok, true);
});

test("a deleted aggregate of the previous format (a version key, no projection) is removed with its events", async () => {
  const { kv, store, leadership } = memoryStore();
  const env = (version: number, event: AppEvent) =>
    JSON.stringify({ aggregate: "app", id: "dead", version, atMs: OLD, event });
  kv.put(logKey("app", "dead", 1), env(1, anApp().id("dead").created()));
  kv.put(logKey("app", "dead", 2), env(2, { type: "AppDeleted" }));
  kv.put(versionKey("app", "dead"), "2");
  assert.equal((await verifyLog(store)).ok, true);
  const report = await pruneLog(store, leadership, everything);
  assert.deepEqual(report, { events: 2, checkpointed: 0, removed: 1, transactions: 1 });
  assert.deepEqual(kv.keys("/drover/log/"), []);
  assert.deepEqual(kv.keys("/drover/version/"), []);
  assert.equal((await verifyLog(store)).ok, true);
});

test("many deleted aggregates: their tombstones are read in groups and removed within the transaction limits", async () => {
  const { kv, store, leadership } = memoryStore();
  const ids = Array.from({ length: 150 }, (_, i) => `gone-${String(i).padStart(3, "0")}`);
  for (const id of ids)
    await commit(store, leadership, id, [anApp().id(id).created(), { type: "AppDeleted" }], OLD);
  kv.resetStats();
  const report = await pruneLog(store, leadership, everything);
  assert.equal(report.removed, 150);
  assert.equal(report.events, 300);
  assert.deepEqual(kv.keys("/drover/state/"), []);
  assert.deepEqual(kv.keys("/drover/log/"), []);
  for (const t of kv.transactions) assert.ok(t.success <= 128 && t.compares <= 128, JSON.stringify(t));
  assert.equal(kv.failures.length, 0);
  assert.equal((await verifyLog(store)).ok, true);
});
