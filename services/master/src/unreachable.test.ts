/**
 * Unreachable agents on the in-process master: an agent not heard from for the heartbeat timeout
 * has its STAGING, STARTING and RUNNING tasks marked TASK_UNREACHABLE (committed, forwarded to
 * the framework); they stay so while it is away and turn RUNNING again when it re-registers
 * reporting them; a framework's kill of an unreachable task is TASK_GONE at once and the task is
 * killed if its agent comes back. Kill grace: the framework's for the kill, else the task's own.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TaskState } from "@drover/core";
import { anAgent, aTask, type RecordingAgentConn } from "@drover/testing";
import {
  acceptOf,
  keepAlive,
  type Master,
  nextOffers,
  registerAgent,
  type Subscription,
  startMaster,
  stateOf,
  statusOf,
  storedTasks,
  subscribe,
  updateState,
} from "./harness.test.js";

const config = { agentRemoveTimeoutSeconds: 600, agentReregisterTimeoutSeconds: 10 };

/**
 * Agents a1 and a2 (a2 kept alive; a1 kept alive only if asked), a framework, and on a1 the tasks
 * web.run (RUNNING), web.start (STARTING), web.stage (STAGING) and web.kill (KILLING).
 */
async function cluster(opts: { keepA1?: boolean; config?: Record<string, unknown> } = {}) {
  const m = await startMaster({ config: { ...config, ...opts.config } });
  const fw = await subscribe(m, { failoverTimeoutSeconds: 3600 });
  const a1 = await registerAgent(m, anAgent().id("a1"));
  const a1Alive = opts.keepA1 ? keepAlive(m, "a1", a1) : undefined;
  const a2 = await registerAgent(m, anAgent().id("a2"));
  keepAlive(m, "a2", a2);
  const offer = (await nextOffers(m, fw)).find((o) => o.agentId === "a1");
  assert.ok(offer);
  const names = ["web.run", "web.start", "web.stage", "web.kill"];
  const accept = acceptOf(
    fw.frameworkId,
    [offer.offerId],
    names.map((id) => aTask().id(id).on("a1").cpus(0.1).mem(16)),
  );
  // web.run carries its own kill grace (TaskInfo.run), as the scheduler sets it from the app.
  const first = accept.tasks[0];
  assert.ok(first);
  first.task = { ...first.task, run: { killGracePeriodSeconds: 30 } };
  await m.leader.accept(accept);
  await m.leader.tasks.onStatus(statusOf(m, "a1", "web.run", "TASK_RUNNING"));
  await m.leader.tasks.onStatus(statusOf(m, "a1", "web.start", "TASK_STARTING"));
  await m.leader.tasks.onStatus(statusOf(m, "a1", "web.kill", "TASK_RUNNING"));
  await m.leader.kill(fw.frameworkId, "web.kill");
  assert.equal(stateOf(m, "web.kill"), "TASK_KILLING");
  return { m, fw, a1, a1Alive, a2 };
}

const states = (m: Master, ids: string[]) => ids.map((id) => stateOf(m, id));
const lastUpdates = (fw: Subscription, ids: string[]) =>
  ids.map((id) => updateState(fw.conn.updatesOf(id).at(-1)));
const everUpdated = (fw: Subscription, id: string, state: TaskState) =>
  fw.conn.updatesOf(id).some((u) => updateState(u) === state);
const ACTIVE = ["web.run", "web.start", "web.stage"];

test("a silent agent: after the heartbeat timeout its active tasks are TASK_UNREACHABLE, stored and forwarded; KILLING stays", async () => {
  const { m, fw, a1 } = await cluster();
  // Default heartbeat timeout: max(5 × 2000 ms, 10 s) = 10 s, checked every second.
  await m.clock.advance(9_000);
  assert.deepEqual(states(m, ACTIVE), ["TASK_RUNNING", "TASK_STARTING", "TASK_STAGING"]);
  await m.clock.advance(2_500);
  assert.equal(a1.closedWith(), "heartbeat timeout");
  assert.deepEqual(states(m, ACTIVE), ["TASK_UNREACHABLE", "TASK_UNREACHABLE", "TASK_UNREACHABLE"]);
  assert.equal(stateOf(m, "web.kill"), "TASK_KILLING", "a task being killed stays KILLING");
  assert.deepEqual(lastUpdates(fw, ACTIVE), ["TASK_UNREACHABLE", "TASK_UNREACHABLE", "TASK_UNREACHABLE"]);
  const stored = await storedTasks(m.store);
  for (const id of ACTIVE) assert.equal(stored.get(id)?.status.state, "TASK_UNREACHABLE", id);
  const u = m.leader.state.task("web.run")?.status;
  assert.match(u?.message ?? "", /agent a1 not heard from for 1\d s/);
  assert.equal(u?.source, "master");

  // Unreachable while away, however long (up to agentRemoveTimeoutSeconds), and marked once.
  await m.clock.advance(300_000);
  assert.deepEqual(states(m, ACTIVE), ["TASK_UNREACHABLE", "TASK_UNREACHABLE", "TASK_UNREACHABLE"]);
  // Marked once (the same update may be resent until the framework acknowledges it).
  const marks = fw.conn
    .updatesOf("web.run")
    .filter((x) => updateState(x) === "TASK_UNREACHABLE")
    .map((x) => x.status?.uuid);
  assert.equal(new Set(marks).size, 1);
  await m.leader.stop();
});

test("an unreachable agent that re-registers reporting its tasks brings them back RUNNING; unreported ones are LOST", async () => {
  const { m, fw } = await cluster();
  await m.clock.advance(12_000);
  assert.deepEqual(states(m, ACTIVE), ["TASK_UNREACHABLE", "TASK_UNREACHABLE", "TASK_UNREACHABLE"]);

  const back = await registerAgent(
    m,
    anAgent().id("a1").reporting("web.run").reporting("web.start").reporting("web.kill"),
  );
  keepAlive(m, "a1", back);
  assert.equal(stateOf(m, "web.run"), "TASK_RUNNING");
  assert.equal(updateState(fw.conn.updatesOf("web.run").at(-1)), "TASK_RUNNING");
  assert.equal((await storedTasks(m.store)).get("web.run")?.status.state, "TASK_RUNNING");
  // web.start reported RUNNING too (the builder reports RUNNING): back as well.
  assert.equal(stateOf(m, "web.start"), "TASK_RUNNING");
  assert.equal(stateOf(m, "web.stage"), "TASK_LOST", "not on the agent any more");
  assert.deepEqual(back.killedTaskIds(), ["web.kill"], "the kill decided while it was away is carried out");

  // Away again later: marked unreachable again.
  await m.clock.advance(1_000);
  m.leader.agentDisconnected("a1", back);
  await m.clock.advance(15_000);
  assert.equal(stateOf(m, "web.run"), "TASK_UNREACHABLE");
  await m.leader.stop();
});

test("a session that ends has the heartbeat timeout to come back: an agent restart leaves its tasks alone", async () => {
  const { m, fw, a1, a1Alive } = await cluster({ keepA1: true });
  await m.clock.advance(30_000);
  assert.equal(stateOf(m, "web.run"), "TASK_RUNNING");
  a1Alive?.cancel();
  m.leader.agentDisconnected("a1", a1);
  await m.clock.advance(5_000);
  const back = await registerAgent(m, anAgent().id("a1").reporting("web.run").reporting("web.start"));
  keepAlive(m, "a1", back);
  await m.clock.advance(60_000);
  assert.equal(stateOf(m, "web.run"), "TASK_RUNNING");
  assert.equal(everUpdated(fw, "web.run", "TASK_UNREACHABLE"), false);

  // Not back: unreachable a heartbeat timeout after it was last heard from (its last heartbeat).
  m.leader.agentDisconnected("a1", back);
  await m.clock.advance(7_000);
  assert.equal(stateOf(m, "web.run"), "TASK_RUNNING");
  await m.clock.advance(4_000);
  assert.equal(stateOf(m, "web.run"), "TASK_UNREACHABLE");
  await m.leader.stop();
});

test("agentHeartbeatTimeoutSeconds sets the heartbeat timeout (short in tests)", async () => {
  const { m } = await cluster({ config: { agentHeartbeatTimeoutSeconds: 2 } });
  await m.clock.advance(1_500);
  assert.equal(stateOf(m, "web.run"), "TASK_RUNNING");
  await m.clock.advance(2_000);
  assert.equal(stateOf(m, "web.run"), "TASK_UNREACHABLE");
  await m.leader.stop();
});

test("while its agent is away, a late RUNNING update does not bring a task back; a terminal one applies", async () => {
  const { m } = await cluster();
  await m.clock.advance(12_000);
  await m.leader.tasks.onStatus(statusOf(m, "a1", "web.start", "TASK_RUNNING"));
  assert.equal(stateOf(m, "web.start"), "TASK_UNREACHABLE");
  await m.leader.tasks.onStatus(statusOf(m, "a1", "web.run", "TASK_FAILED"));
  assert.equal(stateOf(m, "web.run"), "TASK_FAILED");
  await m.leader.stop();
});

test("a framework's kill of an unreachable task is TASK_GONE at once; the agent that comes back is told to kill it", async () => {
  const { m, fw } = await cluster();
  await m.clock.advance(12_000);
  await m.leader.kill(fw.frameworkId, "web.run");
  assert.equal(stateOf(m, "web.run"), "TASK_GONE");
  assert.equal(updateState(fw.conn.updatesOf("web.run").at(-1)), "TASK_GONE");
  assert.match(
    m.leader.state.task("web.run")?.status.message ?? "",
    /unreachable; killed if the agent comes back/,
  );
  const back = await registerAgent(m, anAgent().id("a1").reporting("web.run").reporting("web.start"));
  assert.deepEqual(back.killedTaskIds(), ["web.run"]);
  assert.equal(back.kills()[0]?.gracePeriodSeconds, 30, "with the task's own grace");
  assert.equal(stateOf(m, "web.run"), "TASK_GONE");
  assert.equal(stateOf(m, "web.start"), "TASK_RUNNING");
  await m.leader.stop();
});

test("kill grace: the framework's for this kill, else the task's run.killGracePeriodSeconds, else left to the agent", async () => {
  const { m, fw, a1 } = await cluster({ keepA1: true });
  await m.leader.kill(fw.frameworkId, "web.run");
  await m.leader.kill(fw.frameworkId, "web.start", 2);
  await m.leader.kill(fw.frameworkId, "web.stage");
  const grace = (c: RecordingAgentConn, id: string) => c.kills().find((k) => k.taskId === id);
  assert.equal(grace(a1, "web.run")?.gracePeriodSeconds, 30);
  assert.equal(grace(a1, "web.start")?.gracePeriodSeconds, 2);
  const stage = grace(a1, "web.stage");
  assert.ok(stage);
  assert.equal(stage.gracePeriodSeconds, undefined, "no grace named: the agent's default");
  await assert.rejects(
    m.leader.kill(fw.frameworkId, "web.run", -1),
    (e: { code?: string }) => e.code === "INVALID_ARGUMENT",
  );
  await m.leader.stop();
});

test("after a failover, a known agent has the re-registration window before its tasks are unreachable", async () => {
  const { m, fw } = await cluster({ keepA1: true, config: { agentReregisterTimeoutSeconds: 20 } });
  await m.leader.stop();
  m.leadership.depose();
  const m2 = await startMaster({
    on: m,
    clock: m.clock,
    config: { ...config, agentReregisterTimeoutSeconds: 20 },
  });
  await subscribe(m2, { frameworkId: fw.frameworkId, failoverTimeoutSeconds: 3600 });
  await m2.clock.advance(15_000);
  assert.equal(stateOf(m2, "web.run"), "TASK_RUNNING", "within the window");
  const back = await registerAgent(m2, anAgent().id("a1").reporting("web.run"));
  keepAlive(m2, "a1", back);
  await m2.clock.advance(30_000);
  assert.equal(stateOf(m2, "web.run"), "TASK_RUNNING");
  assert.equal(stateOf(m2, "web.start"), "TASK_LOST", "not in a1's report");
  await m2.leader.stop();
});
