/**
 * How a run's task is named and what it runs. A run's tasks carry the workload id
 * `/.jobs/<jobId>/<runId>` where an app's carry the app id (no Marathon app id starts with `.`),
 * so the scheduler, and a new leader reading the master's task list, tell them apart and find
 * their run. Task ids are Metronome's: `<jobId>_<runId>.<uuid>`. Pure.
 */
import type { TaskRun } from "../events/task.js";
import type { JobRunSpec } from "./spec.js";

export const JOB_WORKLOAD_PREFIX = "/.jobs/";

/** The workload id of a run's tasks (what the framework groups them by, the task's appId). */
export function runWorkloadId(jobId: string, runId: string): string {
  return `${JOB_WORKLOAD_PREFIX}${jobId}/${runId}`;
}

/** The job and run of a workload id, or undefined for an app's id. */
export function parseRunWorkloadId(id: string): { jobId: string; runId: string } | undefined {
  if (!id.startsWith(JOB_WORKLOAD_PREFIX)) return undefined;
  const rest = id.slice(JOB_WORKLOAD_PREFIX.length);
  const slash = rest.indexOf("/");
  if (slash <= 0 || slash === rest.length - 1) return undefined;
  return { jobId: rest.slice(0, slash), runId: rest.slice(slash + 1) };
}

export function runTaskId(jobId: string, runId: string, unique: string): string {
  return `${jobId}_${runId}.${unique}`;
}

/** The runtime needs of a run's task (volumes, artifacts, user, docker options, kill grace period). */
export function jobTaskRun(run: JobRunSpec): TaskRun {
  return {
    ...(run.volumes.length > 0
      ? {
          volumes: run.volumes.map((v) => ({
            containerPath: v.containerPath,
            hostPath: v.hostPath,
            mode: v.mode,
          })),
        }
      : {}),
    ...(run.artifacts.length > 0
      ? {
          fetch: run.artifacts.map((a) => ({
            uri: a.uri,
            extract: a.extract,
            executable: a.executable,
            cache: a.cache,
          })),
        }
      : {}),
    ...(run.user !== undefined ? { user: run.user } : {}),
    ...(run.docker?.privileged ? { privileged: true } : {}),
    ...(run.docker?.forcePullImage ? { forcePullImage: true } : {}),
    ...(run.docker?.parameters && run.docker.parameters.length > 0
      ? { dockerParameters: run.docker.parameters }
      : {}),
    ...(run.taskKillGracePeriodSeconds !== undefined
      ? { killGracePeriodSeconds: run.taskKillGracePeriodSeconds }
      : {}),
  };
}
