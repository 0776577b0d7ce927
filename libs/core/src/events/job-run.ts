/**
 * The job-run aggregate (`job-run/<job key>_<run id>`): one active run of a job, with the run spec
 * it was started with, what started it, its deadline and the tasks it has had. A run exists while
 * it is active: JobRunFinished ends it (the job's history keeps its summary, written in the same
 * transaction). Its tasks are the master's; the run records how each ended (for retries and the
 * history), not every state change.
 */
import { z } from "zod";
import { JobRunSpecSchema } from "../jobs/spec.js";
import type { AggregateDef } from "./aggregate.js";
import { jobKey } from "./job.js";

const ms = z.number().int().min(0);

export const RunTriggerSchema = z.discriminatedUnion("kind", [
  z.strictObject({ kind: z.literal("manual") }),
  z.strictObject({ kind: z.literal("schedule"), scheduleId: z.string(), dueMs: ms }),
]);
export type RunTrigger = z.infer<typeof RunTriggerSchema>;

const TaskEndSchema = z.strictObject({
  taskId: z.string(),
  state: z.string(),
  exitCode: z.number().int().optional(),
  message: z.string().max(2048),
  atMs: ms,
});

export const JobRunEventSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("JobRunCreated"),
    jobId: z.string(),
    runId: z.string(),
    run: JobRunSpecSchema,
    trigger: RunTriggerSchema,
    deadlineAtMs: ms.optional(),
    /** A scheduled run: aborted if it has had no task by then (its due time + startingDeadlineSeconds). */
    startDeadlineAtMs: ms.optional(),
  }),
  /** One of its tasks ended; a retry (ON_FAILURE) waits until `retryAtMs`. */
  z.strictObject({
    type: z.literal("JobRunTaskEnded"),
    task: TaskEndSchema,
    retryAtMs: ms.optional(),
  }),
  z.strictObject({
    type: z.literal("JobRunFinished"),
    status: z.enum(["SUCCESS", "FAILED"]),
    message: z.string().max(2048).optional(),
    exitCode: z.number().int().optional(),
  }),
]);
export type JobRunEvent = z.infer<typeof JobRunEventSchema>;

export const JobRunRecordSchema = z.strictObject({
  jobId: z.string(),
  runId: z.string(),
  run: JobRunSpecSchema,
  trigger: RunTriggerSchema,
  createdAtMs: ms,
  deadlineAtMs: ms.optional(),
  startDeadlineAtMs: ms.optional(),
  retryAtMs: ms.optional(),
  /** How its earlier tasks ended, oldest first (at most the last 50). */
  ended: z.array(TaskEndSchema),
  failures: z.number().int().min(0),
});
export type JobRunRecord = z.infer<typeof JobRunRecordSchema>;

/** The aggregate id of a run. */
export function jobRunKey(jobId: string, runId: string): string {
  return `${jobKey(jobId)}_${runId}`;
}

export const JobRunAggregate: AggregateDef<JobRunRecord, JobRunEvent> = {
  name: "job-run",
  eventSchema: JobRunEventSchema,
  stateSchema: JobRunRecordSchema,
  apply(state, event, { atMs }) {
    switch (event.type) {
      case "JobRunCreated":
        return {
          jobId: event.jobId,
          runId: event.runId,
          run: event.run,
          trigger: event.trigger,
          createdAtMs: atMs,
          ...(event.deadlineAtMs !== undefined ? { deadlineAtMs: event.deadlineAtMs } : {}),
          ...(event.startDeadlineAtMs !== undefined ? { startDeadlineAtMs: event.startDeadlineAtMs } : {}),
          ended: [],
          failures: 0,
        };
      case "JobRunTaskEnded": {
        if (!state) return state;
        const { retryAtMs: _, ...rest } = state;
        const failed = event.task.state !== "TASK_FINISHED" || (event.task.exitCode ?? 0) !== 0;
        return {
          ...rest,
          ended: [...state.ended, event.task].slice(-50),
          failures: state.failures + (failed ? 1 : 0),
          ...(event.retryAtMs !== undefined ? { retryAtMs: event.retryAtMs } : {}),
        };
      }
      case "JobRunFinished":
        return undefined;
    }
  },
};
