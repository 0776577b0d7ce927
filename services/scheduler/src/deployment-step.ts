/**
 * How the scheduler feeds core's rollingStep (libs/core/src/deployment/rolling.ts) from its task
 * view, and how it words what a step waits for. Pure.
 *
 * A task is new iff it runs the app's current configuration: its appVersion (the app's version when
 * it was launched) is at or after the app's lastConfigChangeAt (ISO strings of one format compare
 * as text), so a scale-only change restarts nothing. Healthy: RUNNING and every health check alive
 * (RUNNING is enough without health checks); ready: every readiness check passed (true without).
 */
import {
  type AppRecord,
  appVersionOf,
  type DeploymentTask,
  isActive,
  progressDeadlineMs,
  type RollingStep,
} from "@drover/core";
import type { TaskEntry } from "./framework.js";

export function isNewTask(app: AppRecord, t: Pick<TaskEntry, "appVersion">): boolean {
  return t.appVersion !== undefined && t.appVersion >= appVersionOf(app).versionInfo.lastConfigChangeAt;
}

export function isHealthy(app: AppRecord, t: TaskEntry): boolean {
  if (t.state !== "TASK_RUNNING") return false;
  return app.spec.healthChecks.length === 0 || t.health?.healthy === true;
}

export function isReady(app: AppRecord, t: TaskEntry): boolean {
  const checks = app.spec.readinessChecks;
  if (checks.length === 0) return true;
  const results = t.readiness ?? [];
  return results.length >= checks.length && results.every((r) => r.ready);
}

/**
 * A rollback's task launched in [from, until) runs the definition it goes back to: it counts as new
 * (DeploymentApp.sameConfig).
 */
export function runsSameConfig(
  t: Pick<TaskEntry, "appVersion">,
  same: { from: string; until: string } | undefined,
): boolean {
  return (
    same !== undefined && t.appVersion !== undefined && t.appVersion >= same.from && t.appVersion < same.until
  );
}

export function deploymentTasks(
  app: AppRecord,
  tasks: readonly TaskEntry[],
  sameConfig?: { from: string; until: string },
): DeploymentTask[] {
  return tasks.map((t) => {
    const isNew = isNewTask(app, t) || runsSameConfig(t, sameConfig);
    return {
      taskId: t.taskId,
      isNew,
      state: t.state,
      healthy: isNew ? isHealthy(app, t) : isOldHealthy(t),
      ready: isReady(app, t),
      killRequested: t.killRequested,
      createdAtMs: t.createdAtMs,
    };
  });
}

/**
 * An old task is judged by the checks of the definition it runs, not by the new one's: RUNNING and
 * no health check of it failing (a task launched without health checks reports no health). Judged
 * by the new definition's checks, every old task of an update that adds a health check would count
 * as unhealthy and be killed at once, below the minimum health capacity.
 */
export function isOldHealthy(t: Pick<TaskEntry, "state" | "health">): boolean {
  return t.state === "TASK_RUNNING" && t.health?.healthy !== false;
}

export interface StepContext {
  /** Launches held back by the app's crash-loop backoff until then. */
  backoffUntilMs?: number;
  /** Why the instances waiting to be launched were not placed on the last offers. */
  unplaced?: string;
  /** The last health failure of a new instance seen (it may be gone since). */
  lastFailure?: { taskId: string; cause: string };
}

/**
 * rollingStep's words with what holds the new instances: the failing health check of one (the
 * oldest), how many are not running yet, the backoff, or why offers did not fit. No counter that
 * moves on every check, so the words (and the writes) change only when the situation does.
 */
export function explainStep(
  app: AppRecord,
  tasks: readonly TaskEntry[],
  step: RollingStep,
  ctx: StepContext,
): string {
  if (step.done) return "";
  const parts: string[] = [`${app.spec.id}: ${step.waitingFor}`];
  const fresh = tasks
    .filter((t) => isActive(t.state) && !t.killRequested && isNewTask(app, t))
    .sort((a, b) => a.createdAtMs - b.createdAtMs || (a.taskId < b.taskId ? -1 : 1));
  const notRunning = fresh.filter((t) => t.state !== "TASK_RUNNING").length;
  if (notRunning > 0) parts.push(`${notRunning} not running yet`);
  const failing = fresh.find((t) => t.state === "TASK_RUNNING" && t.health?.healthy === false);
  if (failing)
    parts.push(`${failing.taskId} health check failing: ${failing.health?.lastFailureCause ?? "unhealthy"}`);
  else {
    const unknown = fresh.filter((t) => t.state === "TASK_RUNNING" && !isHealthy(app, t)).length;
    if (unknown > 0) parts.push(`${unknown} running without a health result yet`);
    const unready = fresh.filter((t) => isHealthy(app, t) && !isReady(app, t)).length;
    if (unready > 0) parts.push(`${unready} healthy but not ready`);
    if (ctx.lastFailure && step.counts.newHealthy < step.counts.new + step.launch)
      parts.push(
        `last health failure of a new instance (${ctx.lastFailure.taskId}): ${ctx.lastFailure.cause}`,
      );
  }
  if (ctx.backoffUntilMs !== undefined)
    parts.push(`launches held by crash-loop backoff until ${new Date(ctx.backoffUntilMs).toISOString()}`);
  if (ctx.unplaced) parts.push(`not placed: ${ctx.unplaced}`);
  return parts.join("; ");
}

/** The app's progress deadline (label DROVER_PROGRESS_DEADLINE_SECONDS) as a StepReport field. */
export function deadlineOf(app: AppRecord): { progressDeadlineMs?: number } {
  const ms = progressDeadlineMs(app.spec.labels);
  return ms === undefined ? {} : { progressDeadlineMs: ms };
}
