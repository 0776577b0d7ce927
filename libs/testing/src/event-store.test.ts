/**
 * The real EventStore of @drover/store on MemoryKv: what the integration tests check against a
 * real etcd, in milliseconds.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConflictError, FencedError, TooLargeError } from "@drover/common";
import { AppAggregate, type AppEvent, TaskAggregate, type TaskEvent } from "@drover/core";
import {
  type AggregateRead,
  EventStore,
  logKey,
  projectionValue,
  stateKey,
  verifyLog,
  versionKey,
} from "@drover/store";
import { GRPCInvalidArgumentError } from "etcd3";
import { anApp, aTask } from "./builders.js";
import { ETCD_MESSAGES, etcdErrors } from "./etcd-errors.js";
import { TEST_EPOCH_MS } from "./fake-clock.js";
import { memoryLeadership } from "./leadership.js";
import { MemoryKv } from "./memory-kv.js";
import { memoryStore } from "./memory-store.js";

const NOW = TEST_EPOCH_MS;
type AnyChange = Parameters<EventStore["commit"]>[1][number];

/** A change on top of what was read (`read` undefined: a new aggregate). */
const appChange = (id: string, read: AggregateRead<unknown> | undefined, events: AppEvent[]): AnyChange =>
  ({
    def: AppAggregate,
    id,
    expectedVersion: read?.version ?? 0,
    expectedModRevision: read?.modRevision ?? "0",
    legacy: read?.legacy ?? false,
    state: read?.state,
    events,
  }) as AnyChange;
const taskChange = (id: string, events: TaskEvent[]): AnyChange =>
  ({ def: TaskAggregate, id, expectedVersion: 0, state: undefined, events }) as AnyChange;
/** The projection key's value, parsed. */
const projection = (kv: MemoryKv, aggregate: string, id: string): unknown =>
  JSON.parse(kv.get(stateKey(aggregate, id)) ?? "null");

test("commit writes the events and the projection (with its version) in one fenced transaction: 2 operations for one event", async () => {
  const { kv, store, leadership } = memoryStore();
  const app = anApp().id("web").instances(2);
  const res = await store.commit(leadership, [appChange("web", undefined, [app.created()])], NOW);
  assert.equal(res.results[0]?.version, 1);
  assert.equal(res.revision, String(kv.revision));
  assert.equal(res.results[0]?.modRevision, res.revision);
  assert.equal(kv.txnCount, 1);
  assert.equal(kv.transactions[0]?.success, 2, "the event and the projection");
  // The fence, the projection's mod revision, and (until a load shows the type has none) no
  // version key of the previous format.
  assert.equal(kv.transactions[0]?.compares, 3);

  assert.deepEqual(JSON.parse(kv.get(logKey("app", "web", 1)) ?? "null"), {
    aggregate: "app",
    id: "web",
    version: 1,
    atMs: NOW,
    event: app.created(),
  });
  assert.deepEqual(projection(kv, "app", "web"), { v: 1, s: app.record(NOW) });
  assert.equal(kv.get(versionKey("app", "web")), undefined, "no version key");
  assert.equal(kv.getKv(stateKey("app", "web"))?.mod_revision, res.revision);

  const got = await store.get(AppAggregate, "web");
  assert.deepEqual(got, { state: app.record(NOW), version: 1, modRevision: res.revision });
  assert.deepEqual(await store.get(AppAggregate, "nothing"), {
    state: undefined,
    version: 0,
    modRevision: "0",
  });

  // Once a load found no version key of the type, a create compares the projection alone, and
  // each further event costs one operation more.
  await store.load(AppAggregate);
  kv.resetStats();
  await store.commit(leadership, [appChange("db", undefined, [anApp().id("db").created()])], NOW);
  await store.commit(
    leadership,
    [
      appChange("web", got, [
        { type: "AppScaled", instances: 3 },
        { type: "AppScaled", instances: 4 },
      ]),
    ],
    NOW,
  );
  assert.deepEqual(
    kv.transactions.map((t) => [t.compares, t.success]),
    [
      [2, 2],
      [2, 3],
    ],
  );
  assert.equal(kv.rangeCount, 0);
  assert.deepEqual(await store.get(AppAggregate, "nothing"), {
    state: undefined,
    version: 0,
    modRevision: "0",
  });
  assert.equal(kv.rangeCount, 1, "no look-up of a version key once the type has none");
});

test("a stale mod revision is a ConflictError, and nothing is written", async () => {
  const { kv, store, leadership } = memoryStore();
  const spec = anApp().id("web");
  await store.commit(leadership, [appChange("web", undefined, [spec.created()])], NOW);
  const v1 = await store.get(AppAggregate, "web");
  const v2 = await store.commit(
    leadership,
    [appChange("web", v1, [{ type: "AppScaled", instances: 5 }])],
    NOW,
  );
  const before = kv.revision;
  // A writer that read version 1 too.
  await assert.rejects(
    store.commit(leadership, [appChange("web", v1, [{ type: "AppScaled", instances: 7 }])], NOW),
    (err) => err instanceof ConflictError && /app\/web/.test(err.message),
  );
  // The right version with a stale mod revision (the key was written since) is refused too.
  await assert.rejects(
    store.commit(
      leadership,
      [appChange("web", { ...v1, version: 2 }, [{ type: "AppScaled", instances: 7 }])],
      NOW,
    ),
    ConflictError,
  );
  // A create of an aggregate that exists (expected version 0).
  await assert.rejects(
    store.commit(leadership, [appChange("web", undefined, [spec.created()])], NOW),
    ConflictError,
  );
  // A change at a version > 0 without its mod revision is a bug of the caller.
  await assert.rejects(
    store.commit(
      leadership,
      [
        {
          ...appChange("web", v1, [{ type: "AppScaled", instances: 7 }]),
          expectedModRevision: undefined,
        } as AnyChange,
      ],
      NOW,
    ),
    /without its mod revision/,
  );
  assert.equal(kv.revision, before);
  assert.equal((await store.get(AppAggregate, "web")).state?.spec.instances, 5);
  assert.equal(leadership.isLeader(), true); // a conflict is not a lost leadership
  // The revision of the last commit is as good as a read.
  const r = v2.results[0];
  assert.ok(r);
  await store.commit(
    leadership,
    [
      appChange("web", { state: r.state, version: r.version, modRevision: r.modRevision }, [
        { type: "AppScaled", instances: 6 },
      ]),
    ],
    NOW,
  );
  assert.deepEqual(await store.get(AppAggregate, "web"), {
    state: { ...spec.instances(6).record(NOW) },
    version: 3,
    modRevision: String(kv.revision),
  });
});

test("a deleted aggregate leaves a tombstone with its version: no create at version 1 while its events exist", async () => {
  const { kv, store, leadership } = memoryStore();
  const spec = anApp().id("gone");
  await store.commit(
    leadership,
    [appChange("gone", undefined, [spec.created(), { type: "AppDeleted" }])],
    NOW,
  );
  assert.deepEqual(projection(kv, "app", "gone"), { v: 2, d: true });
  const read = await store.get(AppAggregate, "gone");
  assert.deepEqual(read, { state: undefined, version: 2, modRevision: String(kv.revision) });
  assert.equal((await store.load(AppAggregate)).size, 0, "load leaves tombstones out");
  // A writer that believes the id is new is refused; log version 1 stays as it was.
  const event1 = kv.get(logKey("app", "gone", 1));
  await assert.rejects(
    store.commit(leadership, [appChange("gone", undefined, [spec.created()])], NOW),
    ConflictError,
  );
  assert.equal(kv.get(logKey("app", "gone", 1)), event1);
  // On top of the tombstone, the id continues its versions.
  const again = await store.commit(leadership, [appChange("gone", read, [spec.created()])], NOW);
  assert.equal(again.results[0]?.version, 3);
  assert.deepEqual(projection(kv, "app", "gone"), { v: 3, s: spec.record(NOW) });
  assert.equal((await verifyLog(store)).ok, true);
});

test("the previous format (a bare projection and a version key) is read, and converted by its first commit", async () => {
  const { kv, store, leadership } = memoryStore();
  const old = anApp().id("old");
  const dead = anApp().id("dead");
  const env = (id: string, version: number, event: AppEvent) =>
    JSON.stringify({ aggregate: "app", id, version, atMs: NOW, event });
  // As the previous version of the store wrote them: "old" at version 2, "dead" deleted at version 2.
  kv.put(logKey("app", "old", 1), env("old", 1, { type: "AppCreated", spec: old.instances(1).build() }));
  kv.put(logKey("app", "old", 2), env("old", 2, { type: "AppScaled", instances: 2 }));
  kv.put(stateKey("app", "old"), JSON.stringify(old.instances(2).record(NOW)));
  kv.put(versionKey("app", "old"), "2");
  kv.put(logKey("app", "dead", 1), env("dead", 1, dead.created()));
  kv.put(logKey("app", "dead", 2), env("dead", 2, { type: "AppDeleted" }));
  kv.put(versionKey("app", "dead"), "2");
  assert.equal((await verifyLog(store)).ok, true);

  const oldRead = await store.get(AppAggregate, "old");
  assert.deepEqual(oldRead, {
    state: old.instances(2).record(NOW),
    version: 2,
    modRevision: kv.getKv(stateKey("app", "old"))?.mod_revision,
    legacy: true,
  });
  const deadRead = await store.get(AppAggregate, "dead");
  assert.deepEqual(deadRead, { state: undefined, version: 2, modRevision: "0", legacy: true });
  const loaded = await store.load(AppAggregate);
  assert.deepEqual([...loaded.keys()], ["old"]);
  assert.deepEqual(loaded.get("old"), oldRead);

  // A create under the id of a deleted aggregate of the previous format is refused.
  await assert.rejects(
    store.commit(leadership, [appChange("dead", undefined, [dead.created()])], NOW),
    ConflictError,
  );
  // The first commit converts: the envelope is written and the version key deleted, in one transaction.
  kv.resetStats();
  await store.commit(
    leadership,
    [
      appChange("old", oldRead, [{ type: "AppScaled", instances: 3 }]),
      appChange("dead", deadRead, [dead.created()]),
    ],
    NOW,
  );
  assert.equal(
    kv.transactions[0]?.success,
    6,
    "per aggregate: the event, the projection, the version key's delete",
  );
  assert.deepEqual(projection(kv, "app", "old"), { v: 3, s: old.instances(3).record(NOW) });
  assert.deepEqual(projection(kv, "app", "dead"), { v: 3, s: dead.record(NOW) });
  assert.deepEqual(kv.keys("/drover/version/"), []);
  assert.deepEqual(
    [await store.get(AppAggregate, "old"), await store.get(AppAggregate, "dead")].map((r) => [
      r.version,
      r.legacy,
    ]),
    [
      [3, undefined],
      [3, undefined],
    ],
  );
  assert.equal((await verifyLog(store)).ok, true);
  // Converted: the next commit costs two operations again.
  kv.resetStats();
  await store.commit(
    leadership,
    [appChange("old", await store.get(AppAggregate, "old"), [{ type: "AppScaled", instances: 4 }])],
    NOW,
  );
  assert.equal(kv.transactions[0]?.success, 2);
});

test("fencing: after the election key is deleted, a commit fails with FencedError and resigns", async () => {
  const { kv, store, leadership } = memoryStore();
  await store.commit(leadership, [appChange("a", undefined, [anApp().id("a").created()])], NOW);
  leadership.depose(); // the key is gone; this process has not noticed
  assert.equal(leadership.isLeader(), true);
  const before = kv.revision;
  await assert.rejects(
    store.commit(leadership, [appChange("b", undefined, [anApp().id("b").created()])], NOW),
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
    store.commit(leadership, [appChange("c", undefined, [anApp().id("c").created()])], NOW),
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
  await store.commit(next, [appChange("a", undefined, [anApp().id("a").created()])], NOW);
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
    store.commit(leadership, [appChange("a", undefined, [anApp().id("a").created()])], NOW),
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
      ids.slice(i, i + 40).map((id) => appChange(id, undefined, [anApp().id(id).created()])),
      NOW,
    );
  kv.put(stateKey("app", "broken"), JSON.stringify({ nonsense: true }));
  const invalid: string[] = [];
  store.onInvalid = (key) => invalid.push(key);
  const ranges = kv.rangeCount;
  const loaded = await store.load(AppAggregate);
  assert.equal(loaded.size, 250);
  assert.deepEqual(loaded.get("app-007"), {
    state: anApp().id("app-007").record(NOW),
    version: 1,
    modRevision: kv.getKv(stateKey("app", "app-007"))?.mod_revision,
  });
  assert.deepEqual(invalid, ["app/broken"]);
  assert.equal(
    kv.rangeCount - ranges,
    4,
    "the revision, the version keys of the previous format (none), 251 small projections: a first page of 100, then one of the rest",
  );
});

test("verifyLog rebuilds the projections and their versions from the log; it finds what differs", async () => {
  const { kv, store, leadership } = memoryStore();
  const web = anApp().id("web");
  await store.commit(leadership, [appChange("web", undefined, [web.created()])], NOW);
  const v1 = await store.get(AppAggregate, "web");
  await store.commit(
    leadership,
    [
      appChange("web", v1, [{ type: "AppScaled", instances: 3 }]),
      taskChange("web.1", [aTask().state("TASK_STAGING").launched()]),
    ],
    NOW + 1,
  );
  await store.commit(
    leadership,
    [appChange("gone", undefined, [anApp().id("gone").created(), { type: "AppDeleted" }])],
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

  const goodWeb = projection(kv, "app", "web") as { v: number; s: unknown };
  kv.put(stateKey("app", "web"), projectionValue(2, { ...web.record(NOW), updatedAtMs: 0 }));
  kv.delete(logKey("task", "web.1", 1));
  const bad = await verifyLog(store);
  assert.equal(bad.ok, false);
  assert.deepEqual(bad.mismatches.map((m) => m.key).sort(), ["app/web", "task/web.1"]);

  // The right state at the wrong version; a tombstone at the wrong version; a missing tombstone.
  kv.put(stateKey("app", "web"), projectionValue(3, goodWeb.s));
  kv.put(stateKey("app", "gone"), projectionValue(5, undefined));
  const versions = await verifyLog(store);
  assert.deepEqual(
    versions.mismatches.filter((m) => m.key.startsWith("app/")),
    [
      { key: "app/gone", problem: "tombstone at version 5 where the replay is at 2" },
      { key: "app/web", problem: "projection at version 3 where the replay is at 2" },
    ],
  );
  kv.delete(stateKey("app", "gone"));
  assert.deepEqual(
    (await verifyLog(store)).mismatches.filter((m) => m.key === "app/gone"),
    [{ key: "app/gone", problem: "tombstone missing" }],
  );
});

test("verifyLog reads at one pinned revision: a commit during the scan does not count", async () => {
  const { kv, store, leadership } = memoryStore();
  for (let i = 0; i < 3; i++)
    await store.commit(
      leadership,
      Array.from({ length: 40 }, (_, j) =>
        appChange(`a${i}-${j}`, undefined, [anApp().id(`a${i}-${j}`).created()]),
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
  // 128 events + the projection = 129 operations.
  const events: TaskEvent[] = [t.state("TASK_STAGING").launched()];
  for (let i = 0; i < 127; i++) events.push(t.state("TASK_RUNNING").uuid(`u${i}`).updated());
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
  assert.equal(kv.get(stateKey("task", "t-big")), undefined);

  // 127 events (128 operations) pass both.
  await store.commit(leadership, [taskChange("t-big", events.slice(0, 127))], NOW);
  assert.equal((projection(kv, "task", "t-big") as { v: number }).v, 127);
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

test("scan: pages grow with small values (25,000 keys in a few reads, not 250) and an answer over the message limit halves the page", async () => {
  const kv = new MemoryKv();
  const store = new EventStore(kv);
  const puts = Array.from({ length: 25_000 }, (_, i) => ({
    request_put: {
      key: Buffer.from(`/drover/state/x/${String(i).padStart(6, "0")}`),
      value: Buffer.from("v".repeat(200)),
    },
  }));
  for (let i = 0; i < puts.length; i += 100)
    await kv.txn({ compare: [], success: puts.slice(i, i + 100), failure: [] });
  const revision = await store.revision();
  kv.resetStats();
  let seen = 0;
  let pages = 0;
  for await (const page of store.scan("/drover/state/x/", revision)) {
    seen += page.length;
    pages += 1;
  }
  assert.equal(seen, 25_000);
  assert.ok(kv.rangeCount <= 10, `${kv.rangeCount} reads for 25,000 small values`);
  assert.ok(pages <= 10);

  // A read refused as over the message limit is made again at half the size.
  kv.resetStats();
  kv.failNext(1, () => etcdErrors.messageTooLarge(80 << 20, 64 << 20), { only: "range" });
  const keys: string[] = [];
  for await (const page of store.scan("/drover/state/x/", revision))
    for (const k of page) keys.push(k.key.toString());
  assert.equal(keys.length, 25_000);
  assert.equal(new Set(keys).size, 25_000, "no key twice");
});
