/**
 * The jobs and their active runs, owned by the scheduler leader (aggregates `job` and `job-run`,
 * event-sourced, fenced writes), loaded by each new leader. Every change is one transaction: a run
 * started by a schedule commits with the schedule's new next-due time (exactly once across a
 * failover), a finished run with its entry in the job's history, a REPLACE with the end of the runs
 * it replaces. The changes of one job (and its runs) run one at a time (`serial`, a queue per job), on the state as last committed; different jobs commit concurrently.
 */
import { randomInt } from "node:crypto";
import {
  AlreadyExistsError,
  ConflictError,
  FailedPreconditionError,
  FencedError,
  NotFoundError,
} from "@drover/common";
import {
  firstDue,
  JobAggregate,
  type JobEvent,
  type JobRecord,
  JobRunAggregate,
  type JobRunEvent,
  type JobRunRecord,
  type JobSpec,
  jobKey,
  jobRunKey,
  type RunSummary,
  type RunTrigger,
  runIdAt,
  type ScheduleRecord,
  type ScheduleSpec,
} from "@drover/core";
import type { AggregateRead, Change, EventStore, Leadership } from "@drover/store";

type Entry<S> = AggregateRead<S> & { stale?: boolean };

/** How a run ended (JobRunFinished and the history entry). */
export interface RunEnd {
  status: "SUCCESS" | "FAILED";
  message?: string;
  exitCode?: number;
}

export interface JobStoreDeps {
  store: EventStore;
  leadership: Leadership | undefined;
  /** Finished runs kept per job and status (Metronome's history). */
  historyKept: number;
  now?: () => number;
  /** The run's tasks active now (the framework's view): a run that ends keeps them in its history entry. */
  activeTasks?(jobId: string, runId: string): string[];
}

export class JobStore {
  private readonly jobs = new Map<string, Entry<JobRecord>>();
  /** Active runs by job id, then run id. */
  private readonly runsByJob = new Map<string, Map<string, Entry<JobRunRecord>>>();
  /** One queue per job: changes of a job and its runs run one at a time, different jobs' concurrently. */
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly now: () => number;

  constructor(private readonly deps: JobStoreDeps) {
    this.now = deps.now ?? Date.now;
  }

  async load(): Promise<void> {
    for (const v of (await this.deps.store.load(JobAggregate)).values()) this.jobs.set(v.state.spec.id, v);
    for (const v of (await this.deps.store.load(JobRunAggregate)).values())
      this.putRun(v.state.jobId, v.state.runId, v);
  }

  // ---- reads (the state as last committed) ----

  list(): JobRecord[] {
    const out: JobRecord[] = [];
    for (const e of this.jobs.values()) if (e.state) out.push(e.state);
    return out.sort((a, b) => a.spec.id.localeCompare(b.spec.id));
  }

  get(jobId: string): JobRecord {
    const s = this.jobs.get(jobId)?.state;
    if (!s) throw new NotFoundError(`job ${jobId}`, { message: `Job '${jobId}' does not exist` });
    return s;
  }

  has(jobId: string): boolean {
    return this.jobs.get(jobId)?.state !== undefined;
  }

  /** The job's active runs, oldest first. */
  runs(jobId: string): JobRunRecord[] {
    const out: JobRunRecord[] = [];
    for (const e of this.runsByJob.get(jobId)?.values() ?? []) if (e.state) out.push(e.state);
    return out.sort((a, b) => a.createdAtMs - b.createdAtMs || a.runId.localeCompare(b.runId));
  }

  /** Every active run. */
  allRuns(): JobRunRecord[] {
    return [...this.runsByJob.keys()].flatMap((j) => this.runs(j));
  }

  run(jobId: string, runId: string): JobRunRecord | undefined {
    return this.runsByJob.get(jobId)?.get(runId)?.state;
  }

  // ---- changes ----

  create(spec: JobSpec, schedules: ScheduleSpec[]): Promise<JobRecord> {
    return this.serial(spec.id, async () => {
      const e = await this.job(spec.id);
      if (e.state)
        throw new AlreadyExistsError(`job ${spec.id}`, { message: "Job with this id already exists" });
      const now = this.now();
      await this.commit([
        this.jobChange(spec.id, e, [
          { type: "JobCreated", spec, schedules: schedules.map((s) => ({ spec: s, ...due(s, now) })) },
        ]),
      ]);
      return this.get(spec.id);
    });
  }

  update(spec: JobSpec): Promise<JobRecord> {
    return this.serial(spec.id, async () => {
      const e = await this.existing(spec.id);
      await this.commit([this.jobChange(spec.id, e, [{ type: "JobUpdated", spec }])]);
      return this.get(spec.id);
    });
  }

  /**
   * Replaces a job's definition and its schedules in one transaction (Metronome's
   * PUT /v0/scheduled-jobs): schedules not given are deleted, new ones created, the others updated
   * (an unchanged one keeps its next due time).
   */
  replace(spec: JobSpec, schedules: ScheduleSpec[]): Promise<JobRecord> {
    return this.serial(spec.id, async () => {
      const e = await this.existing(spec.id);
      const now = this.now();
      const before = new Map((e.state as JobRecord).schedules.map((r) => [r.spec.id, r.spec]));
      const given = new Set(schedules.map((x) => x.id));
      const events: JobEvent[] = [{ type: "JobUpdated", spec }];
      for (const id of before.keys())
        if (!given.has(id)) events.push({ type: "ScheduleDeleted", scheduleId: id });
      for (const x of schedules) {
        const old = before.get(x.id);
        if (!old) events.push({ type: "ScheduleCreated", spec: x, ...due(x, now) });
        else if (JSON.stringify(old) !== JSON.stringify(x))
          events.push({ type: "ScheduleUpdated", spec: x, ...due(x, now) });
      }
      await this.commit([this.jobChange(spec.id, e, events)]);
      return this.get(spec.id);
    });
  }

  /** Deletes a job; its active runs end FAILED with it when `stopRuns`, else 409. */
  remove(jobId: string, stopRuns: boolean): Promise<JobRecord> {
    return this.serial(jobId, async () => {
      const e = await this.existing(jobId);
      const runs = this.runs(jobId);
      if (runs.length > 0 && !stopRuns)
        throw new FailedPreconditionError("There are active job runs. Override with stopCurrentJobRuns=true");
      const ends = runs.map((r) => this.runEnd(r, { status: "FAILED", message: "the job was deleted" }));
      await this.commit([...ends.map((x) => x.run), this.jobChange(jobId, e, [{ type: "JobDeleted" }])]);
      return e.state as JobRecord;
    });
  }

  addSchedule(jobId: string, s: ScheduleSpec): Promise<ScheduleRecord> {
    return this.serial(jobId, async () => {
      const e = await this.existing(jobId);
      if (e.state?.schedules.some((r) => r.spec.id === s.id))
        throw new AlreadyExistsError(`schedule ${s.id}`, { message: `Schedule '${s.id}' already exists` });
      await this.commit([
        this.jobChange(jobId, e, [{ type: "ScheduleCreated", spec: s, ...due(s, this.now()) }]),
      ]);
      return this.schedule(jobId, s.id);
    });
  }

  updateSchedule(jobId: string, s: ScheduleSpec): Promise<ScheduleRecord> {
    return this.serial(jobId, async () => {
      const e = await this.existing(jobId);
      this.schedule(jobId, s.id);
      await this.commit([
        this.jobChange(jobId, e, [{ type: "ScheduleUpdated", spec: s, ...due(s, this.now()) }]),
      ]);
      return this.schedule(jobId, s.id);
    });
  }

  removeSchedule(jobId: string, scheduleId: string): Promise<void> {
    return this.serial(jobId, async () => {
      const e = await this.existing(jobId);
      this.schedule(jobId, scheduleId);
      await this.commit([this.jobChange(jobId, e, [{ type: "ScheduleDeleted", scheduleId }])]);
    });
  }

  schedule(jobId: string, scheduleId: string): ScheduleRecord {
    const r = this.get(jobId).schedules.find((x) => x.spec.id === scheduleId);
    if (!r)
      throw new NotFoundError(`schedule ${scheduleId}`, {
        message: `Schedule '${scheduleId}' of job '${jobId}' does not exist`,
      });
    return r;
  }

  /**
   * Starts a run of `jobId` (one transaction): with `fired`, the schedule's due time is handled by
   * it; `replace` runs end FAILED in the same transaction (REPLACE).
   */
  startRun(
    jobId: string,
    trigger: RunTrigger,
    opts: { fired?: Extract<JobEvent, { type: "ScheduleFired" }>; replace?: string[] } = {},
  ): Promise<JobRunRecord> {
    return this.serial(jobId, async () => {
      const e = await this.existing(jobId);
      const job = e.state as JobRecord;
      if (opts.fired) this.checkDue(job, opts.fired.scheduleId, opts.fired.dueMs);
      const now = this.now();
      let runId = runIdAt(now, () => randomInt(1 << 30) / (1 << 30));
      while (this.run(jobId, runId)) runId = runIdAt(now, () => randomInt(1 << 30) / (1 << 30));
      const deadline = job.spec.run.restart.activeDeadlineSeconds;
      const runEvent: JobRunEvent = {
        type: "JobRunCreated",
        jobId,
        runId,
        run: job.spec.run,
        trigger,
        ...(deadline !== undefined ? { deadlineAtMs: now + deadline * 1000 } : {}),
        ...(startingDeadlineOf(job, trigger) ?? {}),
      };
      const ends = (opts.replace ?? [])
        .map((id) => this.run(jobId, id))
        .filter((r): r is JobRunRecord => r !== undefined)
        .map((r) => this.runEnd(r, { status: "FAILED", message: `replaced by run ${runId} (REPLACE)` }));
      const jobEvents: JobEvent[] = [
        ...ends.map((x) => x.recorded),
        ...(opts.fired ? [{ ...opts.fired, runId }] : []),
      ];
      await this.commit([
        ...ends.map((x) => x.run),
        ...(jobEvents.length > 0 ? [this.jobChange(jobId, e, jobEvents)] : []),
        this.runChange(jobId, runId, { state: undefined, version: 0, modRevision: "0" }, [runEvent]),
      ]);
      return this.run(jobId, runId) as JobRunRecord;
    });
  }

  /** A schedule's due time handled without a run: skipped (FORBID) or missed (past its deadline). */
  scheduleHandled(
    jobId: string,
    event: Extract<JobEvent, { type: "ScheduleFired" | "ScheduleMissed" }>,
  ): Promise<void> {
    return this.serial(jobId, async () => {
      const e = await this.existing(jobId);
      this.checkDue(
        e.state as JobRecord,
        event.scheduleId,
        event.type === "ScheduleFired" ? event.dueMs : event.lastDueMs,
      );
      await this.commit([this.jobChange(jobId, e, [event])]);
    });
  }

  /**
   * A due time is handled once: only while the schedule's persisted next due time is not past it
   * (a decision made on a state that moved on, by a concurrent change, is refused).
   */
  private checkDue(job: JobRecord, scheduleId: string, dueMs: number): void {
    const r = job.schedules.find((x) => x.spec.id === scheduleId);
    if (!r || r.nextDueMs === undefined || r.nextDueMs > dueMs)
      throw new ConflictError(
        `schedule ${scheduleId} of job ${job.spec.id}: due time ${new Date(dueMs).toISOString()} already handled`,
      );
  }

  /** A task of the run ended and the run goes on (a retry waits until `retryAtMs`). */
  taskEnded(
    jobId: string,
    runId: string,
    task: Extract<JobRunEvent, { type: "JobRunTaskEnded" }>["task"],
    retryAtMs: number | undefined,
  ): Promise<void> {
    return this.serial(jobId, async () => {
      await this.job(jobId);
      const e = this.runsByJob.get(jobId)?.get(runId);
      if (!e?.state) return;
      await this.commit([
        this.runChange(jobId, runId, e, [
          { type: "JobRunTaskEnded", task, ...(retryAtMs !== undefined ? { retryAtMs } : {}) },
        ]),
      ]);
    });
  }

  /** Ends an active run (no-op when it is not active any more); `lastTask` is recorded first. */
  finishRun(
    jobId: string,
    runId: string,
    end: RunEnd,
    lastTask?: Extract<JobRunEvent, { type: "JobRunTaskEnded" }>["task"],
  ): Promise<RunSummary | undefined> {
    return this.serial(jobId, async () => {
      const job = await this.job(jobId);
      const run = this.run(jobId, runId);
      if (!run || !job.state) return undefined;
      const x = this.runEnd(run, end, lastTask);
      await this.commit([x.run, this.jobChange(jobId, job, [x.recorded])]);
      return x.summary;
    });
  }

  // ---- internals ----

  private runEnd(
    run: JobRunRecord,
    end: RunEnd,
    lastTask?: Extract<JobRunEvent, { type: "JobRunTaskEnded" }>["task"],
  ) {
    const e = this.runsByJob.get(run.jobId)?.get(run.runId) as Entry<JobRunRecord>;
    const now = this.now();
    const tasks = [
      ...run.ended.map((t) => t.taskId),
      ...(lastTask ? [lastTask.taskId] : []),
      ...(this.deps.activeTasks?.(run.jobId, run.runId) ?? []),
    ];
    const summary: RunSummary = {
      id: run.runId,
      status: end.status,
      createdAtMs: run.createdAtMs,
      finishedAtMs: now,
      ...(end.message !== undefined ? { message: end.message.slice(0, 2000) } : {}),
      ...(end.exitCode !== undefined ? { exitCode: end.exitCode } : {}),
      tasks: [...new Set(tasks)].slice(-1000),
    };
    const events: JobRunEvent[] = [
      ...(lastTask ? [{ type: "JobRunTaskEnded" as const, task: lastTask }] : []),
      {
        type: "JobRunFinished",
        status: end.status,
        ...(end.message !== undefined ? { message: end.message.slice(0, 2000) } : {}),
        ...(end.exitCode !== undefined ? { exitCode: end.exitCode } : {}),
      },
    ];
    return {
      summary,
      run: this.runChange(run.jobId, run.runId, e, events),
      recorded: { type: "JobRunRecorded" as const, run: summary, keep: this.deps.historyKept },
    };
  }

  private jobChange(jobId: string, e: Entry<JobRecord>, events: JobEvent[]): Change {
    return {
      def: JobAggregate,
      id: jobKey(jobId),
      expectedVersion: e.version,
      expectedModRevision: e.modRevision,
      ...(e.legacy ? { legacy: true } : {}),
      state: e.state,
      events,
      trusted: true,
    } as Change;
  }

  private runChange(jobId: string, runId: string, e: Entry<JobRunRecord>, events: JobRunEvent[]): Change {
    return {
      def: JobRunAggregate,
      id: jobRunKey(jobId, runId),
      expectedVersion: e.version,
      expectedModRevision: e.modRevision,
      state: e.state,
      events,
      trusted: true,
    } as Change;
  }

  private async commit(changes: Change[]): Promise<void> {
    try {
      const res = await this.deps.store.commit(this.deps.leadership, changes, this.now());
      for (const [i, r] of res.results.entries()) {
        const ch = changes[i];
        if (!ch) continue;
        const read = { state: r.state, version: r.version, modRevision: r.modRevision };
        if (ch.def === JobAggregate) {
          const st = r.state as JobRecord | undefined;
          const id = st?.spec.id ?? this.jobIdOfKey(ch.id);
          if (id !== undefined) this.jobs.set(id, read as Entry<JobRecord>);
        } else {
          const prev = ch.state as JobRunRecord | undefined;
          const st = (r.state as JobRunRecord | undefined) ?? prev;
          if (st) this.putRun(st.jobId, st.runId, read as Entry<JobRunRecord>);
        }
      }
    } catch (err) {
      // Unknown outcome or a conflict: re-read what the changes touched before the next commit.
      if (!(err instanceof FencedError)) for (const ch of changes) this.markStale(ch);
      throw err;
    }
  }

  private jobIdOfKey(key: string): string | undefined {
    for (const [id, e] of this.jobs) if (jobKey(id) === key && e) return id;
    return undefined;
  }

  private markStale(ch: Change): void {
    if (ch.def === JobAggregate) {
      const id = this.jobIdOfKey(ch.id);
      const e = id !== undefined ? this.jobs.get(id) : undefined;
      if (e) e.stale = true;
      return;
    }
    const st = ch.state as JobRunRecord | undefined;
    if (st) {
      const e = this.runsByJob.get(st.jobId)?.get(st.runId);
      if (e) e.stale = true;
    }
  }

  /** Keeps an active run (and forgets one that ended: a deleted state). */
  private putRun(jobId: string, runId: string, e: Entry<JobRunRecord>): void {
    let m = this.runsByJob.get(jobId);
    if (!e.state) {
      m?.delete(runId);
      if (m?.size === 0) this.runsByJob.delete(jobId);
      return;
    }
    if (!m) {
      m = new Map();
      this.runsByJob.set(jobId, m);
    }
    m.set(runId, e);
  }

  /** The job as committed (re-read, with its runs, after a commit of unknown outcome). */
  private async job(jobId: string): Promise<Entry<JobRecord>> {
    let e = this.jobs.get(jobId);
    if (!e || e.stale) {
      e = await this.deps.store.get(JobAggregate, jobKey(jobId));
      this.jobs.set(jobId, e);
    }
    for (const [runId, r] of [...(this.runsByJob.get(jobId) ?? [])])
      if (r.stale)
        this.putRun(jobId, runId, await this.deps.store.get(JobRunAggregate, jobRunKey(jobId, runId)));
    return e;
  }

  private async existing(jobId: string): Promise<Entry<JobRecord>> {
    const e = await this.job(jobId);
    if (!e.state) throw new NotFoundError(`job ${jobId}`, { message: `Job '${jobId}' does not exist` });
    return e;
  }

  private serial<T>(jobId: string, fn: () => Promise<T>): Promise<T> {
    const tail = this.queues.get(jobId) ?? Promise.resolve();
    const p = tail.then(fn, fn);
    const next = p.catch(() => undefined);
    this.queues.set(jobId, next);
    void next.then(() => {
      if (this.queues.get(jobId) === next) this.queues.delete(jobId);
    });
    return p;
  }
}

/** A scheduled run must have a task by its due time + the schedule's startingDeadlineSeconds. */
function startingDeadlineOf(job: JobRecord, trigger: RunTrigger): { startDeadlineAtMs: number } | undefined {
  if (trigger.kind !== "schedule") return undefined;
  const s = job.schedules.find((r) => r.spec.id === trigger.scheduleId);
  return s ? { startDeadlineAtMs: trigger.dueMs + s.spec.startingDeadlineSeconds * 1000 } : undefined;
}

function due(s: ScheduleSpec, now: number): { nextDueMs?: number } {
  const t = firstDue(s, now);
  return t !== undefined ? { nextDueMs: t } : {};
}
