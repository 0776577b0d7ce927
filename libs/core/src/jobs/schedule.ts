/**
 * What a schedule does at `now`, from its persisted state, and what a concurrency policy does with
 * the job's active runs. Pure: the time is passed in.
 *
 * Exactly once: a schedule's `nextDueMs` is persisted in the transaction of the run it starts (or of
 * the record that it was skipped or missed), so a leader that takes over reads where its predecessor
 * stopped. A due time passed while no leader ran fires once if it is still within
 * `startingDeadlineSeconds`, otherwise it is recorded as missed; only the latest due time may fire,
 * never two at once.
 */
import { nextCronAfter } from "./cron.js";
import type { ConcurrencyPolicy, ScheduleSpec } from "./spec.js";

/** A schedule's persisted progress. */
export interface ScheduleProgress {
  /** The next due time (ms) not handled yet; undefined: the expression never fires again. */
  nextDueMs?: number;
}

export type ScheduleDecision =
  /** Nothing due: look again at `atMs` (undefined: never). */
  | { kind: "wait"; atMs?: number }
  /** Start a run for `dueMs` (the latest due time, within the deadline); `missed` earlier ones were passed. */
  | { kind: "fire"; dueMs: number; missed: number; nextDueMs?: number }
  /** Every due time up to now is past its starting deadline: none fires. */
  | { kind: "missed"; missed: number; firstMs: number; lastMs: number; nextDueMs?: number };

/** At most this many passed due times are counted (a long gap counts as "at least"). */
export const MAX_COUNTED_MISSES = 1000;

/** The first due time of a schedule made (or changed) at `nowMs`. */
export function firstDue(s: Pick<ScheduleSpec, "cron" | "timezone">, nowMs: number): number | undefined {
  return nextCronAfter(s.cron, s.timezone, nowMs);
}

/** What `s` does at `nowMs` given its persisted progress. A disabled schedule only waits. */
export function decideSchedule(s: ScheduleSpec, p: ScheduleProgress, nowMs: number): ScheduleDecision {
  const due = p.nextDueMs;
  if (!s.enabled) return { kind: "wait" };
  if (due === undefined) return { kind: "wait" };
  if (nowMs < due) return { kind: "wait", atMs: due };
  const deadlineMs = s.startingDeadlineSeconds * 1000;
  // Due times before the window (now - deadline, now] are missed; the latest one in it fires.
  let missed = 0;
  let firstMissed: number | undefined;
  let lastMissed = due;
  let t: number | undefined = due;
  while (t !== undefined && t < nowMs - deadlineMs) {
    if (missed < MAX_COUNTED_MISSES) {
      missed++;
      firstMissed ??= t;
      lastMissed = t;
      t = nextCronAfter(s.cron, s.timezone, t);
    } else {
      // Counted enough: jump to the window.
      t = nextCronAfter(s.cron, s.timezone, nowMs - deadlineMs - 1);
    }
  }
  let fire: number | undefined;
  while (t !== undefined && t <= nowMs) {
    if (fire !== undefined) missed++;
    fire = t;
    t = nextCronAfter(s.cron, s.timezone, t);
  }
  const next = t !== undefined ? { nextDueMs: t } : {};
  if (fire !== undefined) return { kind: "fire", dueMs: fire, missed, ...next };
  return { kind: "missed", missed, firstMs: firstMissed ?? due, lastMs: lastMissed, ...next };
}

export type ConcurrencyDecision =
  | { start: true; stop: string[] }
  | { start: false; stop: []; reason: string };

/**
 * What a scheduled run does with the job's active runs: ALLOW starts next to them, FORBID skips
 * while any is active, REPLACE stops them (then starts). Manual runs are not subject to it
 * (Metronome's rule).
 */
export function decideConcurrency(
  policy: ConcurrencyPolicy,
  activeRunIds: readonly string[],
): ConcurrencyDecision {
  if (activeRunIds.length === 0 || policy === "ALLOW") return { start: true, stop: [] };
  if (policy === "FORBID")
    return { start: false, stop: [], reason: `FORBID: run ${activeRunIds.join(", ")} still active` };
  return { start: true, stop: [...activeRunIds] };
}
