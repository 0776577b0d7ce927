/**
 * Jobs' runs as the second workload of the framework driver (framework.ts `Workload`), and the cron
 * loop. Owned by the scheduler leader; every decision is core's (decideRun, taskEnded,
 * decideSchedule, decideConcurrency), this shell only reads the store, commits and sets timers.
 *
 * - plan: each active run without a task asks for one (placed with the apps' demands, constraints
 *   included); a run past its deadline ends FAILED and its task is killed; a task whose run is not
 *   active any more (stopped, replaced, deleted) is killed.
 * - ended: a run's task ended: SUCCESS, FAILED, or a retry after a backoff (ON_FAILURE).
 * - cron: at each schedule's persisted next due time, fire (or skip under FORBID, or stop the
 *   active runs first under REPLACE); a due time past its starting deadline is recorded as missed.
 *   The new next due time commits with what the due time led to (JobStore), so a new leader neither
 *   fires it again nor forgets it.
 */
import { randomUUID } from "node:crypto";
import { errorMessage, type Logger } from "@drover/common";
import {
  activeStatus,
  decideConcurrency,
  decideRun,
  decideSchedule,
  type InstanceDemand,
  isActive,
  JOB_WORKLOAD_PREFIX,
  type JobRunRecord,
  jobConstraints,
  jobTaskRun,
  parseRunWorkloadId,
  type RunStatus,
  runTaskId,
  runWorkloadId,
  taskEnded,
} from "@drover/core";
import type { FrameworkOffer, TaskSpec, TaskUpdate } from "@drover/framework";
import type { TaskEntry, TaskView, Workload, WorkloadPlan } from "../framework.js";
import type { JobStore } from "./store.js";

/** The cron loop looks again at least this often (a clock step, a missed timer). */
const CRON_RECHECK_MS = 30_000;

export interface JobRunnerDeps {
  store: JobStore;
  log: Logger;
  /** Something changed that the framework should act on now (a run to launch, a task to kill). */
  changed(): void;
  now?: () => number;
  /** Observes a run that starts (metrics, tests): the due time of a scheduled one. */
  onStarted?(run: JobRunRecord): void;
}

export class JobRunner implements Workload {
  /** Runs whose end (or retry) is being committed: no launch for them meanwhile. */
  private readonly ending = new Set<string>();
  private cronTimer: NodeJS.Timeout | undefined;
  private cronChain: Promise<void> = Promise.resolve();
  /** The cron loop runs between start() and stopCron() (tick() may be called by hand: tests). */
  private stopped = true;
  private readonly now: () => number;

  constructor(private readonly deps: JobRunnerDeps) {
    this.now = deps.now ?? Date.now;
  }

  // ---- the workload ----

  owns(appId: string): boolean {
    return appId.startsWith(JOB_WORKLOAD_PREFIX);
  }

  plan(nowMs: number, tasks: Pick<TaskView, "appIds" | "ofApp">): WorkloadPlan {
    const demands: InstanceDemand[] = [];
    const kill: string[] = [];
    let wake: number | undefined;
    const active = new Set<string>();
    // Oldest runs first: placement takes demands in order, so the longest waiting is placed first.
    const runs = this.deps.store.allRuns().sort((x, y) => x.createdAtMs - y.createdAtMs);
    for (const run of runs) {
      const id = runWorkloadId(run.jobId, run.runId);
      active.add(id);
      if (this.ending.has(id)) continue;
      const own = [...tasks.ofApp(id)].filter((t) => isActive(t.state));
      const d = decideRun({ ...run, endedTasks: run.ended.length }, own, nowMs);
      kill.push(...d.kill);
      if (d.fail !== undefined) {
        this.end(run, { status: "FAILED", message: d.fail });
        continue;
      }
      if (d.launch)
        demands.push({
          appId: id,
          count: 1,
          resources: { cpus: run.run.cpus, mem: run.run.mem, disk: run.run.disk, ports: [] },
          ...(run.run.placement.constraints.length > 0 ? { constraints: jobConstraints(run.run) } : {}),
        });
      if (d.wakeAtMs !== undefined) wake = Math.min(wake ?? d.wakeAtMs, d.wakeAtMs);
    }
    // Tasks of runs that are not active any more (stopped, replaced, past their deadline, deleted).
    for (const appId of tasks.appIds())
      if (this.owns(appId) && !active.has(appId))
        for (const t of tasks.ofApp(appId)) if (isActive(t.state) && !t.killRequested) kill.push(t.taskId);
    return { demands, kill, ...(wake !== undefined ? { wakeAtMs: wake } : {}) };
  }

  taskOf(appId: string, offer: FrameworkOffer, ports: number[]): TaskSpec & { appId: string } {
    const ids = parseRunWorkloadId(appId);
    const run = ids && this.deps.store.run(ids.jobId, ids.runId);
    if (!ids || !run) throw new Error(`no active run for ${appId}`);
    const taskId = runTaskId(ids.jobId, ids.runId, randomUUID().slice(0, 8));
    const r = run.run;
    const labels = this.deps.store.has(ids.jobId) ? this.deps.store.get(ids.jobId).spec.labels : {};
    const taskRun = jobTaskRun(r);
    return {
      taskId,
      appId,
      name: ids.jobId,
      image: r.docker?.image ?? "",
      ...(r.cmd !== undefined ? { cmd: r.cmd } : {}),
      ...(r.args !== undefined ? { args: [...r.args] } : {}),
      cpus: r.cpus,
      mem: r.mem,
      disk: r.disk,
      ports,
      env: {
        ...r.env,
        MESOS_TASK_ID: taskId,
        HOST: offer.hostname,
        DROVER_TASK_ID: taskId,
        DROVER_JOB_ID: ids.jobId,
        DROVER_JOB_RUN_ID: ids.runId,
      },
      labels: { ...labels, "drover.job": ids.jobId, "drover.job.run": ids.runId },
      ...(Object.keys(taskRun).length > 0 ? { run: taskRun } : {}),
    };
  }

  ended(entry: TaskEntry, u: TaskUpdate): void {
    const ids = parseRunWorkloadId(entry.appId);
    const run = ids && this.deps.store.run(ids.jobId, ids.runId);
    if (!ids || !run) return;
    const key = runWorkloadId(ids.jobId, ids.runId);
    // Ending already, or this task's end is recorded (an update seen twice, or reconciled).
    if (this.ending.has(key) || run.ended.some((t) => t.taskId === u.taskId)) return;
    const now = this.now();
    const task = {
      taskId: u.taskId,
      state: u.state,
      ...(u.exitCode !== undefined ? { exitCode: u.exitCode } : {}),
      message: u.message.slice(0, 2000),
      atMs: u.timestampMs || now,
    };
    const failedNow = u.state !== "TASK_FINISHED" || (u.exitCode ?? 0) !== 0;
    const outcome = taskEnded(
      {
        ...run,
        policy: run.run.restart.policy,
        maxLaunchDelaySeconds: run.run.maxLaunchDelay,
      },
      { state: u.state, message: u.message, ...(u.exitCode !== undefined ? { exitCode: u.exitCode } : {}) },
      run.failures + (failedNow ? 1 : 0),
      now,
    );
    this.deps.log.info("job run task ended", {
      jobId: ids.jobId,
      runId: ids.runId,
      taskId: u.taskId,
      state: u.state,
      exitCode: u.exitCode,
      outcome: outcome.kind,
    });
    if (outcome.kind === "retry") {
      this.ending.add(key);
      void this.deps.store
        .taskEnded(ids.jobId, ids.runId, task, outcome.atMs)
        .catch((err: unknown) =>
          this.deps.log.warn("recording a run's task failed", { err: errorMessage(err) }),
        )
        .finally(() => {
          this.ending.delete(key);
          this.deps.changed();
        });
      return;
    }
    this.end(
      run,
      outcome.kind === "success"
        ? { status: "SUCCESS", exitCode: u.exitCode ?? 0 }
        : {
            status: "FAILED",
            message: outcome.message,
            ...(u.exitCode !== undefined ? { exitCode: u.exitCode } : {}),
          },
      task,
    );
  }

  /**
   * After a subscription: the tasks of active runs that ended while no leader listened (a previous
   * leader died before recording it) end or retry their run now, so the run is not launched again.
   */
  async reconcile(endedTasks: (appId: string) => Promise<TaskUpdate[]>): Promise<void> {
    for (const run of this.deps.store.allRuns()) {
      const id = runWorkloadId(run.jobId, run.runId);
      // The latest end not recorded yet decides (an earlier one would only have been retried).
      const latest = (await endedTasks(id))
        .filter((u) => !run.ended.some((t) => t.taskId === u.taskId))
        .sort((a, b) => b.timestampMs - a.timestampMs)[0];
      if (!latest) continue;
      this.deps.log.info("a run's task ended while no leader listened", {
        runId: run.runId,
        taskId: latest.taskId,
      });
      const entry = { taskId: latest.taskId, appId: id, agentId: latest.agentId, state: latest.state };
      this.ended({ ...entry, createdAtMs: 0, killRequested: false }, latest);
    }
  }

  /** Ends a run (in the background; no launch for it meanwhile). */
  private end(
    run: JobRunRecord,
    end: { status: "SUCCESS" | "FAILED"; message?: string; exitCode?: number },
    task?: Parameters<JobStore["finishRun"]>[3],
  ): void {
    const key = runWorkloadId(run.jobId, run.runId);
    this.ending.add(key);
    this.deps.log.info("job run finished", { jobId: run.jobId, runId: run.runId, ...end });
    void this.deps.store
      .finishRun(run.jobId, run.runId, end, task)
      .catch((err: unknown) => this.deps.log.warn("finishing a run failed", { err: errorMessage(err) }))
      .finally(() => {
        this.ending.delete(key);
        this.deps.changed();
      });
  }

  // ---- operator actions ----

  /** Starts a run now (Metronome's POST /v1/jobs/{id}/runs; concurrency policies do not apply). */
  async startNow(jobId: string): Promise<JobRunRecord> {
    const run = await this.deps.store.startRun(jobId, { kind: "manual" });
    this.deps.onStarted?.(run);
    this.deps.changed();
    return run;
  }

  /** Stops an active run: it ends FAILED and its task is killed. Undefined when it is not active. */
  async stopRun(jobId: string, runId: string): Promise<JobRunRecord | undefined> {
    const run = this.deps.store.run(jobId, runId);
    if (!run) return undefined;
    await this.deps.store.finishRun(jobId, runId, { status: "FAILED", message: "stopped" });
    this.deps.changed();
    return run;
  }

  /** A run's status now (INITIAL, STARTING, ACTIVE) from its tasks in the view. */
  statusOf(run: JobRunRecord, tasks: Pick<TaskView, "ofApp">): { status: RunStatus; tasks: TaskEntry[] } {
    const own = [...tasks.ofApp(runWorkloadId(run.jobId, run.runId))];
    return { status: activeStatus(own), tasks: own };
  }

  // ---- the cron loop ----

  /** Starts the cron loop (after the store is loaded). */
  start(): void {
    this.stopped = false;
    this.cronSoon();
  }

  stopCron(): void {
    this.stopped = true;
    if (this.cronTimer) clearTimeout(this.cronTimer);
    this.cronTimer = undefined;
  }

  /** A schedule changed: look at the due times again now. */
  cronSoon(): void {
    this.arm(this.now());
  }

  private arm(atMs: number): void {
    if (this.stopped) return;
    if (this.cronTimer) clearTimeout(this.cronTimer);
    const delay = Math.max(0, Math.min(CRON_RECHECK_MS, atMs - this.now()));
    this.cronTimer = setTimeout(() => {
      this.cronTimer = undefined;
      this.cronChain = this.cronChain.then(() => this.tick()).catch(() => undefined);
    }, delay);
  }

  /** Handles every due schedule once, then sleeps until the next due time. One tick at a time. */
  async tick(): Promise<void> {
    let next = Number.POSITIVE_INFINITY;
    for (const job of this.deps.store.list())
      for (const rec of job.schedules) {
        const now = this.now();
        const d = decideSchedule(rec.spec, rec, now);
        try {
          if (d.kind === "wait") {
            if (d.atMs !== undefined) next = Math.min(next, d.atMs);
            continue;
          }
          const nextDue = d.nextDueMs !== undefined ? { nextDueMs: d.nextDueMs } : {};
          if (d.kind === "missed") {
            this.deps.log.warn("schedule missed (past its starting deadline)", {
              jobId: job.spec.id,
              scheduleId: rec.spec.id,
              missed: d.missed,
            });
            await this.deps.store.scheduleHandled(job.spec.id, {
              type: "ScheduleMissed",
              scheduleId: rec.spec.id,
              missed: d.missed,
              firstDueMs: d.firstMs,
              lastDueMs: d.lastMs,
              ...nextDue,
            });
          } else {
            const active = this.deps.store.runs(job.spec.id).map((r) => r.runId);
            const c = decideConcurrency(rec.spec.concurrencyPolicy, active);
            const fired = {
              type: "ScheduleFired" as const,
              scheduleId: rec.spec.id,
              dueMs: d.dueMs,
              missed: d.missed,
              ...nextDue,
            };
            if (!c.start) {
              this.deps.log.info("scheduled run skipped", {
                jobId: job.spec.id,
                scheduleId: rec.spec.id,
                why: c.reason,
              });
              await this.deps.store.scheduleHandled(job.spec.id, { ...fired, skipped: c.reason });
            } else {
              const run = await this.deps.store.startRun(
                job.spec.id,
                { kind: "schedule", scheduleId: rec.spec.id, dueMs: d.dueMs },
                { fired, replace: c.stop },
              );
              this.deps.log.info("scheduled run started", {
                jobId: job.spec.id,
                scheduleId: rec.spec.id,
                runId: run.runId,
                dueMs: d.dueMs,
                lateMs: now - d.dueMs,
                replaced: c.stop,
              });
              this.deps.onStarted?.(run);
              this.deps.changed();
            }
          }
          if (d.nextDueMs !== undefined) next = Math.min(next, d.nextDueMs);
        } catch (err) {
          this.deps.log.warn("a schedule's due time could not be handled; retrying", {
            jobId: job.spec.id,
            scheduleId: rec.spec.id,
            err: errorMessage(err),
          });
          next = Math.min(next, this.now() + 1000);
        }
      }
    this.arm(next);
  }
}
