import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger, FailedPreconditionError } from "@drover/common";
import { type AppSpec, AppSpecSchema, appVersionOf } from "@drover/core";
import { verifyLog } from "@drover/store";
import { memoryStore } from "@drover/testing";
import { AppStore } from "./apps.js";
import { deploymentTasks } from "./deployment-step.js";
import { DeploymentStore, type StartOptions } from "./deployments.js";
import type { TaskEntry } from "./framework.js";
import { rollBack } from "./rollback.js";

const log = createLogger("test", "error");
const ID = "/web";
const spec = (over: Record<string, unknown> = {}): AppSpec =>
  AppSpecSchema.parse({ id: ID, cmd: "sleep 1000", instances: 4, cpus: 0.1, mem: 32, ...over });

function setup() {
  const m = memoryStore({ service: "scheduler" });
  const apps = new AppStore(m.store, m.leadership);
  const deployments = new DeploymentStore(m.store, m.leadership, log);
  const update = (s: AppSpec, opts: StartOptions = {}) =>
    deployments.serial(async () => {
      const hook = deployments.startHook(ID, "upgrade", false, opts);
      await apps.update(ID, s, hook);
      return hook.id;
    });
  return { ...m, apps, deployments, update };
}

const task = (taskId: string, appVersion: string): TaskEntry => ({
  taskId,
  appId: ID,
  agentId: "a1",
  state: "TASK_RUNNING",
  createdAtMs: 0,
  killRequested: false,
  appVersion,
});

test("a canary deployment keeps its count in etcd (a new leader plans with it) until promoted", async () => {
  const { store, leadership, apps, deployments, update } = setup();
  await apps.create(spec());
  const id = await update(spec({ env: { V: "2" } }), { canaryInstances: 2 });
  assert.equal(deployments.runningFor(ID)?.canaryInstances, 2);
  const next = new DeploymentStore(store, leadership, log);
  await next.load();
  assert.equal(next.runningFor(ID)?.canaryInstances, 2);
  assert.equal(next.get(id).canaryInstances, 2);
  const promoted = await next.promote(id);
  assert.equal(promoted.canaryInstances, undefined);
  assert.equal(promoted.state, "running");
  assert.equal(next.runningFor(ID)?.canaryInstances, undefined);
  await assert.rejects(next.promote(id), FailedPreconditionError);
  const again = new DeploymentStore(store, leadership, log);
  await again.load();
  assert.equal(again.runningFor(ID)?.canaryInstances, undefined);
  assert.ok((await verifyLog(store)).ok);
});

test("a rollback supersedes its deployment and counts the instances of the previous definition as its own", async () => {
  const { store, apps, deployments, update } = setup();
  const created = await apps.create(spec());
  assert.ok(created);
  const v1 = appVersionOf(created).versionInfo.lastConfigChangeAt;
  const id = await update(spec({ env: { V: "2" } }), { canaryInstances: 1 });
  const v2 = appVersionOf(apps.get(ID).state).versionInfo.lastConfigChangeAt;
  const d = deployments.get(id);
  const rollbackId = await deployments.serial(() =>
    rollBack(apps, deployments, d, (rid) => ({
      type: "DeploymentCancelled",
      force: false,
      reason: "cancelled by request",
      rollbackId: rid,
    })),
  );
  assert.ok(rollbackId);
  const cancelled = deployments.get(id);
  assert.equal(cancelled.state, "cancelled");
  assert.equal(cancelled.rollbackId, rollbackId);
  const running = deployments.runningFor(ID);
  assert.equal(running?.id, rollbackId);
  assert.deepEqual(running?.sameConfig, { from: v1, until: v2 });
  assert.equal(running?.canaryInstances, undefined);
  assert.equal(apps.get(ID).state.spec.env.V, undefined);
  const app = apps.get(ID).state;
  const v3 = appVersionOf(app).versionInfo.lastConfigChangeAt;
  const tasks = deploymentTasks(
    app,
    [task("old", v1), task("canary", v2), task("fresh", v3)],
    running?.sameConfig,
  );
  assert.deepEqual(
    tasks.map((t) => [t.taskId, t.isNew]),
    [
      ["old", true],
      ["canary", false],
      ["fresh", true],
    ],
  );
  assert.ok((await verifyLog(store)).ok);
});

test("a deployment past its progress deadline is handed over once with the reason", async () => {
  const { apps, deployments, update } = setup();
  await apps.create(spec());
  const id = await update(spec({ env: { V: "2" } }));
  const counts = { old: 4, new: 1, newHealthy: 0, healthy: 4, minHealthy: 4, maxInstances: 8, instances: 4 };
  const calls: { id: string; reason: string }[] = [];
  deployments.watchDeadlines(async (did, reason) => {
    calls.push({ id: did, reason });
    await deployments.serial(() => deployments.fail(did, reason));
  });
  const step = {
    waitingFor: "/web: waiting for 1 new healthy",
    counts,
    done: false,
    progressDeadlineMs: 300,
  };
  deployments.observe(id, ID, step);
  await new Promise((r) => setTimeout(r, 200));
  deployments.observe(id, ID, step);
  assert.equal(calls.length, 0);
  await new Promise((r) => setTimeout(r, 1000));
  deployments.stop();
  assert.equal(calls.length, 1);
  assert.equal(calls[0]?.id, id);
  assert.match(calls[0]?.reason ?? "", /^no progress for 0.3 s .*waiting for 1 new healthy/);
  const d = deployments.get(id);
  assert.equal(d.state, "failed");
  assert.equal(deployments.runningFor(ID), undefined);
});

test("progress holds the deadline off", async () => {
  const { apps, deployments, update } = setup();
  await apps.create(spec());
  const id = await update(spec({ env: { V: "2" } }));
  let calls = 0;
  deployments.watchDeadlines(async () => {
    calls++;
  });
  const counts = { old: 4, new: 4, newHealthy: 0, healthy: 4, minHealthy: 4, maxInstances: 8, instances: 4 };
  for (let i = 0; i < 4; i++) {
    deployments.observe(id, ID, {
      waitingFor: `waiting ${i}`,
      counts: { ...counts, newHealthy: i, old: 4 - i },
      done: false,
      progressDeadlineMs: 700,
    });
    await new Promise((r) => setTimeout(r, 400));
  }
  deployments.stop();
  assert.equal(calls, 0);
});

test("retention: ended deployments beyond the newest kept, or ended too long ago, are removed; running ones stay", async () => {
  const { store, leadership, apps, deployments, update } = setup();
  await apps.create(spec());
  const ended: string[] = [];
  for (let i = 0; i < 5; i++) {
    const id = await update(spec({ env: { V: String(i) } }));
    await deployments.serial(() => deployments.cancel(id, "cancelled by request", true));
    ended.push(id);
  }
  const running = await update(spec({ env: { V: "last" } }));
  assert.equal(await deployments.prune(2, 3_600_000), 3);
  assert.deepEqual(
    deployments.list(true).map((d) => d.id),
    [running, ...ended.slice(3).reverse()],
  );
  // Too old: all ended ones go, whatever the count.
  assert.equal(await deployments.prune(100, 1000, Date.now() + 5000), 2);
  assert.deepEqual(
    deployments.list(true).map((d) => d.id),
    [running],
  );
  const next = new DeploymentStore(store, leadership, log);
  await next.load();
  assert.deepEqual(
    next.list(true).map((d) => d.id),
    [running],
  );
  assert.ok((await verifyLog(store)).ok);
});
