/**
 * A job run's lifecycle (Metronome's JobRun: INITIAL → STARTING → ACTIVE → SUCCESS | FAILED, one task
 * at a time) and the job's bounded history. Pure: the time and the run's tasks are passed in.
 *
 * - A run without an active task launches one, unless a retry waits (`retryAtMs`).
 * - Its task ends: TASK_FINISHED is SUCCESS; anything else is a failure, retried under ON_FAILURE
 *   (after a backoff that doubles from 1 s up to `maxLaunchDelay`) while the deadline allows,
 *   FAILED otherwise.
 * - Past its deadline (`restart.activeDeadlineSeconds` after it was created) a run is FAILED and its
 *   task killed; so is a stopped run. A task whose run is no longer active is killed.
 */
import type { TaskState } from "../task-state.js";

export type RunStatus = "INITIAL" | "STARTING" | "ACTIVE" | "SUCCESS" | "FAILED";

/** What the lifecycle needs of a run. */
export interface RunFacts {
  createdAtMs: number;
  /** createdAt + restart.activeDeadlineSeconds; undefined: no deadline. */
  deadlineAtMs?: number;
  /** A retry waits until then (ON_FAILURE backoff). */
  retryAtMs?: number;
  /**
   * A scheduled run that has had no task by then is aborted (FAILED): its due time plus the
   * schedule's startingDeadlineSeconds (Metronome's JobRunExecutorActor).
   */
  startDeadlineAtMs?: number;
  /** Tasks it has had that ended (a started run is not subject to the starting deadline). */
  endedTasks?: number;
}

/** One of the run's tasks as the framework sees it now (active ones only). */
export interface RunTask {
  taskId: string;
  state: TaskState;
  killRequested: boolean;
}

export interface RunDecision {
  /** Launch one task now. */
  launch: boolean;
  /** Tasks to kill (a run past its deadline). */
  kill: string[];
  /** The run ends now, FAILED with this message. */
  fail?: string;
  /** Look again then (a retry, a deadline). */
  wakeAtMs?: number;
}

/** What the run does now with its active tasks. */
export function decideRun(run: RunFacts, tasks: readonly RunTask[], nowMs: number): RunDecision {
  const live = tasks.filter((t) => !t.killRequested);
  if (run.deadlineAtMs !== undefined && nowMs >= run.deadlineAtMs)
    return {
      launch: false,
      kill: live.map((t) => t.taskId),
      fail: `active deadline of ${Math.round((run.deadlineAtMs - run.createdAtMs) / 1000)} s exceeded`,
    };
  const neverStarted = tasks.length === 0 && (run.endedTasks ?? 0) === 0;
  if (neverStarted && run.startDeadlineAtMs !== undefined && nowMs >= run.startDeadlineAtMs)
    return { launch: false, kill: [], fail: "not started within the schedule's startingDeadlineSeconds" };
  const waitRetry = run.retryAtMs !== undefined && nowMs < run.retryAtMs;
  const wake = [
    run.deadlineAtMs,
    waitRetry ? run.retryAtMs : undefined,
    neverStarted ? run.startDeadlineAtMs : undefined,
  ].filter((t): t is number => t !== undefined);
  return {
    launch: tasks.length === 0 && !waitRetry,
    kill: [],
    ...(wake.length > 0 ? { wakeAtMs: Math.min(...wake) } : {}),
  };
}

/** The status a run shows, from its tasks: INITIAL (none yet), STARTING, ACTIVE (one runs). */
export function activeStatus(tasks: readonly RunTask[]): RunStatus {
  if (tasks.some((t) => t.state === "TASK_RUNNING" || t.state === "TASK_KILLING")) return "ACTIVE";
  return tasks.length > 0 ? "STARTING" : "INITIAL";
}

export interface TaskEnd {
  state: TaskState;
  exitCode?: number;
  message: string;
}

export type TaskEndOutcome =
  | { kind: "success" }
  | { kind: "failed"; message: string }
  | { kind: "retry"; atMs: number };

/** First retry after 1 s, doubling, at most maxLaunchDelay. */
export function retryDelayMs(failures: number, maxLaunchDelaySeconds: number): number {
  const d = 1000 * 2 ** Math.max(0, Math.min(40, failures - 1));
  return Math.min(d, maxLaunchDelaySeconds * 1000);
}

/** What the end of a run's task means for the run (`failures`: this one included). */
export function taskEnded(
  run: RunFacts & { policy: "NEVER" | "ON_FAILURE"; maxLaunchDelaySeconds: number },
  end: TaskEnd,
  failures: number,
  nowMs: number,
): TaskEndOutcome {
  if (end.state === "TASK_FINISHED" && (end.exitCode ?? 0) === 0) return { kind: "success" };
  const why = describeEnd(end);
  if (run.policy === "NEVER") return { kind: "failed", message: why };
  const atMs = nowMs + retryDelayMs(failures, run.maxLaunchDelaySeconds);
  if (run.deadlineAtMs !== undefined && atMs >= run.deadlineAtMs)
    return { kind: "failed", message: `${why}; no retry before the active deadline` };
  return { kind: "retry", atMs };
}

function describeEnd(end: TaskEnd): string {
  const code = end.exitCode !== undefined ? ` (exit code ${end.exitCode})` : "";
  const msg = end.message ? `: ${end.message}` : "";
  return `${end.state}${code}${msg}`;
}

/** One finished run in the job's history. */
export interface RunSummary {
  id: string;
  status: "SUCCESS" | "FAILED";
  createdAtMs: number;
  finishedAtMs: number;
  message?: string;
  exitCode?: number;
  tasks: string[];
}

export interface JobHistory {
  successCount: number;
  failureCount: number;
  lastSuccessAtMs?: number;
  lastFailureAtMs?: number;
  /** Newest first, at most `keep`. */
  successfulFinishedRuns: RunSummary[];
  failedFinishedRuns: RunSummary[];
}

export function emptyHistory(): JobHistory {
  return { successCount: 0, failureCount: 0, successfulFinishedRuns: [], failedFinishedRuns: [] };
}

/** The history with `run` added: counts grow, each list keeps the newest `keep` runs. */
export function recordRun(h: JobHistory, run: RunSummary, keep: number): JobHistory {
  const n = Math.max(0, Math.floor(keep));
  if (run.status === "SUCCESS")
    return {
      ...h,
      successCount: h.successCount + 1,
      lastSuccessAtMs: Math.max(h.lastSuccessAtMs ?? 0, run.finishedAtMs),
      successfulFinishedRuns: [run, ...h.successfulFinishedRuns.filter((r) => r.id !== run.id)].slice(0, n),
      failedFinishedRuns: h.failedFinishedRuns.slice(0, n),
    };
  return {
    ...h,
    failureCount: h.failureCount + 1,
    lastFailureAtMs: Math.max(h.lastFailureAtMs ?? 0, run.finishedAtMs),
    failedFinishedRuns: [run, ...h.failedFinishedRuns.filter((r) => r.id !== run.id)].slice(0, n),
    successfulFinishedRuns: h.successfulFinishedRuns.slice(0, n),
  };
}

const ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** Metronome's run id: `yyyyMMddHHmmss` (UTC) and 5 characters from `random` (values in [0, 1)). */
export function runIdAt(nowMs: number, random: () => number): string {
  const d = new Date(nowMs).toISOString();
  const stamp = d.slice(0, 19).replace(/[-T:]/g, "");
  let tail = "";
  for (let i = 0; i < 5; i++) tail += ID_CHARS[Math.floor(random() * ID_CHARS.length) % ID_CHARS.length];
  return `${stamp}${tail}`;
}
