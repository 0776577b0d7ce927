import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@drover/common";
import { SchedulerConfigSchema } from "@drover/config";
import type { AppRecord } from "@drover/core";
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
  spec: {
    id,
    container: { docker: { image: "busybox" } },
    instances,
    cpus: 0.1,
    mem: 32,
    disk: 0,
    env: {},
    labels: {},
  },
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
