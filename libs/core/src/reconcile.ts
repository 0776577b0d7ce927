import { type BackoffState, canLaunch } from "./backoff.js";
import type { UnreachableStrategy } from "./marathon/types.js";
import { isActive, type TaskState } from "./task-state.js";

/** What the reconciler needs to know about one task. Immutable view. */
export interface TaskView {
  taskId: string;
  state: TaskState;
  agentId: string;
  createdAtMs: number;
  /** TASK_UNREACHABLE: since when (the time of the update that said so). Absent: since `nowMs`. */
  unreachableSinceMs?: number;
  /** It came back from TASK_UNREACHABLE after it had become inactive (its replacement was due): a scale-down kills it first. */
  replaced?: boolean;
}

export interface AppReconcileInput {
  /** Desired number of instances. */
  instances: number;
  /** Only this app's tasks, in any state. */
  tasks: TaskView[];
  backoff: BackoffState;
  nowMs: number;
  /** Which of equal-condition tasks a scale-down kills first (Marathon's killSelection; default YOUNGEST_FIRST). */
  killSelection?: "YOUNGEST_FIRST" | "OLDEST_FIRST";
  /**
   * Marathon's unreachableStrategy: a TASK_UNREACHABLE task counts as an instance until
   * `inactiveAfterSeconds` have passed since it became unreachable (then a replacement is launched),
   * and is expunged after `expungeAfterSeconds`. "disabled" (and absent): it counts until it comes
   * back or its state turns terminal.
   */
  unreachableStrategy?: UnreachableStrategy;
}

export interface AppReconcilePlan {
  /** How many new tasks to launch. */
  launch: number;
  /** Task ids to kill, in order of preference. */
  kill: string[];
  /**
   * TASK_UNREACHABLE tasks past `expungeAfterSeconds`: killed and forgotten (the master turns the
   * kill of a task on an unreachable agent into TASK_GONE, and kills it if its agent comes back).
   * Never in `kill` too.
   */
  expunge: string[];
  /** Set when tasks are missing but the app is in crash-loop backoff until this time. */
  waitingForBackoffUntilMs?: number;
  /** When an unreachable task next becomes inactive or due for expunging: plan again then. */
  recheckAtMs?: number;
}

/** Tasks that count towards the app's instances: active and not already being killed. */
export function countsAsInstance(state: TaskState): boolean {
  return isActive(state) && state !== "TASK_KILLING";
}

/** Marathon's scale-down order (ScalingProposition): Unreachable, Staging, Starting, Running, the rest. */
const KILL_PRIORITY: Partial<Record<TaskState, number>> = {
  TASK_UNREACHABLE: 0,
  TASK_STAGING: 1,
  TASK_STARTING: 2,
  TASK_RUNNING: 3,
};

/**
 * Kill order: tasks that came back after they were replaced, then by condition (KILL_PRIORITY),
 * then by start time as killSelection says, then taskId.
 */
function killOrder(selection: "YOUNGEST_FIRST" | "OLDEST_FIRST") {
  return (a: TaskView, b: TaskView): number => {
    const pa = a.replaced ? -1 : (KILL_PRIORITY[a.state] ?? 4);
    const pb = b.replaced ? -1 : (KILL_PRIORITY[b.state] ?? 4);
    if (pa !== pb) return pa - pb;
    if (a.createdAtMs !== b.createdAtMs)
      return selection === "YOUNGEST_FIRST" ? b.createdAtMs - a.createdAtMs : a.createdAtMs - b.createdAtMs;
    return a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0;
  };
}

/** Where an unreachable task stands under the app's unreachableStrategy at `nowMs`. */
export type UnreachablePhase =
  /** Still counts as an instance; `untilMs`: when it becomes inactive (absent: never). */
  | { phase: "counts"; untilMs?: number }
  /** Replaced: no longer counts; `untilMs`: when it is due for expunging. */
  | { phase: "inactive"; untilMs: number }
  | { phase: "expunge" };

export function unreachablePhase(
  sinceMs: number,
  strategy: UnreachableStrategy | undefined,
  nowMs: number,
): UnreachablePhase {
  if (strategy === undefined || strategy === "disabled") return { phase: "counts" };
  const inactiveAt = sinceMs + strategy.inactiveAfterSeconds * 1000;
  const expungeAt = sinceMs + strategy.expungeAfterSeconds * 1000;
  if (nowMs >= expungeAt) return { phase: "expunge" };
  if (nowMs >= inactiveAt) return { phase: "inactive", untilMs: expungeAt };
  return { phase: "counts", untilMs: Math.min(inactiveAt, expungeAt) };
}

/**
 * A task back from TASK_UNREACHABLE at `backAtMs` was replaced when it had become inactive by then
 * (Marathon kills such a returning instance when the app has more than it needs).
 */
export function cameBackReplaced(
  unreachableSinceMs: number,
  backAtMs: number,
  strategy: UnreachableStrategy | undefined,
): boolean {
  return unreachablePhase(unreachableSinceMs, strategy, backAtMs).phase !== "counts";
}

/**
 * Desired vs actual for one app. Pure and deterministic (independent of the order of `tasks`).
 * Counted: the active tasks not being killed, less the unreachable ones that are inactive or due
 * for expunging (unreachablePhase). When the backoff allows launching:
 * counted - kill.length + launch === instances.
 */
export function reconcileApp(input: AppReconcileInput): AppReconcilePlan {
  const desired = Math.max(0, Math.floor(input.instances));
  const counted: TaskView[] = [];
  const expunge: string[] = [];
  let recheckAtMs = Number.POSITIVE_INFINITY;
  for (const t of input.tasks) {
    if (!countsAsInstance(t.state)) continue;
    if (t.state !== "TASK_UNREACHABLE") {
      counted.push(t);
      continue;
    }
    const p = unreachablePhase(t.unreachableSinceMs ?? input.nowMs, input.unreachableStrategy, input.nowMs);
    if (p.phase === "expunge") expunge.push(t.taskId);
    else {
      if (p.untilMs !== undefined) recheckAtMs = Math.min(recheckAtMs, p.untilMs);
      if (p.phase === "counts") counted.push(t);
    }
  }
  expunge.sort();
  const extra = {
    expunge,
    ...(recheckAtMs < Number.POSITIVE_INFINITY ? { recheckAtMs } : {}),
  };
  if (counted.length > desired) {
    const kill = [...counted]
      .sort(killOrder(input.killSelection ?? "YOUNGEST_FIRST"))
      .slice(0, counted.length - desired)
      .map((t) => t.taskId);
    return { launch: 0, kill, ...extra };
  }
  const gap = desired - counted.length;
  if (gap === 0) return { launch: 0, kill: [], ...extra };
  if (!canLaunch(input.backoff, input.nowMs)) {
    return { launch: 0, kill: [], ...extra, waitingForBackoffUntilMs: input.backoff.delayUntilMs };
  }
  return { launch: gap, kill: [], ...extra };
}
