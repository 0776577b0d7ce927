/**
 * Crash-loop backoff per app. Pure: the time is always passed in; states are immutable values.
 */
export interface BackoffPolicy {
  initialMs: number;
  factor: number;
  maxMs: number;
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  initialMs: 1000,
  factor: 2,
  maxMs: 60000,
  resetAfterMs: 30000,
};

export interface BackoffState {
  /** Failures counted since the last reset. */
  failures: number;
  /** No new task of the app is launched before this time. */
  delayUntilMs: number;
  lastFailureMs: number;
}

export function initialBackoff(): BackoffState {
  return { failures: 0, delayUntilMs: 0, lastFailureMs: 0 };
}

/**
 * `min(maxMs, initialMs * factor^(failures-1))` in whole ms (rounded up: a factor of 1.15 makes
 * fractions, and times travel as integers), 0 when there is no failure.
 */
export function backoffDelayMs(failures: number, p: BackoffPolicy = DEFAULT_BACKOFF): number {
  if (failures <= 0) return 0;
  const delay = p.initialMs * p.factor ** (failures - 1);
  return Number.isFinite(delay) ? Math.ceil(Math.max(0, Math.min(p.maxMs, delay))) : Math.ceil(p.maxMs);
}

/**
 * A task of the app failed at `nowMs` (it did not finish successfully, or was killed behind our
 * back). If the previous failure is older than `resetAfterMs` the count restarts at 1. "Older" is
 * measured from when the previous failure stopped holding launches back (`max(lastFailureMs,
 * delayUntilMs)`): otherwise a delay longer than `resetAfterMs` would itself reset the count and
 * the delay could never grow to `maxMs`.
 * Tolerates out-of-order calls: neither `lastFailureMs` nor `delayUntilMs` ever moves backwards.
 */
export function recordFailure(
  s: BackoffState,
  nowMs: number,
  p: BackoffPolicy = DEFAULT_BACKOFF,
): BackoffState {
  const quietSince = Math.max(s.lastFailureMs, s.delayUntilMs);
  const stale = s.failures > 0 && nowMs - quietSince > p.resetAfterMs;
  const failures = stale ? 1 : s.failures + 1;
  return {
    failures,
    delayUntilMs: Math.max(s.delayUntilMs, nowMs + backoffDelayMs(failures, p)),
    lastFailureMs: Math.max(s.lastFailureMs, nowMs),
  };
}

/**
 * A task of the app has been RUNNING since `runningSinceMs`. Once it has run for `resetAfterMs`
 * the backoff resets, if it started running after the last failure: an instance that was already
 * running when another one failed says nothing about the failing one (three stable instances must
 * not reset the backoff of a fourth that keeps failing). Returns `s` itself when nothing changes,
 * so callers can skip a write.
 */
export function recordHealthy(
  s: BackoffState,
  runningSinceMs: number,
  nowMs: number,
  p: BackoffPolicy = DEFAULT_BACKOFF,
): BackoffState {
  if (s.failures === 0 && s.delayUntilMs === 0 && s.lastFailureMs === 0) return s;
  if (runningSinceMs < s.lastFailureMs) return s;
  return nowMs - runningSinceMs >= p.resetAfterMs ? initialBackoff() : s;
}

/** True when a new task of the app may be launched at `nowMs`. */
export function canLaunch(s: BackoffState, nowMs: number): boolean {
  return nowMs >= s.delayUntilMs;
}
