import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@drover/common";
import { SchedulerConfigSchema } from "@drover/config";
import { type AppRecord, AppSpecSchema } from "@drover/core";
import { FrameworkDriver } from "./framework.js";

const NOW = 1_800_000_000_000;

function driver(apps: Map<string, AppRecord>): FrameworkDriver {
  return new FrameworkDriver({
    config: SchedulerConfigSchema.parse({}),
    log: createLogger("test", "error"),
    apps: () => apps,
    loadFrameworkId: async () => undefined,
    saveFrameworkId: async () => {},
  });
}

const app = (id: string, instances: number): AppRecord => ({
  spec: AppSpecSchema.parse({
    id,
    container: { docker: { image: "busybox" } },
    instances,
    cpus: 0.1,
    mem: 32,
  }),
  createdAtMs: NOW - 600_000,
  updatedAtMs: NOW - 600_000,
});

test("D11: the queue query (drover app why) does not change the crash-loop backoff it reports", () => {
  const d = driver(new Map([["web", app("web", 3)]]));
  // One task has run for long enough to reset the backoff; two more are missing.
  d.tasks.set("web.1", {
    taskId: "web.1",
    appId: "web",
    agentId: "a1",
    state: "TASK_RUNNING",
    createdAtMs: NOW - 120_000,
    runningSinceMs: NOW - 120_000,
    killRequested: false,
  });
  d.backoff.set("web", { failures: 4, delayUntilMs: NOW + 8_000, lastFailureMs: NOW - 1_000 });
  const before = structuredClone(d.backoff.get("web"));
  const queue = d.queue(NOW);
  assert.equal(queue.length, 1);
  assert.equal(queue[0]?.waiting, 2);
  assert.deepEqual(d.backoff.get("web"), before, "a query must not mutate the backoff");
  // Asked again, the same answer.
  assert.deepEqual(d.queue(NOW), queue);
});

test("the queue lists only apps with instances waiting, by id", () => {
  const d = driver(
    new Map([
      ["b", app("b", 1)],
      ["a", app("a", 2)],
      ["done", app("done", 0)],
    ]),
  );
  const q = d.queue(NOW);
  assert.deepEqual(
    q.map((e) => [e.appId, e.waiting]),
    [
      ["a", 2],
      ["b", 1],
    ],
  );
  assert.ok(q.every((e) => e.reasons.some((r) => r.kind === "no_offers")));
});

test("the task view keeps active tasks per app per agent as tasks come and go (no walk over every task per offer round)", () => {
  const d = driver(new Map([["web", app("web", 3)]]));
  const entry = (taskId: string, agentId: string) => ({
    taskId,
    appId: "web",
    agentId,
    state: "TASK_STAGING" as const,
    createdAtMs: NOW,
    killRequested: false,
  });
  d.tasks.set("web.1", entry("web.1", "a1"));
  d.tasks.set("web.2", entry("web.2", "a1"));
  d.tasks.set("web.3", entry("web.3", "a2"));
  const counts = () =>
    Object.fromEntries([...(d.tasks.activeByAppAgent.get("web") ?? new Map<string, number>())].sort());
  assert.deepEqual(counts(), { a1: 2, a2: 1 });
  // Set again (a re-subscription) on another agent: moved, not counted twice.
  d.tasks.set("web.2", { ...entry("web.2", "a2"), state: "TASK_RUNNING" });
  assert.deepEqual(counts(), { a1: 1, a2: 2 });
  d.tasks.delete("web.1");
  d.tasks.delete("web.1");
  assert.deepEqual(counts(), { a2: 2 });
  d.tasks.delete("web.2");
  d.tasks.delete("web.3");
  assert.equal(d.tasks.activeByAppAgent.has("web"), false);
});
