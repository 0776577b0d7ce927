/**
 * FrameworkRegistry and the framework calls on the in-process master: every call proves its
 * subscription (stream id), a framework gone past its failover timeout loses its tasks and is
 * removed, and Acknowledge stops the resend of a status update (10 s, doubling to 10 min).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { DroverError } from "@drover/common";
import type { FrameworkEvent } from "@drover/proto";
import { logKey } from "@drover/store";
import { anAgent, aTask } from "@drover/testing";
import {
  acceptOf,
  keepAlive,
  nextOffers,
  registerAgent,
  startMaster,
  stateOf,
  statusOf,
  subscribe,
  updateState,
} from "./harness.test.js";

const code = (c: string) => (err: unknown) => {
  assert.equal((err as DroverError).code, c, String(err));
  return true;
};

test("framework calls: the subscription's stream id passes; a wrong or missing one is PERMISSION_DENIED", async () => {
  const m = await startMaster();
  const fw = await subscribe(m);
  assert.ok(fw.streamId.length > 0);
  m.leader.authorizeFramework(fw.frameworkId, fw.streamId);
  assert.throws(
    () => m.leader.authorizeFramework(fw.frameworkId, "not-the-stream"),
    code("PERMISSION_DENIED"),
  );
  assert.throws(() => m.leader.authorizeFramework(fw.frameworkId, undefined), code("PERMISSION_DENIED"));
  assert.throws(() => m.leader.authorizeFramework(fw.frameworkId, ""), code("PERMISSION_DENIED"));

  // Re-subscribing on a new connection: a new stream id, the old one refused, the old stream closed.
  const again = await subscribe(m, { frameworkId: fw.frameworkId });
  assert.notEqual(again.streamId, fw.streamId);
  m.leader.authorizeFramework(fw.frameworkId, again.streamId);
  assert.throws(() => m.leader.authorizeFramework(fw.frameworkId, fw.streamId), code("PERMISSION_DENIED"));
  assert.ok(fw.conn.closed);
  await m.leader.stop();
});

test("framework calls: unknown framework NOT_FOUND, known but not subscribed FAILED_PRECONDITION, empty id INVALID_ARGUMENT", async () => {
  const m = await startMaster();
  const fw = await subscribe(m);
  assert.throws(() => m.leader.authorizeFramework("fw-nobody", "x"), code("NOT_FOUND"));
  assert.throws(() => m.leader.authorizeFramework("", "x"), code("INVALID_ARGUMENT"));

  m.leader.frameworkDisconnected(fw.frameworkId, fw.conn);
  assert.throws(() => m.leader.authorizeFramework(fw.frameworkId, fw.streamId), code("FAILED_PRECONDITION"));
  await assert.rejects(
    m.leader.accept(acceptOf(fw.frameworkId, ["o-1"], [aTask().id("web.1")])),
    code("FAILED_PRECONDITION"),
  );
  assert.throws(
    () => m.leader.decline({ frameworkId: fw.frameworkId, offerIds: [], refuseSeconds: 5 }),
    code("FAILED_PRECONDITION"),
  );
  assert.throws(() => m.leader.revive(fw.frameworkId), code("FAILED_PRECONDITION"));
  assert.throws(() => m.leader.suppress(fw.frameworkId), code("FAILED_PRECONDITION"));
  await assert.rejects(m.leader.kill(fw.frameworkId, "web.1"), code("FAILED_PRECONDITION"));
  assert.throws(() => m.leader.acknowledge(fw.frameworkId, "web.1", "u"), code("FAILED_PRECONDITION"));
  assert.throws(() => m.leader.reconcile(fw.frameworkId, []), code("FAILED_PRECONDITION"));
  await m.leader.stop();
});

test("a framework gone past its failover timeout has its tasks killed, then is removed", async () => {
  const m = await startMaster();
  const agent = await registerAgent(m, anAgent().id("a1"));
  keepAlive(m, "a1", agent);
  const fw = await subscribe(m, { failoverTimeoutSeconds: 5 });
  const offer = (await nextOffers(m, fw)).find((o) => o.agentId === "a1");
  assert.ok(offer);
  const ids = await m.leader.accept(
    acceptOf(fw.frameworkId, [offer.offerId], [aTask().id("web.1").on("a1"), aTask().id("web.2").on("a1")]),
  );
  await m.leader.tasks.onStatus(statusOf(m, "a1", "web.1", "TASK_RUNNING"));

  m.leader.frameworkDisconnected(fw.frameworkId, fw.conn);
  await m.clock.advance(4_000);
  assert.deepEqual(agent.kills(), [], "nothing killed within the failover timeout");
  assert.ok(m.leader.state.framework(fw.frameworkId));

  await m.clock.advance(2_000);
  assert.deepEqual(agent.killedTaskIds().sort(), [...ids].sort());
  for (const id of ids) assert.equal(stateOf(m, id), "TASK_KILLING");
  assert.equal(m.leader.state.framework(fw.frameworkId), undefined);
  assert.match(m.kv.get(logKey("framework", fw.frameworkId, 2)) ?? "", /FrameworkRemoved/);
  assert.throws(() => m.leader.authorizeFramework(fw.frameworkId, fw.streamId), code("NOT_FOUND"));

  // The agent's answer to the kill still lands.
  await m.leader.tasks.onStatus(statusOf(m, "a1", "web.1", "TASK_KILLED"));
  assert.equal(stateOf(m, "web.1"), "TASK_KILLED");
  await m.leader.stop();
});

test("a framework that re-subscribes within its failover timeout keeps its tasks", async () => {
  const m = await startMaster();
  const agent = await registerAgent(m, anAgent().id("a1"));
  keepAlive(m, "a1", agent);
  const fw = await subscribe(m, { failoverTimeoutSeconds: 5 });
  const offer = (await nextOffers(m, fw)).find((o) => o.agentId === "a1");
  assert.ok(offer);
  await m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId], [aTask().id("web.1").on("a1")]));
  m.leader.frameworkDisconnected(fw.frameworkId, fw.conn);
  await m.clock.advance(4_000);
  await subscribe(m, { frameworkId: fw.frameworkId, failoverTimeoutSeconds: 5 });
  await m.clock.advance(10_000);
  assert.deepEqual(agent.kills(), []);
  assert.equal(stateOf(m, "web.1"), "TASK_STAGING");
  assert.ok(m.leader.state.framework(fw.frameworkId));
  await m.leader.stop();
});

test("a status update is resent until acknowledged with its uuid", async () => {
  const m = await startMaster();
  const agent = await registerAgent(m, anAgent().id("a1"));
  keepAlive(m, "a1", agent);
  const fw = await subscribe(m);
  const offer = (await nextOffers(m, fw)).find((o) => o.agentId === "a1");
  assert.ok(offer);
  await m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId], [aTask().id("web.1").on("a1")]));
  const running = statusOf(m, "a1", "web.1", "TASK_RUNNING");
  await m.leader.tasks.onStatus(running);
  const isWeb1 = (e: FrameworkEvent) =>
    e.event?.$case === "update" && e.event.value.status?.taskId === "web.1";
  assert.equal(fw.conn.where(isWeb1).length, 1);

  // Not acknowledged: sent again (the same update) within 20 s.
  let mark = fw.conn.mark();
  const resent = fw.conn.waitFor(isWeb1, { since: mark, timeoutMs: 5000 });
  await m.clock.advance(20_000);
  const again = await resent;
  assert.equal(again.event?.$case === "update" ? again.event.value.status?.uuid : "", running.status.uuid);
  assert.equal(updateState(again.event?.$case === "update" ? again.event.value : undefined), "TASK_RUNNING");

  // An acknowledgement of another uuid does not stop it.
  m.leader.acknowledge(fw.frameworkId, "web.1", "some-other-uuid");
  mark = fw.conn.mark();
  await m.clock.advance(20_000);
  assert.ok(fw.conn.where(isWeb1, mark).length >= 1);

  // The right uuid does.
  m.leader.acknowledge(fw.frameworkId, "web.1", running.status.uuid);
  mark = fw.conn.mark();
  await m.clock.advance(60_000);
  assert.deepEqual(fw.conn.where(isWeb1, mark), []);

  // A later update is pending again until acknowledged.
  const finished = statusOf(m, "a1", "web.1", "TASK_FINISHED");
  await m.leader.tasks.onStatus(finished);
  m.leader.acknowledge(fw.frameworkId, "web.1", finished.status.uuid);
  mark = fw.conn.mark();
  await m.clock.advance(30_000);
  assert.deepEqual(fw.conn.where(isWeb1, mark), []);

  assert.throws(() => m.leader.acknowledge(fw.frameworkId, "nobody.1", "u"), code("NOT_FOUND"));
  assert.throws(() => m.leader.acknowledge(fw.frameworkId, "web.1", ""), code("INVALID_ARGUMENT"));
  await m.leader.stop();
});

/** A master with agent a1 and a subscribed framework that launched `taskIds` on a1's offer. */
async function withLaunched(...taskIds: string[]) {
  const m = await startMaster();
  const agent = await registerAgent(m, anAgent().id("a1"));
  keepAlive(m, "a1", agent);
  const fw = await subscribe(m);
  const offer = (await nextOffers(m, fw)).find((o) => o.agentId === "a1");
  assert.ok(offer);
  await m.leader.accept(
    acceptOf(
      fw.frameworkId,
      [offer.offerId],
      taskIds.map((id) => aTask().id(id).on("a1")),
    ),
  );
  return { m, fw };
}

test("an unacknowledged update is resent after 10 s, then twice as late each time (no flood of the same update)", async () => {
  const { m, fw } = await withLaunched("web.1");
  await m.leader.tasks.onStatus(statusOf(m, "a1", "web.1", "TASK_RUNNING"));
  const isWeb1 = (e: FrameworkEvent) =>
    e.event?.$case === "update" && e.event.value.status?.taskId === "web.1";
  const mark = fw.conn.mark();
  // Sent again at about 10, 30, 70 and 150 s: 4 times in 160 s (a fixed 10 s would be 16).
  for (let i = 0; i < 32; i++) await m.clock.advance(5_000);
  const resent = fw.conn.where(isWeb1, mark).length;
  assert.ok(resent >= 3 && resent <= 5, `resent ${resent} times in 160 s`);
  await m.leader.stop();
});

test("acknowledgements in one batch: known ones apply, unknown or foreign tasks are returned, a bad uuid names its index", async () => {
  const { m, fw } = await withLaunched("web.1", "web.2");
  const r1 = statusOf(m, "a1", "web.1", "TASK_RUNNING");
  const r2 = statusOf(m, "a1", "web.2", "TASK_RUNNING");
  await m.leader.tasks.onStatus(r1);
  await m.leader.tasks.onStatus(r2);
  assert.equal(m.leader.tasks.unacknowledged, 2);
  const unknown = m.leader.acknowledgeMany(fw.frameworkId, [
    { taskId: "web.1", uuid: r1.status.uuid },
    { taskId: "nobody.1", uuid: "u" },
    { taskId: "web.2", uuid: r2.status.uuid },
  ]);
  assert.deepEqual(unknown, ["nobody.1"]);
  assert.equal(m.leader.tasks.unacknowledged, 0);
  const isWeb = (e: FrameworkEvent) => e.event?.$case === "update";
  const mark = fw.conn.mark();
  await m.clock.advance(30_000);
  assert.deepEqual(fw.conn.where(isWeb, mark), []);
  assert.throws(
    () => m.leader.acknowledgeMany(fw.frameworkId, [{ taskId: "web.1", uuid: "" }]),
    (err: unknown) => {
      assert.equal((err as DroverError).code, "INVALID_ARGUMENT");
      assert.match(String(err), /acks\[0\]\.uuid/);
      return true;
    },
  );
  await m.leader.stop();
});

test("while a framework's stream is full its status updates are held, the latest per task, and sent when it drains", async () => {
  const { RecordingFrameworkConn } = await import("@drover/testing");
  /** A stream whose buffer the test fills and drains. */
  class SlowConn extends RecordingFrameworkConn {
    isFull = false;
    private drained: (() => void)[] = [];
    full(): boolean {
      return this.isFull;
    }
    onDrain(fn: () => void): void {
      this.drained.push(fn);
    }
    drain(): void {
      this.isFull = false;
      for (const fn of this.drained.splice(0)) fn();
    }
  }
  const m = await startMaster();
  const agent = await registerAgent(m, anAgent().id("a1"));
  keepAlive(m, "a1", agent);
  const conn = new SlowConn();
  const frameworkId = await m.leader.subscribe(
    { frameworkId: "", name: "slow", role: "", failoverTimeoutSeconds: 3600 },
    conn,
  );
  const fw = { frameworkId, conn, streamId: conn.subscribed()?.streamId ?? "" };
  const offers = await nextOffers(m, fw);
  const offer = offers.find((o) => o.agentId === "a1");
  assert.ok(offer);
  const tasks = ["web.1", "web.2"].map((id) => aTask().id(id).app("web").on("a1").cpus(0.01).mem(16));
  await m.leader.accept(acceptOf(frameworkId, [offer.offerId], tasks));

  conn.isFull = true;
  await m.leader.tasks.onStatus(statusOf(m, "a1", "web.1", "TASK_STARTING"));
  await m.leader.tasks.onStatus(statusOf(m, "a1", "web.2", "TASK_RUNNING"));
  await m.leader.tasks.onStatus(statusOf(m, "a1", "web.1", "TASK_RUNNING"));
  assert.equal(conn.updatesOf("web.1").length, 0, "nothing written to a full stream");
  assert.equal(m.leader.frameworks.heldUpdates(frameworkId), 2, "one per task");
  // Other events are not held.
  m.leader.frameworks.send(frameworkId, { event: { $case: "rescind", value: { offerId: "o-x" } } });
  assert.ok(conn.sent.some((e) => e.event?.$case === "rescind"));

  conn.drain();
  assert.deepEqual(
    ["web.1", "web.2"].map((id) => conn.updatesOf(id).map((u) => updateState(u))),
    [["TASK_RUNNING"], ["TASK_RUNNING"]],
    "the latest of each task, once",
  );
  assert.equal(m.leader.frameworks.heldUpdates(frameworkId), 0);
  // Not full: written at once.
  await m.leader.tasks.onStatus(statusOf(m, "a1", "web.2", "TASK_FINISHED", { exitCode: 0 }));
  assert.equal(updateState(conn.updatesOf("web.2").at(-1)), "TASK_FINISHED");
  assert.equal(stateOf(m, "web.2"), "TASK_FINISHED");
  await m.leader.stop();
});
