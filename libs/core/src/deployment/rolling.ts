/**
 * One step of a rolling upgrade (or restart) of one app, as Marathon's TaskReplaceActor decides it
 * (../shared/marathon/SEMANTICS.md section 1), stated without memory: given the app's tasks now,
 * which new-version tasks to launch and which old ones to kill, whether the upgrade is done, and
 * what it waits for. The scheduler calls it on every change of the app's tasks (a start, a health
 * result, a death) and carries out what it says; calling it again with the same tasks gives the same
 * answer, so a new leader resumes where the old one stopped.
 *
 * Bounds kept (property-tested): instances considered healthy never drop below
 * `minHealthy = ceil(n × minimumHealthCapacity)` because of a kill this function asks for, and
 * active instances never exceed `maxInstances = floor(n × (1 + maximumOverCapacity))` (plus one
 * when the two meet, so that the upgrade can proceed) because of a launch it asks for.
 */
import type { TaskState } from "../task-state.js";
import { isActive } from "../task-state.js";

export interface DeploymentTask {
  taskId: string;
  /** Runs the target configuration (launched since the change being deployed). */
  isNew: boolean;
  state: TaskState;
  /** RUNNING and every health check alive (RUNNING is enough for an app without health checks). */
  healthy: boolean;
  /** Every readiness check passed (true for an app without readiness checks). */
  ready: boolean;
  /** A kill was already requested: the task still holds capacity until it is terminal. */
  killRequested: boolean;
  createdAtMs: number;
}

export interface RollingInput {
  /** n: the target number of instances. */
  instances: number;
  strategy: { minimumHealthCapacity: number; maximumOverCapacity: number };
  /** A resident app (persistent volumes) cannot have an extra instance: it kills one more instead. */
  resident: boolean;
  tasks: readonly DeploymentTask[];
}

export interface RollingCounts {
  old: number;
  new: number;
  /** New tasks healthy and ready. */
  newHealthy: number;
  /** Old tasks healthy and not being killed, plus newHealthy. */
  healthy: number;
  minHealthy: number;
  maxInstances: number;
}

export interface RollingStep {
  /** New-version tasks to launch now. */
  launch: number;
  /** Old tasks to kill now, unhealthy ones first. */
  kill: string[];
  done: boolean;
  /** What the upgrade waits for, in words ("" when done). */
  waitingFor: string;
  counts: RollingCounts;
}

export function rollingStep(input: RollingInput): RollingStep {
  const n = Math.max(0, Math.floor(input.instances));
  const minHealthy = Math.ceil(n * input.strategy.minimumHealthCapacity);
  let maxInstances = Math.floor(n * (1 + input.strategy.maximumOverCapacity));
  const active = input.tasks.filter((t) => isActive(t.state));
  const oldActive = active.filter((t) => !t.isNew);
  const newActive = active.filter((t) => t.isNew && !t.killRequested);
  const oldLive = oldActive.filter((t) => !t.killRequested);
  const newHealthy = newActive.filter((t) => t.healthy && t.ready).length;
  const oldHealthy = oldLive.filter((t) => t.healthy).length;
  const healthy = oldHealthy + newHealthy;
  let extraKill = 0;
  if (minHealthy === maxInstances && maxInstances <= healthy) {
    if (input.resident) extraKill = 1;
    else maxInstances += 1;
  }
  // Old tasks that may go now without the healthy count dropping below the minimum: every unhealthy
  // one, and healthy ones down to the minimum (one more for a resident app at the limit).
  const unhealthyOld = oldLive.filter((t) => !t.healthy);
  const healthyOld = oldLive.filter((t) => t.healthy);
  const byAge = (a: DeploymentTask, b: DeploymentTask) =>
    a.createdAtMs - b.createdAtMs || (a.taskId < b.taskId ? -1 : 1);
  const healthyKillable = Math.min(healthyOld.length, Math.max(0, healthy - minHealthy + extraKill));
  // Surplus beyond n (an interrupted, forced deployment): old ones go regardless.
  const surplus = Math.max(0, oldLive.length + newActive.length - n);
  const kills = [
    ...unhealthyOld.sort(byAge),
    ...healthyOld.sort(byAge).slice(0, Math.max(healthyKillable, surplus - unhealthyOld.length)),
  ];
  const kill = kills.map((t) => t.taskId);
  const room = Math.max(0, maxInstances - oldActive.length - newActive.length);
  const launch = Math.min(Math.max(0, n - newActive.length), room);
  const done = newHealthy >= n && newActive.length === n && oldActive.length === 0;
  const counts: RollingCounts = {
    old: oldActive.length,
    new: newActive.length,
    newHealthy,
    healthy,
    minHealthy,
    maxInstances,
  };
  return { launch, kill, done, waitingFor: done ? "" : waiting(counts, n, launch, kill.length), counts };
}

function waiting(c: RollingCounts, n: number, launch: number, kill: number): string {
  if (c.newHealthy < n && c.new + launch >= n)
    return `waiting for ${n - c.newHealthy} of ${n} new instances to become healthy and ready`;
  if (c.newHealthy < n)
    return `waiting for room to start ${n - c.new - launch} more new instances (${c.old} old still active, at most ${c.maxInstances})`;
  return `waiting for ${c.old} old instances to stop${kill > 0 ? "" : ""}`;
}
