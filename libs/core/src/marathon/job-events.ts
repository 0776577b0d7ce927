/**
 * Metronome's events for the job and job-run aggregates (what `/v2/events` sends for them), with
 * Metronome's names: job_created, job_updated, job_deleted, job_run_started, job_run_finished
 * (SUCCESS) and job_run_failed. Pure. Schedules, retries and missed due times are Drover's own events
 * only (in `drover events`); Metronome published none for them.
 */
import type { JobEvent } from "../events/job.js";
import type { JobRunEvent } from "../events/job-run.js";

export const JOB_EVENT_TYPES = [
  "job_created",
  "job_updated",
  "job_deleted",
  "job_run_started",
  "job_run_finished",
  "job_run_failed",
] as const;

type Out = { eventType: (typeof JOB_EVENT_TYPES)[number]; timestamp: string; [k: string]: unknown };

/** The job id and run id of a job-run aggregate key (`<job key>_<run id>`; job keys spell `.` as `_`). */
export function jobRunOfKey(key: string): { jobId: string; runId: string } | undefined {
  const i = key.lastIndexOf("_");
  if (i <= 0 || i === key.length - 1) return undefined;
  return { jobId: key.slice(0, i).replaceAll("_", "."), runId: key.slice(i + 1) };
}

export function jobEvents(jobKey: string, e: JobEvent, timestamp: string): Out[] {
  switch (e.type) {
    case "JobCreated":
      return [{ eventType: "job_created", timestamp, job: { ...e.spec } }];
    case "JobUpdated":
      return [{ eventType: "job_updated", timestamp, job: { ...e.spec } }];
    case "JobDeleted":
      return [{ eventType: "job_deleted", timestamp, jobId: jobKey.replaceAll("_", ".") }];
    default:
      return [];
  }
}

export function jobRunEvents(key: string, e: JobRunEvent, timestamp: string): Out[] {
  const ids = jobRunOfKey(key);
  if (!ids) return [];
  switch (e.type) {
    case "JobRunCreated":
      return [
        {
          eventType: "job_run_started",
          timestamp,
          jobRun: {
            id: e.runId,
            jobId: e.jobId,
            status: "INITIAL",
            createdAt: timestamp,
            completedAt: null,
            tasks: [],
          },
        },
      ];
    case "JobRunFinished":
      return [
        {
          eventType: e.status === "SUCCESS" ? "job_run_finished" : "job_run_failed",
          timestamp,
          jobRun: {
            id: ids.runId,
            jobId: ids.jobId,
            status: e.status,
            completedAt: timestamp,
            ...(e.message !== undefined ? { message: e.message } : {}),
            ...(e.exitCode !== undefined ? { exitCode: e.exitCode } : {}),
          },
        },
      ];
    default:
      return [];
  }
}
