/**
 * AllocationLoop and the agent liveness check at scale, on the in-process master: with 2,000
 * agents and 20,000 tasks in the state, one allocation cycle and one liveness check read the
 * task index's per-agent totals, not the tasks (no agents × tasks loop). Calls are counted with
 * spies; nothing is timed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { AgentRecord, TaskRecord } from "@drover/core";
import { anAgent, aTask, RecordingAgentConn, TEST_EPOCH_MS } from "@drover/testing";
import {
  acceptOf,
  keepAlive,
  type Master,
  nextOffers,
  registerAgent,
  seedAgents,
  seedTasks,
  startMaster,
  stateOf,
  subscribe,
} from "./harness.test.js";

const AGENTS = 2_000;
const TASKS_PER_AGENT = 10;
/** Agents (with their tasks) that really are in etcd: they go away in the test, and their tasks are committed LOST. */
const IN_STORE = 10;

const agentId = (i: number) => `a${String(i).padStart(4, "0")}`;
const agentOf = (i: number) => anAgent().id(agentId(i)).cpus(8).mem(16384);
const template = aTask().cpus(0.1).mem(64).at(TEST_EPOCH_MS).build();
/** Agent i's tasks (copies of one validated record: building 20,000 through the schemas is slow). */
const tasksOf = (i: number): TaskRecord[] =>
  Array.from({ length: TASKS_PER_AGENT }, (_, k) => {
    const taskId = `app${k}.${agentId(i)}`;
    return {
      ...template,
      info: { ...template.info, taskId, name: `app${k}`, appId: `app${k}`, agentId: agentId(i) },
      status: { ...template.status, uuid: `${taskId}/running` },
    };
  });

/** Counts calls of `obj[name]` into `counts[label]` (the method still runs). */
function spy<T extends object>(counts: Map<string, number>, label: string, obj: T, name: keyof T): void {
  const original = obj[name] as unknown as (...args: unknown[]) => unknown;
  Object.defineProperty(obj, name, {
    configurable: true,
    writable: true,
    value: function (this: unknown, ...args: unknown[]) {
      counts.set(label, (counts.get(label) ?? 0) + 1);
      return original.apply(this, args);
    },
  });
}

/**
 * The leader's state with AGENTS agents and AGENTS × TASKS_PER_AGENT tasks. The first IN_STORE
 * agents and their tasks are committed to etcd before the leader loads it; the others are put in
 * the leader's cache as a load would put them (entry, then the cache's listener: the task index),
 * which keeps the test fast on MemoryKv.
 */
async function bigCluster(): Promise<Master> {
  const m = await startMaster({
    config: { offerTimeoutSeconds: 3600, agentHeartbeatTimeoutSeconds: 20, agentRemoveTimeoutSeconds: 600 },
    seed: async (_kv, store, leadership) => {
      await seedAgents(
        store,
        leadership,
        Array.from({ length: IN_STORE }, (_, i) => agentOf(i)),
        TEST_EPOCH_MS,
      );
      await seedTasks(
        store,
        leadership,
        Array.from({ length: IN_STORE }, (_, i) => tasksOf(i)).flat(),
        TEST_EPOCH_MS,
      );
    },
  });
  for (let i = IN_STORE; i < AGENTS; i++) {
    const a: AgentRecord = agentOf(i).record(TEST_EPOCH_MS);
    m.leader.state.agents.set(a.agentId, { state: a, version: 1 });
    for (const t of tasksOf(i)) {
      m.leader.state.tasks.set(t.info.taskId, { state: t, version: 1 });
      m.leader.index.onChange(t.info.taskId, undefined, t);
    }
  }
  assert.equal(m.leader.state.agents.size, AGENTS);
  assert.equal(m.leader.state.tasks.size, AGENTS * TASKS_PER_AGENT);
  return m;
}

/** Spies on every way to reach tasks: the state's accessors and map, the index's per-task sets. */
function spyOnTaskAccess(m: Master): Map<string, number> {
  const counts = new Map<string, number>();
  const { state, index } = m.leader;
  spy(counts, "state.task", state, "task");
  spy(counts, "state.allTasks", state, "allTasks");
  for (const method of ["values", "keys", "entries", "forEach", Symbol.iterator] as const)
    spy(counts, "state.tasks iterated", state.tasks, method);
  spy(counts, "index.tasksOnAgent", index, "tasksOnAgent");
  spy(counts, "index.tasksOfFramework", index, "tasksOfFramework");
  spy(counts, "index.usedOn", index, "usedOn");
  spy(counts, "tasks.expectedOn", m.leader.tasks, "expectedOn");
  return counts;
}

test(`one allocation cycle over ${AGENTS} agents and ${AGENTS * TASKS_PER_AGENT} tasks reads per-agent totals, never the tasks`, async () => {
  const m = await bigCluster();
  const fw = await subscribe(m, { frameworkId: "fw-1" }); // the tasks' framework
  const conns = Array.from({ length: AGENTS }, (_, i) => new RecordingAgentConn(agentId(i)));
  for (const [i, c] of conns.entries()) m.leader.agents.attach(agentId(i), c);

  const counts = spyOnTaskAccess(m);
  m.leader.allocation.cycle();

  const offers = fw.conn.offers();
  assert.equal(offers.length, AGENTS, "every agent is offered");
  // What the tasks use is taken off each offer: 10 × 0.1 cpus and 10 × 64 MiB.
  assert.ok(
    offers.every((o) => Math.abs((o.resources?.cpus ?? 0) - 7) < 1e-6 && o.resources?.mem === 16384 - 640),
  );
  assert.equal(counts.get("index.usedOn"), AGENTS, "one O(1) read of each agent's used resources");
  assert.equal(counts.get("state.task") ?? 0, 0);
  assert.equal(counts.get("state.allTasks") ?? 0, 0);
  assert.equal(counts.get("state.tasks iterated") ?? 0, 0);
  assert.equal(counts.get("index.tasksOnAgent") ?? 0, 0);
  assert.equal(counts.get("index.tasksOfFramework") ?? 0, 0);
  await m.leader.stop();
});

test(`the agent liveness check touches only the unreachable agents' tasks among ${AGENTS * TASKS_PER_AGENT}`, async () => {
  const m = await bigCluster();
  const fw = await subscribe(m, { frameworkId: "fw-1" }); // the tasks' framework
  const conns = Array.from({ length: AGENTS }, (_, i) => new RecordingAgentConn(agentId(i)));
  for (const [i, c] of conns.entries()) m.leader.agents.attach(agentId(i), c);
  // Every agent but the first IN_STORE heartbeats (one timer for all of them).
  m.clock.setInterval(() => {
    for (let i = IN_STORE; i < AGENTS; i++)
      m.leader.agentHeartbeat(agentId(i), conns[i] as RecordingAgentConn);
  }, m.config.heartbeatIntervalMs);
  for (let i = 0; i < IN_STORE; i++) m.leader.agentDisconnected(agentId(i), conns[i] as RecordingAgentConn);

  // Gone agents' tasks are unreachable a heartbeat timeout (20 s here: past the re-registration
  // wait of 10 s, so the second measured is an ordinary one) after they were last heard from.
  await m.clock.advance(19_500);
  assert.equal(stateOf(m, tasksOf(0)[0]?.info.taskId ?? ""), "TASK_RUNNING");
  // The next second holds one liveness check (which marks the gone agents' tasks unreachable) and one allocation cycle.
  const counts = spyOnTaskAccess(m);
  await m.clock.advance(1_000);

  for (let i = 0; i < IN_STORE; i++)
    for (const t of tasksOf(i)) assert.equal(stateOf(m, t.info.taskId), "TASK_UNREACHABLE");
  for (const i of [IN_STORE, AGENTS / 2, AGENTS - 1])
    for (const t of tasksOf(i)) assert.equal(stateOf(m, t.info.taskId), "TASK_RUNNING");
  assert.equal(
    fw.conn.updates().length,
    IN_STORE * TASKS_PER_AGENT,
    "the framework hears of each unreachable task",
  );

  const unreachableTasks = IN_STORE * TASKS_PER_AGENT;
  assert.equal(counts.get("tasks.expectedOn"), IN_STORE, "the tasks of each unreachable agent, once");
  assert.equal(counts.get("index.tasksOnAgent"), IN_STORE);
  assert.ok(
    (counts.get("state.task") ?? 0) <= 5 * unreachableTasks,
    `state.task: ${counts.get("state.task")} calls`,
  );
  assert.equal(counts.get("state.allTasks") ?? 0, 0);
  assert.equal(counts.get("state.tasks iterated") ?? 0, 0);
  assert.equal(counts.get("index.tasksOfFramework") ?? 0, 0);
  // One allocation cycle reads each connected agent's total once; the index's own bookkeeping of
  // the changed tasks reads two more each (out of the agent's total, then in again: still active).
  assert.ok(
    (counts.get("index.usedOn") ?? 0) <= AGENTS - IN_STORE + 2 * unreachableTasks,
    `usedOn: ${counts.get("index.usedOn")}`,
  );
  await m.leader.stop();
});

test("resources of an accepted launch are not offered again; what is left is", async () => {
  const m = await startMaster();
  const agent = await registerAgent(m, anAgent().id("a1").cpus(4).mem(8192));
  keepAlive(m, "a1", agent);
  const fw = await subscribe(m);
  const offer = (await nextOffers(m, fw)).find((o) => o.agentId === "a1");
  assert.ok(offer);
  await m.leader.accept(
    acceptOf(fw.frameworkId, [offer.offerId], [aTask().id("web.1").on("a1").cpus(1).mem(1024)]),
  );
  const next = (await nextOffers(m, fw, { since: fw.conn.mark(), advanceMs: 1100 })).find(
    (o) => o.agentId === "a1",
  );
  assert.ok(next);
  assert.equal(next.resources?.cpus, 3);
  assert.equal(next.resources?.mem, 7168);
  await m.leader.stop();
});
