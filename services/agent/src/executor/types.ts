/**
 * The executor contract: the part of the agent that starts, watches and stops a task's container.
 * Implementations: DockerExecutor (docker.ts). Every method is safe to call repeatedly (idempotent).
 */
export type ExecutorTaskState =
  | "TASK_STARTING"
  | "TASK_RUNNING"
  | "TASK_FINISHED"
  | "TASK_FAILED"
  | "TASK_KILLED";

export const TERMINAL_STATES: ReadonlySet<ExecutorTaskState> = new Set<ExecutorTaskState>([
  "TASK_FINISHED",
  "TASK_FAILED",
  "TASK_KILLED",
]);

export function isTerminalState(state: ExecutorTaskState): boolean {
  return TERMINAL_STATES.has(state);
}

export interface TaskLaunchSpec {
  taskId: string;
  appId: string;
  frameworkId: string;
  agentId: string;
  image: string;
  /** Runs through the image's shell: ["/bin/sh","-c",cmd]; absent (or "") → the image's default command. */
  cmd?: string | undefined;
  /** Cores → HostConfig.NanoCpus = round(cpus*1e9). */
  cpus: number;
  /** MiB → HostConfig.Memory = mem*1024*1024. */
  mem: number;
  env: Record<string, string>;
  labels: Record<string, string>;
  /** Host ports of the task, published on the host and mapped to the same container port. */
  ports?: number[] | undefined;
}

export interface ExecutorEvent {
  taskId: string;
  state: ExecutorTaskState;
  message: string;
  exitCode?: number | undefined;
  containerId?: string | undefined;
  timestampMs: number;
}

export interface RecoveredTask {
  taskId: string;
  appId: string;
  frameworkId: string;
  containerId: string;
  state: ExecutorTaskState;
  exitCode?: number;
  message: string;
  cpus: number;
  mem: number;
  image: string;
}

export interface Executor {
  /** Idempotent per taskId: if a container labelled with this task id exists, no second one is created. Emits
   *  TASK_STARTING (before pull/create), then TASK_RUNNING once started, or TASK_FAILED with Docker's reason
   *  (e.g. the pull error message "pull access denied ..." or "manifest unknown" or connection refused text) as message. Never throws for task-level errors. */
  launch(spec: TaskLaunchSpec): Promise<void>;
  /** Stops the task's container (SIGTERM, then SIGKILL after gracePeriodSeconds) and emits TASK_KILLED. Unknown task: emits TASK_KILLED with message "unknown task" once (idempotent). */
  kill(taskId: string, gracePeriodSeconds: number): Promise<void>;
  /** On agent start: the containers of this agent (label drover.agent_id=<agentId>). Running ones are re-attached (watched), exited ones are reported with their terminal state and then removed. */
  recover(): Promise<RecoveredTask[]>;
  /** Current containers of this agent that are running, by task id (for periodic reconciliation). */
  running(): Promise<Map<string, string>>;
  onEvent(listener: (e: ExecutorEvent) => void): void;
  close(): Promise<void>;
}

/** Thrown by an executor's methods after close(); a programming error, never a task-level one. */
export class ExecutorClosedError extends Error {
  constructor() {
    super("executor is closed");
    this.name = "ExecutorClosedError";
  }
}

/** Minimal structured logger; @drover/common's Logger satisfies it. */
export interface ExecutorLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}
