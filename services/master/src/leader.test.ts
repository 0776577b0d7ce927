/**
 * MasterLeader's Accept checks (D3, D4) and fencing, on the in-process master: a refused Accept
 * names the field and commits nothing; a deposed leader writes nothing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type DroverError, FencedError, type InvalidArgumentError } from "@drover/common";
import { anAgent, aTask } from "@drover/testing";
import {
  acceptOf,
  keepAlive,
  nextOffers,
  registerAgent,
  startMaster,
  stateOf,
  statusOf,
  storedTasks,
  subscribe,
} from "./harness.test.js";

async function withOffer() {
  const m = await startMaster();
  const agent = await registerAgent(m, anAgent().id("a1").ports(31000, 32000));
  keepAlive(m, "a1", agent);
  const fw = await subscribe(m);
  const offer = (await nextOffers(m, fw)).find((o) => o.agentId === "a1");
  assert.ok(offer);
  m.kv.resetStats();
  return { m, agent, fw, offer };
}

/** An INVALID_ARGUMENT naming `path` (and matching `message`). */
function invalidAt(path: string, message: RegExp) {
  return (err: unknown): boolean => {
    const e = err as InvalidArgumentError;
    assert.equal((err as DroverError).code, "INVALID_ARGUMENT", String(err));
    assert.ok(
      e.issues.some((i) => i.path === path && message.test(i.message)),
      `no issue at ${path} matching ${message}: ${JSON.stringify(e.issues)}`,
    );
    return true;
  };
}

test("D3: an Accept that lists one offer twice is INVALID_ARGUMENT at offerIds[1]; nothing is committed", async () => {
  const { m, agent, fw, offer } = await withOffer();
  // Twice the offer's memory would fit if the offer were counted twice.
  const big = [
    aTask().id("web.1").on("a1").cpus(3).mem(8000),
    aTask().id("web.2").on("a1").cpus(3).mem(8000),
  ];
  await assert.rejects(
    m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId, offer.offerId], big)),
    invalidAt("offerIds[1]", /listed twice/),
  );
  // Even tasks that would fit are refused while the offer is listed twice.
  await assert.rejects(
    m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId, offer.offerId], [aTask().id("web.3").on("a1")])),
    invalidAt("offerIds[1]", /listed twice/),
  );
  assert.equal(m.kv.writeTxnCount, 0);
  assert.equal(agent.launches().length, 0);
  assert.equal((await storedTasks(m.store)).size, 0);
  assert.ok(m.leader.offers.offers.has(offer.offerId), "a refused accept does not use the offer up");

  // The same offer, listed once, still launches.
  const ok = await m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId], [aTask().id("web.3").on("a1")]));
  assert.deepEqual(ok, ["web.3"]);
  await m.leader.stop();
});

test("D4: two tasks of one Accept claiming one host port are INVALID_ARGUMENT naming the clashing task's ports; nothing is committed", async () => {
  const { m, agent, fw, offer } = await withOffer();
  const clash = [
    aTask().id("web.1").on("a1").ports(31005),
    aTask().id("web.2").on("a1").ports(31006),
    aTask().id("web.3").on("a1").ports(31000, 31010),
  ];
  await assert.rejects(
    m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId], clash)),
    (err: unknown) =>
      invalidAt(
        "operations[0].launch.tasks[0].resources.ports",
        /port 31005 is also claimed by task web\.3/,
      )(err) &&
      invalidAt(
        "operations[0].launch.tasks[1].resources.ports",
        /port 31006 is also claimed by task web\.3/,
      )(err),
  );
  await assert.rejects(
    m.leader.accept(
      acceptOf(
        fw.frameworkId,
        [offer.offerId],
        [aTask().id("web.1").on("a1").ports(31005), aTask().id("web.2").on("a1").ports(31005)],
      ),
    ),
    invalidAt("operations[0].launch.tasks[1].resources.ports", /port 31005 is also claimed by task web\.1/),
  );
  assert.equal(m.kv.writeTxnCount, 0);
  assert.equal(agent.launches().length, 0);
  assert.ok(m.leader.offers.offers.has(offer.offerId));

  // Disjoint ports are fine.
  const ok = await m.leader.accept(
    acceptOf(
      fw.frameworkId,
      [offer.offerId],
      [aTask().id("web.1").on("a1").ports(31005), aTask().id("web.2").on("a1").ports(31006)],
    ),
  );
  assert.deepEqual([...ok].sort(), ["web.1", "web.2"]);
  await m.leader.stop();
});

test("Accept refuses tasks beyond the offer, on another agent, or with a known id, naming the field", async () => {
  const { m, fw, offer } = await withOffer();
  await assert.rejects(
    m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId], [aTask().id("web.1").on("a1").cpus(5)])),
    invalidAt("operations", /cpus/),
  );
  await assert.rejects(
    m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId], [aTask().id("web.1").on("a2")])),
    invalidAt("operations[0].launch.tasks[0].agentId", /not the agent/),
  );
  await assert.rejects(
    m.leader.accept(acceptOf(fw.frameworkId, ["o-unknown"], [aTask().id("web.1").on("a1")])),
    invalidAt("offerIds[0]", /unknown/),
  );
  assert.equal(m.kv.writeTxnCount, 0);
  await m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId], [aTask().id("web.1").on("a1")]));
  const again = (await nextOffers(m, fw, { since: fw.conn.mark(), advanceMs: 1100 })).find(
    (o) => o.agentId === "a1",
  );
  assert.ok(again);
  await assert.rejects(
    m.leader.accept(acceptOf(fw.frameworkId, [again.offerId], [aTask().id("web.1").on("a1")])),
    invalidAt("operations[0].launch.tasks[0].taskId", /already exists/),
  );
  await m.leader.stop();
});

test("fencing: once deposed, every commit fails with FencedError and nothing is written", async () => {
  const { m, agent, fw, offer } = await withOffer();
  await m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId], [aTask().id("web.1").on("a1")]));
  await m.leader.tasks.onStatus(statusOf(m, "a1", "web.1", "TASK_RUNNING"));
  const dumpBefore = m.kv.dump();

  // The election key is gone; the process still believes it leads: only the fence stops it.
  m.leadership.depose();
  const revision = m.kv.revision;
  assert.equal(m.leadership.isLeader(), true);
  const kills = agent.kills().length;
  await assert.rejects(m.leader.kill(fw.frameworkId, "web.1"), FencedError);
  assert.equal(agent.kills().length, kills, "no kill sent for an uncommitted KILLING");
  assert.equal(m.leadership.resignCount, 1, "the store resigned after the fenced write");
  await assert.rejects(m.leader.tasks.onStatus(statusOf(m, "a1", "web.1", "TASK_FINISHED")), FencedError);
  await assert.rejects(m.leader.registerAgent(anAgent().id("a9").toWire(), agent), FencedError);
  await assert.rejects(
    m.leader.subscribe({ frameworkId: "", name: "x", role: "", failoverTimeoutSeconds: 1 }, fw.conn),
    FencedError,
  );
  // Dropping an update for an unknown task first proves leadership through etcd: refused too.
  await assert.rejects(m.leader.tasks.onStatus(statusOf(m, "a1", "nobody.1", "TASK_RUNNING")), FencedError);

  assert.equal(m.kv.revision, revision, "no transaction changed etcd");
  const after = m.kv.dump();
  const election = (k: string) => k.startsWith("/drover/election/");
  assert.deepEqual(
    Object.fromEntries(Object.entries(after).filter(([k]) => !election(k))),
    Object.fromEntries(Object.entries(dumpBefore).filter(([k]) => !election(k))),
  );
  assert.equal((await storedTasks(m.store)).get("web.1")?.status.state, "TASK_RUNNING");
  assert.equal(stateOf(m, "web.1"), "TASK_RUNNING");
  await m.leader.stop();
});
