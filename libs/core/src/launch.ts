/**
 * An Accept is a plan submission (Nomad's SubmitPlan): the master checks it here, in one pure
 * function, and the shell only commits what this returns. Checked: the offers are known, the
 * framework's and unexpired, one agent's, each counted once; every task is a valid TaskInfo
 * within the size limits, with a new id, on that agent; host ports are disjoint across the
 * tasks of the accept; and everything fits in the offers. A refusal lists every issue by field.
 */

import { type TaskInfo, TaskInfoSchema } from "./events/task.js";
import { LIMITS, utf8Bytes } from "./limits.js";
import {
  addResources,
  emptyResources,
  missingResources,
  type PortRange,
  type Resources,
} from "./resources.js";
import { type FieldIssue, formatPath, validate } from "./validation.js";

export interface LaunchOffer {
  offerId: string;
  frameworkId: string;
  agentId: string;
  resources: Resources;
  expiresAtMs: number;
}

export interface LaunchRequest {
  frameworkId: string;
  offerIds: readonly string[];
  /** Tasks in domain shape (before validation), each with the path of its field in the request. */
  tasks: readonly { path: (string | number)[]; task: unknown }[];
}

export interface LaunchView {
  offer(offerId: string): LaunchOffer | undefined;
  /** Whether a task with this id exists (or existed) in the cluster. */
  taskExists(taskId: string): boolean;
  nowMs: number;
}

export interface LaunchPlan {
  agentId: string;
  offers: LaunchOffer[];
  tasks: TaskInfo[];
  /** What the tasks take from the offers (the rest goes back to the pool). */
  need: Resources;
}

export type LaunchVerdict = { ok: true; plan: LaunchPlan } | { ok: false; issues: FieldIssue[] };

const TASK_ID = new RegExp(`^[a-zA-Z0-9._-]{1,${LIMITS.taskIdChars}}$`);

export function evaluateLaunch(req: LaunchRequest, view: LaunchView): LaunchVerdict {
  const issues: FieldIssue[] = [];
  const at = (...path: (string | number)[]) => formatPath(path);
  if (req.offerIds.length === 0) issues.push({ path: "offerIds", message: "at least one offer is required" });
  const offers: LaunchOffer[] = [];
  const counted = new Set<string>();
  for (const [i, id] of req.offerIds.entries()) {
    if (counted.has(id)) {
      issues.push({ path: at("offerIds", i), message: `offer ${id} is listed twice` });
      continue;
    }
    counted.add(id);
    const o = view.offer(id);
    if (!o || o.expiresAtMs <= view.nowMs)
      issues.push({ path: at("offerIds", i), message: `offer ${id} is unknown, expired or already used` });
    else if (o.frameworkId !== req.frameworkId)
      issues.push({ path: at("offerIds", i), message: `offer ${id} belongs to another framework` });
    else offers.push(o);
  }
  const agentIds = new Set(offers.map((o) => o.agentId));
  if (agentIds.size > 1) issues.push({ path: "offerIds", message: "offers must all be for one agent" });
  // With an offer refused, the tasks' agent cannot be judged: say only what is wrong with the offers.
  const offersOk = issues.length === 0;

  const tasks: TaskInfo[] = [];
  const paths: (string | number)[][] = [];
  const seen = new Set<string>();
  for (const { path, task } of req.tasks) {
    const v = validate(TaskInfoSchema, task);
    if (!v.ok) {
      for (const x of v.issues)
        issues.push({ path: x.path ? `${at(...path)}.${x.path}` : at(...path), message: x.message });
      continue;
    }
    const t = v.value;
    if (t.frameworkId !== req.frameworkId)
      issues.push({ path: at(...path, "frameworkId"), message: "must be the accepting framework" });
    const bytes = utf8Bytes(JSON.stringify(t));
    if (bytes > LIMITS.taskBytes)
      issues.push({
        path: at(...path),
        message: `the task is ${bytes} bytes; at most ${LIMITS.taskBytes} are allowed`,
      });
    if (!TASK_ID.test(t.taskId))
      issues.push({
        path: at(...path, "taskId"),
        message: `must be 1-${LIMITS.taskIdChars} of [a-zA-Z0-9._-]`,
      });
    else if (seen.has(t.taskId))
      issues.push({ path: at(...path, "taskId"), message: `task ${t.taskId} is listed twice` });
    else if (view.taskExists(t.taskId))
      issues.push({ path: at(...path, "taskId"), message: `task ${t.taskId} already exists` });
    if (offersOk && !agentIds.has(t.agentId))
      issues.push({ path: at(...path, "agentId"), message: "not the agent of the offers" });
    if (!(t.resources.cpus > 0) || !(t.resources.mem > 0))
      issues.push({ path: at(...path, "resources"), message: "cpus and mem must be > 0" });
    seen.add(t.taskId);
    tasks.push(t);
    paths.push(path);
  }
  issues.push(...portClashes(tasks, paths));

  let offered = emptyResources();
  for (const o of offers) offered = addResources(offered, o.resources);
  let need = emptyResources();
  for (const t of tasks) need = addResources(need, t.resources);
  if (issues.length === 0)
    for (const r of missingResources(need, offered))
      issues.push({
        path: "operations",
        message:
          r === "ports"
            ? "the tasks need host ports the offers do not hold"
            : `the tasks need ${round(need[r])} ${r}, the offers hold ${round(offered[r])}`,
      });
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, plan: { agentId: offers[0]?.agentId ?? "", offers, tasks, need } };
}

/** Two tasks of one accept may not claim the same host port (a union of ranges would hide it). */
function portClashes(tasks: TaskInfo[], paths: (string | number)[][]): FieldIssue[] {
  const claims: { range: PortRange; task: number }[] = [];
  for (const [i, t] of tasks.entries())
    for (const range of t.resources.ports) claims.push({ range, task: i });
  claims.sort((a, b) => a.range.begin - b.range.begin || a.task - b.task);
  const issues: FieldIssue[] = [];
  const reported = new Set<number>();
  let reach: { end: number; task: number } | undefined;
  for (const c of claims) {
    if (reach && c.range.begin <= reach.end && c.task !== reach.task && !reported.has(c.task)) {
      reported.add(c.task);
      issues.push({
        path: `${formatPath(paths[c.task] ?? [])}.resources.ports`,
        message: `port ${c.range.begin} is also claimed by task ${tasks[reach.task]?.taskId ?? "?"} of this accept`,
      });
    }
    if (!reach || c.range.end > reach.end) reach = { end: c.range.end, task: c.task };
  }
  return issues;
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
