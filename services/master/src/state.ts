/**
 * The leader's in-memory view of its aggregates, loaded from etcd at election and kept in
 * step with every commit. All writes go through `commit`, which hands them to the group-commit
 * queue: concurrent commits share fenced transactions, within etcd's limits, and each one's
 * guard is evaluated in commit order.
 */
import type { Logger } from "@drover/common";
import {
  AgentAggregate,
  type AgentEvent,
  type AgentRecord,
  FrameworkAggregate,
  type FrameworkEvent,
  type FrameworkRecord,
  TaskAggregate,
  type TaskEvent,
  type TaskRecord,
} from "@drover/core";
import {
  AggregateCache,
  type CacheListener,
  type CommitQueue,
  type CommitReport,
  type EventStore,
  type Leadership,
  CommitQueue as Queue,
  type UnitChange,
} from "@drover/store";
import { TaskInfoInterner } from "./intern.js";

interface Entry<S> {
  state: S | undefined;
  version: number;
  stale?: boolean;
}

export type PendingChange =
  | { kind: "task"; id: string; events: TaskEvent[] }
  | { kind: "agent"; id: string; events: AgentEvent[] }
  | { kind: "framework"; id: string; events: FrameworkEvent[] };

const DEFS = { task: TaskAggregate, agent: AgentAggregate, framework: FrameworkAggregate } as const;

export class MasterState {
  private readonly cache = new AggregateCache();
  private readonly queue: CommitQueue;
  readonly tasks: Map<string, Entry<TaskRecord>>;
  readonly agents: Map<string, Entry<AgentRecord>>;
  readonly frameworks: Map<string, Entry<FrameworkRecord>>;
  /** Shares the repeated parts of task records (intern.ts): launches and loaded tasks go through it. */
  readonly interner = new TaskInfoInterner();

  constructor(
    private readonly store: EventStore,
    private readonly leadership: Leadership,
    private readonly log: Logger,
    now: () => number = Date.now,
    onTransaction?: (r: CommitReport) => void,
  ) {
    this.tasks = this.cache.map(TaskAggregate) as Map<string, Entry<TaskRecord>>;
    this.agents = this.cache.map(AgentAggregate) as Map<string, Entry<AgentRecord>>;
    this.frameworks = this.cache.map(FrameworkAggregate) as Map<string, Entry<FrameworkRecord>>;
    this.queue = new Queue({
      store,
      leadership,
      cache: this.cache,
      now,
      ...(onTransaction ? { onTransaction } : {}),
    });
  }

  async load(): Promise<void> {
    for (const def of Object.values(DEFS)) await this.cache.load(this.store, def);
    // The loaded tasks share their repeated parts (replaced in place: the indexes keep ids and
    // sums, equal before and after).
    for (const e of this.tasks.values())
      if (e.state)
        e.state = {
          ...e.state,
          info: this.interner.info(e.state.info),
          status: this.interner.status(e.state.status),
        };
    this.log.info("state loaded", {
      tasks: this.tasks.size,
      agents: this.agents.size,
      frameworks: this.frameworks.size,
    });
  }

  task(id: string): TaskRecord | undefined {
    return this.tasks.get(id)?.state;
  }

  allTasks(): TaskRecord[] {
    const out: TaskRecord[] = [];
    for (const e of this.tasks.values()) if (e.state) out.push(e.state);
    return out;
  }

  agent(id: string): AgentRecord | undefined {
    return this.agents.get(id)?.state;
  }

  framework(id: string): FrameworkRecord | undefined {
    return this.frameworks.get(id)?.state;
  }

  /** Calls `fn` on every change of a cached aggregate of `def` (indexes). */
  listen(
    def: typeof TaskAggregate | typeof AgentAggregate | typeof FrameworkAggregate,
    fn: CacheListener,
  ): void {
    this.cache.listen(def, fn);
  }

  /** Units waiting for a transaction (a measure of write pressure). */
  get commitBacklog(): number {
    return this.queue.backlog;
  }

  /**
   * Commits the changes together, in a fenced transaction shared with other concurrent commits.
   * `guard` runs in commit order just before the changes are packed, against the state as it is
   * then (not as it was when the caller decided): if it returns false nothing is written and the
   * result is false. Use it for every check-then-write. `_nowMs` is kept for callers; events are
   * stamped with the time their transaction is packed.
   */
  commit(changes: PendingChange[], _nowMs?: number, guard?: () => boolean): Promise<boolean> {
    // A task's events (the hot path) are built from what the master validated at its boundaries
    // (an accept's TaskInfo, NATS status messages, an agent's report) or by the master itself: the
    // store does not parse them again. Agent and framework events (rare) still are.
    const units: UnitChange[] = changes.map((c) => ({
      def: DEFS[c.kind],
      id: c.id,
      events: c.events,
      ...(c.kind === "task" ? { trusted: true } : {}),
    }));
    return this.queue.commit(units, guard);
  }

  /** Proves, through etcd, that this process still leads (throws FencedError otherwise). */
  confirmLeader(): Promise<void> {
    return this.store.confirmLeader(this.leadership);
  }
}
