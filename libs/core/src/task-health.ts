/**
 * A task's health as its status carries it (TaskStatus.health, .readiness): the summary of its
 * checks' states, and whether a status update that keeps the task's state but changes its health
 * or readiness is applied. Pure.
 *
 * The agent runs a task's checks (runtime's HealthChecker) and sends a TASK_RUNNING update when
 * the task's health or readiness changes; the master stores it and forwards it to the framework.
 */
import type { ReadinessResult, TaskHealth, TaskStatus } from "./events/task.js";
import type { HealthState, ReadinessState } from "./health.js";
import { isTerminal, shouldApplyStatus } from "./task-state.js";

/** Reason of a TASK_RUNNING update sent because the task's health or readiness changed (Mesos's name). */
export const REASON_HEALTH_UPDATED = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED";
/** Reason of the terminal update of a task killed because a health check failed too often. */
export const REASON_UNHEALTHY = "REASON_TASK_UNHEALTHY_CHECK_STATUS";

/**
 * The task's health from its checks' states, or undefined while it is unknown: no check has counted
 * a result yet, or some have not and none has failed (Marathon's AppInfo counts such a task neither
 * healthy nor unhealthy). Healthy ⇔ every check alive. The other fields are those of the check that
 * decides: the most recent failure (a failing check), the most recent success otherwise;
 * consecutiveFailures is the largest count of any check.
 */
export function taskHealthOf(states: readonly HealthState[]): TaskHealth | undefined {
  if (states.length === 0) return undefined;
  const counted = (s: HealthState) => s.lastSuccessMs !== undefined || s.lastFailureMs !== undefined;
  const failing = states.filter((s) => !s.alive && s.lastFailureMs !== undefined);
  if (failing.length === 0 && !states.every(counted)) return undefined;
  const healthy = states.every((s) => s.alive);
  const max = (xs: (number | undefined)[]) => {
    const ns = xs.filter((x): x is number => x !== undefined);
    return ns.length > 0 ? Math.max(...ns) : undefined;
  };
  const lastSuccessMs = max(states.map((s) => s.lastSuccessMs));
  const lastFailureMs = max(states.map((s) => s.lastFailureMs));
  const latestFailure = states
    .filter((s) => s.lastFailureMs !== undefined)
    .reduce<HealthState | undefined>(
      (a, s) => (a && (a.lastFailureMs ?? 0) >= (s.lastFailureMs ?? 0) ? a : s),
      undefined,
    );
  return {
    healthy,
    ...(lastSuccessMs !== undefined ? { lastSuccessMs } : {}),
    ...(lastFailureMs !== undefined ? { lastFailureMs } : {}),
    consecutiveFailures: Math.max(...states.map((s) => s.consecutiveFailures)),
    ...(latestFailure?.lastFailureCause !== undefined
      ? { lastFailureCause: latestFailure.lastFailureCause }
      : {}),
  };
}

/**
 * The readiness results a status carries: one per readiness check that has answered. The last
 * answer is kept (as JSON `{status, contentType, body}`) only when the check asks for it.
 */
export function readinessResultsOf(states: readonly ReadinessState[]): ReadinessResult[] {
  return states.flatMap((s) =>
    s.result
      ? [
          {
            name: s.result.name,
            ready: s.result.ready,
            checkedAtMs: s.result.checkedAtMs,
            ...(s.result.lastResponse ? { lastResponse: JSON.stringify(s.result.lastResponse) } : {}),
          },
        ]
      : [],
  );
}

/** Same health (undefined = unknown; every field compared). */
export function sameHealth(a: TaskHealth | undefined, b: TaskHealth | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    a.healthy === b.healthy &&
    a.lastSuccessMs === b.lastSuccessMs &&
    a.lastFailureMs === b.lastFailureMs &&
    a.consecutiveFailures === b.consecutiveFailures &&
    a.lastFailureCause === b.lastFailureCause
  );
}

/** Same readiness: the same checks, each as ready and checked at the same time. */
export function sameReadiness(
  a: readonly ReadinessResult[] | undefined,
  b: readonly ReadinessResult[] | undefined,
): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return (
    x.length === y.length &&
    x.every((r, i) => {
      const o = y[i];
      return (
        o !== undefined &&
        o.name === r.name &&
        o.ready === r.ready &&
        o.checkedAtMs === r.checkedAtMs &&
        o.lastResponse === r.lastResponse
      );
    })
  );
}

/**
 * Whether a status update is applied to a task whose stored status is `current` (undefined: none).
 * Different states: as shouldApplyStatus (state order; a terminal state is final). The same
 * non-terminal state: applied only as a health or readiness update, i.e. when `next` carries
 * health or readiness and is newer than the stored status (a larger timestampMs: the agent stamps
 * the updates of one task in increasing order and sends one only when the health or readiness
 * changed). A duplicate (redelivery, the agent's report at re-registration) and an update
 * overtaken by a newer one are ignored, so after any reordering the stored health is that of the
 * newest update. (Applying only updates that differ from the stored one would not converge: of
 * A, B, A' sent in that order and received as A, A', B, the A' equal to A would be dropped and
 * the stale B kept.)
 */
export function shouldApplyTaskStatus(current: TaskStatus | undefined, next: TaskStatus): boolean {
  if (current === undefined || current.state !== next.state)
    return shouldApplyStatus(current?.state, next.state);
  if (isTerminal(current.state)) return false;
  if (next.health === undefined && next.readiness === undefined) return false;
  return next.timestampMs > current.timestampMs;
}
