/**
 * The leader's in-memory view of its aggregates, loaded from etcd at election and kept in
 * step with every commit. All writes go through `commit`, which is serialized so that the
 * optimistic-concurrency versions it hands to the store are always current.
 */
import { ConflictError, errorMessage, FencedError, type Logger } from "@drover/common";
import {
  AgentAggregate,
  type AgentEvent,
  type AgentRecord,
  type AggregateDef,
  FrameworkAggregate,
  type FrameworkEvent,
  type FrameworkRecord,
  TaskAggregate,
  type TaskEvent,
  type TaskRecord,
} from "@drover/core";
import type { Change, EventStore, Leadership } from "@drover/store";

interface Entry<S> {
  state: S | undefined;
  version: number;
  /** A commit of this aggregate ended without a known outcome: re-read it before the next commit. */
  stale?: boolean;
}

export type PendingChange =
  | { kind: "task"; id: string; events: TaskEvent[] }
  | { kind: "agent"; id: string; events: AgentEvent[] }
  | { kind: "framework"; id: string; events: FrameworkEvent[] };

export class MasterState {
  readonly tasks = new Map<string, Entry<TaskRecord>>();
  readonly agents = new Map<string, Entry<AgentRecord>>();
  readonly frameworks = new Map<string, Entry<FrameworkRecord>>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: EventStore,
    private readonly leadership: Leadership,
    private readonly log: Logger,
  ) {}

  async load(): Promise<void> {
    for (const [id, v] of await this.store.load(TaskAggregate)) this.tasks.set(id, v);
    for (const [id, v] of await this.store.load(AgentAggregate)) this.agents.set(id, v);
    for (const [id, v] of await this.store.load(FrameworkAggregate)) this.frameworks.set(id, v);
    // Deleted aggregates keep their version key; read it lazily in commit on conflict.
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

  /**
   * Commits the changes in one fenced transaction, serialized with every other commit.
   * `guard` runs in that serial order just before the commit, against the state as it is
   * then (not as it was when the caller decided): if it returns false nothing is written and
   * the result is false. Use it for every check-then-write.
   */
  commit(changes: PendingChange[], nowMs: number, guard?: () => boolean): Promise<boolean> {
    changes = changes.filter((c) => c.events.length > 0);
    const run = async (): Promise<boolean> => {
      if (guard && !guard()) return false;
      if (changes.length === 0) return true;
      for (let attempt = 0; ; attempt++) {
        const prepared: Change<unknown, { type: string }>[] = [];
        for (const c of changes) {
          const map = this.mapFor(c.kind) as Map<string, Entry<unknown>>;
          let entry = map.get(c.id);
          if (!entry || entry.stale) {
            const def = this.defFor(c.kind);
            const fetched = await this.store.get(def, c.id);
            entry = { state: fetched.state, version: fetched.version };
            map.set(c.id, entry);
          }
          prepared.push({
            def: this.defFor(c.kind),
            id: c.id,
            expectedVersion: entry.version,
            state: entry.state,
            events: c.events,
          } as Change<unknown, { type: string }>);
        }
        try {
          const res = await this.store.commit(this.leadership, prepared, nowMs);
          for (const [i, r] of res.results.entries()) {
            const c = changes[i];
            if (!c || c.id !== r.id) throw new Error(`commit results out of step at ${i}`);
            const map = this.mapFor(c.kind) as Map<string, Entry<unknown>>;
            map.set(r.id, { state: r.state, version: r.version });
          }
          return true;
        } catch (err) {
          if (err instanceof ConflictError && attempt < 3) {
            // Someone else wrote (should not happen under fencing): refresh and retry.
            for (const c of changes) (this.mapFor(c.kind) as Map<string, Entry<unknown>>).delete(c.id);
            continue;
          }
          // The store did not answer: the commit may or may not have landed. Re-read before the
          // next commit of these aggregates (and now, so that the view catches up either way).
          if (!(err instanceof FencedError)) this.markStale(changes);
          throw err;
        }
      }
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private markStale(changes: PendingChange[]): void {
    for (const c of changes) {
      const map = this.mapFor(c.kind) as Map<string, Entry<unknown>>;
      const entry = map.get(c.id);
      if (entry) entry.stale = true;
    }
    void this.refresh(changes).catch((err: unknown) =>
      this.log.warn("re-reading after an unanswered commit failed; will retry at the next commit", {
        err: errorMessage(err),
      }),
    );
  }

  /** Re-reads stale aggregates, in commit order (so no commit runs on a half-refreshed view). */
  private refresh(changes: PendingChange[]): Promise<void> {
    const run = async () => {
      for (const c of changes) {
        const map = this.mapFor(c.kind) as Map<string, Entry<unknown>>;
        if (!map.get(c.id)?.stale) continue;
        const fetched = await this.store.get(this.defFor(c.kind), c.id);
        map.set(c.id, { state: fetched.state, version: fetched.version });
      }
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Proves, through etcd, that this process still leads (throws FencedError otherwise). */
  confirmLeader(): Promise<void> {
    return this.store.confirmLeader(this.leadership);
  }

  private mapFor(kind: PendingChange["kind"]) {
    return kind === "task" ? this.tasks : kind === "agent" ? this.agents : this.frameworks;
  }

  // biome-ignore lint/suspicious/noExplicitAny: one of the three aggregate definitions
  private defFor(kind: PendingChange["kind"]): AggregateDef<any, any> {
    return kind === "task" ? TaskAggregate : kind === "agent" ? AgentAggregate : FrameworkAggregate;
  }
}
