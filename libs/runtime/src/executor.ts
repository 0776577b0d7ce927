/**
 * The executor contract: the part of the agent that starts, watches and stops a task's container.
 * Implementations: DockerExecutor (docker/) and SimulatedExecutor (simulated/). Both pass the suite
 * of conformance.ts, which is the executable form of the contracts below.
 *
 * Words: a runtime's unit of execution is a *container* (a Docker container, or a simulated one on a
 * SimulatedHost). Containers belong to an agent (by agent id) and outlive the executor that started
 * them: a new executor of the same agent finds them again (recover()).
 */
import type { TaskRun, TaskState } from "@drover/core";

/** The task states an executor reports: core's TaskState, narrowed to the ones a runtime can observe. */
export type ExecutorState = Extract<
  TaskState,
  "TASK_STARTING" | "TASK_RUNNING" | "TASK_FINISHED" | "TASK_FAILED" | "TASK_KILLED"
>;

/** The terminal states among ExecutorState (core's `isTerminal` decides; these are the ones reachable here). */
export type ExecutorTerminalState = Extract<ExecutorState, "TASK_FINISHED" | "TASK_FAILED" | "TASK_KILLED">;

export interface TaskLaunchSpec {
  taskId: string;
  appId: string;
  frameworkId: string;
  /** The agent the task is for: "" (any) or this executor's agent id; anything else fails the launch. */
  agentId: string;
  image: string;
  /** Runs through the image's shell: ["/bin/sh","-c",cmd]; absent (or "") → the image's default command. */
  cmd?: string | undefined;
  /** The container's command without a shell (after the image's entrypoint); wins over cmd. */
  args?: string[] | undefined;
  /** Cores → HostConfig.NanoCpus = round(cpus*1e9). */
  cpus: number;
  /** MiB → HostConfig.Memory = mem*1024*1024. */
  mem: number;
  env: Record<string, string>;
  labels: Record<string, string>;
  /**
   * Host ports of the task. Host networking (no `run.network`, or mode "host"): published on the host
   * and mapped to the same container port. Bridge: `run.portMappings` says which container port each
   * host port maps to.
   */
  ports?: number[] | undefined;
  /**
   * The rest of the app model the runtime carries out: network (bridge, a user-defined network by
   * name), port mappings, volumes (bind mounts, local persistent volumes), fetch URIs into the
   * sandbox, privileged, docker parameters, forcePullImage, user. Health and readiness checks in it
   * are the agent's (HealthChecker), not the executor's. killGracePeriodSeconds is applied by the
   * agent when it calls kill().
   */
  run?: TaskRun | undefined;
}

export interface ExecutorEvent {
  taskId: string;
  state: ExecutorState;
  message: string;
  /** On terminal events of a task that ran: its exit code (a kill reports the signal's, e.g. 137 or 143). */
  exitCode?: number | undefined;
  /** Once the container exists (always on TASK_RUNNING). */
  containerId?: string | undefined;
  /**
   * On TASK_RUNNING of a task on a bridge or user-defined network: the container's address there
   * (what a health check of a container network probes). Absent for host networking.
   */
  containerIp?: string | undefined;
  /**
   * On TASK_RUNNING: the task's IP addresses (IPv4 or IPv6 text, each valid, at most
   * MAX_TASK_IP_ADDRESSES), as TaskStatus.ipAddresses carries them to Marathon's `ipAddresses`. Docker:
   * the container's addresses on its networks; for host networking the agent's address when the
   * executor knows it. Absent (never empty): none known.
   */
  ipAddresses?: string[] | undefined;
  timestampMs: number;
}

export interface RecoveredTask {
  taskId: string;
  appId: string;
  frameworkId: string;
  containerId: string;
  state: ExecutorState;
  exitCode?: number;
  message: string;
  cpus: number;
  mem: number;
  image: string;
  /** As ExecutorEvent.containerIp, for a task recovered running. */
  containerIp?: string;
  /** As ExecutorEvent.ipAddresses, for a task recovered running. */
  ipAddresses?: string[];
}

/**
 * Every method may be called repeatedly and concurrently; the contracts below say what a repeated call
 * does. Events are delivered synchronously to the listeners, in order per task:
 * `TASK_STARTING → TASK_RUNNING → exactly one terminal event`, where RUNNING is absent when the task
 * never started and STARTING is absent when the spec was refused outright. Nothing follows a task's
 * terminal event.
 */
export interface Executor {
  /**
   * Idempotent per taskId: a second launch of a task id this executor knows awaits the first and emits
   * nothing; a task id that reached a terminal state is not launched again by the same executor; a
   * container of this agent already labelled with the task id (left by an earlier executor) is adopted
   * instead of creating a second one. Emits TASK_STARTING (before pull/create), then TASK_RUNNING once
   * started, or TASK_FAILED with the runtime's reason as message (for Docker: the pull error, e.g.
   * "pull access denied ..." or "manifest unknown", or the connection error text). An invalid spec is
   * TASK_FAILED "invalid launch spec: <fields>" without STARTING. Never throws for task-level errors;
   * throws only ExecutorClosedError after close().
   */
  launch(spec: TaskLaunchSpec): Promise<void>;
  /**
   * Stops the task (SIGTERM, then SIGKILL once gracePeriodSeconds have passed; 0 → SIGKILL at once),
   * resolves once it has stopped and emits TASK_KILLED, whatever the exit code. A kill during the launch
   * stops it before start ("killed before start"). Idempotent: a task already terminal emits nothing;
   * an unknown task emits TASK_KILLED "unknown task" once, however often it is killed.
   */
  kill(taskId: string, gracePeriodSeconds: number): Promise<void>;
  /**
   * On agent start: the containers of this agent. Running ones are re-attached (watched from now on:
   * their exit is reported, kill() stops them); exited ones are returned with their terminal state,
   * also emitted as events (so their updates reach the master through the normal path), then removed.
   * Calling it again describes the tasks still running without re-reporting anything.
   */
  recover(): Promise<RecoveredTask[]>;
  /** The containers of this agent running now, task id → container id (what the runtime says, not memory). */
  running(): Promise<Map<string, string>>;
  onEvent(listener: (e: ExecutorEvent) => void): void;
  /**
   * Stops watching and waits for work in flight; containers keep running (a later executor of the same
   * agent recovers them). Idempotent. Every other method then throws ExecutorClosedError.
   */
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
