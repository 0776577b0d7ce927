/** TaskIndex: kept from each change of the task cache. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TaskRecord, TaskState } from "@drover/core";
import { aTask } from "@drover/testing";
import { TaskIndex } from "./task-index.js";

const withState = (r: TaskRecord, state: TaskState): TaskRecord => ({
  ...r,
  status: { ...r.status, state },
  updatedAtMs: r.updatedAtMs + 1,
});

test("an active task's status update moves only its count by state; a terminal one frees its resources", () => {
  const index = new TaskIndex();
  const staging = aTask().id("web.1").app("web").on("a1").cpus(0.5).mem(64).state("TASK_STAGING").build();
  const other = aTask().id("web.2").app("web").on("a1").cpus(0.25).mem(32).state("TASK_RUNNING").build();
  index.onChange("web.1", undefined, staging);
  index.onChange("web.2", undefined, other);
  const used = index.usedOn("a1");
  assert.deepEqual([used.cpus, used.mem], [0.75, 96]);

  const running = withState(staging, "TASK_RUNNING");
  index.onChange("web.1", staging, running);
  assert.equal(index.usedOn("a1"), used, "no resource arithmetic for an update between active states");
  assert.deepEqual(Object.fromEntries(index.byState), { TASK_RUNNING: 2 });
  assert.deepEqual([...index.tasksOnAgent("a1")].sort(), ["web.1", "web.2"]);

  const finished = withState(running, "TASK_FINISHED");
  index.onChange("web.1", running, finished);
  assert.deepEqual([index.usedOn("a1").cpus, index.usedOn("a1").mem], [0.25, 32]);
  assert.deepEqual(Object.fromEntries(index.byState), { TASK_RUNNING: 1, TASK_FINISHED: 1 });
  assert.ok(index.terminal.has("web.1"));
  index.onChange("web.1", finished, undefined);
  assert.deepEqual(Object.fromEntries(index.byState), { TASK_RUNNING: 1 });
  assert.deepEqual([...index.tasksOnAgent("a1")], ["web.2"]);
});
