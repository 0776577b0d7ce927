/**
 * The real CommitQueue of @drover/store on MemoryKv: group commit within etcd's limits, order,
 * guards, conflicts, fencing and store failures.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { FencedError, TooLargeError, UnavailableError } from "@drover/common";
import { TaskAggregate, type TaskEvent, type TaskRecord } from "@drover/core";
import {
  AggregateCache,
  CommitQueue,
  type CommitReport,
  EventStore,
  stateKey,
  type UnitChange,
  verifyLog,
} from "@drover/store";
import { aTask } from "./builders.js";
import { FakeClock, TEST_EPOCH_MS } from "./fake-clock.js";
import type { MemoryKv } from "./memory-kv.js";
import { type MemoryStore, memoryStore } from "./memory-store.js";

const NOW = TEST_EPOCH_MS;
/** The version a projection carries. */
const versionIn = (kv: MemoryKv, id: string): number | undefined =>
  (JSON.parse(kv.get(stateKey("task", id)) ?? "null") as { v: number } | null)?.v;

const launch = (id: string): UnitChange => ({
  def: TaskAggregate,
  id,
  events: [aTask().id(id).state("TASK_STAGING").launched()],
});
const update = (id: string, state: TaskRecord["status"]["state"], uuid: string): UnitChange => ({
  def: TaskAggregate,
  id,
  events: [aTask().id(id).state(state).uuid(uuid).updated()] as TaskEvent[],
});

async function setup(options: { load?: boolean } & Parameters<typeof memoryStore>[0] = {}) {
  const m: MemoryStore = memoryStore(options);
  const cache = new AggregateCache();
  if (options.load ?? true) await cache.load(m.store, TaskAggregate);
  const reports: CommitReport[] = [];
  const queue = new CommitQueue({
    store: m.store,
    leadership: m.leadership,
    cache,
    now: () => NOW,
    onTransaction: (r) => reports.push(r),
  });
  m.kv.resetStats();
  return { ...m, cache, queue, reports };
}

test("150 concurrent single-task commits share ceil(150*2/128) = 3 transactions, none over 128 operations", async () => {
  const { kv, store, queue, reports } = await setup();
  const ids = Array.from({ length: 150 }, (_, i) => `web.${i}`);
  const results = await Promise.all(ids.map((id) => queue.commit([launch(id)])));
  assert.ok(results.every((r) => r === true));

  const writes = kv.transactions.filter((t) => t.writes);
  assert.equal(writes.length, Math.ceil((150 * 2) / 128));
  assert.equal(kv.txnCount, writes.length, "no transaction failed");
  for (const t of kv.transactions) {
    assert.ok(t.succeeded);
    assert.ok(t.success <= 128 && t.compares <= 128, JSON.stringify(t));
  }
  assert.deepEqual(
    writes.map((t) => t.success),
    [128, 128, 44],
  );
  assert.equal(
    reports.reduce((n, r) => n + r.units, 0),
    150,
  );
  assert.equal(reports.reduce((n, r) => n + r.ops, 0) / 150, 2, "2 operations per one-event change");
  assert.equal(kv.failures.length, 0);
  assert.equal((await store.load(TaskAggregate)).size, 150);
  assert.equal((await verifyLog(store)).ok, true);
});

test("without a loaded cache the queue reads the aggregates first, then packs them", async () => {
  const { kv, queue } = await setup({ load: false });
  const results = await Promise.all(Array.from({ length: 150 }, (_, i) => queue.commit([launch(`t${i}`)])));
  assert.ok(results.every(Boolean));
  // A new aggregate's projection, then (no load has shown the type has none) its version key of
  // the previous format.
  assert.equal(kv.rangeCount, 300, "two reads per new aggregate");
  // The unit that wakes the idle queue is read (and so packed) before the others arrive: it may
  // take a transaction of its own; the other 149 pack as above.
  assert.ok(kv.writeTxnCount >= 4 && kv.writeTxnCount <= 5, `${kv.writeTxnCount} transactions`);
  for (const t of kv.transactions) assert.ok(t.success <= 128);
});

test("units on one aggregate never share a transaction and land in submission order", async () => {
  const { kv, store, queue } = await setup();
  await queue.commit([launch("t1")]);
  kv.resetStats();
  const states = ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"] as const;
  const results = await Promise.all(
    states.map((s, i) => queue.commit([update("t1", s, `u${i}`), launch(`other${i}`)])),
  );
  assert.ok(results.every(Boolean));
  assert.equal(kv.writeTxnCount, 4);
  const t1 = await store.get(TaskAggregate, "t1");
  assert.equal(t1.version, 5);
  assert.equal(t1.state?.status.state, "TASK_KILLED");
  assert.equal((await verifyLog(store)).ok, true);
});

test("guards run in commit order, against the state earlier commits left", async () => {
  const { kv, queue, cache } = await setup();
  const isNew = (id: string) => () => (cache.map(TaskAggregate).get(id)?.version ?? 0) === 0;
  const [a, b, c] = await Promise.all([
    queue.commit([launch("dup")], isNew("dup")),
    queue.commit([launch("dup")], isNew("dup")),
    queue.commit([launch("fresh")], isNew("fresh")),
  ]);
  assert.deepEqual([a, b, c], [true, false, true]);
  assert.equal(versionIn(kv, "dup"), 1);
  assert.equal(kv.failures.length, 0);
});

test("a conflict (another writer moved the aggregate on) is re-read and retried", async () => {
  const { kv, store, queue, leadership } = await setup();
  await queue.commit([launch("t1")]);
  // Another writer, behind the queue's back.
  const other = new EventStore(kv);
  const cur = await other.get(TaskAggregate, "t1");
  await other.commit(
    leadership,
    [
      {
        def: TaskAggregate,
        id: "t1",
        expectedVersion: cur.version,
        expectedModRevision: cur.modRevision,
        state: cur.state,
        events: [aTask().id("t1").state("TASK_STARTING").uuid("x").updated()],
      },
    ] as Parameters<EventStore["commit"]>[1],
    NOW,
  );
  kv.resetStats();
  assert.equal(await queue.commit([update("t1", "TASK_RUNNING", "y"), launch("t2")]), true);
  assert.deepEqual(
    kv.transactions.map((t) => t.succeeded),
    [false, true],
  );
  const t1 = await store.get(TaskAggregate, "t1");
  assert.equal(t1.version, 3);
  assert.equal(t1.state?.status.state, "TASK_RUNNING");
  assert.equal((await verifyLog(store)).ok, true);
});

test("after the leadership is lost, every waiting unit fails with FencedError and nothing is written", async () => {
  const { kv, queue, leadership } = await setup();
  await queue.commit([launch("before")]);
  leadership.depose();
  const before = kv.revision;
  const outcomes = await Promise.allSettled(
    Array.from({ length: 100 }, (_, i) => queue.commit([launch(`t${i}`)])),
  );
  assert.ok(outcomes.every((o) => o.status === "rejected" && o.reason instanceof FencedError));
  assert.equal(kv.revision, before);
  assert.equal(leadership.isLeader(), false);
});

test("a unit larger than one transaction is refused alone; the others commit", async () => {
  const { kv, queue } = await setup();
  const t = aTask().id("huge");
  const events: TaskEvent[] = [t.state("TASK_STAGING").launched()];
  for (let i = 0; i < 130; i++) events.push(t.state("TASK_RUNNING").uuid(`u${i}`).updated());
  const [huge, small] = await Promise.allSettled([
    queue.commit([{ def: TaskAggregate, id: "huge", events }]),
    queue.commit([launch("small")]),
  ]);
  assert.ok(huge.status === "rejected" && huge.reason instanceof TooLargeError);
  assert.deepEqual(small, { status: "fulfilled", value: true });
  assert.equal(kv.failures.length, 0, "nothing over etcd's limits was sent");
});

test("units are packed by bytes too: large tasks take more transactions, each within etcd's request size", async () => {
  const { kv, queue, store } = await setup();
  const env = { BLOB: "x".repeat(100 * 1024) };
  const results = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      queue.commit([
        {
          def: TaskAggregate,
          id: `big${i}`,
          events: [aTask().id(`big${i}`).env(env).state("TASK_STAGING").launched()],
        },
      ]),
    ),
  );
  assert.ok(results.every(Boolean));
  assert.equal(kv.failures.length, 0);
  assert.ok(kv.writeTxnCount >= Math.ceil((30 * 200 * 1024) / (1536 * 1024)));
  for (const t of kv.transactions) assert.ok(t.bytes <= 1536 * 1024, `${t.bytes} bytes`);
  assert.equal((await verifyLog(store)).ok, true);
});

test("a store that does not answer: units fail with UnavailableError; the aggregates are re-read before the next commit", async () => {
  const clock = new FakeClock();
  const { kv, queue, store } = await setup({ deadlineMs: 3000, clock });
  await queue.commit([launch("t1")]);
  kv.freeze({ applyLate: true });
  const pending = queue.commit([update("t1", "TASK_RUNNING", "r")]);
  const settled = pending.then(
    () => "resolved",
    (err) => err,
  );
  await clock.advance(3000);
  assert.ok((await settled) instanceof UnavailableError);
  kv.unfreeze(); // the write landed after all: version 2 in etcd, unknown to the queue
  assert.equal(versionIn(kv, "t1"), 2);

  kv.resetStats();
  assert.equal(await queue.commit([update("t1", "TASK_KILLING", "k")]), true);
  assert.equal(kv.transactions.length, 1, "re-read first, so no conflict");
  assert.equal((await store.get(TaskAggregate, "t1")).version, 3);
  assert.equal((await verifyLog(store)).ok, true);
});

test("injected failures reject the units of that transaction only", async () => {
  const { kv, queue } = await setup();
  await queue.commit([launch("warm")]);
  kv.failNext(1, undefined, { only: "txn" });
  const first = await Promise.allSettled([queue.commit([launch("a")]), queue.commit([launch("b")])]);
  assert.ok(first.every((o) => o.status === "rejected" && o.reason instanceof UnavailableError));
  assert.equal(await queue.commit([launch("c")]), true);
  assert.equal(await queue.commit([launch("a")]), true);
});

test("a commit submitted right after a burst settles (the queue never goes idle with work pending)", async () => {
  const { queue } = await setup();
  await Promise.all([queue.commit([launch("a")]), queue.commit([launch("b")])]);
  // Submitted as the drain loop has just seen an empty queue: it must start a new drain.
  assert.equal(await queue.commit([launch("c")]), true);
  await Promise.allSettled([queue.commit([launch("d")])]);
  assert.equal(await queue.commit([launch("e")]), true);
  assert.equal(queue.backlog, 0);
});

test("one unit naming the same aggregate twice is merged, and never fails its transaction's other units", async () => {
  const { queue, cache, store } = await setup();
  const [both, innocent] = await Promise.allSettled([
    queue.commit([launch("x"), update("x", "TASK_RUNNING", "u-x")]),
    queue.commit([launch("innocent")]),
  ]);
  assert.deepEqual(
    [both.status, innocent.status],
    ["fulfilled", "fulfilled"],
    JSON.stringify([both, innocent].map((o) => (o.status === "rejected" ? String(o.reason) : o.value))),
  );
  const x = cache.map(TaskAggregate).get("x");
  assert.equal((x?.state as TaskRecord | undefined)?.status.state, "TASK_RUNNING");
  assert.equal(x?.version, 2);
  assert.equal((await verifyLog(store)).ok, true);
});

test("the cache keeps each aggregate's mod revision from its last commit: the next commit reads nothing", async () => {
  const { kv, queue, cache } = await setup();
  await queue.commit([launch("t1")]);
  const entry = cache.map(TaskAggregate).get("t1");
  assert.equal(entry?.modRevision, kv.getKv(stateKey("task", "t1"))?.mod_revision);
  assert.equal(entry?.modRevision, String(kv.revision));
  kv.resetStats();
  assert.equal(await queue.commit([update("t1", "TASK_RUNNING", "r")]), true);
  assert.equal(kv.rangeCount, 0);
  assert.deepEqual(
    kv.transactions.map((t) => [t.succeeded, t.success]),
    [[true, 2]],
  );
  assert.equal(cache.map(TaskAggregate).get("t1")?.modRevision, String(kv.revision));
});

test("an expunged task leaves a tombstone; after a reload its id is taken for new, conflicts once, and continues its versions", async () => {
  const { kv, store, queue, leadership } = await setup();
  await queue.commit([launch("t1")]);
  await queue.commit([{ def: TaskAggregate, id: "t1", events: [{ type: "TaskExpunged" }] }]);
  assert.deepEqual(JSON.parse(kv.get(stateKey("task", "t1")) ?? "null"), { v: 2, d: true });
  // A new leader: the tombstone is not loaded, so the id looks new.
  const cache = new AggregateCache();
  await cache.load(store, TaskAggregate);
  assert.equal(cache.map(TaskAggregate).has("t1"), false);
  const next = new CommitQueue({ store, leadership, cache, now: () => NOW });
  kv.resetStats();
  assert.equal(await next.commit([launch("t1")]), true);
  assert.deepEqual(
    kv.transactions.map((t) => t.succeeded),
    [false, true],
  );
  assert.equal(versionIn(kv, "t1"), 3);
  assert.equal(JSON.parse(kv.get("/drover/log/task/t1/0000000003") ?? "null")?.event.type, "TaskLaunched");
  assert.equal((await verifyLog(store)).ok, true);
});
