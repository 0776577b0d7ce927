import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@drover/common";
import { SchedulerConfigSchema } from "@drover/config";
import { type AppRecord, AppSpecSchema, appVersionOf } from "@drover/core";
import { dependencyApps, dependencyWait } from "./dependencies.js";
import { FrameworkDriver, type TaskEntry } from "./framework.js";

const NOW = 1_800_000_000_000;

const app = (id: string, instances: number, dependencies: string[] = [], checks = false): AppRecord => ({
  spec: AppSpecSchema.parse({
    id,
    container: { docker: { image: "busybox" } },
    instances,
    cpus: 0.1,
    mem: 32,
    dependencies,
    ...(checks ? { healthChecks: [{ protocol: "HTTP", path: "/", portIndex: 0 }] } : {}),
  }),
  createdAtMs: NOW - 600_000,
  updatedAtMs: NOW - 600_000,
});

function task(rec: AppRecord, n: number, healthy: boolean | undefined): TaskEntry {
  return {
    taskId: `${rec.spec.id}.${n}`,
    appId: rec.spec.id,
    agentId: "a1",
    state: "TASK_RUNNING",
    createdAtMs: NOW - 60_000,
    runningSinceMs: NOW - 60_000,
    killRequested: false,
    appVersion: appVersionOf(rec).version,
    ...(healthy !== undefined ? { health: { healthy, consecutiveFailures: 0, lastFailureCause: "" } } : {}),
  } as TaskEntry;
}

test("a group dependency names every app below the group, the app itself excepted", () => {
  const apps = new Map(
    [app("/shop/db", 1), app("/shop/cache", 1), app("/shop/web", 1, ["/shop"]), app("/other", 1)].map((a) => [
      a.spec.id,
      a,
    ]),
  );
  const web = apps.get("/shop/web");
  assert.ok(web);
  assert.deepEqual(dependencyApps(web, apps), ["/shop/cache", "/shop/db"]);
});

test("a dependency is healthy when all its instances run its config healthy, and it is not deploying", () => {
  const db = app("/shop/db", 2, [], true);
  const web = app("/shop/web", 1, ["/shop/db"]);
  const apps = new Map([
    [db.spec.id, db],
    [web.spec.id, web],
  ]);
  let tasks = [task(db, 1, true), task(db, 2, undefined)];
  let deploying = false;
  const view = { apps, tasksOf: () => tasks, deploying: () => deploying };
  assert.equal(dependencyWait(web, view), "waiting for dependency /shop/db: 1 of 2 instances healthy");
  tasks = [task(db, 1, true), task(db, 2, true)];
  assert.equal(dependencyWait(web, view), undefined);
  deploying = true;
  assert.equal(dependencyWait(web, view), "waiting for dependency /shop/db: its deployment is running");
  // Unknown dependencies are ignored (Marathon's plan ignores them too).
  assert.equal(dependencyWait(app("/x", 1, ["/nothing"]), view), undefined);
});

test("the converge loop holds a dependent's launches, and app why says what it waits for", () => {
  const db = app("/shop/db", 1, [], true);
  const web = app("/shop/web", 2, ["/shop/db"]);
  const d = new FrameworkDriver({
    config: SchedulerConfigSchema.parse({}),
    log: createLogger("test", "error"),
    apps: () =>
      new Map([
        [db.spec.id, db],
        [web.spec.id, web],
      ]),
    loadFrameworkId: async () => undefined,
    saveFrameworkId: async () => {},
  });
  const dbTask = task(db, 1, false);
  d.tasks.set(dbTask.taskId, dbTask);
  const q = d.queue(NOW).find((e) => e.appId === "/shop/web");
  assert.equal(q?.waiting, 2);
  assert.equal(q?.dependency, "waiting for dependency /shop/db: 0 of 1 instances healthy");
  d.tasks.set(dbTask.taskId, { ...dbTask, health: { healthy: true } } as TaskEntry);
  const after = d.queue(NOW).find((e) => e.appId === "/shop/web");
  assert.equal(after?.waiting, 2);
  assert.equal(after?.dependency, undefined);
});
