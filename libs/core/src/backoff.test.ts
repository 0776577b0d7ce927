import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type BackoffPolicy,
  backoffDelayMs,
  canLaunch,
  DEFAULT_BACKOFF,
  initialBackoff,
  recordFailure,
  recordHealthy,
} from "./backoff.js";

describe("backoff", () => {
  it("has the documented defaults", () => {
    assert.deepEqual(DEFAULT_BACKOFF, { initialMs: 1000, factor: 2, maxMs: 60000, resetAfterMs: 30000 });
    assert.deepEqual(initialBackoff(), { failures: 0, delayUntilMs: 0, lastFailureMs: 0 });
    assert.equal(canLaunch(initialBackoff(), 0), true);
  });

  it("doubles the delay on each failure up to maxMs", () => {
    let s = initialBackoff();
    const delays: number[] = [];
    let now = 1_000_000;
    for (let i = 0; i < 9; i++) {
      s = recordFailure(s, now);
      delays.push(s.delayUntilMs - now);
      assert.equal(s.failures, i + 1);
      assert.equal(canLaunch(s, now), false);
      assert.equal(canLaunch(s, s.delayUntilMs - 1), false);
      assert.equal(canLaunch(s, s.delayUntilMs), true);
      now = s.delayUntilMs + 500; // relaunched and crashed again half a second later
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  });

  it("restarts the count when the previous failure is older than resetAfterMs", () => {
    const s1 = recordFailure(recordFailure(initialBackoff(), 10_000), 10_100);
    assert.equal(s1.failures, 2);
    const s2 = recordFailure(s1, s1.delayUntilMs + 30_001);
    assert.equal(s2.failures, 1);
    assert.equal(s2.delayUntilMs, s1.delayUntilMs + 30_001 + 1000);
    const s3 = recordFailure(s1, s1.delayUntilMs + 30_000);
    assert.equal(s3.failures, 3);
  });

  it("tolerates out-of-order failures: nothing moves backwards", () => {
    const s1 = recordFailure(initialBackoff(), 50_000);
    const s2 = recordFailure(s1, 40_000);
    assert.equal(s2.lastFailureMs, 50_000);
    assert.ok(s2.delayUntilMs >= s1.delayUntilMs);
  });

  it("resets after a task has been running for resetAfterMs", () => {
    const failed = recordFailure(recordFailure(initialBackoff(), 1000), 2000);
    assert.equal(recordHealthy(failed, 10_000, 39_999), failed);
    assert.deepEqual(recordHealthy(failed, 10_000, 40_000), initialBackoff());
    const fresh = initialBackoff();
    assert.equal(recordHealthy(fresh, 0, 1_000_000), fresh);
  });

  it("is not reset by an instance that was already running when another one failed", () => {
    const failed = recordFailure(recordFailure(initialBackoff(), 50_000), 51_000);
    // Running since before the failures, for far longer than resetAfterMs: the failing instance is not healed.
    assert.equal(recordHealthy(failed, 1_000, 200_000), failed);
    // One that started running after the last failure and kept running does reset it.
    assert.deepEqual(recordHealthy(failed, 52_000, 82_000), initialBackoff());
  });

  it("uses a custom policy and survives a huge failure count", () => {
    const p: BackoffPolicy = { initialMs: 100, factor: 3, maxMs: 5000, resetAfterMs: 1000 };
    assert.equal(backoffDelayMs(1, p), 100);
    assert.equal(backoffDelayMs(3, p), 900);
    assert.equal(backoffDelayMs(10, p), 5000);
    assert.equal(backoffDelayMs(100_000, p), 5000);
    assert.equal(backoffDelayMs(0, p), 0);
  });

  it("property: the delay is within [initialMs, maxMs] and grows with consecutive failures", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 1, maxLength: 30 }), (gaps) => {
        let s = initialBackoff();
        let now = 0;
        let prevDelay = 0;
        for (const gap of gaps) {
          now = Math.max(now, s.delayUntilMs) + gap;
          const prev = s;
          s = recordFailure(s, now);
          const delay = backoffDelayMs(s.failures);
          assert.ok(delay >= DEFAULT_BACKOFF.initialMs && delay <= DEFAULT_BACKOFF.maxMs);
          assert.ok(s.delayUntilMs >= now + delay);
          assert.ok(s.delayUntilMs >= prev.delayUntilMs);
          if (s.failures > 1) assert.ok(delay >= prevDelay);
          prevDelay = delay;
        }
      }),
    );
  });
});

it("a fractional factor (Marathon's default 1.15) still gives whole milliseconds", () => {
  const p = { initialMs: 1000, factor: 1.15, maxMs: 300_000, resetAfterMs: 30_000 };
  for (let k = 1; k < 60; k++) {
    const d = backoffDelayMs(k, p);
    assert.ok(Number.isInteger(d), `failure ${k}: ${d}`);
    assert.ok(d >= Math.min(p.maxMs, 1000 * 1.15 ** (k - 1)) && d <= p.maxMs);
  }
  assert.equal(backoffDelayMs(2, p), 1150);
  assert.equal(backoffDelayMs(3, p), 1323, "1322.5 rounded up");
});
