import assert from "node:assert/strict";
import { test } from "node:test";
import { toWireStatus } from "@drover/proto";
import { anOffer, aTask } from "./builders.js";
import { RecordingAgentConn, RecordingFrameworkConn } from "./recording.js";

test("RecordingAgentConn keeps launches, kills and registrations, in order", () => {
  const conn = new RecordingAgentConn("a1");
  conn.send({ command: { $case: "registered", value: { agentId: "a1", heartbeatIntervalMs: 5000 } } });
  conn.send({ command: { $case: "launch", value: { task: aTask().id("web.1").toWire() } } });
  conn.send({ command: { $case: "kill", value: { taskId: "web.0", gracePeriodSeconds: 10 } } });
  conn.send({ command: { $case: "launch", value: { task: aTask().id("web.2").toWire() } } });
  assert.deepEqual(
    conn.launches().map((t) => t.taskId),
    ["web.1", "web.2"],
  );
  assert.deepEqual(conn.killedTaskIds(), ["web.0"]);
  assert.equal(conn.registrations()[0]?.heartbeatIntervalMs, 5000);
  assert.equal(conn.sent.length, 4);
  assert.equal(conn.closedWith(), undefined);
  conn.close("heartbeat timeout");
  conn.send({ command: { $case: "kill", value: { taskId: "late", gracePeriodSeconds: 0 } } });
  assert.equal(conn.closedWith(), "heartbeat timeout");
  assert.equal(conn.sentAfterClose.length, 1);
  assert.equal(conn.kills().length, 1);
});

test("waitFor resolves when a matching message arrives, or at once if one was sent; since skips older ones", async () => {
  const conn = new RecordingAgentConn();
  conn.send({ command: { $case: "launch", value: { task: aTask().id("t0").toWire() } } });
  assert.equal((await conn.waitForLaunch()).taskId, "t0");
  const mark = conn.mark();
  const next = conn.waitForLaunch(undefined, { since: mark });
  const kill = conn.waitForKill("t9");
  let resolved = false;
  void next.then(() => {
    resolved = true;
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(resolved, false);
  conn.send({ command: { $case: "kill", value: { taskId: "t1", gracePeriodSeconds: 0 } } });
  conn.send({ command: { $case: "launch", value: { task: aTask().id("t2").toWire() } } });
  assert.equal((await next).taskId, "t2");
  conn.send({ command: { $case: "kill", value: { taskId: "t9", gracePeriodSeconds: 3 } } });
  assert.equal((await kill).gracePeriodSeconds, 3);
});

test("waitFor rejects when the connection closes first, or after timeoutMs", async () => {
  const conn = new RecordingFrameworkConn();
  const waiting = conn.waitForOffers();
  conn.close("framework failed over");
  await assert.rejects(waiting, /connection closed \(framework failed over\)/);
  await assert.rejects(conn.waitForUpdate(), /connection closed/);
  const other = new RecordingFrameworkConn();
  await assert.rejects(other.waitForOffers({ timeoutMs: 5 }), /no matching message within 5 ms/);
});

test("RecordingFrameworkConn: subscribed, offers, rescinds, updates; waitForCount", async () => {
  const conn = new RecordingFrameworkConn("fw-1");
  const three = conn.waitForCount(3, (e) => e.event?.$case === "update");
  conn.send({
    event: { $case: "subscribed", value: { frameworkId: "fw-1", heartbeatIntervalMs: 1, streamId: "s" } },
  });
  conn.send({
    event: {
      $case: "offers",
      value: { offers: [anOffer().id("o-1").toWire(), anOffer().id("o-2").toWire()] },
    },
  });
  conn.send({ event: { $case: "rescind", value: { offerId: "o-1" } } });
  for (const [i, state] of (["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"] as const).entries()) {
    const t = aTask()
      .id(i === 2 ? "other" : "web.1")
      .state(state);
    conn.send({
      event: {
        $case: "update",
        value: { status: toWireStatus(t.info().taskId, "a1", t.status()), appId: "web" },
      },
    });
  }
  assert.equal((await three).length, 3);
  assert.equal(conn.subscribed()?.streamId, "s");
  assert.deepEqual(
    conn.offers().map((o) => o.offerId),
    ["o-1", "o-2"],
  );
  assert.deepEqual(conn.rescinds(), ["o-1"]);
  assert.deepEqual(
    conn.outstandingOffers().map((o) => o.offerId),
    ["o-2"],
  );
  assert.equal(conn.updates().length, 3);
  assert.equal(conn.updatesOf("web.1").length, 2);
  const finished = await conn.waitForUpdate((u) => u.status?.taskId === "other");
  assert.equal(finished.appId, "web");
});

test("failSends makes send throw, as a broken stream does", () => {
  const conn = new RecordingAgentConn();
  conn.failSends();
  assert.throws(() => conn.send({ command: undefined }), /stream broken/);
  conn.healSends();
  conn.send({ command: undefined });
  assert.equal(conn.sent.length, 1);
});
