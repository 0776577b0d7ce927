import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidArgumentError, NotFoundError } from "@drover/common";
import { AppAggregate, type AppSpec, AppSpecSchema, appVersionAt } from "@drover/core";
import { appVersionsPrefix, DEFAULT_STORE_LIMITS, projectionValue, stateKey, verifyLog } from "@drover/store";
import { memoryStore } from "@drover/testing";
import { AppStore } from "./apps.js";

const spec = (over: Record<string, unknown> = {}): AppSpec =>
  AppSpecSchema.parse({ id: "/prod/web", cmd: "sleep 1000", instances: 1, cpus: 0.1, mem: 32, ...over });

const ID = "/prod/web";
const PREFIX = appVersionsPrefix("prod_web");

test("every change is a new version; a scale keeps lastConfigChangeAt; earlier versions stay retrievable", async () => {
  const { kv, store, leadership } = memoryStore({ service: "scheduler" });
  const apps = new AppStore(store, leadership);
  const created = await apps.create(spec());
  assert.ok(created?.version && created.versionInfo);
  const v1 = created.version;
  assert.deepEqual(created.versionInfo, { lastScalingAt: v1, lastConfigChangeAt: v1 });

  const scaled = await apps.scale(ID, 3);
  assert.ok(scaled?.version && scaled.versionInfo);
  const v2 = scaled.version;
  assert.ok(v2 > v1, `${v2} after ${v1}`);
  assert.deepEqual(scaled.versionInfo, { lastScalingAt: v2, lastConfigChangeAt: v1 });

  const updated = await apps.update(ID, spec({ instances: 3, cmd: "sleep 5" }));
  assert.ok(updated?.version);
  const v3 = updated.version;
  assert.ok(v3 > v2);
  assert.deepEqual(updated.versionInfo, { lastScalingAt: v3, lastConfigChangeAt: v3 });

  assert.deepEqual(await apps.versions(ID), [v3, v2, v1]);
  assert.equal((await apps.version(ID, v1)).spec.instances, 1);
  assert.equal((await apps.version(ID, v2)).spec.instances, 3);
  assert.equal((await apps.version(ID, v2)).spec.cmd, "sleep 1000");
  assert.deepEqual((await apps.version(ID, v2)).versionInfo, { lastScalingAt: v2, lastConfigChangeAt: v1 });
  assert.equal((await apps.version(ID, v3)).spec.cmd, "sleep 5");
  // Earlier versions are stored, the current one is the projection.
  assert.deepEqual(kv.keys(PREFIX), [`${PREFIX}${v1}`, `${PREFIX}${v2}`]);
  // Versions are carried by the events: the log still rebuilds the projections exactly.
  const report = await verifyLog(store);
  assert.ok(report.ok, JSON.stringify(report.mismatches));

  // A new leader reads the same versions from the store.
  const next = new AppStore(store, leadership);
  await next.load();
  assert.deepEqual(await next.versions(ID), [v3, v2, v1]);
  assert.equal((await next.version(ID, v1)).spec.instances, 1);
});

test("an identical definition, or the same count, makes no version; instances alone is a scale", async () => {
  const { kv, store, leadership } = memoryStore({ service: "scheduler" });
  const apps = new AppStore(store, leadership);
  const v1 = (await apps.create(spec()))?.version;
  const txns = kv.txnCount;
  assert.equal((await apps.update(ID, spec()))?.version, v1);
  assert.equal((await apps.scale(ID, 1))?.version, v1);
  assert.equal(kv.txnCount, txns, "nothing written");
  const scaled = await apps.update(ID, spec({ instances: 2 }));
  assert.equal(scaled?.versionInfo?.lastConfigChangeAt, v1);
  assert.notEqual(scaled?.version, v1);
  assert.equal((await apps.versions(ID)).length, 2);
});

test("at most maxVersions are kept, the oldest dropped in the change's own transaction", async () => {
  const { kv, store, leadership } = memoryStore({ service: "scheduler" });
  const apps = new AppStore(store, leadership, 3);
  const all: string[] = [];
  all.push((await apps.create(spec()))?.version ?? "");
  for (let n = 2; n <= 7; n++) {
    const txns = kv.txnCount;
    all.push((await apps.scale(ID, n))?.version ?? "");
    assert.equal(kv.txnCount, txns + 1, "one transaction per change");
  }
  const newest = all.slice(-3).reverse();
  assert.deepEqual(await apps.versions(ID), newest);
  assert.equal(kv.keys(PREFIX).length, 2);
  await assert.rejects(apps.version(ID, all[0] ?? ""), NotFoundError);
  assert.equal((await apps.version(ID, newest[2] ?? "")).spec.instances, 5);

  // A lower cap (a restart with another config) drops the surplus at the next change, in one operation.
  const smaller = new AppStore(store, leadership, 1);
  await smaller.load();
  const v = (await smaller.scale(ID, 9))?.version;
  assert.deepEqual(await smaller.versions(ID), [v]);
  assert.deepEqual(kv.keys(PREFIX), []);
});

test("a delete drops every version; the app created again starts afresh", async () => {
  const { kv, store, leadership } = memoryStore({ service: "scheduler" });
  const apps = new AppStore(store, leadership);
  await apps.create(spec());
  await apps.scale(ID, 2);
  await apps.scale(ID, 3);
  assert.equal(kv.keys(PREFIX).length, 2);
  await apps.remove(ID);
  assert.deepEqual(kv.keys(PREFIX), []);
  await assert.rejects(apps.versions(ID), NotFoundError);
  const again = await apps.create(spec());
  assert.deepEqual(await apps.versions(ID), [again?.version]);
});

test("a record written before versions loads with a version from updatedAtMs, kept when it is superseded", async () => {
  const { kv, store, leadership } = memoryStore({ service: "scheduler" });
  const at = Date.parse("2025-01-02T03:04:05.678Z");
  kv.put(stateKey("app", "prod_web"), projectionValue(1, { spec: spec(), createdAtMs: at, updatedAtMs: at }));
  const apps = new AppStore(store, leadership);
  await apps.load();
  const old = appVersionAt(at);
  assert.deepEqual(await apps.versions(ID), [old]);
  assert.equal((await apps.version(ID, old)).spec.instances, 1);
  const scaled = await apps.scale(ID, 4);
  assert.deepEqual(scaled?.versionInfo, { lastScalingAt: scaled?.version, lastConfigChangeAt: old });
  assert.deepEqual(await apps.versions(ID), [scaled?.version, old]);
  assert.equal((await apps.version(ID, old)).spec.instances, 1);
  assert.deepEqual((await store.get(AppAggregate, "prod_web")).state?.version, scaled?.version);
});

test("versions are named in any ISO-8601 form; others are refused by field", async () => {
  const { store, leadership } = memoryStore({ service: "scheduler" });
  const apps = new AppStore(store, leadership);
  const v = (await apps.create(spec()))?.version ?? "";
  const shifted = new Date(Date.parse(v)).toISOString().replace("Z", "+00:00");
  assert.equal((await apps.version(ID, shifted)).version, v);
  await assert.rejects(apps.version(ID, "last tuesday"), (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError);
    assert.equal(err.issues[0]?.path, "version");
    return true;
  });
  await assert.rejects(apps.version(ID, "2001-01-01T00:00:00.000Z"), NotFoundError);
  await assert.rejects(apps.versions("/nope"), NotFoundError);
});

test("a definition too large to share a transaction with its earlier version still commits (two fenced transactions)", async () => {
  // A store that takes 3 copies of this definition in no transaction, but 2.
  const big = "x".repeat(20_000);
  const { kv, store, leadership } = memoryStore({
    service: "scheduler",
    limits: { ...DEFAULT_STORE_LIMITS, maxTxnBytes: 52_000 },
  });
  const apps = new AppStore(store, leadership);
  const v1 = (await apps.create(spec({ env: { BIG: big } })))?.version ?? "";
  const txns = kv.txnCount;
  const v2 = (await apps.update(ID, spec({ env: { BIG: `${big}y` } })))?.version ?? "";
  assert.equal(kv.txnCount, txns + 2);
  assert.deepEqual(await apps.versions(ID), [v2, v1]);
  assert.equal((await apps.version(ID, v1)).spec.env.BIG, big);
});

test("a deposed leader writes no version", async () => {
  const { kv, store, leadership } = memoryStore({ service: "scheduler" });
  const apps = new AppStore(store, leadership);
  await apps.create(spec());
  leadership.depose();
  await assert.rejects(apps.scale(ID, 2));
  assert.deepEqual(kv.keys(PREFIX), []);
});

test("dependencies are accepted; one that closes a cycle is refused naming the cycle", async () => {
  const { store, leadership } = memoryStore({ service: "scheduler" });
  const apps = new AppStore(store, leadership);
  assert.deepEqual(
    AppStore.parse(JSON.stringify({ id: "/a", cmd: "sleep 1", dependencies: ["/b"] })).dependencies,
    ["/b"],
  );
  await apps.create(spec({ id: "/a", dependencies: ["/b"] }));
  await apps.create(spec({ id: "/b", dependencies: ["/c"] }));
  await assert.rejects(
    apps.create(spec({ id: "/c", dependencies: ["/a"] })),
    (err: unknown) =>
      err instanceof InvalidArgumentError &&
      err.issues[0]?.path === "dependencies" &&
      err.issues[0]?.message === "cycle /a → /b → /c → /a",
  );
  await apps.create(spec({ id: "/c" }));
  await assert.rejects(apps.update("/c", spec({ id: "/c", dependencies: ["/a"] })), /cycle/);
});

test("a DROVER_PROGRESS_DEADLINE_SECONDS label Drover cannot read is refused by name, not ignored", () => {
  const parse = (value: string) =>
    AppStore.parse(
      JSON.stringify({ id: "/a", cmd: "sleep 1", labels: { DROVER_PROGRESS_DEADLINE_SECONDS: value } }),
    );
  assert.equal(parse("30").labels.DROVER_PROGRESS_DEADLINE_SECONDS, "30");
  for (const bad of ["0.0004", "0", "soon", "90000"])
    assert.throws(
      () => parse(bad),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        /labels\.DROVER_PROGRESS_DEADLINE_SECONDS: must be a number/.test(err.message),
      bad,
    );
});
