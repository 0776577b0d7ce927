import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger, FailedPreconditionError } from "@drover/common";
import { SchedulerConfigSchema } from "@drover/config";
import { type AppRecord, type AppSpec, AppSpecSchema, appVersionOf, rollingStep } from "@drover/core";
import { verifyLog } from "@drover/store";
import { memoryStore } from "@drover/testing";
import { AppStore } from "./apps.js";
import { deploymentTasks, explainStep } from "./deployment-step.js";
import { DeploymentStore } from "./deployments.js";
import { FrameworkDriver, type TaskEntry } from "./framework.js";

const log = createLogger("test", "error");
const ID = "/web";
const spec = (over: Record<string, unknown> = {}): AppSpec =>
  AppSpecSchema.parse({ id: ID, cmd: "sleep 1000", instances: 4, cpus: 0.1, mem: 32, ...over });

function setup() {
  const m = memoryStore({ service: "scheduler" });
  const apps = new AppStore(m.store, m.leadership);
  const deployments = new DeploymentStore(m.store, m.leadership, log);
  const update = (s: AppSpec, force = false) =>
    deployments.serial(async () => {
      const hook = deployments.startHook(ID, "upgrade", force);
      let started = false;
      await apps.update(ID, s, {
        ...hook,
        committed: (rev) => {
          started = true;
          hook.committed(rev);
        },
      });
      return started ? hook.id : "";
    });
  return { ...m, apps, deployments, update };
}

test("a config change starts its deployment in the same transaction; a scale or an identical update none", async () => {
  const { kv, store, apps, deployments, update } = setup();
  const created = await apps.create(spec());
  assert.ok(created);
  const before = kv.txnCount;
  const id = await update(spec({ env: { V: "2" } }));
  assert.equal(kv.txnCount - before, 1, "one transaction for the app and its deployment");
  const d = deployments.get(id);
  assert.equal(d.state, "running");
  assert.equal(d.kind, "upgrade");
  assert.deepEqual(
    d.apps.map((a) => a.appId),
    [ID],
  );
  assert.equal(d.apps[0]?.fromVersion, created.version);
  assert.equal(d.apps[0]?.toVersion, appVersionOf(apps.get(ID).state).versionInfo.lastConfigChangeAt);
  assert.deepEqual(deployments.runningFor(ID), { id, toVersion: d.apps[0]?.toVersion });
  // A scale changes no configuration: no deployment (and it is not refused).
  assert.equal(await deployments.serial(() => apps.scale(ID, 5).then(() => "")), "");
  assert.equal(deployments.list(true).length, 1);
  const report = await verifyLog(store);
  assert.ok(report.ok, JSON.stringify(report.mismatches));
});

test("one deployment per app: a second change is refused naming it; force cancels it and starts anew", async () => {
  const { kv, apps, deployments, update } = setup();
  await apps.create(spec());
  const first = await update(spec({ env: { V: "2" } }));
  const before = kv.txnCount;
  await assert.rejects(update(spec({ env: { V: "3" } })), (err: unknown) => {
    assert.ok(err instanceof FailedPreconditionError);
    assert.match(err.message, new RegExp(first));
    return true;
  });
  assert.equal(kv.txnCount, before, "a refused change writes nothing");
  assert.equal(apps.get(ID).state.spec.env.V, "2");
  const second = await update(spec({ env: { V: "3" } }), true);
  assert.notEqual(second, first);
  const old = deployments.get(first);
  assert.equal(old.state, "cancelled");
  assert.equal(old.force, true);
  assert.match(old.reason ?? "", new RegExp(`superseded by deployment ${second}`));
  assert.equal(deployments.runningFor(ID)?.id, second);
  assert.deepEqual(
    deployments.list(false).map((d) => d.id),
    [second],
  );
});

test("restart is a new config version with the same definition; removing the app cancels its deployment", async () => {
  const { apps, deployments, store } = setup();
  await apps.create(spec());
  const v1 = appVersionOf(apps.get(ID).state).versionInfo.lastConfigChangeAt;
  const hook = deployments.startHook(ID, "restart", false);
  await deployments.serial(() => apps.restart(ID, hook));
  const r = apps.get(ID).state;
  assert.ok(appVersionOf(r).versionInfo.lastConfigChangeAt > v1);
  assert.deepEqual(r.spec, spec());
  assert.equal(deployments.get(hook.id).kind, "restart");
  await deployments.serial(() => apps.remove(ID, deployments.removeHook(ID)));
  const d = deployments.get(hook.id);
  assert.equal(d.state, "cancelled");
  assert.equal(d.reason, "app removed");
  assert.equal(deployments.runningFor(ID), undefined);
  assert.ok((await verifyLog(store)).ok);
});

test("progress is written only when its words change, coalesced; done ends it once; a new leader resumes it", async () => {
  const { kv, store, leadership, apps, deployments, update } = setup();
  await apps.create(spec());
  const id = await update(spec({ env: { V: "2" } }));
  const counts = { old: 4, new: 0, newHealthy: 0, healthy: 4, minHealthy: 4, maxInstances: 8, instances: 4 };
  const before = kv.txnCount;
  for (let i = 0; i < 20; i++)
    deployments.observe(id, ID, {
      waitingFor: "waiting for 4 of 4",
      counts: { ...counts, new: i % 4 },
      done: false,
    });
  // The live view has the latest at once; the store gets one write.
  assert.equal(deployments.get(id).waitingFor, "waiting for 4 of 4");
  assert.equal(deployments.get(id).apps[0]?.counts?.new, 3);
  await new Promise((r) => setTimeout(r, 50));
  await deployments.serial(async () => {});
  assert.equal(kv.txnCount - before, 1);
  // A new leader loads the running deployment with the words written.
  const next = new DeploymentStore(store, leadership, log);
  await next.load();
  assert.equal(next.runningFor(ID)?.id, id);
  assert.equal(next.get(id).waitingFor, "waiting for 4 of 4");
  // Same words again: no write.
  deployments.observe(id, ID, { waitingFor: "waiting for 4 of 4", counts, done: false });
  deployments.observe(id, ID, { waitingFor: "", counts, done: true });
  deployments.observe(id, ID, { waitingFor: "", counts, done: true });
  await new Promise((r) => setTimeout(r, 20));
  await deployments.serial(async () => {});
  assert.equal(kv.txnCount - before, 2, "one more write: the success");
  assert.equal(deployments.get(id).state, "succeeded");
  assert.equal(deployments.runningFor(ID), undefined);
  deployments.stop();
  assert.ok((await verifyLog(store)).ok);
});

const T0 = 1_800_000_000_000;

function entry(id: string, version: string, over: Partial<TaskEntry> = {}): TaskEntry {
  return {
    taskId: id,
    appId: ID,
    agentId: "a1",
    state: "TASK_RUNNING",
    createdAtMs: T0,
    killRequested: false,
    appVersion: version,
    ...over,
  };
}

function record(s: AppSpec, configAt: string): AppRecord {
  return {
    spec: s,
    createdAtMs: T0,
    updatedAtMs: T0,
    version: configAt,
    versionInfo: { lastScalingAt: configAt, lastConfigChangeAt: configAt },
  };
}

test("an update that adds a health check: the old instances (no check of theirs) stay healthy, none is killed before a new one is healthy", () => {
  const v1 = "2026-11-29T10:00:00.000Z";
  const v2 = "2026-11-29T11:00:00.000Z";
  const app = record(
    spec({ instances: 2, healthChecks: [{ protocol: "COMMAND", command: { value: "true" } }] }),
    v2,
  );
  const tasks = [entry("old1", v1), entry("old2", v1), entry("new1", v2)];
  const dt = deploymentTasks(app, tasks);
  assert.deepEqual(
    dt.map((t) => [t.taskId, t.isNew, t.healthy]),
    [
      ["old1", false, true],
      ["old2", false, true],
      ["new1", true, false],
    ],
  );
  const step = rollingStep({
    instances: 2,
    strategy: { minimumHealthCapacity: 1, maximumOverCapacity: 1 },
    resident: false,
    tasks: dt,
  });
  assert.deepEqual(step.kill, [], "judged by the new check, both old instances were killed at once");
  // An old instance whose own check fails is unhealthy, as before.
  assert.equal(
    deploymentTasks(app, [entry("old3", v1, { health: { healthy: false, consecutiveFailures: 3 } })])[0]
      ?.healthy,
    false,
  );
});

test("tasks of an earlier config version are old, health counts only with every check alive, and the words name the failure", () => {
  const v1 = "2026-11-29T10:00:00.000Z";
  const v2 = "2026-11-29T11:00:00.000Z";
  const app = record(spec({ healthChecks: [{ protocol: "HTTP", path: "/" }] }), v2);
  const tasks = [
    ...[1, 2, 3, 4].map((i) => entry(`old${i}`, v1, { health: { healthy: true, consecutiveFailures: 0 } })),
    entry("new1", v2, {
      health: { healthy: false, consecutiveFailures: 2, lastFailureCause: "connection refused" },
    }),
    entry("new2", v2, { state: "TASK_STAGING" }),
  ];
  const dt = deploymentTasks(app, tasks);
  assert.deepEqual(
    dt.map((t) => [t.taskId, t.isNew, t.healthy]),
    [
      ["old1", false, true],
      ["old2", false, true],
      ["old3", false, true],
      ["old4", false, true],
      ["new1", true, false],
      ["new2", true, false],
    ],
  );
  const step = rollingStep({
    instances: 4,
    strategy: { minimumHealthCapacity: 1, maximumOverCapacity: 1 },
    resident: false,
    tasks: dt,
  });
  assert.deepEqual(step.kill, []);
  const words = explainStep(app, tasks, step, {});
  assert.match(words, /^\/web: waiting for/);
  assert.match(words, /new1 health check failing: connection refused/);
  assert.match(words, /1 not running yet/);
});

test("the driver plans an app under deployment with rollingStep (4 old → 4 new launched at 1/1), reconcileApp otherwise", () => {
  const v1 = "2026-11-29T10:00:00.000Z";
  const v2 = "2026-11-29T11:00:00.000Z";
  const apps = new Map([[ID, record(spec(), v2)]]);
  let running = true;
  const d = new FrameworkDriver({
    config: SchedulerConfigSchema.parse({}),
    log,
    apps: () => apps,
    loadFrameworkId: async () => undefined,
    saveFrameworkId: async () => {},
    deployments: {
      runningFor: () => (running ? { id: "d1", toVersion: v2 } : undefined),
      observe: () => {},
      stops: () => [],
    },
  });
  for (const i of [1, 2, 3, 4]) d.tasks.set(`old${i}`, entry(`old${i}`, v1));
  assert.equal(d.queue().find((q) => q.appId === ID)?.waiting, 4);
  running = false;
  assert.equal(
    d.queue().find((q) => q.appId === ID),
    undefined,
    "mixed versions stay without a deployment",
  );
});
