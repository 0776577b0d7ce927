import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  deadlinePassed,
  deadlineReason,
  PROGRESS_DEADLINE_LABEL,
  type ProgressMark,
  progressDeadlineMs,
  trackProgress,
} from "./deadline.js";

describe("progress deadline", () => {
  it("reads the label: absent, malformed, zero or too large is no deadline", () => {
    assert.equal(progressDeadlineMs(undefined), undefined);
    assert.equal(progressDeadlineMs({}), undefined);
    assert.equal(progressDeadlineMs({ [PROGRESS_DEADLINE_LABEL]: "30" }), 30_000);
    assert.equal(progressDeadlineMs({ [PROGRESS_DEADLINE_LABEL]: "1.5" }), 1500);
    for (const bad of ["0", "0.5", "-5", "abc", "", "1e3", "90000"])
      assert.equal(progressDeadlineMs({ [PROGRESS_DEADLINE_LABEL]: bad }), undefined, bad);
  });

  it("starts the clock at the first observation and fails after the deadline without progress", () => {
    let mark = trackProgress({
      mark: undefined,
      counts: { newHealthy: 0, old: 4 },
      nowMs: 1000,
      held: false,
    });
    assert.deepEqual(mark, { newHealthy: 0, old: 4, sinceMs: 1000 });
    mark = trackProgress({ mark, counts: { newHealthy: 0, old: 4 }, nowMs: 5000, held: false });
    assert.equal(mark.sinceMs, 1000);
    assert.equal(deadlinePassed(mark, 10_000, 10_999), false);
    assert.equal(deadlinePassed(mark, 10_000, 11_000), true);
    assert.equal(deadlinePassed(mark, undefined, 1e12), false);
  });

  it("a new instance healthy and ready, or an old one stopped, is progress", () => {
    const m0: ProgressMark = { newHealthy: 1, old: 3, sinceMs: 0 };
    assert.equal(
      trackProgress({ mark: m0, counts: { newHealthy: 2, old: 3 }, nowMs: 9, held: false }).sinceMs,
      9,
    );
    assert.equal(
      trackProgress({ mark: m0, counts: { newHealthy: 1, old: 2 }, nowMs: 9, held: false }).sinceMs,
      9,
    );
  });

  it("losing ground and regaining it is not progress (a flapping health check never holds the clock)", () => {
    let mark: ProgressMark = { newHealthy: 2, old: 2, sinceMs: 0 };
    for (const [nh, old, t] of [
      [1, 2, 100],
      [2, 2, 200],
      [1, 3, 300],
      [2, 2, 400],
    ] as const) {
      mark = trackProgress({ mark, counts: { newHealthy: nh, old }, nowMs: t, held: false });
      assert.equal(mark.sinceMs, 0);
    }
    assert.equal(deadlinePassed(mark, 400, 400), true);
  });

  it("a canary waiting for promote holds the clock", () => {
    let mark: ProgressMark = { newHealthy: 1, old: 4, sinceMs: 0 };
    mark = trackProgress({ mark, counts: { newHealthy: 1, old: 4 }, nowMs: 60_000, held: true });
    assert.equal(deadlinePassed(mark, 10_000, 60_000), false);
    assert.equal(deadlinePassed(mark, 10_000, 70_000), true);
  });

  it("the reason says the deadline and what it waited for", () => {
    assert.equal(
      deadlineReason(5000, "/web: waiting for 1 of 4 new instances"),
      `no progress for 5 s (${PROGRESS_DEADLINE_LABEL}); it waited for: /web: waiting for 1 of 4 new instances`,
    );
  });
});
