import { type BackoffState, canLaunch } from "./backoff.js";
import { isActive, type TaskState } from "./task-state.js";

/** What the reconciler needs to know about one task. Immutable view. */
export interface TaskView {
  taskId: string;
  state: TaskState;
  agentId: string;
  createdAtMs: number;
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
}

export interface AppReconcilePlan {
  /** How many new tasks to launch. */
  launch: number;
  /** Task ids to kill, in order of preference. */
  kill: string[];
  /** Set when tasks are missing but the app is in crash-loop backoff until this time. */
  waitingForBackoffUntilMs?: number;
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

/** Kill order: by condition (KILL_PRIORITY), then by start time as killSelection says, then taskId. */
function killOrder(selection: "YOUNGEST_FIRST" | "OLDEST_FIRST") {
  return (a: TaskView, b: TaskView): number => {
    const pa = KILL_PRIORITY[a.state] ?? 4;
    const pb = KILL_PRIORITY[b.state] ?? 4;
    if (pa !== pb) return pa - pb;
    if (a.createdAtMs !== b.createdAtMs)
      return selection === "YOUNGEST_FIRST" ? b.createdAtMs - a.createdAtMs : a.createdAtMs - b.createdAtMs;
    return a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0;
  };
}

/**
 * Desired vs actual for one app. Pure and deterministic (independent of the order of `tasks`).
 * When the backoff allows launching: active - kill.length + launch === instances.
 */
export function reconcileApp(input: AppReconcileInput): AppReconcilePlan {
  const desired = Math.max(0, Math.floor(input.instances));
  const active = input.tasks.filter((t) => countsAsInstance(t.state));
  if (active.length > desired) {
    const kill = [...active]
      .sort(killOrder(input.killSelection ?? "YOUNGEST_FIRST"))
      .slice(0, active.length - desired)
      .map((t) => t.taskId);
    return { launch: 0, kill };
  }
  const gap = desired - active.length;
  if (gap === 0) return { launch: 0, kill: [] };
  if (!canLaunch(input.backoff, input.nowMs)) {
    return { launch: 0, kill: [], waitingForBackoffUntilMs: input.backoff.delayUntilMs };
  }
  return { launch: gap, kill: [] };
}
