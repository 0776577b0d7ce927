import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@drover/common";
import { AppSpecSchema } from "@drover/core";
import { verifyLog } from "@drover/store";
import { AppLockedError } from "./locks.js";
import { memoryLeader } from "./memory-leader.js";

const log = createLogger("test", "error");
const ID = "/web";
const spec = (over: Record<string, unknown> = {}) =>
  AppSpecSchema.parse({ id: ID, cmd: "sleep 1000", instances: 2, cpus: 0.1, mem: 32, ...over });

function setup() {
  const m = memoryLeader({ log });
  return { ...m, svc: m.service };
}

test("a create and a scale each start a deployment that locks nothing: a later change supersedes it", async () => {
  const { kv, store, deployments, svc } = setup();
  const before = kv.txnCount;
  const created = await svc.create(spec());
  assert.equal(kv.txnCount - before, 1, "the app and its deployment in one transaction");
  const d = deployments.get(created.deploymentId);
  assert.equal(d.kind, "create");
  assert.deepEqual(
    d.steps?.map((s) => s.actions.map((a) => a.action)),
    [["StartApplication"], ["ScaleApplication"]],
  );
  assert.deepEqual(deployments.runningFor(ID), {
    id: created.deploymentId,
    toVersion: d.apps[0]?.toVersion,
    tracking: true,
  });

  // A scale while the create's deployment runs: not refused (even without force); it supersedes it.
  const scaled = await svc.scale(ID, 3, false);
  assert.notEqual(scaled.deploymentId, "");
  assert.equal(deployments.get(created.deploymentId).state, "cancelled");
  assert.match(deployments.get(created.deploymentId).reason ?? "", /superseded by deployment/);
  assert.equal(deployments.get(scaled.deploymentId).kind, "scale");

  // An upgrade supersedes the scale's deployment without force, and locks the app.
  const upgraded = await svc.update(ID, spec({ instances: 3, env: { V: "2" } }), {
    force: false,
    lockAll: true,
  });
  assert.equal(deployments.get(scaled.deploymentId).state, "cancelled");
  assert.equal(deployments.runningFor(ID)?.id, upgraded.deploymentId);
  await assert.rejects(svc.scale(ID, 4, false), AppLockedError);
  // gRPC's scale (no lock check): the upgrade goes on with the new count, no deployment of its own.
  const adopted = await svc.scale(ID, 4);
  assert.equal(adopted.deploymentId, "");
  assert.equal(deployments.runningFor(ID)?.id, upgraded.deploymentId);

  // A removal cancels the upgrade and starts a StopApplication deployment, done through stops().
  const removed = await svc.remove(ID);
  assert.equal(deployments.get(upgraded.deploymentId).reason, "app removed");
  assert.equal(deployments.get(removed.deploymentId).kind, "remove");
  assert.deepEqual([...deployments.stops()], [{ id: removed.deploymentId, appId: ID, held: false }]);
  assert.equal(deployments.runningFor(ID), undefined);
  deployments.observe(removed.deploymentId, ID, {
    waitingFor: "",
    counts: { old: 0, new: 0, newHealthy: 0, healthy: 0, minHealthy: 0, maxInstances: 0, instances: 0 },
    done: true,
  });
  await waitFor(() => deployments.get(removed.deploymentId).state === "succeeded");
  assert.ok((await verifyLog(store)).ok);
});

test("a tracking deployment writes no progress: what it waits for stays in memory", async () => {
  const { kv, deployments, svc } = setup();
  const created = await svc.create(spec());
  const before = kv.txnCount;
  for (const n of [0, 1])
    deployments.observe(created.deploymentId, ID, {
      waitingFor: `/web: ${n} of 2 instances running healthy and ready`,
      counts: { old: 0, new: n, newHealthy: n, healthy: n, minHealthy: 0, maxInstances: 2, instances: 2 },
      done: false,
    });
  await new Promise((r) => setImmediate(r));
  assert.equal(kv.txnCount, before, "no write");
  assert.equal(
    deployments.get(created.deploymentId).waitingFor,
    "step 2 of 2: /web: 1 of 2 instances running healthy and ready",
  );
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
