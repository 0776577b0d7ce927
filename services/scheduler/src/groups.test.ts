import assert from "node:assert/strict";
import { test } from "node:test";
import {
  AlreadyExistsError,
  createLogger,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  TooLargeError,
} from "@drover/common";
import { verifyLog } from "@drover/store";
import { memoryStore } from "@drover/testing";
import { AppStore } from "./apps.js";
import { DeploymentStore } from "./deployments.js";
import { applyGroup, type GroupRequest } from "./groups.js";
import { rollBack } from "./rollback.js";

const log = createLogger("test", "error");

function setup() {
  const m = memoryStore({ service: "scheduler" });
  const apps = new AppStore(m.store, m.leadership);
  const deployments = new DeploymentStore(m.store, m.leadership, log);
  const run = (over: Partial<GroupRequest>) =>
    applyGroup(apps, deployments, {
      mode: "create",
      groupJson: "",
      groupId: "",
      scaleBy: 0,
      force: false,
      dryRun: false,
      ...over,
    });
  return { ...m, apps, deployments, run };
}

const app = (id: string, over: Record<string, unknown> = {}) => ({
  id,
  cmd: "sleep 1000",
  instances: 2,
  cpus: 0.1,
  mem: 32,
  ...over,
});

const shop = (over: { web?: Record<string, unknown>; extra?: boolean } = {}) =>
  JSON.stringify({
    id: "/shop",
    apps: [
      app("db"),
      app("web", { dependencies: ["db"], ...over.web }),
      ...(over.extra ? [app("mail")] : []),
    ],
  });

const plan = (steps: { actions: { action: string; appId: string }[] }[]) =>
  steps.map((s) => s.actions.map((a) => `${a.action} ${a.appId}`));

test("a group is created in one transaction with one deployment whose steps follow the dependencies", async () => {
  const { kv, store, apps, deployments, run } = setup();
  const before = kv.txnCount;
  const out = await run({ groupJson: shop() });
  assert.equal(kv.txnCount - before, 1, "every app and the deployment in one transaction");
  assert.deepEqual(out.changes, { "/shop/db": "create", "/shop/web": "create" });
  assert.deepEqual(plan(out.steps), [
    ["StartApplication /shop/db", "StartApplication /shop/web"],
    ["ScaleApplication /shop/db"],
    ["ScaleApplication /shop/web"],
  ]);
  const d = deployments.get(out.deploymentId);
  assert.equal(d.kind, "group");
  assert.equal(d.groupId, "/shop");
  assert.equal(d.state, "running");
  // /web's action is in a later step: it is held until /db's is done.
  assert.equal(deployments.runningFor("/shop/db")?.heldBy, undefined);
  assert.match(deployments.runningFor("/shop/web")?.heldBy ?? "", /waiting for step 2 of 3/);
  deployments.observe(out.deploymentId, "/shop/db", {
    waitingFor: "",
    counts: { old: 0, new: 2, newHealthy: 2, healthy: 2, minHealthy: 2, maxInstances: 4, instances: 2 },
    done: true,
  });
  await waitFor(() => deployments.get(out.deploymentId).doneApps?.includes("/shop/db") === true);
  assert.equal(deployments.runningFor("/shop/db"), undefined, "done: the app converges on its own");
  assert.equal(deployments.runningFor("/shop/web")?.heldBy, undefined);
  deployments.observe(out.deploymentId, "/shop/web", {
    waitingFor: "",
    counts: { old: 0, new: 2, newHealthy: 2, healthy: 2, minHealthy: 2, maxInstances: 4, instances: 2 },
    done: true,
  });
  await waitFor(() => deployments.get(out.deploymentId).state === "succeeded");
  assert.ok(apps.record("/shop/web"));
  const report = await verifyLog(store);
  assert.ok(report.ok, JSON.stringify(report.mismatches));
});

test("an update changes, adds and removes as one; removed apps stop first; a locked app is refused naming the deployment", async () => {
  const { kv, apps, deployments, run } = setup();
  await run({ groupJson: shop({ extra: true }) });
  const first = deployments.list(false)[0]?.id ?? "";
  const before = kv.txnCount;
  await assert.rejects(
    run({ mode: "update", groupId: "/shop", groupJson: shop({ web: { env: { V: "2" } } }) }),
    (err: unknown) => err instanceof FailedPreconditionError && err.message.includes(first),
  );
  assert.equal(kv.txnCount, before, "a refused change writes nothing");
  const out = await run({
    mode: "update",
    groupId: "/shop",
    groupJson: shop({ web: { env: { V: "2" } } }),
    force: true,
  });
  assert.deepEqual(out.changes, { "/shop/mail": "remove", "/shop/web": "update" });
  assert.deepEqual(plan(out.steps), [["StopApplication /shop/mail"], ["RestartApplication /shop/web"]]);
  assert.equal(deployments.get(first).state, "cancelled");
  assert.equal(apps.record("/shop/mail"), undefined);
  assert.deepEqual([...deployments.stops()], [{ id: out.deploymentId, appId: "/shop/mail", held: false }]);
  assert.match(deployments.runningFor("/shop/web")?.heldBy ?? "", /StopApplication \/shop\/mail/);
});

test("dry run plans and writes nothing; scale and remove act on every app below; errors name the field", async () => {
  const { kv, apps, deployments, run } = setup();
  const dry = await run({ groupJson: shop(), dryRun: true });
  assert.equal(dry.deploymentId, "");
  assert.equal(kv.txnCount, 0);
  assert.equal(plan(dry.steps).length, 3);
  await run({ groupJson: shop() });
  await assert.rejects(run({ groupJson: shop() }), AlreadyExistsError);
  const scaled = await run({ mode: "scale", groupId: "/shop", scaleBy: 1.5, force: true });
  assert.deepEqual(scaled.changes, { "/shop/db": "scale", "/shop/web": "scale" });
  assert.equal(apps.record("/shop/db")?.spec.instances, 3);
  const removed = await run({ mode: "remove", groupId: "/shop", force: true });
  assert.deepEqual(plan(removed.steps), [["StopApplication /shop/web"], ["StopApplication /shop/db"]]);
  assert.equal(apps.records().size, 0);
  await assert.rejects(run({ mode: "remove", groupId: "/nothing" }), NotFoundError);
  await assert.rejects(
    run({ groupJson: JSON.stringify({ id: "/x", apps: [app("a", { cpus: -1 })] }) }),
    (err: unknown) =>
      err instanceof InvalidArgumentError && err.issues.some((i) => i.path.startsWith("apps[0].cpus")),
  );
  await assert.rejects(
    run({
      groupJson: JSON.stringify({
        id: "/y",
        apps: [app("a", { dependencies: ["b"] }), app("b", { dependencies: ["a"] })],
      }),
    }),
    (err: unknown) => err instanceof InvalidArgumentError && /cycle/.test(err.message),
  );
  assert.equal(deployments.list(false).length, 1, "only the removal still runs");
});

test("a group too large for one transaction is refused whole, nothing written", async () => {
  const { kv, apps, run } = setup();
  const many = Array.from({ length: 80 }, (_, i) => app(`a${i}`));
  await assert.rejects(
    run({ groupJson: JSON.stringify({ id: "/big", apps: many }) }),
    (err: unknown) => err instanceof TooLargeError && /change fewer apps/.test(err.message),
  );
  assert.equal(kv.txnCount, 0);
  assert.equal(apps.records().size, 0);
});

test("cancelling a group's deployment rolls all its apps back as one deployment: changed ones to their previous definition, new ones removed", async () => {
  const { kv, store, apps, deployments, run } = setup();
  await run({ groupJson: shop() });
  const first = deployments.list(false)[0]?.id ?? "";
  await deployments.serial(() => deployments.cancel(first, "test", true));
  const update = await run({
    mode: "update",
    groupId: "/shop",
    groupJson: shop({ web: { env: { V: "2" } }, extra: true }),
  });
  assert.deepEqual(update.changes, { "/shop/mail": "create", "/shop/web": "update" });
  const d = deployments.get(update.deploymentId);
  const before = kv.txnCount;
  const rollbackId = await deployments.serial(() =>
    rollBack(apps, deployments, d, (rid) => ({
      type: "DeploymentCancelled",
      force: false,
      reason: "cancelled by request",
      rollbackId: rid,
    })),
  );
  assert.equal(kv.txnCount - before, 1, "the rollback, its app changes and the cancel in one transaction");
  assert.notEqual(rollbackId, "");
  const cancelled = deployments.get(update.deploymentId);
  assert.equal(cancelled.state, "rolled-back");
  assert.equal(cancelled.rollbackId, rollbackId);
  const r = deployments.get(rollbackId);
  assert.equal(r.kind, "rollback");
  assert.deepEqual(plan(r.steps ?? []), [["StopApplication /shop/mail"], ["RestartApplication /shop/web"]]);
  assert.equal(apps.record("/shop/web")?.spec.env.V, undefined, "web is back to its first definition");
  assert.equal(apps.record("/shop/mail"), undefined, "the app the deployment created is removed");
  assert.ok(
    r.apps.find((a) => a.appId === "/shop/web")?.sameConfig,
    "the old instances count as the rollback's",
  );
  assert.ok((await verifyLog(store)).ok);
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
