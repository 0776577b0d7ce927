/**
 * The in-process master shared by the master's unit tests: a real MasterLeader on the real
 * EventStore over MemoryKv (etcd's limits and compares), a FakeClock, no NATS (no relay, no status
 * consumer: tests call `leader.tasks.onStatus` themselves), and recording connections for agents
 * and frameworks. Time moves only with `clock.advance`; messages are awaited with `waitFor`.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { StatusMessage } from "@drover/bus";
import { createLogger, type Timer } from "@drover/common";
import { type MasterConfig, MasterConfigSchema } from "@drover/config";
import {
  AgentAggregate,
  type AgentEvent,
  TaskAggregate,
  type TaskRecord,
  type TaskState,
  type TaskStatus,
} from "@drover/core";
import { fromWireState, fromWireTaskInfo, type UpdateEvent } from "@drover/proto";
import type { CommitReport, EventStore } from "@drover/store";
import {
  type AgentBuilder,
  anAgent,
  aTask,
  FakeClock,
  type MemoryKv,
  memoryLeadership,
  memoryStore,
  RecordingAgentConn,
  RecordingFrameworkConn,
  type TaskBuilder,
  TEST_EPOCH_MS,
  type TestLeadership,
} from "@drover/testing";
import { type AcceptRequest, MasterLeader } from "./leader.js";

export const quietLog = createLogger("test", "error");

export interface Master {
  kv: MemoryKv;
  store: EventStore;
  leadership: TestLeadership;
  clock: FakeClock;
  config: MasterConfig;
  leader: MasterLeader;
  /** Every transaction the leader's commit queue sent (onTransaction). */
  reports: CommitReport[];
}

export interface MasterOptions {
  /** Overrides of MasterConfigSchema's defaults. */
  config?: Partial<MasterConfig>;
  /** Another leader's store (a failover): a new leadership is taken in the same MemoryKv. */
  on?: { kv: MemoryKv; store: EventStore };
  clock?: FakeClock;
  /** Seeds the store before the leader loads it. */
  seed?: (kv: MemoryKv, store: EventStore, leadership: TestLeadership) => Promise<void>;
}

/** A started MasterLeader on a MemoryKv (or on `on`'s, for a failover). */
export async function startMaster(options: MasterOptions = {}): Promise<Master> {
  const base = options.on
    ? { ...options.on, leadership: memoryLeadership(options.on.kv, "master") }
    : memoryStore();
  const clock = options.clock ?? new FakeClock();
  const config = MasterConfigSchema.parse(options.config ?? {});
  await options.seed?.(base.kv, base.store, base.leadership);
  const reports: CommitReport[] = [];
  const leader = new MasterLeader(base.store, undefined, base.leadership, config, quietLog, clock, {
    onTransaction: (r) => reports.push(r),
  });
  await leader.start();
  base.kv.resetStats();
  return { ...base, clock, config, leader, reports };
}

/** Registers `agent` on a new recording connection. */
export async function registerAgent(m: Master, agent: AgentBuilder): Promise<RecordingAgentConn> {
  const wire = agent.toWire();
  const conn = new RecordingAgentConn(wire.agentId);
  await m.leader.registerAgent(wire, conn);
  return conn;
}

/** Heartbeats `agentId` on `conn` every heartbeat interval of fake time (as a live agent does). */
export function keepAlive(m: Master, agentId: string, conn: RecordingAgentConn): Timer {
  return m.clock.setInterval(() => m.leader.agentHeartbeat(agentId, conn), m.config.heartbeatIntervalMs);
}

export interface Subscription {
  frameworkId: string;
  conn: RecordingFrameworkConn;
  streamId: string;
}

export async function subscribe(
  m: Master,
  req: { frameworkId?: string; name?: string; role?: string; failoverTimeoutSeconds?: number } = {},
): Promise<Subscription> {
  const conn = new RecordingFrameworkConn(req.frameworkId ?? "");
  const frameworkId = await m.leader.subscribe(
    {
      frameworkId: req.frameworkId ?? "",
      name: req.name ?? "test-framework",
      role: req.role ?? "",
      failoverTimeoutSeconds: req.failoverTimeoutSeconds ?? 3600,
    },
    conn,
  );
  return { frameworkId, conn, streamId: conn.subscribed()?.streamId ?? "" };
}

/**
 * The next offers event sent to `fw` after `since` (default: any not seen yet), moving the fake
 * time by `advanceMs` (the allocator's 20 ms coalescing) to let it come.
 */
export async function nextOffers(
  m: Master,
  fw: Subscription,
  options: { since?: number; advanceMs?: number } = {},
) {
  const offers = fw.conn.waitForOffers({ since: options.since ?? 0, timeoutMs: 5000 });
  await m.clock.advance(options.advanceMs ?? 50);
  return offers;
}

/** An Accept launching `tasks` (one launch operation) on `offerIds`. */
export function acceptOf(
  frameworkId: string,
  offerIds: string[],
  tasks: TaskBuilder[],
  refuseSeconds = 0,
): AcceptRequest {
  return {
    frameworkId,
    offerIds,
    tasks: tasks.map((t, i) => ({
      path: ["operations", 0, "launch", "tasks", i],
      task: fromWireTaskInfo(t.framework(frameworkId).toWire()),
    })),
    refuseSeconds,
  };
}

/** A status update as an agent publishes it. */
export function statusOf(
  m: Master,
  agentId: string,
  taskId: string,
  state: TaskState,
  extra: Partial<TaskStatus> = {},
): StatusMessage {
  return {
    agentId,
    taskId,
    status: {
      state,
      message: "",
      timestampMs: m.clock.now(),
      uuid: randomUUID(),
      source: "agent",
      ...extra,
    },
  };
}

/** The state of a task in the leader's view (undefined: not there). */
export function stateOf(m: Master, taskId: string): TaskState | undefined {
  return m.leader.state.task(taskId)?.status.state;
}

/** The domain state of an update sent to a framework. */
export function updateState(u: UpdateEvent | undefined): TaskState | undefined {
  return u?.status ? fromWireState(u.status.state) : undefined;
}

/** Tasks committed directly (before a leader starts), 40 per transaction. */
export async function seedTasks(
  store: EventStore,
  leadership: TestLeadership,
  tasks: TaskRecord[],
  nowMs: number,
): Promise<void> {
  for (let i = 0; i < tasks.length; i += 40) {
    const chunk = tasks.slice(i, i + 40);
    await store.commit(
      leadership,
      chunk.map((t) => ({
        def: TaskAggregate,
        id: t.info.taskId,
        expectedVersion: 0,
        state: undefined,
        events: [{ type: "TaskLaunched" as const, info: t.info, status: t.status }],
      })),
      nowMs,
    );
  }
}

/** Agents committed directly (registered, without sessions), 40 per transaction. */
export async function seedAgents(
  store: EventStore,
  leadership: TestLeadership,
  agents: AgentBuilder[],
  nowMs: number,
): Promise<void> {
  for (let i = 0; i < agents.length; i += 40) {
    const chunk = agents.slice(i, i + 40);
    await store.commit(
      leadership,
      chunk.map((a) => ({
        def: AgentAggregate,
        id: a.build().agentId,
        expectedVersion: 0,
        state: undefined,
        events: [a.registered() as AgentEvent],
      })),
      nowMs,
    );
  }
}

/** The tasks in etcd (read back through the store, not the leader's cache). */
export async function storedTasks(store: EventStore): Promise<Map<string, TaskRecord>> {
  const out = new Map<string, TaskRecord>();
  for (const [id, v] of await store.load(TaskAggregate)) if (v.state) out.set(id, v.state as TaskRecord);
  return out;
}

// ── the harness's own tests ─────────────────────────────────────────────────
// Registered only when this file is the one run (node --test runs each file in its own process),
// not in the test files that import the harness.

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  test("harness: a registered agent is offered to a subscribed framework; stop closes the sessions", async () => {
    const m = await startMaster();
    const agent = await registerAgent(m, anAgent().id("a1"));
    assert.equal(agent.registrations()[0]?.agentId, "a1");
    const fw = await subscribe(m, { name: "harness" });
    assert.match(fw.frameworkId, /^fw-/);
    const offers = await nextOffers(m, fw);
    assert.deepEqual(
      offers.map((o) => o.agentId),
      ["a1"],
    );
    await m.leader.stop();
    assert.equal(agent.closedWith(), "master lost leadership");
  });

  test("harness: a second master on the same store takes its own leadership and loads what the first wrote", async () => {
    const m = await startMaster({
      seed: (_kv, store, leadership) =>
        seedTasks(
          store,
          leadership,
          [aTask().id("web.1").build(), aTask().id("web.2").build()],
          TEST_EPOCH_MS,
        ),
    });
    await m.leader.stop();
    m.leadership.depose();
    const m2 = await startMaster({ on: m, clock: m.clock });
    assert.notEqual(m2.leadership.key, m.leadership.key);
    assert.deepEqual([...(await storedTasks(m2.store)).keys()].sort(), ["web.1", "web.2"]);
    assert.equal(stateOf(m2, "web.1"), "TASK_RUNNING");
    await m2.leader.stop();
  });
}
