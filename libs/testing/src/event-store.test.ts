/**
 * The real EventStore of @drover/store on MemoryKv: what the integration tests check against a
 * real etcd, in milliseconds.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConflictError, FencedError, TooLargeError } from "@drover/common";
import { AppAggregate, type AppEvent, TaskAggregate, type TaskEvent } from "@drover/core";
import { EventStore, logKey, stateKey, verifyLog, versionKey } from "@drover/store";
import { GRPCInvalidArgumentError } from "etcd3";
import { anApp, aTask } from "./builders.js";
import { ETCD_MESSAGES } from "./etcd-errors.js";
import { TEST_EPOCH_MS } from "./fake-clock.js";
import { memoryLeadership } from "./leadership.js";
import { MemoryKv } from "./memory-kv.js";
import { memoryStore } from "./memory-store.js";

const NOW = TEST_EPOCH_MS;
type AnyChange = Parameters<EventStore["commit"]>[1][number];

const appChange = (id: string, expectedVersion: number, state: unknown, events: AppEvent[]): AnyChange =>
  ({ def: AppAggregate, id, expectedVersion, state, events }) as AnyChange;
const taskChange = (id: string, events: TaskEvent[]): AnyChange =>
  ({ def: TaskAggregate, id, expectedVersion: 0, state: undefined, events }) as AnyChange;

test("commit writes events, projection and version in one fenced transaction", async () => {
  const { kv, store, leadership } = memoryStore();
  const app = anApp().id("web").instances(2);
  const res = await store.commit(leadership, [appChange("web", 0, undefined, [app.created()])], NOW);
  assert.equal(res.results[0]?.version, 1);
  assert.equal(res.revision, String(kv.revision));
  assert.equal(kv.txnCount, 1);
  assert.equal(kv.transactions[0]?.compares, 2); // the fence and the version

  assert.deepEqual(JSON.parse(kv.get(logKey("app", "web", 1)) ?? "null"), {
    aggregate: "app",
    id: "web",
    version: 1,
    atMs: NOW,
    event: app.created(),
  });
  assert.equal(kv.get(versionKey("app", "web")), "1");
  assert.deepEqual(JSON.parse(kv.get(stateKey("app", "web")) ?? "null"), app.record(NOW));

  const got = await store.get(AppAggregate, "web");
  assert.deepEqual(got, { state: app.record(NOW), version: 1 });
  assert.deepEqual(await store.get(AppAggregate, "nothing"), { state: undefined, version: 0 });
});

test("a stale expected version is a ConflictError, and nothing is written", async () => {
  const { kv, store, leadership } = memoryStore();
  const spec = anApp().id("web");
  await store.commit(leadership, [appChange("web", 0, undefined, [spec.created()])], NOW);
  const v1 = await store.get(AppAggregate, "web");
  await store.commit(leadership, [appChange("web", 1, v1.state, [{ type: "AppScaled", instances: 5 }])], NOW);
  const before = kv.revision;
  // A writer that read version 1 too.
  await assert.rejects(
    store.commit(leadership, [appChange("web", 1, v1.state, [{ type: "AppScaled", instances: 7 }])], NOW),
    (err) => err instanceof ConflictError && /app\/web/.test(err.message),
  );
  // A create of an aggregate that exists (expected version 0).
  await assert.rejects(
    store.commit(leadership, [appChange("web", 0, undefined, [spec.created()])], NOW),
    ConflictError,
  );
  assert.equal(kv.revision, before);
  assert.equal((await store.get(AppAggregate, "web")).state?.spec.instances, 5);
  assert.equal(leadership.isLeader(), true); // a conflict is not a lost leadership
});

test("fencing: after the election key is deleted, a commit fails with FencedError and resigns", async () => {
  const { kv, store, leadership } = memoryStore();
  await store.commit(leadership, [appChange("a", 0, undefined, [anApp().id("a").created()])], NOW);
  leadership.depose(); // the key is gone; this process has not noticed
  assert.equal(leadership.isLeader(), true);
  const before = kv.revision;
  await assert.rejects(
    store.commit(leadership, [appChange("b", 0, undefined, [anApp().id("b").created()])], NOW),
    FencedError,
  );
  assert.equal(kv.revision, before);
  assert.equal(kv.get(stateKey("app", "b")), undefined);
  assert.equal(leadership.resignCount, 1);
  assert.equal(leadership.isLeader(), false);
  await leadership.lost;
  // Once it knows, it refuses before sending anything.
  const sent = kv.txnCount;
  await assert.rejects(
    store.commit(leadership, [appChange("c", 0, undefined, [anApp().id("c").created()])], NOW),
    /not leader any more/,
  );
  assert.equal(kv.txnCount, sent);
  await assert.rejects(store.confirmLeader(leadership), FencedError);
});

test("fencing: a re-created election key (another create revision) fences as well; a second leader writes", async () => {
  const kv = new MemoryKv();
  const store = new EventStore(kv);
  const old = memoryLeadership(kv, "master");
  await store.confirmLeader(old);
  old.depose({ recreate: true });
  await assert.rejects(store.confirmLeader(old), FencedError);
  await assert.rejects(store.putMeta(old, "x", "1"), FencedError);
  assert.equal(await store.getMeta("x"), undefined);

  const next = memoryLeadership(kv, "master");
  await store.confirmLeader(next);
  await store.putMeta(next, "x", "2");
  assert.equal(await store.getMeta("x"), "2");
  await store.commit(next, [appChange("a", 0, undefined, [anApp().id("a").created()])], NOW);
});

test("depose({ notify: true }): the term ends locally too, and the store refuses before sending", async () => {
  const { kv, store, leadership } = memoryStore();
  let lost = false;
  void leadership.lost.then(() => {
    lost = true;
  });
  leadership.depose({ notify: true });
  await leadership.lost;
  assert.equal(lost, true);
  assert.equal(leadership.isLeader(), false);
  assert.equal(leadership.endedBecause, "deposed");
  assert.deepEqual(kv.keys("/drover/election/"), []);
  await assert.rejects(store.confirmLeader(leadership), FencedError);
  await assert.rejects(
    store.commit(leadership, [appChange("a", 0, undefined, [anApp().id("a").created()])], NOW),
    FencedError,
  );
  assert.equal(kv.txnCount, 0);
});

test("load reads every projection with its version across pages, and skips an invalid one", async () => {
  const { kv, store, leadership } = memoryStore();
  const ids = Array.from({ length: 250 }, (_, i) => `app-${String(i).padStart(3, "0")}`);
  for (let i = 0; i < ids.length; i += 40)
    await store.commit(
      leadership,
      ids.slice(i, i + 40).map((id) => appChange(id, 0, undefined, [anApp().id(id).created()])),
      NOW,
    );
  kv.put(stateKey("app", "broken"), JSON.stringify({ nonsense: true }));
  const invalid: string[] = [];
  store.onInvalid = (key) => invalid.push(key);
  const ranges = kv.rangeCount;
  const loaded = await store.load(AppAggregate);
  assert.equal(loaded.size, 250);
  assert.deepEqual(loaded.get("app-007"), { state: anApp().id("app-007").record(NOW), version: 1 });
  assert.deepEqual(invalid, ["app/broken"]);
  assert.ok(kv.rangeCount - ranges >= 6, "read a page of 100 keys at a time");
});

test("verifyLog rebuilds the projections from the log; it finds a projection that differs and a missing event", async () => {
  const { kv, store, leadership } = memoryStore();
  const web = anApp().id("web");
  await store.commit(leadership, [appChange("web", 0, undefined, [web.created()])], NOW);
  const v1 = await store.get(AppAggregate, "web");
  await store.commit(
    leadership,
    [
      appChange("web", 1, v1.state, [{ type: "AppScaled", instances: 3 }]),
      taskChange("web.1", [aTask().state("TASK_STAGING").launched()]),
    ],
    NOW + 1,
  );
  await store.commit(
    leadership,
    [appChange("gone", 0, undefined, [anApp().id("gone").created(), { type: "AppDeleted" }])],
    NOW,
  );
  const good = await verifyLog(store);
  assert.equal(good.ok, true, JSON.stringify(good.mismatches));
  assert.deepEqual(
    { events: good.events, aggregates: good.aggregates, projections: good.projections },
    {
      events: 5,
      aggregates: 3,
      projections: 2,
    },
  );

  kv.put(stateKey("app", "web"), JSON.stringify({ ...web.record(NOW), updatedAtMs: 0 }));
  kv.delete(logKey("task", "web.1", 1));
  const bad = await verifyLog(store);
  assert.equal(bad.ok, false);
  assert.deepEqual(bad.mismatches.map((m) => m.key).sort(), ["app/web", "task/web.1"]);
});

test("verifyLog reads at one pinned revision: a commit during the scan does not count", async () => {
  const { kv, store, leadership } = memoryStore();
  for (let i = 0; i < 3; i++)
    await store.commit(
      leadership,
      Array.from({ length: 40 }, (_, j) =>
        appChange(`a${i}-${j}`, 0, undefined, [anApp().id(`a${i}-${j}`).created()]),
      ),
      NOW,
    );
  let injected = false;
  const range = kv.range.bind(kv);
  kv.range = async (req) => {
    const res = await range(req);
    if (!injected && req.revision) {
      injected = true;
      // Another writer, between two pages of the scan: a projection changed with no event.
      kv.put(stateKey("app", "a0-0"), "{}");
      kv.put(stateKey("app", "zz"), "{}");
    }
    return res;
  };
  const report = await verifyLog(store);
  assert.equal(report.ok, true, JSON.stringify(report.mismatches));
  assert.equal(report.projections, 120);
});

test("a change of 129 operations: EventStore refuses it before sending (TooLargeError); etcd refuses it with its own error", async () => {
  const { kv, store, leadership } = memoryStore();
  const t = aTask().id("t-big");
  // 127 events + the projection + the version = 129 operations.
  const events: TaskEvent[] = [t.state("TASK_STAGING").launched()];
  for (let i = 0; i < 126; i++) events.push(t.state("TASK_RUNNING").uuid(`u${i}`).updated());
  const change = taskChange("t-big", events);
  assert.equal(store.prepare(change, NOW).ops.length, 129);

  await assert.rejects(store.commit(leadership, [change], NOW), TooLargeError);
  assert.equal(kv.txnCount, 0, "nothing was sent");
  assert.equal(kv.failures.length, 0);

  // The same transaction, sent by a store whose limits are wrong, reaches "etcd" and is refused there.
  const careless = new EventStore(kv, { maxTxnOps: 10_000, maxTxnBytes: 10_000_000 });
  await assert.rejects(careless.commit(leadership, [change], NOW), (err: Error) => {
    assert.ok(err instanceof GRPCInvalidArgumentError);
    assert.equal(err.message, `3 INVALID_ARGUMENT: ${ETCD_MESSAGES.tooManyOps}`);
    return true;
  });
  assert.equal(kv.failures.length, 1);
  assert.equal(kv.get(versionKey("task", "t-big")), undefined);

  // 126 events (128 operations) pass both.
  await store.commit(leadership, [taskChange("t-big", events.slice(0, 126))], NOW);
  assert.equal(kv.get(versionKey("task", "t-big")), "126");
});

test("a change over etcd's request size is refused by EventStore before sending; etcd would refuse it too", async () => {
  const { kv, store, leadership } = memoryStore();
  const big = "x".repeat(800 * 1024);
  // The event and the projection both carry the environment: about 1.6 MiB.
  const change = taskChange("t1", [aTask().id("t1").env({ A: big }).state("TASK_STAGING").launched()]);
  await assert.rejects(store.commit(leadership, [change], NOW), TooLargeError);
  assert.equal(kv.txnCount, 0);
  const careless = new EventStore(kv, { maxTxnOps: 128, maxTxnBytes: 10_000_000 });
  await assert.rejects(careless.commit(leadership, [change], NOW), (err: Error) => {
    assert.ok(err instanceof GRPCInvalidArgumentError);
    assert.ok(err.message.endsWith(ETCD_MESSAGES.requestTooLarge));
    return true;
  });
});
