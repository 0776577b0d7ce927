/**
 * Indexes of the master's tasks, kept incrementally from every change of the task cache (no
 * loop over all tasks per agent, per framework or per allocation cycle): the tasks of each agent
 * and framework, the resources their active tasks use, and the terminal tasks awaiting expunge.
 */
import {
  addResources,
  emptyResources,
  isTerminal,
  type Resources,
  subtractResources,
  type TaskRecord,
} from "@drover/core";

export class TaskIndex {
  private readonly byAgent = new Map<string, Set<string>>();
  private readonly byFramework = new Map<string, Set<string>>();
  /** Tasks by `<frameworkId>\0<appId>` (a query for one app's tasks does not walk every task). */
  private readonly byApp = new Map<string, Set<string>>();
  private readonly usedByAgent = new Map<string, Resources>();
  private readonly usedByFramework = new Map<string, Resources>();
  private readonly activeByFramework = new Map<string, number>();
  private readonly activeByAgent = new Map<string, number>();
  /** Terminal tasks, by id, with the time they became terminal. */
  readonly terminal = new Map<string, number>();
  /** Tasks by state (metrics: a scrape does not walk every task). */
  readonly byState = new Map<string, number>();

  /** The cache listener: `before` → `after` for one task id. */
  readonly onChange = (id: string, before: unknown, after: unknown): void => {
    const b = before as TaskRecord | undefined;
    const a = after as TaskRecord | undefined;
    // The common change: a status update of an active task that stays active (STAGING → STARTING
    // → RUNNING, health). Its agent, framework, app and resources are the same (the same info):
    // only the count by state moves (no set or resource arithmetic per update).
    if (b && a && b.info === a.info && !isTerminal(b.status.state) && !isTerminal(a.status.state)) {
      if (b.status.state !== a.status.state) {
        this.countState(b.status.state, -1);
        this.countState(a.status.state, 1);
      }
      return;
    }
    if (b) this.remove(id, b);
    if (a) this.add(id, a);
  };

  private countState(state: string, by: number): void {
    const n = (this.byState.get(state) ?? 0) + by;
    if (n > 0) this.byState.set(state, n);
    else this.byState.delete(state);
  }

  tasksOnAgent(agentId: string): ReadonlySet<string> {
    return this.byAgent.get(agentId) ?? EMPTY;
  }

  tasksOfFramework(frameworkId: string): ReadonlySet<string> {
    return this.byFramework.get(frameworkId) ?? EMPTY;
  }

  tasksOfApp(frameworkId: string, appId: string): ReadonlySet<string> {
    return this.byApp.get(`${frameworkId}\0${appId}`) ?? EMPTY;
  }

  /** Resources of the agent's active (non-terminal) tasks. */
  usedOn(agentId: string): Resources {
    return this.usedByAgent.get(agentId) ?? emptyResources();
  }

  /** Resources of the framework's active tasks. */
  usedBy(frameworkId: string): Resources {
    return this.usedByFramework.get(frameworkId) ?? emptyResources();
  }

  activeTasksOf(frameworkId: string): number {
    return this.activeByFramework.get(frameworkId) ?? 0;
  }

  private add(id: string, t: TaskRecord): void {
    this.countState(t.status.state, 1);
    addTo(this.byAgent, t.info.agentId, id);
    addTo(this.byFramework, t.info.frameworkId, id);
    addTo(this.byApp, `${t.info.frameworkId}\0${t.info.appId}`, id);
    if (isTerminal(t.status.state)) {
      this.terminal.set(id, t.updatedAtMs);
      return;
    }
    this.usedByAgent.set(t.info.agentId, addResources(this.usedOn(t.info.agentId), t.info.resources));
    this.usedByFramework.set(
      t.info.frameworkId,
      addResources(this.usedBy(t.info.frameworkId), t.info.resources),
    );
    this.activeByFramework.set(t.info.frameworkId, this.activeTasksOf(t.info.frameworkId) + 1);
    this.activeByAgent.set(t.info.agentId, (this.activeByAgent.get(t.info.agentId) ?? 0) + 1);
  }

  private remove(id: string, t: TaskRecord): void {
    this.countState(t.status.state, -1);
    removeFrom(this.byAgent, t.info.agentId, id);
    removeFrom(this.byFramework, t.info.frameworkId, id);
    removeFrom(this.byApp, `${t.info.frameworkId}\0${t.info.appId}`, id);
    if (isTerminal(t.status.state)) {
      this.terminal.delete(id);
      return;
    }
    // Sums drift with floats: the last active task of an agent or framework resets it to exactly zero.
    const onAgent = (this.activeByAgent.get(t.info.agentId) ?? 0) - 1;
    if (onAgent <= 0) {
      this.activeByAgent.delete(t.info.agentId);
      this.usedByAgent.delete(t.info.agentId);
    } else {
      this.activeByAgent.set(t.info.agentId, onAgent);
      this.usedByAgent.set(t.info.agentId, subtractResources(this.usedOn(t.info.agentId), t.info.resources));
    }
    const active = this.activeTasksOf(t.info.frameworkId) - 1;
    if (active <= 0) {
      this.activeByFramework.delete(t.info.frameworkId);
      this.usedByFramework.delete(t.info.frameworkId);
    } else {
      this.activeByFramework.set(t.info.frameworkId, active);
      this.usedByFramework.set(
        t.info.frameworkId,
        subtractResources(this.usedBy(t.info.frameworkId), t.info.resources),
      );
    }
  }
}

const EMPTY: ReadonlySet<string> = new Set();

function addTo(m: Map<string, Set<string>>, key: string, id: string): void {
  let s = m.get(key);
  if (!s) {
    s = new Set();
    m.set(key, s);
  }
  s.add(id);
}

function removeFrom(m: Map<string, Set<string>>, key: string, id: string): void {
  const s = m.get(key);
  if (!s) return;
  s.delete(id);
  if (s.size === 0) m.delete(key);
}
