import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type BackoffState, initialBackoff, recordFailure } from "./backoff.js";
import type { UnreachableStrategy } from "./marathon/types.js";
import {
  cameBackReplaced,
  countsAsInstance,
  reconcileApp,
  type TaskView,
  unreachablePhase,
} from "./reconcile.js";
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
        expunge: [],
      },
    );
  });

  it("does nothing when converged", () => {
    const tasks = [task("t1", "TASK_RUNNING"), task("t2", "TASK_FAILED"), task("t3", "TASK_KILLING")];
    assert.deepEqual(reconcileApp({ instances: 1, tasks, backoff: ready, nowMs: NOW }), {
      launch: 0,
      kill: [],
      expunge: [],
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
      expunge: [],
    });
  });

  it("waits for the backoff instead of launching", () => {
    const backoff = recordFailure(initialBackoff(), NOW);
    assert.deepEqual(reconcileApp({ instances: 2, tasks: [], backoff, nowMs: NOW + 10 }), {
      launch: 0,
      kill: [],
      expunge: [],
      waitingForBackoffUntilMs: NOW + 1000,
    });
    assert.deepEqual(reconcileApp({ instances: 2, tasks: [], backoff, nowMs: NOW + 1000 }), {
      launch: 2,
      kill: [],
      expunge: [],
    });
  });

  it("the backoff never blocks killing", () => {
    const backoff = recordFailure(initialBackoff(), NOW);
    const tasks = [task("t1", "TASK_RUNNING"), task("t2", "TASK_RUNNING", 5)];
    assert.deepEqual(reconcileApp({ instances: 1, tasks, backoff, nowMs: NOW }), {
      launch: 0,
      kill: ["t2"],
      expunge: [],
    });
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
      expunge: [],
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

/** An unreachable task, unreachable since `sinceMs`. */
function away(taskId: string, sinceMs: number, createdAtMs = 0): TaskView {
  return { ...task(taskId, "TASK_UNREACHABLE", createdAtMs), unreachableSinceMs: sinceMs };
}

const SEC = 1000;

describe("reconcileApp: unreachableStrategy (Marathon's)", () => {
  it("default {0, 0}: an unreachable task is replaced and expunged at once", () => {
    const tasks = [task("t1", "TASK_RUNNING"), away("t2", NOW)];
    const strategy = { inactiveAfterSeconds: 0, expungeAfterSeconds: 0 };
    assert.deepEqual(
      reconcileApp({ instances: 2, tasks, backoff: ready, nowMs: NOW, unreachableStrategy: strategy }),
      { launch: 1, kill: [], expunge: ["t2"] },
    );
  });

  it("counts until inactiveAfterSeconds, is replaced then, and expunged after expungeAfterSeconds", () => {
    const since = NOW;
    const tasks = [task("t1", "TASK_RUNNING"), away("t2", since)];
    const unreachableStrategy = { inactiveAfterSeconds: 5, expungeAfterSeconds: 30 };
    const at = (nowMs: number) =>
      reconcileApp({ instances: 2, tasks, backoff: ready, nowMs, unreachableStrategy });
    assert.deepEqual(at(since + 4_999), { launch: 0, kill: [], expunge: [], recheckAtMs: since + 5 * SEC });
    assert.deepEqual(at(since + 5 * SEC), {
      launch: 1,
      kill: [],
      expunge: [],
      recheckAtMs: since + 30 * SEC,
    });
    assert.deepEqual(at(since + 30 * SEC), { launch: 1, kill: [], expunge: ["t2"] });
  });

  it("an inactive unreachable task is not killed by a scale-down (it is already replaced), a counted one first", () => {
    const tasks = [
      task("run", "TASK_RUNNING", 1),
      away("counted", NOW - 1 * SEC, 2),
      away("inactive", NOW - 10 * SEC, 3),
    ];
    const plan = reconcileApp({
      instances: 1,
      tasks,
      backoff: ready,
      nowMs: NOW,
      unreachableStrategy: { inactiveAfterSeconds: 5, expungeAfterSeconds: 60 },
    });
    assert.deepEqual(plan, { launch: 0, kill: ["counted"], expunge: [], recheckAtMs: NOW + 4 * SEC });
  });

  it('"disabled" (and no strategy): never replaced, never expunged, nothing to recheck', () => {
    const tasks = [task("t1", "TASK_RUNNING"), away("t2", 0)];
    const yearLater = 365 * 86_400 * SEC;
    for (const unreachableStrategy of ["disabled" as const, undefined])
      assert.deepEqual(
        reconcileApp({ instances: 2, tasks, backoff: ready, nowMs: yearLater, unreachableStrategy }),
        { launch: 0, kill: [], expunge: [] },
      );
  });

  it("a task that came back after it was replaced is killed, not its replacement (whatever killSelection)", () => {
    const tasks = [
      { ...task("back", "TASK_RUNNING", 1), replaced: true },
      task("other", "TASK_RUNNING", 2),
      task("replacement", "TASK_STAGING", 9),
    ];
    for (const killSelection of ["YOUNGEST_FIRST", "OLDEST_FIRST"] as const)
      assert.deepEqual(
        reconcileApp({
          instances: 2,
          tasks,
          backoff: ready,
          nowMs: NOW,
          killSelection,
          unreachableStrategy: { inactiveAfterSeconds: 0, expungeAfterSeconds: 300 },
        }).kill,
        ["back"],
      );
  });

  it("a task that came back before it was replaced is kept, and nothing is launched", () => {
    const tasks = [task("back", "TASK_RUNNING", 1), task("other", "TASK_RUNNING", 2)];
    assert.deepEqual(
      reconcileApp({
        instances: 2,
        tasks,
        backoff: ready,
        nowMs: NOW,
        unreachableStrategy: { inactiveAfterSeconds: 300, expungeAfterSeconds: 600 },
      }),
      { launch: 0, kill: [], expunge: [] },
    );
  });

  it("cameBackReplaced: once inactive by the time it is back; never for disabled", () => {
    const s = { inactiveAfterSeconds: 5, expungeAfterSeconds: 10 };
    assert.equal(cameBackReplaced(NOW, NOW + 4_999, s), false);
    assert.equal(cameBackReplaced(NOW, NOW + 5_000, s), true);
    assert.equal(cameBackReplaced(NOW, NOW + 60_000, s), true);
    assert.equal(cameBackReplaced(NOW, NOW + 60_000, "disabled"), false);
    assert.equal(cameBackReplaced(NOW, NOW, { inactiveAfterSeconds: 0, expungeAfterSeconds: 0 }), true);
  });
});

const arbStrategy: fc.Arbitrary<UnreachableStrategy | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.constant("disabled" as const),
  fc
    .tuple(fc.integer({ min: 0, max: 120 }), fc.integer({ min: 0, max: 120 }))
    .map(([a, b]) => ({ inactiveAfterSeconds: Math.min(a, b), expungeAfterSeconds: Math.max(a, b) })),
);

const arbTaskAway = fc.record({
  taskId: fc.uuid(),
  state: fc.constantFrom(...TASK_STATES, "TASK_UNREACHABLE", "TASK_UNREACHABLE"),
  agentId: fc.constantFrom("a1", "a2", "a3"),
  createdAtMs: fc.integer({ min: 0, max: 1000 }),
  unreachableSinceMs: fc.integer({ min: NOW - 200 * SEC, max: NOW }),
  replaced: fc.boolean(),
});

describe("reconcileApp unreachable properties", () => {
  const input = fc.tuple(
    fc.integer({ min: 0, max: 30 }),
    fc.uniqueArray(arbTaskAway, { selector: (t) => t.taskId, maxLength: 40 }),
    arbStrategy,
  );

  it("reachable tasks never exceed instances, nor all active ones instances + the inactive unreachable ones", () => {
    fc.assert(
      fc.property(input, ([instances, tasks, unreachableStrategy]) => {
        const plan = reconcileApp({ instances, tasks, backoff: ready, nowMs: NOW, unreachableStrategy });
        const gone = new Set([...plan.kill, ...plan.expunge]);
        const kept = tasks.filter((t) => countsAsInstance(t.state) && !gone.has(t.taskId));
        const reachable = kept.filter((t) => t.state !== "TASK_UNREACHABLE").length;
        const inactive = kept.filter(
          (t) =>
            t.state === "TASK_UNREACHABLE" &&
            unreachablePhase(t.unreachableSinceMs, unreachableStrategy, NOW).phase !== "counts",
        ).length;
        assert.ok(reachable + plan.launch <= instances, "reachable tasks never above instances");
        // Converges exactly: instances counted, plus the inactive ones waiting to be expunged.
        assert.equal(kept.length + plan.launch, instances + inactive);
      }),
    );
  });

  it("expunges exactly the unreachable tasks past expungeAfterSeconds, never one it kills, never with disabled", () => {
    fc.assert(
      fc.property(input, ([instances, tasks, unreachableStrategy]) => {
        const plan = reconcileApp({ instances, tasks, backoff: ready, nowMs: NOW, unreachableStrategy });
        const due = tasks
          .filter(
            (t) =>
              t.state === "TASK_UNREACHABLE" &&
              typeof unreachableStrategy === "object" &&
              NOW - t.unreachableSinceMs >= unreachableStrategy.expungeAfterSeconds * SEC,
          )
          .map((t) => t.taskId)
          .sort();
        assert.deepEqual(plan.expunge, due);
        for (const id of plan.kill) assert.ok(!plan.expunge.includes(id));
        if (unreachableStrategy === "disabled" || unreachableStrategy === undefined) {
          assert.deepEqual(plan.expunge, []);
          assert.equal(plan.recheckAtMs, undefined);
        }
        if (plan.recheckAtMs !== undefined) assert.ok(plan.recheckAtMs > NOW);
      }),
    );
  });

  it("disabled: an unreachable task always counts, so it is never replaced", () => {
    fc.assert(
      fc.property(input, ([instances, tasks]) => {
        const plan = reconcileApp({
          instances,
          tasks,
          backoff: ready,
          nowMs: NOW + 365 * 86_400 * SEC,
          unreachableStrategy: "disabled",
        });
        const active = tasks.filter((t) => countsAsInstance(t.state)).length;
        assert.equal(plan.launch, Math.max(0, instances - active));
      }),
    );
  });

  it("independent of the order of the tasks", () => {
    fc.assert(
      fc.property(input, ([instances, tasks, unreachableStrategy]) => {
        const a = reconcileApp({ instances, tasks, backoff: ready, nowMs: NOW, unreachableStrategy });
        const b = reconcileApp({
          instances,
          tasks: [...tasks].reverse(),
          backoff: ready,
          nowMs: NOW,
          unreachableStrategy,
        });
        assert.deepEqual(a, b);
      }),
    );
  });
});
