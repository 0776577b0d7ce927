/**
 * The master's decisions, pure: the shell (services/master) gathers the facts, calls these with
 * the time, and carries out what they return. Each is property-tested in master-decisions.test.ts.
 */
import type { TaskRecord, TaskStatus } from "./events/task.js";
import { shouldApplyTaskStatus } from "./task-health.js";
import { isTerminal, type TaskState } from "./task-state.js";

/** What to do with an agent's report of its tasks at (re-)registration (invariant 5). */
export interface AgentReportPlan {
  /** Tasks the agent must stop: unknown, another agent's, finished, or being killed. */
  kill: string[];
  /** Newer states the agent reports for tasks the master knows. */
  apply: { task: TaskRecord; status: TaskStatus }[];
  /** Tasks the master expected on this agent that it did not report. */
  missing: { task: TaskRecord; state: TaskState; message: string }[];
}

/**
 * `expected`: the tasks the master had on this agent when the session began (a task launched on
 * the new session while this is carried out is not judged against the older report);
 * `lookup`: the master's current record of any task id.
 */
export function reconcileAgentReport(
  agentId: string,
  reported: readonly { taskId: string; status: TaskStatus }[],
  expected: readonly TaskRecord[],
  lookup: (taskId: string) => TaskRecord | undefined,
): AgentReportPlan {
  const plan: AgentReportPlan = { kill: [], apply: [], missing: [] };
  const reportedIds = new Set<string>();
  for (const r of reported) {
    reportedIds.add(r.taskId);
    const known = lookup(r.taskId);
    if (
      !known ||
      known.info.agentId !== agentId ||
      isTerminal(known.status.state) ||
      known.status.state === "TASK_KILLING"
    ) {
      plan.kill.push(r.taskId);
      continue;
    }
    if (shouldApplyTaskStatus(known.status, r.status))
      plan.apply.push({ task: known, status: { ...r.status, source: "reconciliation" } });
  }
  for (const t of expected) {
    if (reportedIds.has(t.info.taskId) || isTerminal(t.status.state)) continue;
    plan.missing.push({
      task: t,
      state: t.status.state === "TASK_KILLING" ? "TASK_KILLED" : "TASK_LOST",
      message: "task not found on its agent after re-registration",
    });
  }
  return plan;
}

export interface AgentLiveness {
  /** Connected agents and when each was last heard from. */
  sessions: readonly { agentId: string; lastSeenMs: number }[];
  /**
   * Known agents without a session: since when, and from when their tasks are TASK_UNREACHABLE
   * (the shell chooses: last heard from + the heartbeat timeout for a session that ended, the
   * re-registration window after a failover).
   */
  gone: readonly { agentId: string; sinceMs: number; unreachableAtMs: number }[];
  nowMs: number;
  /** A session silent this long is closed, and its agent's tasks are unreachable. */
  heartbeatTimeoutMs: number;
  /** An agent gone this long is removed from the registry (AgentRemoved), its tasks TASK_LOST. */
  removeAfterMs: number;
}

export interface AgentLivenessPlan {
  /** Sessions to close for silence. */
  timedOut: string[];
  /** Agents whose tasks are TASK_UNREACHABLE now (the timed-out ones among them); not those removed. */
  unreachable: string[];
  /** Agents to remove for good (their tasks are lost). */
  remove: string[];
}

export function agentLiveness(f: AgentLiveness): AgentLivenessPlan {
  const plan: AgentLivenessPlan = { timedOut: [], unreachable: [], remove: [] };
  for (const s of f.sessions)
    if (f.nowMs - s.lastSeenMs > f.heartbeatTimeoutMs) {
      plan.timedOut.push(s.agentId);
      plan.unreachable.push(s.agentId);
    }
  for (const g of f.gone) {
    if (f.nowMs - g.sinceMs >= f.removeAfterMs) plan.remove.push(g.agentId);
    else if (f.nowMs >= g.unreachableAtMs) plan.unreachable.push(g.agentId);
  }
  return plan;
}

/** Frameworks gone for longer than their failover timeout: their tasks are killed, they are removed. */
export function expiredFrameworks(
  gone: readonly { frameworkId: string; sinceMs: number; failoverTimeoutSeconds: number }[],
  nowMs: number,
): string[] {
  return gone.filter((g) => nowMs - g.sinceMs >= g.failoverTimeoutSeconds * 1000).map((g) => g.frameworkId);
}

/** Offers past their expiry, in the order given. */
export function expiredOffers<O extends { expiresAtMs: number }>(offers: Iterable<O>, nowMs: number): O[] {
  const out: O[] = [];
  for (const o of offers) if (o.expiresAtMs <= nowMs) out.push(o);
  return out;
}

/**
 * After a failover the new leader offers nothing until every known agent has re-registered or
 * the re-registration timeout has passed, so frameworks never decide on a partial view.
 */
export function awaitingReregistration(
  startedAtMs: number,
  nowMs: number,
  timeoutMs: number,
  knownAgents: number,
  connectedKnownAgents: number,
): boolean {
  return nowMs - startedAtMs < timeoutMs && connectedKnownAgents < knownAgents;
}
