/**
 * One step of a rolling upgrade (or restart) of one app, as Marathon's TaskReplaceActor decides it
 * (../shared/marathon/SEMANTICS.md section 1), stated without memory: given the app's tasks now,
 * which new-version tasks to launch and which tasks to kill, whether the upgrade is done, and what it
 * waits for. The scheduler calls it on every change of the app's tasks (a start, a health result, a
 * death) and carries out what it says; calling it again with the same tasks gives the same answer
 * (and the same answer for the tasks in any order), so a new leader resumes where the old one stopped.
 *
 * Words. `n` = `instances`; `minHealthy = ceil(n × minimumHealthCapacity)`;
 * `maxInstances = floor(n × (1 + maximumOverCapacity))` (Marathon's double arithmetic, Scala `.toInt`).
 * A task is *going* when a kill was requested or it is `TASK_KILLING`; *live* when active and not
 * going. *Healthy* = live, `TASK_RUNNING` and `healthy`; a new task counts only when also `ready`.
 * `healthy` (the count) = healthy old tasks + healthy and ready new tasks. Every active task (going
 * ones too, until terminal) holds capacity.
 *
 * The rules, each a function of the tasks now:
 * - Meeting case: when `minHealthy == maxInstances <= healthy`, a non-resident app may run one extra
 *   instance (`maxInstances + 1`); a resident app instead may kill one healthy old task more.
 * - Kill every live old task that is not healthy (unhealthy ones go first: they count for nothing).
 * - Kill healthy old tasks, oldest first, while `healthy` stays at or above `minHealthy` (one below
 *   for a resident app at the limit). This is Marathon's "kill `H − minH` at start" and "kill one old
 *   per new healthy and ready" at once, and it covers the leftovers of an interrupted forced deployment:
 *   old tasks beyond `n` are always within that budget.
 * - Kill live new tasks beyond `n` (not healthy or not ready ones first, then the youngest).
 * - Launch `min(n − live new, maxInstances − active)` new tasks (never negative).
 * - Done when no old task is active and exactly `n` live new tasks are all healthy and ready.
 *
 * Deliberate difference from Marathon: Marathon kills only `H − minH` instances at start (unhealthy
 * first) and one per new healthy one; here an unhealthy old task is killed at once. It adds nothing to
 * the healthy count and holds capacity; waiting for it could stall the upgrade forever (e.g. n = 3 at
 * 1 / 0 with one old task unhealthy: Marathon has no room and kills nothing).
 *
 * Canaries (a Drover extension): while `canaryInstances` is set, at most that many new tasks are live
 * (launches stop there), no old task is killed except those beyond `n` (unhealthy first), `done` is
 * false and `waitingFor` reads `canary: N of M new instances healthy; waiting for promote`. Promoting
 * is calling without `canaryInstances`.
 *
 * Guarantees (property-tested in rolling.property.test.ts, over any interleaving of starts, health
 * flips, failures and the steps' own kills and launches):
 * - a kill asked for never brings `healthy` below `minHealthy` (a resident app at the limit: one
 *   below); when `healthy` is already below, no healthy task is killed;
 * - a launch asked for never brings active tasks above `maxInstances` (+1 in the meeting case for a
 *   non-resident app);
 * - when every started task becomes healthy and ready and nothing fails, repeated steps reach `done`
 *   within `4n + 4` rounds, with exactly `n` new healthy tasks and no old active one;
 * - the answer does not depend on the order of `tasks`; `waitingFor` is empty exactly when done.
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
  /** Both in [0, 1] (values outside are clamped). */
  strategy: { minimumHealthCapacity: number; maximumOverCapacity: number };
  /** A resident app (persistent volumes) cannot have an extra instance: it kills one more instead. */
  resident: boolean;
  tasks: readonly DeploymentTask[];
  /**
   * Canary phase (Drover extension): at most this many new tasks are live, no healthy old task is
   * killed unless beyond `n`, and the upgrade is not done until called without it (promote).
   */
  canaryInstances?: number;
}

export interface RollingCounts {
  /** Old tasks still active (going ones included). */
  old: number;
  /** Live new tasks (active, no kill requested). */
  new: number;
  /** New tasks healthy and ready. */
  newHealthy: number;
  /** Old tasks healthy and not being killed, plus newHealthy. */
  healthy: number;
  minHealthy: number;
  /** The cap on active tasks in this step (one more than the strategy's in the meeting case). */
  maxInstances: number;
}

export interface RollingStep {
  /** New-version tasks to launch now. */
  launch: number;
  /**
   * Tasks to kill now: old ones (unhealthy first, then oldest healthy), then new ones beyond `n`.
   * Sorted as listed; never a task whose kill was already requested.
   */
  kill: string[];
  done: boolean;
  /** What the upgrade waits for, in words ("" when done). */
  waitingFor: string;
  counts: RollingCounts;
}

export function rollingStep(input: RollingInput): RollingStep {
  const n = wholeCount(input.instances);
  const minHealthy = Math.ceil(n * unit(input.strategy.minimumHealthCapacity));
  const strategyMax = Math.floor(n * (1 + unit(input.strategy.maximumOverCapacity)));
  const canary = input.canaryInstances === undefined ? undefined : wholeCount(input.canaryInstances);

  const active = input.tasks.filter((t) => isActive(t.state));
  const oldActive = active.filter((t) => !t.isNew);
  const oldLive = oldActive.filter((t) => !isGoing(t));
  const oldHealthy = oldLive.filter(isHealthy).sort(oldestFirst);
  const oldUnhealthy = oldLive.filter((t) => !isHealthy(t)).sort(oldestFirst);
  const newLive = active.filter((t) => t.isNew && !isGoing(t));
  const newHealthy = newLive.filter(isHealthyAndReady).length;
  const healthy = oldHealthy.length + newHealthy;

  const meeting = minHealthy === strategyMax && strategyMax <= healthy;
  const maxInstances = strategyMax + (meeting && !input.resident ? 1 : 0);
  const extraKill = meeting && input.resident ? 1 : 0;

  // New tasks beyond n: only when more than n are healthy and ready is a healthy one among them,
  // and then n healthy ones stay, so this never brings `healthy` below minHealthy.
  const newVictims = [...newLive].sort(newVictimFirst).slice(0, Math.max(0, newLive.length - n));
  const healthyAfterNewKills = healthy - newVictims.filter(isHealthyAndReady).length;

  let oldVictims: DeploymentTask[];
  if (canary === undefined) {
    const budget = Math.max(0, healthyAfterNewKills - minHealthy + extraKill);
    oldVictims = [...oldUnhealthy, ...oldHealthy.slice(0, budget)];
  } else {
    // Canary: only the old tasks beyond n go, unhealthy first. The n that stay are at least as
    // healthy as before minus nothing: a healthy one is killed only when all unhealthy ones are.
    oldVictims = [...oldUnhealthy, ...oldHealthy].slice(0, Math.max(0, oldLive.length - n));
  }
  const kill = [...oldVictims, ...newVictims].map((t) => t.taskId);

  const wanted = canary === undefined ? n : Math.min(n, canary);
  const room = Math.max(0, maxInstances - active.length);
  const launch = Math.min(Math.max(0, wanted - newLive.length), room);
  const done = canary === undefined && oldActive.length === 0 && newLive.length === n && newHealthy === n;

  const counts: RollingCounts = {
    old: oldActive.length,
    new: newLive.length,
    newHealthy,
    healthy,
    minHealthy,
    maxInstances,
  };
  const waitingFor = done
    ? ""
    : waiting({
        counts,
        n,
        canary,
        launch,
        active: active.length,
        oldLive: oldLive.length,
        oldKilled: oldVictims.length,
      });
  return { launch, kill, done, waitingFor, counts };
}

function waiting(w: {
  counts: RollingCounts;
  n: number;
  canary: number | undefined;
  launch: number;
  active: number;
  oldLive: number;
  oldKilled: number;
}): string {
  const { counts: c, n, launch } = w;
  const noRoom = `${w.active} active, at most ${c.maxInstances}`;
  if (w.canary !== undefined) {
    const m = Math.min(n, w.canary);
    const text = `canary: ${c.newHealthy} of ${m} new instances healthy; waiting for promote`;
    const unstarted = m - c.new - launch;
    return unstarted > 0 ? `${text} (no room to start ${unstarted} more: ${noRoom})` : text;
  }
  const parts: string[] = [];
  if (c.newHealthy < n) {
    parts.push(`waiting for ${n - c.newHealthy} of ${n} new instances to become healthy and ready`);
    const unstarted = n - c.new - launch;
    if (unstarted > 0) parts.push(`${unstarted} not started yet: no room (${noRoom})`);
  } else if (c.new > n) {
    parts.push(`waiting for ${c.new - n} new instances beyond ${n} to stop`);
  }
  if (c.old > 0) {
    const kept = w.oldLive - w.oldKilled;
    parts.push(
      kept > 0
        ? `waiting for ${c.old} old instances to stop (${kept} kept while the minimum health capacity needs them)`
        : `waiting for ${c.old} old instances to stop`,
    );
  }
  return parts.join("; ");
}

function isGoing(t: DeploymentTask): boolean {
  return t.killRequested || t.state === "TASK_KILLING";
}

function isHealthy(t: DeploymentTask): boolean {
  return t.state === "TASK_RUNNING" && t.healthy;
}

function isHealthyAndReady(t: DeploymentTask): boolean {
  return isHealthy(t) && t.ready;
}

/** Ties on the creation time are broken by taskId, so the order of `tasks` never matters. */
function oldestFirst(a: DeploymentTask, b: DeploymentTask): number {
  return a.createdAtMs - b.createdAtMs || byId(a, b);
}

/** New victims: not healthy-and-ready first, then the youngest (Marathon's default YOUNGEST_FIRST). */
function newVictimFirst(a: DeploymentTask, b: DeploymentTask): number {
  const ha = isHealthyAndReady(a) ? 1 : 0;
  const hb = isHealthyAndReady(b) ? 1 : 0;
  return ha - hb || b.createdAtMs - a.createdAtMs || byId(a, b);
}

function byId(a: DeploymentTask, b: DeploymentTask): number {
  return a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0;
}

function wholeCount(x: number): number {
  return Number.isFinite(x) ? Math.max(0, Math.floor(x)) : 0;
}

function unit(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}
