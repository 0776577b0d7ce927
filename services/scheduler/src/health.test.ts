/**
 * The scheduler's side of health checks: the task view keeps the latest health and readiness its
 * updates carry, and a task killed for failing its checks (terminal, not asked for by the
 * scheduler) counts as a failure: the app backs off, and the instance is replaced.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@drover/common";
import { SchedulerConfigSchema } from "@drover/config";
import { type AppRecord, AppSpecSchema } from "@drover/core";
import type { TaskUpdate } from "@drover/framework";
import { FrameworkDriver } from "./framework.js";

function driver(): FrameworkDriver {
  const apps = new Map<string, AppRecord>([
    [
      "/web",
      {
        spec: AppSpecSchema.parse({
          id: "/web",
          container: { docker: { image: "busybox" } },
          instances: 1,
          cpus: 0.1,
          mem: 32,
        }),
        createdAtMs: 0,
        updatedAtMs: 0,
      },
    ],
  ]);
  return new FrameworkDriver({
    config: SchedulerConfigSchema.parse({}),
    log: createLogger("test", "error"),
    apps: () => apps,
    loadFrameworkId: async () => undefined,
    saveFrameworkId: async () => {},
  });
}

/** Feeds an update as the SDK would (the driver's handler; its converge does nothing unsubscribed). */
async function update(d: FrameworkDriver, u: Partial<TaskUpdate> & Pick<TaskUpdate, "taskId" | "state">) {
  const handler = (d as unknown as { onUpdate(u: TaskUpdate): Promise<void> }).onUpdate.bind(d);
  await handler({ agentId: "a1", appId: "/web", message: "", uuid: "u", timestampMs: Date.now(), ...u });
}

test("the task view keeps the latest health and readiness of a task", async () => {
  const d = driver();
  await update(d, { taskId: "web.1", state: "TASK_RUNNING" });
  assert.equal(d.tasks.get("web.1")?.health, undefined);
  const healthy = { healthy: true, lastSuccessMs: 1, consecutiveFailures: 0 };
  await update(d, { taskId: "web.1", state: "TASK_RUNNING", health: healthy });
  assert.deepEqual(d.tasks.get("web.1")?.health, healthy);
  const down = {
    healthy: false,
    lastSuccessMs: 1,
    lastFailureMs: 2,
    consecutiveFailures: 1,
    lastFailureCause: "503",
  };
  const readiness = [{ name: "readinessCheck", ready: true, checkedAtMs: 3 }];
  await update(d, { taskId: "web.1", state: "TASK_RUNNING", health: down, readiness });
  assert.deepEqual(d.tasks.get("web.1")?.health, down);
  assert.deepEqual(d.tasks.get("web.1")?.readiness, readiness);
  // An update without health (a plain RUNNING) keeps what is known.
  await update(d, { taskId: "web.1", state: "TASK_RUNNING" });
  assert.deepEqual(d.tasks.get("web.1")?.health, down);
  d.stop();
});

test("a task killed for its health is a failure: the app backs off and the instance is replaced", async () => {
  const d = driver();
  await update(d, { taskId: "web.1", state: "TASK_RUNNING" });
  const now = Date.now();
  assert.equal(d.queue(now).find((q) => q.appId === "/web")?.waiting ?? 0, 0);
  await update(d, {
    taskId: "web.1",
    state: "TASK_KILLED",
    reason: "REASON_TASK_UNHEALTHY_CHECK_STATUS",
    message: "unhealthy: HTTP check on port 31002 failed 3 times: 500 Internal Server Error",
    health: { healthy: false, consecutiveFailures: 3, lastFailureCause: "500 Internal Server Error" },
  });
  assert.equal(d.tasks.has("web.1"), false);
  assert.ok(
    d.backoffUntil("/web") > now,
    "the app's launch backoff grew (Marathon: a health kill is a failure)",
  );
  assert.equal(d.queue(Date.now()).find((q) => q.appId === "/web")?.waiting, 1, "one instance to replace");
  d.stop();
});
