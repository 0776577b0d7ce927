/**
 * AgentRegistry on the in-process master: agents gone for good are removed after their tasks are
 * lost (D5), so a failover no longer waits for them (until then their tasks are unreachable:
 * unreachable.test.ts); re-registration reconciles the agent's report with the master's view
 * (invariant 5); silent sessions are closed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type AgentEvent, type EventEnvelope, TaskAggregate, type TaskRecord } from "@drover/core";
import { logKey, verifyLog } from "@drover/store";
import { anAgent, aTask, RecordingAgentConn, TEST_EPOCH_MS } from "@drover/testing";
import {
  acceptOf,
  keepAlive,
  type Master,
  nextOffers,
  registerAgent,
  seedTasks,
  startMaster,
  stateOf,
  statusOf,
  storedTasks,
  subscribe,
  updateState,
} from "./harness.test.js";

const config = {
  agentLostTimeoutSeconds: 30,
  agentRemoveTimeoutSeconds: 120,
  agentReregisterTimeoutSeconds: 10,
};

/** Agents a1 and a2 registered (a2 kept alive), a framework, and two tasks RUNNING on a1. */
async function clusterWithTasksOnA1() {
  const m = await startMaster({ config });
  const fw = await subscribe(m, { failoverTimeoutSeconds: 3600 });
  const a1 = await registerAgent(m, anAgent().id("a1"));
  const a2 = await registerAgent(m, anAgent().id("a2"));
  keepAlive(m, "a2", a2);
  const offer = (await nextOffers(m, fw)).find((o) => o.agentId === "a1");
  assert.ok(offer);
  const ids = await m.leader.accept(
    acceptOf(fw.frameworkId, [offer.offerId], [aTask().id("web.1").on("a1"), aTask().id("web.2").on("a1")]),
  );
  for (const id of ids) await m.leader.tasks.onStatus(statusOf(m, "a1", id, "TASK_RUNNING"));
  return { m, fw, a1, a2, ids };
}

/** The agents `drover agent list` shows (ListAgents: every agent with a state). */
const agentList = (m: Master) =>
  [...m.leader.state.agents.values()].flatMap((e) => (e.state ? [e.state.agentId] : []));

function logEntries(m: Master, prefix: string): { key: string; revision: number; envelope: EventEnvelope }[] {
  return m.kv.keys(prefix).map((key) => ({
    key,
    revision: Number(m.kv.getKv(key)?.mod_revision),
    envelope: JSON.parse(m.kv.get(key) ?? "null") as EventEnvelope,
  }));
}

test("D5: an agent gone past agentRemoveTimeoutSeconds is removed, after its tasks were marked TASK_LOST", async () => {
  const { m, fw, a1, ids } = await clusterWithTasksOnA1();
  m.leader.agentDisconnected("a1", a1);

  await m.clock.advance(31_000);
  for (const id of ids)
    assert.equal(
      stateOf(m, id),
      "TASK_UNREACHABLE",
      "unreachable (not lost) until agentRemoveTimeoutSeconds",
    );
  assert.deepEqual(agentList(m).sort(), ["a1", "a2"], "unreachable is not removed yet");

  await m.clock.advance(88_000);
  for (const id of ids) assert.equal(stateOf(m, id), "TASK_UNREACHABLE");
  await m.clock.advance(2_000);
  for (const id of ids) assert.equal(stateOf(m, id), "TASK_LOST");
  for (const id of ids) assert.equal(updateState(fw.conn.updatesOf(id).at(-1)), "TASK_LOST");
  assert.deepEqual(agentList(m), ["a2"], "a1 is removed");
  assert.equal(m.leader.state.agent("a1"), undefined);
  assert.deepEqual(m.kv.keys("/drover/state/agent/"), ["/drover/state/agent/a1", "/drover/state/agent/a2"]);
  assert.deepEqual(
    JSON.parse(m.kv.get("/drover/state/agent/a1") ?? "null"),
    { v: 3, d: true },
    "a1's tombstone (registered, unreachable, removed)",
  );
  const unreachable = JSON.parse(m.kv.get(logKey("agent", "a1", 2)) ?? "null") as EventEnvelope;
  assert.equal((unreachable.event as AgentEvent).type, "AgentUnreachable");
  const removed = JSON.parse(m.kv.get(logKey("agent", "a1", 3)) ?? "null") as EventEnvelope;
  assert.equal((removed.event as AgentEvent).type, "AgentRemoved");

  // Its tasks were marked lost before it was removed (in etcd's order too).
  const removedAt = Number(m.kv.getKv(logKey("agent", "a1", 3))?.mod_revision);
  for (const id of ids) {
    const lost = logEntries(m, `/drover/log/task/${id}/`).find(
      (e) => (e.envelope.event as { status?: { state: string } }).status?.state === "TASK_LOST",
    );
    assert.ok(lost, `${id}: TASK_LOST in the log`);
    assert.ok(lost.revision < removedAt, `${id} lost at ${lost.revision}, agent removed at ${removedAt}`);
  }
  assert.equal((await verifyLog(m.store)).ok, true);
  await m.leader.stop();
});

test("D5: a new leader on the same store offers at once when the only missing agent was removed", async () => {
  const { m, fw, a1 } = await clusterWithTasksOnA1();
  m.leader.agentDisconnected("a1", a1);
  await m.clock.advance(121_000);
  assert.equal(m.leader.state.agent("a1"), undefined);

  await m.leader.stop();
  m.leadership.depose();
  const m2 = await startMaster({ on: m, clock: m.clock, config });
  const fw2 = await subscribe(m2, { frameworkId: fw.frameworkId, failoverTimeoutSeconds: 3600 });
  const a2 = await registerAgent(m2, anAgent().id("a2"));
  keepAlive(m2, "a2", a2);
  const started = m2.clock.now();

  const offers = await nextOffers(m2, fw2, { advanceMs: 100 });
  assert.ok(
    offers.some((o) => o.agentId === "a2"),
    "offered within 100 ms, not after agentReregisterTimeoutSeconds",
  );
  assert.ok(m2.clock.now() - started < 10_000);
  await m2.leader.stop();
});

test("D5 (control): a new leader waits agentReregisterTimeoutSeconds for a known agent that is only unreachable", async () => {
  const { m, fw, a1 } = await clusterWithTasksOnA1();
  m.leader.agentDisconnected("a1", a1);
  await m.clock.advance(31_000); // unreachable, not removed
  assert.ok(m.leader.state.agent("a1"));

  await m.leader.stop();
  m.leadership.depose();
  const m2 = await startMaster({ on: m, clock: m.clock, config });
  const fw2 = await subscribe(m2, { frameworkId: fw.frameworkId, failoverTimeoutSeconds: 3600 });
  const a2 = await registerAgent(m2, anAgent().id("a2"));
  keepAlive(m2, "a2", a2);
  await m2.clock.advance(9_000);
  assert.deepEqual(fw2.conn.offers(), [], "no offer while a known agent may still come back");
  const offers = await nextOffers(m2, fw2, { advanceMs: 1_100 });
  assert.ok(offers.some((o) => o.agentId === "a2"));
  await m2.leader.stop();
});

test("an agent that comes back before agentRemoveTimeoutSeconds is not removed", async () => {
  const { m, a1 } = await clusterWithTasksOnA1();
  m.leader.agentDisconnected("a1", a1);
  await m.clock.advance(60_000);
  const back = await registerAgent(m, anAgent().id("a1"));
  keepAlive(m, "a1", back);
  await m.clock.advance(120_000);
  assert.deepEqual(agentList(m).sort(), ["a1", "a2"]);
  assert.ok(!m.kv.get(logKey("agent", "a1", 3))?.includes("AgentRemoved"));
  await m.leader.stop();
});

test("a silent agent session is closed after the heartbeat timeout, and its offers are rescinded", async () => {
  const m = await startMaster({ config });
  const fw = await subscribe(m);
  const a1 = await registerAgent(m, anAgent().id("a1"));
  const offer = (await nextOffers(m, fw)).find((o) => o.agentId === "a1");
  assert.ok(offer);
  // Heartbeat timeout: max(5 heartbeat intervals, 10 s) = 10 s; checked every second.
  await m.clock.advance(9_000);
  assert.equal(a1.closed, false);
  await m.clock.advance(3_000);
  assert.equal(a1.closedWith(), "heartbeat timeout");
  assert.equal(m.leader.isAgentConnected("a1"), false);
  assert.ok(fw.conn.rescinds().includes(offer.offerId));
  assert.equal(m.leader.offers.offers.size, 0);
  await m.leader.stop();
});

test("invariant 5: re-registration kills unknown, foreign, finished and killing tasks; unreported ones become LOST or KILLED", async () => {
  const at = TEST_EPOCH_MS;
  const on = (id: string, agent = "a1") => aTask().id(id).on(agent).at(at);
  const known: TaskRecord[] = [
    on("web.run").state("TASK_RUNNING").build(), // reported running: nothing to do
    on("web.start").state("TASK_STARTING").build(), // reported running: the newer state applies
    on("web.missing").state("TASK_RUNNING").build(), // not reported: TASK_LOST
    on("web.killing").state("TASK_KILLING").build(), // not reported: TASK_KILLED
    on("web.killing2").state("TASK_KILLING").build(), // reported running: killed again
    on("web.done").state("TASK_FINISHED").build(), // reported running: killed
    on("web.gone").state("TASK_FAILED").build(), // not reported, terminal: nothing
    on("web.b2", "a2").state("TASK_RUNNING").build(), // a2's task reported by a1: killed on a1
  ];
  const m = await startMaster({ seed: (_kv, store, l) => seedTasks(store, l, known, at) });
  const fw = await subscribe(m, { frameworkId: "fw-1" });
  const agent = anAgent()
    .id("a1")
    .reporting("web.run")
    .reporting("web.start")
    .reporting("web.killing2")
    .reporting("web.done")
    .reporting("web.b2")
    .reporting("ghost.1");
  const conn = await registerAgent(m, agent);

  assert.equal(conn.sent[0]?.command?.$case, "registered");
  assert.deepEqual(conn.killedTaskIds().sort(), ["ghost.1", "web.b2", "web.done", "web.killing2"]);
  assert.equal(stateOf(m, "web.run"), "TASK_RUNNING");
  assert.equal(stateOf(m, "web.start"), "TASK_RUNNING");
  assert.equal(stateOf(m, "web.missing"), "TASK_LOST");
  assert.equal(stateOf(m, "web.killing"), "TASK_KILLED");
  assert.equal(stateOf(m, "web.killing2"), "TASK_KILLING");
  assert.equal(stateOf(m, "web.done"), "TASK_FINISHED");
  assert.equal(stateOf(m, "web.gone"), "TASK_FAILED");
  assert.equal(stateOf(m, "web.b2"), "TASK_RUNNING", "another agent's task is not changed by a1's report");
  assert.equal(stateOf(m, "ghost.1"), undefined, "an unknown reported task is not adopted");
  const stored = await storedTasks(m.store);
  assert.equal(stored.get("web.missing")?.status.state, "TASK_LOST");
  assert.equal(stored.get("web.killing")?.status.state, "TASK_KILLED");
  assert.equal(stored.get("web.start")?.status.state, "TASK_RUNNING");
  // The framework hears of each change.
  assert.deepEqual(
    ["web.start", "web.missing", "web.killing"].map((id) => updateState(fw.conn.updatesOf(id).at(-1))),
    ["TASK_RUNNING", "TASK_LOST", "TASK_KILLED"],
  );
  assert.equal(
    (await m.store.get(TaskAggregate, "web.run")).version,
    1,
    "nothing written for an agreeing report",
  );
  await m.leader.stop();
});

test("an agent that re-registers on a new session with fewer resources voids its outstanding offers (no overcommit)", async () => {
  const m = await startMaster();
  const fw = await subscribe(m);
  await registerAgent(m, anAgent().id("a1").cpus(4).mem(8192));
  const offer = (await nextOffers(m, fw)).find((o) => o.agentId === "a1");
  assert.ok(offer);
  const session2 = new RecordingAgentConn("a1");
  await m.leader.registerAgent(anAgent().id("a1").cpus(1).mem(1024).toWire(), session2);

  assert.ok(fw.conn.rescinds().includes(offer.offerId), "the offer of the old resources is rescinded");
  await assert.rejects(
    m.leader.accept(
      acceptOf(fw.frameworkId, [offer.offerId], [aTask().id("web.1").on("a1").cpus(3).mem(4096)]),
    ),
    (err: { code?: string }) => err.code === "INVALID_ARGUMENT",
  );
  assert.deepEqual(session2.launches(), []);
  await m.leader.stop();
});

test("a new leader counts an agent's removal from when it went away (AgentUnreachable), not from its own start", async () => {
  const { m, fw, a1, ids } = await clusterWithTasksOnA1();
  const goneAt = m.clock.now();
  m.leader.agentDisconnected("a1", a1);
  await m.clock.advance(31_000); // its tasks unreachable: since when it is gone is recorded
  assert.equal(m.leader.state.agent("a1")?.goneSinceMs, goneAt);
  const recorded = logEntries(m, "/drover/log/agent/a1/").map((e) => e.envelope.event as AgentEvent);
  assert.deepEqual(recorded.at(-1), { type: "AgentUnreachable", goneSinceMs: goneAt });

  // A master failover 100 s after a1 went away (agentRemoveTimeoutSeconds 120).
  await m.clock.advance(69_000);
  await m.leader.stop();
  m.leadership.depose();
  const m2 = await startMaster({ on: m, clock: m.clock, config });
  await subscribe(m2, { frameworkId: fw.frameworkId, failoverTimeoutSeconds: 3600 });
  const a2 = await registerAgent(m2, anAgent().id("a2"));
  keepAlive(m2, "a2", a2);
  // Removed once its 120 s are up counted from when it went away (20 s after the failover, not
  // 120 s), and never within the new leader's re-registration window (10 s here).
  await m2.clock.advance(9_000);
  assert.ok(m2.leader.state.agent("a1"), "not removed within the re-registration window");
  await m2.clock.advance(12_000);
  assert.equal(m2.leader.state.agent("a1"), undefined, "removed 120 s after it went away");
  for (const id of ids) assert.equal(stateOf(m2, id), "TASK_LOST");
  assert.equal((await verifyLog(m2.store)).ok, true);
  await m2.leader.stop();
});

test("a new leader started long after an agent went away still gives it the re-registration window", async () => {
  const { m, fw, a1 } = await clusterWithTasksOnA1();
  m.leader.agentDisconnected("a1", a1);
  await m.clock.advance(31_000);
  await m.leader.stop();
  m.leadership.depose();
  await m.clock.advance(500_000); // no leader for a while: a1's 120 s are long past
  const m2 = await startMaster({ on: m, clock: m.clock, config });
  await subscribe(m2, { frameworkId: fw.frameworkId, failoverTimeoutSeconds: 3600 });
  await m2.clock.advance(9_000);
  const back = await registerAgent(m2, anAgent().id("a1"));
  keepAlive(m2, "a1", back);
  await m2.clock.advance(5_000);
  assert.ok(m2.leader.state.agent("a1"), "back within the window: kept");
  await m2.leader.stop();
});

test("an agent that registers again is no longer recorded as gone", async () => {
  const { m, a1 } = await clusterWithTasksOnA1();
  m.leader.agentDisconnected("a1", a1);
  await m.clock.advance(31_000);
  assert.ok(m.leader.state.agent("a1")?.goneSinceMs !== undefined);
  const back = await registerAgent(m, anAgent().id("a1"));
  keepAlive(m, "a1", back);
  assert.equal(m.leader.state.agent("a1")?.goneSinceMs, undefined);
  await m.leader.stop();
});
