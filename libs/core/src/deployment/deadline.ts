/**
 * The progress deadline of a deployment (a Drover extension; Marathon has none): a deployment that
 * makes no progress for the app's `DROVER_PROGRESS_DEADLINE_SECONDS` label fails and is rolled back
 * to the previous definition. Off when the label is absent (Marathon's behaviour: it waits forever).
 *
 * Progress is what moves the upgrade on: a new instance became healthy and ready (`newHealthy`
 * rose) or an old one stopped (`old` fell). Nothing else counts: a task that starts and dies, a
 * health check that flips, a launch held by the backoff. A canary phase waiting for promote with its
 * canaries healthy waits for a person, not for the cluster: the clock is held there.
 *
 * Pure: the caller keeps the mark between calls and passes the time.
 */

/** The label (on the app) that sets a deployment's progress deadline in seconds. */
export const PROGRESS_DEADLINE_LABEL = "DROVER_PROGRESS_DEADLINE_SECONDS";

/** The most a deadline may be (a day); a larger or malformed label is ignored (no deadline). */
export const MAX_PROGRESS_DEADLINE_SECONDS = 86_400;

/** The deadline in ms from an app's labels, or undefined (none, malformed, not positive). */
export function progressDeadlineMs(labels: Readonly<Record<string, string>> | undefined): number | undefined {
  const raw = labels?.[PROGRESS_DEADLINE_LABEL];
  if (raw === undefined || !/^\s*\d+(\.\d+)?\s*$/.test(raw)) return undefined;
  const s = Number(raw);
  if (!(s >= 1) || s > MAX_PROGRESS_DEADLINE_SECONDS) return undefined;
  return Math.round(s * 1000);
}

/** What the last progress looked like, and when it was made. */
export interface ProgressMark {
  newHealthy: number;
  old: number;
  sinceMs: number;
}

export interface ProgressInput {
  /** The mark of the previous call (undefined on the first: the clock starts now). */
  mark: ProgressMark | undefined;
  counts: { newHealthy: number; old: number };
  nowMs: number;
  /** Waiting for a person (a canary with its canaries healthy): the clock does not run. */
  held: boolean;
}

/**
 * The mark after this observation: moved to now when progress was made (or the clock is held),
 * else kept (with the counts' lows and highs, so a task that becomes healthy, flips back and heals
 * again counts once).
 */
export function trackProgress(input: ProgressInput): ProgressMark {
  const { mark, counts, nowMs, held } = input;
  if (!mark || held) return { newHealthy: counts.newHealthy, old: counts.old, sinceMs: nowMs };
  const progressed = counts.newHealthy > mark.newHealthy || counts.old < mark.old;
  if (progressed) return { newHealthy: counts.newHealthy, old: counts.old, sinceMs: nowMs };
  return mark;
}

/** Whether the deadline passed: no progress for `deadlineMs` since the mark (never without one). */
export function deadlinePassed(mark: ProgressMark, deadlineMs: number | undefined, nowMs: number): boolean {
  return deadlineMs !== undefined && nowMs - mark.sinceMs >= deadlineMs;
}

/** The reason kept on a deployment failed by its deadline: the deadline and what it waited for. */
export function deadlineReason(deadlineMs: number, waitingFor: string): string {
  const what = waitingFor.trim() || "progress";
  return `no progress for ${deadlineMs / 1000} s (${PROGRESS_DEADLINE_LABEL}); it waited for: ${what}`.slice(
    0,
    2000,
  );
}
