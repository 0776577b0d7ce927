import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger, FailedPreconditionError } from "@drover/common";
import { type AppSpec, AppSpecSchema, appVersionOf } from "@drover/core";
import { verifyLog } from "@drover/store";
import { FakeClock, memoryStore } from "@drover/testing";
import { AppStore } from "./apps.js";
import { deploymentTasks } from "./deployment-step.js";
import { DeploymentStore, type StartOptions } from "./deployments.js";
import type { TaskEntry } from "./framework.js";
import { rollBack } from "./rollback.js";

const log = createLogger("test", "error");
const ID = "/web";
const spec = (over: Record<string, unknown> = {}): AppSpec =>
  AppSpecSchema.parse({ id: ID, cmd: "sleep 1000", instances: 4, cpus: 0.1, mem: 32, ...over });

function setup(clock?: FakeClock) {
  const m = memoryStore({ service: "scheduler" });
  const apps = new AppStore(m.store, m.leadership);
  const deployments = new DeploymentStore(m.store, m.leadership, log, clock);
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
  assert.equal(cancelled.state, "rolled-back");
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
  const clock = new FakeClock();
  const { apps, deployments, update } = setup(clock);
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
    progressDeadlineMs: 3000,
  };
  deployments.observe(id, ID, step);
  await clock.advance(2000);
  deployments.observe(id, ID, step);
  assert.equal(calls.length, 0, "not before the deadline");
  await clock.advance(1500);
  assert.equal(calls.length, 1);
  await clock.advance(5000);
  deployments.stop();
  assert.equal(calls.length, 1, "handed over once");
  assert.equal(calls[0]?.id, id);
  assert.match(calls[0]?.reason ?? "", /^no progress for 3 s .*waiting for 1 new healthy/);
  const d = deployments.get(id);
  assert.equal(d.state, "failed");
  assert.equal(deployments.runningFor(ID), undefined);
});

test("progress holds the deadline off", async () => {
  const clock = new FakeClock();
  const { apps, deployments, update } = setup(clock);
  await apps.create(spec());
  const id = await update(spec({ env: { V: "2" } }));
  let calls = 0;
  deployments.watchDeadlines(async (did, reason) => {
    calls++;
    await deployments.serial(() => deployments.fail(did, reason));
  });
  const counts = { old: 4, new: 4, newHealthy: 0, healthy: 4, minHealthy: 4, maxInstances: 8, instances: 4 };
  for (let i = 0; i < 4; i++) {
    deployments.observe(id, ID, {
      waitingFor: `waiting ${i}`,
      counts: { ...counts, newHealthy: i, old: 4 - i },
      done: false,
      progressDeadlineMs: 7000,
    });
    await clock.advance(4000);
  }
  assert.equal(calls, 0, "each step made progress within the deadline");
  await clock.advance(4000);
  deployments.stop();
  assert.equal(calls, 1, "no progress for 8 s since the last step");
});

test("a new leader goes on with the deadline's clock from the marks recorded, not from its own start", async () => {
  const clock = new FakeClock();
  const { store, leadership, apps, deployments, update } = setup(clock);
  await apps.create(spec());
  const id = await update(spec({ env: { V: "2" } }));
  const counts = { old: 4, new: 1, newHealthy: 0, healthy: 4, minHealthy: 4, maxInstances: 8, instances: 4 };
  deployments.observe(id, ID, { waitingFor: "stuck", counts, done: false, progressDeadlineMs: 10_000 });
  // The progress write (at most every PROGRESS_WRITE_MS) records the mark.
  await clock.advance(3000);
  assert.equal(deployments.get(id).marks?.[ID]?.sinceMs, clock.now() - 3000);
  deployments.stop();
  // Failover: 6 s later a new leader loads the deployment and sees the same stuck step.
  await clock.advance(6000);
  const next = new DeploymentStore(store, leadership, log, clock);
  await next.load();
  const calls: string[] = [];
  next.watchDeadlines(async (did, reason) => {
    calls.push(did);
    await next.serial(() => next.fail(did, reason));
  });
  next.observe(id, ID, { waitingFor: "stuck", counts, done: false, progressDeadlineMs: 10_000 });
  await clock.advance(500);
  assert.deepEqual(calls, [], "9.5 s without progress: not yet");
  await clock.advance(1000);
  next.stop();
  assert.deepEqual(calls, [id], "10 s after the last progress, not 10 s after the new leader started");
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
