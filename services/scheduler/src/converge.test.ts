/**
 * The converge loop plans only what moves: a steady app (its instances running, nothing to do) is
 * planned again when one of its tasks changes or on a full pass (converge()), not on every update
 * of every other app. Driven through the driver's framework seam with a fake SDK (no master).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@drover/common";
import { SchedulerConfigSchema } from "@drover/config";
import { type AppRecord, AppSpecSchema } from "@drover/core";
import type { FrameworkHandlers, FrameworkTask, TaskUpdate } from "@drover/framework";
import { type FrameworkClient, FrameworkDriver } from "./framework.js";

const APPS = 200;
const INSTANCES = 3;

function fakeSdk(tasks: FrameworkTask[], handlers: FrameworkHandlers) {
  const calls = { revives: 0, kills: [] as string[] };
  const sdk: FrameworkClient = {
    frameworkId: "fw-1",
    master: "127.0.0.1:1",
    run: async () => {
      await handlers.subscribed?.("fw-1");
    },
    stop: () => {},
    launch: async () => [],
    decline: async () => {},
    revive: async () => {
      calls.revives++;
    },
    kill: async (taskId: string) => {
      calls.kills.push(taskId);
    },
    reconcile: async () => [],
    listTasks: async () => tasks,
    listWireTasks: async () => [],
    listWireTaskPage: async () => ({ tasks: [], nextPageToken: "" }),
  } as unknown as FrameworkClient;
  return { sdk, calls, handlers };
}

async function until(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function setup() {
  const apps = new Map<string, AppRecord>();
  const tasks: FrameworkTask[] = [];
  const now = Date.now();
  for (let a = 0; a < APPS; a++) {
    const id = `/app-${a}`;
    apps.set(id, {
      spec: AppSpecSchema.parse({ id, cmd: "sleep 1000", instances: INSTANCES, cpus: 0.1, mem: 32 }),
      createdAtMs: now,
      updatedAtMs: now,
    });
    for (let i = 0; i < INSTANCES; i++)
      tasks.push({
        taskId: `app-${a}.${i}`,
        appId: id,
        agentId: `agent-${i}`,
        state: "TASK_RUNNING",
        message: "",
        createdAtMs: now - 60_000,
        updatedAtMs: now - 60_000,
        labels: {},
      });
  }
  const passes: { planned: number; apps: number }[] = [];
  let fake: ReturnType<typeof fakeSdk> | undefined;
  const driver = new FrameworkDriver({
    config: SchedulerConfigSchema.parse({}),
    log: createLogger("test", "error"),
    apps: () => apps,
    loadFrameworkId: async () => undefined,
    saveFrameworkId: async () => {},
    observer: { converged: (planned, n) => passes.push({ planned, apps: n }) },
    connect: (_options, handlers) => {
      fake = fakeSdk(tasks, handlers);
      return fake.sdk;
    },
  });
  return { driver, apps, passes, fake: () => fake as ReturnType<typeof fakeSdk> };
}

const update = (taskId: string, appId: string, state: TaskUpdate["state"]): TaskUpdate => ({
  taskId,
  agentId: "agent-0",
  appId,
  state,
  message: "",
  timestampMs: Date.now(),
  uuid: `u-${taskId}-${state}`,
});

test("a converge after one task's update plans that app only; converge() plans them all", async () => {
  const { driver, passes, fake } = setup();
  await driver.init();
  await driver.run();
  // Subscribed: the task view rebuilt, every app planned; all steady, nothing launched or killed.
  await until("the first converge", () => passes.length >= 1);
  assert.deepEqual(passes[0], { planned: APPS, apps: APPS });
  assert.equal(fake().calls.revives, 0);
  assert.deepEqual(fake().calls.kills, []);

  // One task of app-7 fails: the next converge plans app-7 alone, and wants its replacement.
  passes.length = 0;
  await fake().handlers.update?.(update("app-7.1", "/app-7", "TASK_FAILED"));
  await until("a converge after the update", () => passes.length >= 1);
  assert.deepEqual(passes[0], { planned: 1, apps: APPS });
  await until("a revive for the replacement", () => fake().calls.revives >= 1);
  assert.equal(driver.queue().find((q) => q.appId === "/app-7")?.waiting, 1);

  // app-7 still moves (an instance to launch): planned again on the next converge, with the app
  // whose task changed then; the steady apps are not.
  passes.length = 0;
  await fake().handlers.update?.(update("app-9.0", "/app-9", "TASK_RUNNING"));
  await until("a converge after the second update", () => passes.length >= 1);
  assert.deepEqual(passes[0], { planned: 2, apps: APPS });

  // A full pass (app events, the tick): every app.
  passes.length = 0;
  await driver.converge();
  assert.deepEqual(passes[0], { planned: APPS, apps: APPS });
  driver.stop();
});

test("an app others depend on: a change of its tasks plans every app (the dependents may start)", async () => {
  const { driver, apps, passes, fake } = setup();
  const web = apps.get("/app-1");
  assert.ok(web);
  apps.set("/app-1", { ...web, spec: { ...web.spec, dependencies: ["/app-0"] } });
  await driver.init();
  await driver.run();
  await until("the first converge", () => passes.length >= 1);
  passes.length = 0;
  await fake().handlers.update?.(update("app-0.2", "/app-0", "TASK_KILLED"));
  await until("a converge after the update", () => passes.length >= 1);
  assert.deepEqual(passes[0], { planned: APPS, apps: APPS });
  driver.stop();
});
