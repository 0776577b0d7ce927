/** Task health as the CLI shows it: the HEALTH column, the --json fields, and Marathon's app counts. */
import type { ReadinessResult, TaskHealth } from "@drover/core";
import { fromWireHealth, fromWireReadiness, type Task } from "@drover/proto";

/** The health fields of `task list --json`: absent when the task has no checks (or no answer yet). */
export function taskHealthJson(t: Task): {
  health?: TaskHealth;
  lastFailureCause?: string;
  reason?: string;
  readiness?: ReadinessResult[];
} {
  const s = t.status;
  if (!s) return {};
  const health = s.health ? fromWireHealth(s.health) : undefined;
  return {
    ...(health ? { health } : {}),
    ...(health?.lastFailureCause ? { lastFailureCause: health.lastFailureCause } : {}),
    ...(s.reason ? { reason: s.reason } : {}),
    ...(s.readiness.length > 0 ? { readiness: fromWireReadiness(s.readiness) } : {}),
  };
}

/** The HEALTH column: healthy, unhealthy, or "-" (no checks, or none has answered yet). */
export function healthColumn(t: Task): string {
  const h = t.status?.health;
  if (!h) return "-";
  return h.healthy ? "healthy" : "unhealthy";
}

/**
 * Marathon's AppInfo counts of an app's active tasks (`tasksHealthy`, `tasksUnhealthy`): tasks
 * whose checks all pass, tasks with a failing check; a task without an answer yet counts in neither.
 * `page` reads the app's tasks a page at a time.
 */
export async function healthCounts(
  page: (pageToken: string) => Promise<{ tasks: Task[]; nextPageToken: string }>,
): Promise<{ tasksHealthy: number; tasksUnhealthy: number }> {
  let tasksHealthy = 0;
  let tasksUnhealthy = 0;
  let pageToken = "";
  do {
    const res = await page(pageToken);
    for (const t of res.tasks) {
      const h = t.status?.health;
      if (!h) continue;
      if (h.healthy) tasksHealthy++;
      else tasksUnhealthy++;
    }
    pageToken = res.nextPageToken;
  } while (pageToken !== "");
  return { tasksHealthy, tasksUnhealthy };
}
