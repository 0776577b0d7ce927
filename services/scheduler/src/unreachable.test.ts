/**
 * The scheduler's side of Marathon's unreachableStrategy: the task view keeps when a task became
 * unreachable (from the update's time) and whether it came back after it was replaced; the plan
 * counts an unreachable task until inactiveAfterSeconds, and "disabled" never replaces it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@drover/common";
import { SchedulerConfigSchema } from "@drover/config";
import { type AppRecord, AppSpecSchema, type UnreachableStrategy } from "@drover/core";
import type { TaskUpdate } from "@drover/framework";
import { FrameworkDriver, type TaskEntry } from "./framework.js";

function driver(apps: Map<string, AppRecord>): FrameworkDriver {
  return new FrameworkDriver({
    config: SchedulerConfigSchema.parse({}),
    log: createLogger("test", "error"),
    apps: () => apps,
    loadFrameworkId: async () => undefined,
    saveFrameworkId: async () => {},
  });
}

const app = (unreachableStrategy: UnreachableStrategy): Map<string, AppRecord> =>
  new Map([
    [
      "/web",
      {
        spec: AppSpecSchema.parse({
          id: "/web",
          container: { docker: { image: "busybox" } },
          instances: 2,
          cpus: 0.1,
          mem: 32,
          unreachableStrategy,
        }),
        createdAtMs: 0,
        updatedAtMs: 0,
      },
    ],
  ]);

const entry = (taskId: string, state: TaskEntry["state"], extra: Partial<TaskEntry> = {}): TaskEntry => ({
  taskId,
  appId: "/web",
  agentId: "a1",
  state,
  createdAtMs: 0,
  killRequested: false,
  ...extra,
});

const NOW = 1_800_000_000_000;
const waiting = (d: FrameworkDriver, now: number) =>
  d.queue(now).find((q) => q.appId === "/web")?.waiting ?? 0;

test("an unreachable task counts until inactiveAfterSeconds, then its replacement waits to be placed", () => {
  const d = driver(app({ inactiveAfterSeconds: 5, expungeAfterSeconds: 60 }));
  d.tasks.set("web.1", entry("web.1", "TASK_RUNNING"));
  d.tasks.set("web.2", entry("web.2", "TASK_UNREACHABLE", { unreachableSinceMs: NOW }));
  assert.equal(waiting(d, NOW + 4_999), 0);
  assert.equal(waiting(d, NOW + 5_000), 1);
  assert.equal(waiting(d, NOW + 120_000), 1, "expunged: still replaced");
});

test('"disabled": an unreachable task is never replaced', () => {
  const d = driver(app("disabled"));
  d.tasks.set("web.1", entry("web.1", "TASK_RUNNING"));
  d.tasks.set("web.2", entry("web.2", "TASK_UNREACHABLE", { unreachableSinceMs: NOW }));
  assert.equal(waiting(d, NOW + 365 * 86_400_000), 0);
});

/** Feeds an update as the SDK would (the driver's handler; its converge does nothing unsubscribed). */
async function update(d: FrameworkDriver, u: Partial<TaskUpdate> & Pick<TaskUpdate, "taskId" | "state">) {
  const handler = (d as unknown as { onUpdate(u: TaskUpdate): Promise<void> }).onUpdate.bind(d);
  await handler({
    agentId: "a1",
    appId: "/web",
    message: "",
    uuid: "u",
    timestampMs: Date.now(),
    ...u,
  } as TaskUpdate);
}

test("the view keeps since when a task is unreachable (the update's time), and whether it came back replaced", async () => {
  for (const [strategy, awayMs, replaced] of [
    [{ inactiveAfterSeconds: 5, expungeAfterSeconds: 600 }, 10_000, true],
    [{ inactiveAfterSeconds: 300, expungeAfterSeconds: 600 }, 10_000, false],
    ["disabled", 3_600_000, false],
  ] as const) {
    const d = driver(app(strategy));
    d.tasks.set("web.1", entry("web.1", "TASK_RUNNING"));
    const since = Date.now() - awayMs;
    await update(d, { taskId: "web.1", state: "TASK_UNREACHABLE", timestampMs: since });
    assert.equal(d.tasks.get("web.1")?.unreachableSinceMs, since);
    // A repeated UNREACHABLE update (a resend) keeps the first time.
    await update(d, { taskId: "web.1", state: "TASK_UNREACHABLE", timestampMs: since + 1000 });
    assert.equal(d.tasks.get("web.1")?.unreachableSinceMs, since);
    await update(d, { taskId: "web.1", state: "TASK_RUNNING" });
    const e = d.tasks.get("web.1");
    assert.equal(e?.state, "TASK_RUNNING");
    assert.equal(e?.unreachableSinceMs, undefined);
    assert.equal(e?.replaced === true, replaced, JSON.stringify(strategy));
    d.stop();
  }
});
