import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type BackoffState, initialBackoff, recordFailure } from "./backoff.js";
import { countsAsInstance, reconcileApp, type TaskView } from "./reconcile.js";
import { TASK_STATES, type TaskState } from "./task-state.js";

function task(taskId: string, state: TaskState, createdAtMs = 0, agentId = "a1"): TaskView {
  return { taskId, state, agentId, createdAtMs };
}

const NOW = 100_000;
const ready: BackoffState = initialBackoff();

describe("reconcileApp", () => {
  it("launches the gap", () => {
    assert.deepEqual(
      reconcileApp({ instances: 3, tasks: [task("t1", "TASK_RUNNING")], backoff: ready, nowMs: NOW }),
      {
        launch: 2,
        kill: [],
      },
    );
  });

  it("does nothing when converged", () => {
    const tasks = [task("t1", "TASK_RUNNING"), task("t2", "TASK_FAILED"), task("t3", "TASK_KILLING")];
    assert.deepEqual(reconcileApp({ instances: 1, tasks, backoff: ready, nowMs: NOW }), {
      launch: 0,
      kill: [],
    });
  });

  it("does not count terminal or KILLING tasks, but counts UNREACHABLE", () => {
    const tasks = [
      task("t1", "TASK_UNREACHABLE"),
      task("t2", "TASK_KILLING"),
      task("t3", "TASK_LOST"),
      task("t4", "TASK_FINISHED"),
    ];
    assert.deepEqual(reconcileApp({ instances: 2, tasks, backoff: ready, nowMs: NOW }), {
      launch: 1,
      kill: [],
    });
  });

  it("waits for the backoff instead of launching", () => {
    const backoff = recordFailure(initialBackoff(), NOW);
    assert.deepEqual(reconcileApp({ instances: 2, tasks: [], backoff, nowMs: NOW + 10 }), {
      launch: 0,
      kill: [],
      waitingForBackoffUntilMs: NOW + 1000,
    });
    assert.deepEqual(reconcileApp({ instances: 2, tasks: [], backoff, nowMs: NOW + 1000 }), {
      launch: 2,
      kill: [],
    });
  });

  it("the backoff never blocks killing", () => {
    const backoff = recordFailure(initialBackoff(), NOW);
    const tasks = [task("t1", "TASK_RUNNING"), task("t2", "TASK_RUNNING", 5)];
    assert.deepEqual(reconcileApp({ instances: 1, tasks, backoff, nowMs: NOW }), { launch: 0, kill: ["t2"] });
  });

  it("kills STAGING first, then STARTING, then the newest, ties by taskId", () => {
    const tasks = [
      task("run-old", "TASK_RUNNING", 1),
      task("run-new-b", "TASK_RUNNING", 9),
      task("run-new-a", "TASK_RUNNING", 9),
      task("starting", "TASK_STARTING", 2),
      task("staging-old", "TASK_STAGING", 3),
      task("staging-new", "TASK_STAGING", 4),
    ];
    const plan = reconcileApp({ instances: 1, tasks, backoff: ready, nowMs: NOW });
    assert.deepEqual(plan, {
      launch: 0,
      kill: ["staging-new", "staging-old", "starting", "run-new-a", "run-new-b"],
    });
    const reversed = reconcileApp({ instances: 1, tasks: [...tasks].reverse(), backoff: ready, nowMs: NOW });
    assert.deepEqual(reversed, plan);
  });

  it("Marathon's order: UNREACHABLE before STAGING; killSelection OLDEST_FIRST kills the oldest of a condition first", () => {
    const tasks = [
      task("run-old", "TASK_RUNNING", 1),
      task("run-new", "TASK_RUNNING", 9),
      task("unreachable", "TASK_UNREACHABLE", 5),
      task("staging", "TASK_STAGING", 3),
    ];
    assert.deepEqual(reconcileApp({ instances: 1, tasks, backoff: ready, nowMs: NOW }).kill, [
      "unreachable",
      "staging",
      "run-new",
    ]);
    assert.deepEqual(
      reconcileApp({ instances: 1, tasks, backoff: ready, nowMs: NOW, killSelection: "OLDEST_FIRST" }).kill,
      ["unreachable", "staging", "run-old"],
    );
  });

  it("scales to zero", () => {
    const tasks = [task("t1", "TASK_RUNNING"), task("t2", "TASK_STAGING")];
    assert.deepEqual(reconcileApp({ instances: 0, tasks, backoff: ready, nowMs: NOW }).kill.sort(), [
      "t1",
      "t2",
    ]);
  });
});

const arbTask = fc.record({
  taskId: fc.uuid(),
  state: fc.constantFrom(...TASK_STATES),
  agentId: fc.constantFrom("a1", "a2", "a3"),
  createdAtMs: fc.integer({ min: 0, max: 1000 }),
});

describe("reconcileApp properties", () => {
  it("active - kills + launch == instances when the backoff allows", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 50 }),
        fc.uniqueArray(arbTask, { selector: (t) => t.taskId, maxLength: 60 }),
        (instances, tasks) => {
          const plan = reconcileApp({ instances, tasks, backoff: ready, nowMs: NOW });
          const active = tasks.filter((t) => countsAsInstance(t.state));
          assert.equal(active.length - plan.kill.length + plan.launch, instances);
          assert.ok(plan.launch === 0 || plan.kill.length === 0);
          assert.equal(plan.waitingForBackoffUntilMs, undefined);
          const activeIds = new Set(active.map((t) => t.taskId));
          assert.equal(new Set(plan.kill).size, plan.kill.length);
          for (const id of plan.kill) assert.ok(activeIds.has(id));
        },
      ),
    );
  });

  it("under backoff it never launches, and still converges downwards", () => {
    const backoff = recordFailure(initialBackoff(), NOW);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 50 }),
        fc.uniqueArray(arbTask, { selector: (t) => t.taskId, maxLength: 60 }),
        (instances, tasks) => {
          const plan = reconcileApp({ instances, tasks, backoff, nowMs: NOW });
          const active = tasks.filter((t) => countsAsInstance(t.state)).length;
          assert.equal(plan.launch, 0);
          assert.equal(plan.waitingForBackoffUntilMs !== undefined, active < instances);
          assert.equal(plan.kill.length, Math.max(0, active - instances));
        },
      ),
    );
  });
});
