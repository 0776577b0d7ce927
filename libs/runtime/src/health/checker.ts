/**
 * HealthChecker: runs the health checks (and readiness checks) of the tasks an agent runs, on a
 * Clock, and reports what @drover/core's pure functions decide. It owns only timers and checks in
 * flight; every rule (grace period, kill threshold, schedule) is core's.
 *
 *   watch(task) ─► per check: timer at nextCheckAtMs ─► runCheck (one in flight per check)
 *        ─► applyResult(state, spec, result, now, runningSince) ─► onResult
 *           · alive changed? onHealthChanged · kill? onKill, then the task is no longer watched
 *        ─► next timer (nextCheckAtMs)                        stop(taskId) / close(): no timer left
 *   readiness: probe at once, then `interval` after each answer, until ready ─► onReadiness
 *
 * Concurrency: everything runs on one event loop. A check's result is applied only if its task is
 * still watched (stop() aborts the checks in flight and marks the task stopped, so a late result is
 * dropped); a listener that throws is logged and never stops the checks.
 */
import { type Clock, systemClock, type Timer } from "@drover/common";
import {
  applyReadiness,
  applyResult,
  type CheckResult,
  checkTimeoutMs,
  type HealthCheckSpec,
  type HealthState,
  type HealthUpdate,
  initialHealth,
  initialReadiness,
  isTaskHealthy,
  nextCheckAtMs,
  nextReadinessCheckAtMs,
  type ReadinessCheckSpec,
  type ReadinessProbe,
  type ReadinessState,
  readinessTimeoutMs,
} from "@drover/core";
import { type CheckTarget, probeReadiness, type RunCheckOptions, runCheck } from "./check.js";
import type { CommandRunner } from "./command.js";

export interface WatchedTask {
  taskId: string;
  /** When the task became TASK_RUNNING (ms since the epoch): the grace period and the first check count from it. */
  runningSinceMs: number;
  /**
   * In the app's order; `target` undefined for COMMAND checks, or when the port could not be
   * resolved (`unresolved` then says why: the cause of each of its failures).
   */
  healthChecks: ReadonlyArray<{
    spec: HealthCheckSpec;
    target?: CheckTarget | undefined;
    unresolved?: string | undefined;
  }>;
  readinessChecks?: ReadonlyArray<{ spec: ReadinessCheckSpec; target?: CheckTarget | undefined }> | undefined;
  /** Runs COMMAND checks where the task runs (Docker: `docker exec` in its container). */
  commandRunner?: CommandRunner | undefined;
}

export interface HealthResultEvent {
  taskId: string;
  /** Index of the check in `healthChecks`. */
  check: number;
  result: CheckResult;
  /** The state after the result, the decision, and what the result did. */
  update: HealthUpdate;
  atMs: number;
}

export interface HealthChangedEvent {
  taskId: string;
  check: number;
  /** This check's new `alive`. */
  alive: boolean;
  /** Every check of the task alive (Marathon: the task is healthy). */
  taskHealthy: boolean;
  state: HealthState;
  atMs: number;
}

export interface HealthKillEvent {
  taskId: string;
  check: number;
  reason: string;
  state: HealthState;
  atMs: number;
}

export interface ReadinessEvent {
  taskId: string;
  check: number;
  state: ReadinessState;
  atMs: number;
}

/** Called synchronously, in this order for one result: onResult, onHealthChanged, onKill. */
export interface HealthListener {
  /** Every result of every health check (grace-period and ignored ones included). */
  onResult?(e: HealthResultEvent): void;
  /** A check's `alive` changed (its first success included). */
  onHealthChanged?(e: HealthChangedEvent): void;
  /** A check decided to kill the task. Sent once per task: the task is no longer watched afterwards. */
  onKill?(e: HealthKillEvent): void;
  /** Every readiness answer, until (and including) the first ready one. */
  onReadiness?(e: ReadinessEvent): void;
}

export interface HealthCheckerOptions {
  listener: HealthListener;
  /** Default systemClock; tests pass libs/testing's FakeClock. */
  clock?: Clock;
  /** Default runCheck (real sockets and commands); tests may replace it. */
  runCheck?: (
    spec: HealthCheckSpec,
    target: CheckTarget | undefined,
    timeoutMs: number,
    options: RunCheckOptions,
  ) => Promise<CheckResult>;
  /** Default probeReadiness. */
  probeReadiness?: (
    spec: ReadinessCheckSpec,
    target: CheckTarget | undefined,
    timeoutMs: number,
    signal?: AbortSignal,
  ) => Promise<ReadinessProbe>;
  logger?: { warn(msg: string, fields?: Record<string, unknown>): void };
}

/** The health of a watched task, as known now. */
export interface TaskHealth {
  healthy: boolean;
  checks: HealthState[];
  readiness: ReadinessState[];
}

interface Loop {
  timer: Timer | undefined;
  inFlight: AbortController | undefined;
  dueMs: number;
}

interface HealthLoop extends Loop {
  spec: HealthCheckSpec;
  target: CheckTarget | undefined;
  unresolved: string | undefined;
  state: HealthState;
}

interface ReadinessLoop extends Loop {
  spec: ReadinessCheckSpec;
  target: CheckTarget | undefined;
  state: ReadinessState;
}

interface Watched {
  task: WatchedTask;
  health: HealthLoop[];
  readiness: ReadinessLoop[];
  stopped: boolean;
}

export class HealthChecker {
  private readonly clock: Clock;
  private readonly listener: HealthListener;
  private readonly run: NonNullable<HealthCheckerOptions["runCheck"]>;
  private readonly probe: NonNullable<HealthCheckerOptions["probeReadiness"]>;
  private readonly logger: HealthCheckerOptions["logger"];
  private readonly tasks = new Map<string, Watched>();

  constructor(options: HealthCheckerOptions) {
    this.listener = options.listener;
    this.clock = options.clock ?? systemClock;
    this.run = options.runCheck ?? runCheck;
    this.probe = options.probeReadiness ?? probeReadiness;
    this.logger = options.logger;
  }

  /**
   * Starts checking a Running task. Idempotent per task id: a task already watched keeps its state
   * (call stop() first to restart it). A task without checks is not watched.
   */
  watch(task: WatchedTask): void {
    if (this.tasks.has(task.taskId)) return;
    const readinessChecks = task.readinessChecks ?? [];
    if (task.healthChecks.length === 0 && readinessChecks.length === 0) return;
    const w: Watched = {
      task,
      stopped: false,
      health: task.healthChecks.map((c) => ({
        spec: c.spec,
        target: c.target,
        unresolved: c.unresolved,
        state: initialHealth(),
        timer: undefined,
        inFlight: undefined,
        dueMs: 0,
      })),
      readiness: readinessChecks.map((c) => ({
        spec: c.spec,
        target: c.target,
        state: initialReadiness(),
        timer: undefined,
        inFlight: undefined,
        dueMs: 0,
      })),
    };
    this.tasks.set(task.taskId, w);
    w.health.forEach((loop, i) => {
      this.schedule(w, loop, nextCheckAtMs(loop.spec, task.runningSinceMs), () => this.check(w, loop, i));
    });
    w.readiness.forEach((loop, i) => {
      const at = nextReadinessCheckAtMs(loop.state, loop.spec, task.runningSinceMs);
      if (at !== undefined) this.schedule(w, loop, at, () => this.probeOnce(w, loop, i));
    });
  }

  /** Stops checking a task (it ended, or is being killed): cancels its timers and aborts its checks in flight. */
  stop(taskId: string): void {
    const w = this.tasks.get(taskId);
    if (!w) return;
    this.tasks.delete(taskId);
    w.stopped = true;
    for (const loop of [...w.health, ...w.readiness]) {
      loop.timer?.cancel();
      loop.timer = undefined;
      loop.inFlight?.abort();
      loop.inFlight = undefined;
    }
  }

  /** Stops every task. */
  close(): void {
    for (const taskId of [...this.tasks.keys()]) this.stop(taskId);
  }

  health(taskId: string): TaskHealth | undefined {
    const w = this.tasks.get(taskId);
    if (!w) return undefined;
    const checks = w.health.map((l) => l.state);
    return { healthy: isTaskHealthy(checks), checks, readiness: w.readiness.map((l) => l.state) };
  }

  /** The task ids watched now. */
  watching(): string[] {
    return [...this.tasks.keys()];
  }

  private schedule(w: Watched, loop: Loop, atMs: number, fire: () => Promise<void>): void {
    if (w.stopped) return;
    loop.dueMs = atMs;
    loop.timer = this.clock.setTimeout(
      () => {
        loop.timer = undefined;
        fire().catch((err: unknown) => this.warn("health check loop failed", w.task.taskId, err));
      },
      Math.max(0, atMs - this.clock.now()),
    );
  }

  private async check(w: Watched, loop: HealthLoop, index: number): Promise<void> {
    if (w.stopped) return;
    const { task } = w;
    const abort = new AbortController();
    loop.inFlight = abort;
    let result: CheckResult;
    try {
      result = await this.run(loop.spec, loop.target, checkTimeoutMs(loop.spec), {
        commandRunner: task.commandRunner,
        signal: abort.signal,
        unresolved: loop.unresolved,
      });
    } catch (err) {
      result = { kind: "unhealthy", cause: err instanceof Error ? err.message : String(err) };
    }
    if (w.stopped || loop.inFlight !== abort) return;
    loop.inFlight = undefined;
    const atMs = this.clock.now();
    const before = loop.state;
    const update = applyResult(before, loop.spec, result, atMs, task.runningSinceMs);
    loop.state = update.state;
    const base = { taskId: task.taskId, check: index, atMs };
    this.emit(() => this.listener.onResult?.({ ...base, result, update }));
    if (before.alive !== update.state.alive) {
      const taskHealthy = isTaskHealthy(w.health.map((l) => l.state));
      this.emit(() =>
        this.listener.onHealthChanged?.({
          ...base,
          alive: update.state.alive,
          taskHealthy,
          state: update.state,
        }),
      );
    }
    if (update.decision.kind === "kill") {
      const { reason } = update.decision;
      this.stop(task.taskId);
      this.emit(() => this.listener.onKill?.({ ...base, reason, state: update.state }));
      return;
    }
    if (w.stopped) return; // a listener stopped the task
    const next = nextCheckAtMs(loop.spec, task.runningSinceMs, { dueMs: loop.dueMs, finishedAtMs: atMs });
    this.schedule(w, loop, next, () => this.check(w, loop, index));
  }

  private async probeOnce(w: Watched, loop: ReadinessLoop, index: number): Promise<void> {
    if (w.stopped) return;
    const abort = new AbortController();
    loop.inFlight = abort;
    let probe: ReadinessProbe;
    try {
      probe = await this.probe(loop.spec, loop.target, readinessTimeoutMs(loop.spec), abort.signal);
    } catch (err) {
      probe = { kind: "error", message: err instanceof Error ? err.message : String(err) };
    }
    if (w.stopped || loop.inFlight !== abort) return;
    loop.inFlight = undefined;
    const atMs = this.clock.now();
    loop.state = applyReadiness(loop.state, loop.spec, probe, atMs);
    const state = loop.state;
    this.emit(() => this.listener.onReadiness?.({ taskId: w.task.taskId, check: index, state, atMs }));
    const next = nextReadinessCheckAtMs(state, loop.spec, w.task.runningSinceMs, atMs);
    if (next !== undefined) this.schedule(w, loop, next, () => this.probeOnce(w, loop, index));
  }

  private emit(call: () => void): void {
    try {
      call();
    } catch (err) {
      this.warn("health listener threw", undefined, err);
    }
  }

  private warn(msg: string, taskId: string | undefined, err: unknown): void {
    this.logger?.warn(msg, { taskId, error: err instanceof Error ? err.message : String(err) });
  }
}
