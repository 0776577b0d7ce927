import { z } from "zod";

export const TASK_STATES = [
  "TASK_STAGING",
  "TASK_STARTING",
  "TASK_RUNNING",
  "TASK_KILLING",
  "TASK_FINISHED",
  "TASK_FAILED",
  "TASK_KILLED",
  "TASK_LOST",
  "TASK_UNREACHABLE",
  "TASK_GONE",
] as const;

export type TaskState = (typeof TASK_STATES)[number];

export const TaskStateSchema = z.enum(TASK_STATES);

const TERMINAL: ReadonlySet<TaskState> = new Set<TaskState>([
  "TASK_FINISHED",
  "TASK_FAILED",
  "TASK_KILLED",
  "TASK_LOST",
  "TASK_GONE",
]);

/** FINISHED, FAILED, KILLED, LOST and GONE are terminal. UNREACHABLE is not: the agent may come back. */
export function isTerminal(s: TaskState): boolean {
  return TERMINAL.has(s);
}

/** A task that still holds (or may hold) resources on its agent. */
export function isActive(s: TaskState): boolean {
  return !isTerminal(s);
}

/** Progress order of the ordinary non-terminal states. UNREACHABLE is outside this order. */
const RANK: Partial<Record<TaskState, number>> = {
  TASK_STAGING: 0,
  TASK_STARTING: 1,
  TASK_RUNNING: 2,
  TASK_KILLING: 3,
};

/**
 * Decide whether a status update is applied to a task currently in `current` (undefined: unknown task).
 * Updates are delivered at least once and may be duplicated or reordered, so the decision must be
 * idempotent and monotonic:
 * - a terminal state is final: nothing replaces it (not even another terminal state);
 * - a duplicate (same state) is ignored;
 * - a terminal update always applies to a non-terminal task;
 * - any non-terminal task may become UNREACHABLE (its agent is partitioned);
 * - from UNREACHABLE only RUNNING or KILLING apply (the agent came back with the task still alive);
 *   a stale STAGING/STARTING is ignored;
 * - otherwise STAGING < STARTING < RUNNING < KILLING and a lower rank never replaces a higher one.
 */
export function shouldApplyStatus(current: TaskState | undefined, next: TaskState): boolean {
  if (current === undefined) return true;
  if (isTerminal(current)) return false;
  if (current === next) return false;
  if (isTerminal(next)) return true;
  if (next === "TASK_UNREACHABLE") return true;
  if (current === "TASK_UNREACHABLE") return next === "TASK_RUNNING" || next === "TASK_KILLING";
  const from = RANK[current] ?? 0;
  const to = RANK[next] ?? 0;
  return to > from;
}
