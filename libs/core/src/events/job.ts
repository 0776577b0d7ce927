/**
 * The job aggregate (`job/<job key>`): a Metronome job definition, its schedules with their
 * progress (the next due time, persisted in the transaction of what each due time led to), and its
 * bounded history of finished runs. Every time in an event is chosen by the writer, so a replay
 * rebuilds the record exactly.
 */
import { z } from "zod";
import type { JobHistory, RunSummary } from "../jobs/run.js";
import { recordRun } from "../jobs/run.js";
import { JobSpecSchema, type ScheduleSpecSchema } from "../jobs/spec.js";
import type { AggregateDef } from "./aggregate.js";

/** The key of a job in etcd and NATS subjects: its id with `.` as `_` (job ids have no `_`). */
export function jobKey(jobId: string): string {
  return jobId.replaceAll(".", "_");
}

const ms = z.number().int().min(0);

/** A stored schedule: what schedules accept, as parsed (defaults applied). */
const StoredScheduleSchema = z.strictObject({
  id: z.string(),
  cron: z.string(),
  timezone: z.string(),
  startingDeadlineSeconds: z.number().int(),
  concurrencyPolicy: z.enum(["ALLOW", "FORBID", "REPLACE"]),
  enabled: z.boolean(),
});
// Parsed input and stored shape agree (checked at compile time).
const _sameSchedule: z.infer<typeof StoredScheduleSchema> = {} as z.output<typeof ScheduleSpecSchema>;
void _sameSchedule;

export const ScheduleRecordSchema = z.strictObject({
  spec: StoredScheduleSchema,
  nextDueMs: ms.optional(),
  lastFiredMs: ms.optional(),
  /** Due times passed without a run: past the starting deadline, or skipped under FORBID. */
  missed: z.number().int().min(0),
  skipped: z.number().int().min(0),
});
export type ScheduleRecord = z.infer<typeof ScheduleRecordSchema>;

export const RunSummarySchema = z.strictObject({
  id: z.string(),
  status: z.enum(["SUCCESS", "FAILED"]),
  createdAtMs: ms,
  finishedAtMs: ms,
  message: z.string().max(2048).optional(),
  exitCode: z.number().int().optional(),
  tasks: z.array(z.string()).max(1000),
});
const _sameSummary: RunSummary = {} as z.infer<typeof RunSummarySchema>;
void _sameSummary;

const JobHistorySchema = z.strictObject({
  successCount: z.number().int().min(0),
  failureCount: z.number().int().min(0),
  lastSuccessAtMs: ms.optional(),
  lastFailureAtMs: ms.optional(),
  successfulFinishedRuns: z.array(RunSummarySchema),
  failedFinishedRuns: z.array(RunSummarySchema),
});

export const JobEventSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("JobCreated"),
    spec: JobSpecSchema,
    schedules: z.array(z.strictObject({ spec: StoredScheduleSchema, nextDueMs: ms.optional() })),
  }),
  z.strictObject({ type: z.literal("JobUpdated"), spec: JobSpecSchema }),
  z.strictObject({ type: z.literal("JobDeleted") }),
  z.strictObject({
    type: z.literal("ScheduleCreated"),
    spec: StoredScheduleSchema,
    nextDueMs: ms.optional(),
  }),
  z.strictObject({
    type: z.literal("ScheduleUpdated"),
    spec: StoredScheduleSchema,
    nextDueMs: ms.optional(),
  }),
  z.strictObject({ type: z.literal("ScheduleDeleted"), scheduleId: z.string() }),
  /** A due time was handled: a run started (`runId`), or it was skipped (FORBID) with `reason`. */
  z.strictObject({
    type: z.literal("ScheduleFired"),
    scheduleId: z.string(),
    dueMs: ms,
    runId: z.string().optional(),
    skipped: z.string().max(1024).optional(),
    /** Earlier due times passed over (only the latest fires). */
    missed: z.number().int().min(0),
    nextDueMs: ms.optional(),
  }),
  /** Due times passed beyond the starting deadline: none fired. */
  z.strictObject({
    type: z.literal("ScheduleMissed"),
    scheduleId: z.string(),
    missed: z.number().int().min(0),
    firstDueMs: ms,
    lastDueMs: ms,
    nextDueMs: ms.optional(),
  }),
  /** A run ended: into the history, which keeps the newest `keep` of each kind. */
  z.strictObject({ type: z.literal("JobRunRecorded"), run: RunSummarySchema, keep: z.number().int().min(0) }),
]);
export type JobEvent = z.infer<typeof JobEventSchema>;

export const JobRecordSchema = z.strictObject({
  spec: JobSpecSchema,
  schedules: z.array(ScheduleRecordSchema),
  history: JobHistorySchema,
  createdAtMs: ms,
  updatedAtMs: ms,
});
export type JobRecord = z.infer<typeof JobRecordSchema>;

function withSchedule(
  s: JobRecord,
  id: string,
  f: (r: ScheduleRecord) => ScheduleRecord | undefined,
): JobRecord {
  const schedules: ScheduleRecord[] = [];
  for (const r of s.schedules) {
    if (r.spec.id !== id) schedules.push(r);
    else {
      const next = f(r);
      if (next) schedules.push(next);
    }
  }
  return { ...s, schedules };
}

const progress = (nextDueMs: number | undefined) => (nextDueMs !== undefined ? { nextDueMs } : {});

export const JobAggregate: AggregateDef<JobRecord, JobEvent> = {
  name: "job",
  eventSchema: JobEventSchema,
  stateSchema: JobRecordSchema,
  apply(state, event, { atMs }) {
    if (event.type === "JobCreated")
      return {
        spec: event.spec,
        schedules: event.schedules.map((s) => ({
          spec: s.spec,
          ...progress(s.nextDueMs),
          missed: 0,
          skipped: 0,
        })),
        history: { successCount: 0, failureCount: 0, successfulFinishedRuns: [], failedFinishedRuns: [] },
        createdAtMs: atMs,
        updatedAtMs: atMs,
      };
    if (!state) return state;
    switch (event.type) {
      case "JobUpdated":
        return { ...state, spec: event.spec, updatedAtMs: atMs };
      case "JobDeleted":
        return undefined;
      case "ScheduleCreated":
        return {
          ...state,
          schedules: [
            ...state.schedules.filter((r) => r.spec.id !== event.spec.id),
            { spec: event.spec, ...progress(event.nextDueMs), missed: 0, skipped: 0 },
          ],
        };
      case "ScheduleUpdated":
        return withSchedule(state, event.spec.id, (r) => {
          const { nextDueMs: _, ...rest } = r;
          return { ...rest, spec: event.spec, ...progress(event.nextDueMs) };
        });
      case "ScheduleDeleted":
        return withSchedule(state, event.scheduleId, () => undefined);
      case "ScheduleFired":
        return withSchedule(state, event.scheduleId, (r) => {
          const { nextDueMs: _, ...rest } = r;
          return {
            ...rest,
            ...progress(event.nextDueMs),
            ...(event.runId !== undefined ? { lastFiredMs: event.dueMs } : {}),
            missed: r.missed + event.missed,
            skipped: r.skipped + (event.skipped !== undefined ? 1 : 0),
          };
        });
      case "ScheduleMissed":
        return withSchedule(state, event.scheduleId, (r) => {
          const { nextDueMs: _, ...rest } = r;
          return { ...rest, ...progress(event.nextDueMs), missed: r.missed + event.missed };
        });
      case "JobRunRecorded": {
        const history: JobHistory = recordRun(state.history, event.run, event.keep);
        return { ...state, history };
      }
    }
  },
};
