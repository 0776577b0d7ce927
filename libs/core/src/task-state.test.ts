import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  isActive,
  isTerminal,
  shouldApplyStatus,
  TASK_STATES,
  type TaskState,
  TaskStateSchema,
} from "./task-state.js";

const TERMINAL: TaskState[] = ["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_GONE"];

/** Fold a sequence of updates the way the master applies them. */
function applyAll(start: TaskState | undefined, updates: readonly TaskState[]): (TaskState | undefined)[] {
  const trace: (TaskState | undefined)[] = [start];
  let cur = start;
  for (const next of updates) {
    if (shouldApplyStatus(cur, next)) cur = next;
    trace.push(cur);
  }
  return trace;
}

describe("task states", () => {
  it("classifies terminal and active states", () => {
    assert.deepEqual(
      TASK_STATES.filter((s) => isTerminal(s)),
      TERMINAL,
    );
    assert.equal(isTerminal("TASK_UNREACHABLE"), false);
    assert.equal(isActive("TASK_UNREACHABLE"), true);
    assert.equal(isActive("TASK_KILLING"), true);
    for (const s of TASK_STATES) assert.equal(isActive(s), !isTerminal(s));
  });

  it("TaskStateSchema accepts the states and rejects others", () => {
    assert.equal(TaskStateSchema.parse("TASK_RUNNING"), "TASK_RUNNING");
    assert.equal(TaskStateSchema.safeParse("RUNNING").success, false);
    assert.equal(TaskStateSchema.safeParse(3).success, false);
  });
});

describe("shouldApplyStatus", () => {
  it("applies anything to an unknown task", () => {
    for (const s of TASK_STATES) assert.equal(shouldApplyStatus(undefined, s), true);
  });

  it("ignores duplicates", () => {
    for (const s of TASK_STATES) assert.equal(shouldApplyStatus(s, s), false);
  });

  it("never replaces a terminal state, not even with another terminal state", () => {
    for (const cur of TERMINAL) {
      for (const next of TASK_STATES) assert.equal(shouldApplyStatus(cur, next), false, `${cur} -> ${next}`);
    }
  });

  it("moves forward through STAGING < STARTING < RUNNING < KILLING, never back", () => {
    assert.equal(shouldApplyStatus("TASK_STAGING", "TASK_STARTING"), true);
    assert.equal(shouldApplyStatus("TASK_STAGING", "TASK_RUNNING"), true);
    assert.equal(shouldApplyStatus("TASK_RUNNING", "TASK_KILLING"), true);
    assert.equal(shouldApplyStatus("TASK_RUNNING", "TASK_STARTING"), false);
    assert.equal(shouldApplyStatus("TASK_RUNNING", "TASK_STAGING"), false);
    assert.equal(shouldApplyStatus("TASK_KILLING", "TASK_RUNNING"), false);
  });

  it("a terminal update ends any non-terminal state", () => {
    for (const cur of TASK_STATES.filter((s) => !isTerminal(s))) {
      for (const next of TERMINAL) assert.equal(shouldApplyStatus(cur, next), true, `${cur} -> ${next}`);
    }
  });

  it("UNREACHABLE: reachable from any active state; RUNNING or KILLING when the agent comes back", () => {
    assert.equal(shouldApplyStatus("TASK_RUNNING", "TASK_UNREACHABLE"), true);
    assert.equal(shouldApplyStatus("TASK_KILLING", "TASK_UNREACHABLE"), true);
    assert.equal(shouldApplyStatus("TASK_UNREACHABLE", "TASK_RUNNING"), true);
    assert.equal(shouldApplyStatus("TASK_UNREACHABLE", "TASK_KILLING"), true);
    assert.equal(shouldApplyStatus("TASK_UNREACHABLE", "TASK_STAGING"), false);
    assert.equal(shouldApplyStatus("TASK_UNREACHABLE", "TASK_STARTING"), false);
    assert.equal(shouldApplyStatus("TASK_UNREACHABLE", "TASK_LOST"), true);
  });

  it("a reordered, duplicated stream converges on the terminal state", () => {
    const trace = applyAll(undefined, [
      "TASK_RUNNING",
      "TASK_STAGING",
      "TASK_FAILED",
      "TASK_RUNNING",
      "TASK_STARTING",
      "TASK_FAILED",
    ]);
    assert.equal(trace.at(-1), "TASK_FAILED");
    assert.deepEqual(trace.slice(0, 4), [undefined, "TASK_RUNNING", "TASK_RUNNING", "TASK_FAILED"]);
  });

  it("property: once terminal, a task stays in that exact state under any sequence of updates", () => {
    const state = fc.constantFrom(...TASK_STATES);
    fc.assert(
      fc.property(
        fc.option(state, { nil: undefined }),
        fc.array(state, { maxLength: 40 }),
        (start, updates) => {
          const trace = applyAll(start, updates);
          const firstTerminal = trace.findIndex((s) => s !== undefined && isTerminal(s));
          if (firstTerminal === -1) return;
          for (const s of trace.slice(firstTerminal)) assert.equal(s, trace[firstTerminal]);
        },
      ),
    );
  });

  it("property: applying the same update twice changes nothing the second time", () => {
    const state = fc.constantFrom(...TASK_STATES);
    fc.assert(
      fc.property(fc.option(state, { nil: undefined }), state, (cur, next) => {
        const after = shouldApplyStatus(cur, next) ? next : cur;
        assert.equal(shouldApplyStatus(after, next), false);
      }),
    );
  });
});
