/** The interner: task records equal to what they were, with their app's repeated parts shared. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { anAgent, aTask } from "@drover/testing";
import { acceptOf, nextOffers, registerAgent, startMaster, subscribe } from "./harness.test.js";
import { TaskInfoInterner } from "./intern.js";

/** A copy with every string a new instance (as decoding from the wire makes them). */
const fresh = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

function infoOf(id: string, over: { version?: string; host?: string; labels?: Record<string, string> } = {}) {
  const base = aTask()
    .id(id)
    .app("web")
    .on(over.host ?? "a1")
    .info();
  return fresh({
    ...base,
    env: {
      MESOS_TASK_ID: id,
      MARATHON_APP_ID: "/web",
      MARATHON_APP_VERSION: over.version ?? "v1",
      HOST: over.host ?? "a1",
      PORT0: id.endsWith("1") ? "31001" : "31002",
    },
    labels: over.labels ?? {},
    run: { appVersion: over.version ?? "v1", killGracePeriodSeconds: 3 },
  });
}

test("an interned info is deep-equal to the original", () => {
  const i = new TaskInfoInterner();
  for (const info of [
    infoOf("web.1"),
    infoOf("web.2", { labels: { a: "b" } }),
    infoOf("web.3", { version: "v2" }),
  ])
    assert.deepEqual(i.info(info), info);
});

test("tasks of one app share their env values, labels and run; a new version's are its own", () => {
  const i = new TaskInfoInterner();
  const a = i.info(infoOf("web.1", { labels: { team: "x" } }));
  const b = i.info(infoOf("web.2", { labels: { team: "x" } }));
  assert.ok(a.run === b.run, "run shared");
  assert.ok(a.labels === b.labels, "labels shared");
  assert.ok(a.env !== b.env, "each task has its own env object");
  // The same string instance: the one the first task brought. (=== on strings compares content, so
  // sharing is seen through the pool: interning either one returns the first.)
  assert.equal(a.env.MESOS_TASK_ID, a.taskId);
  assert.equal(b.env.PORT0, "31002");
  const c = i.info(infoOf("web.3", { version: "v2", labels: { team: "x" } }));
  assert.notDeepEqual(c.run, a.run);
  assert.equal(c.run?.appVersion, "v2");
  assert.equal(c.env.MARATHON_APP_VERSION, "v2");
  assert.ok(i.info(infoOf("web.4")).labels === i.info(infoOf("web.5")).labels, "no labels: one empty object");
});

test("the master's launches keep interned task records (shared run objects across one app's tasks)", async () => {
  const m = await startMaster();
  await registerAgent(m, anAgent().id("a1"));
  const fw = await subscribe(m);
  const offers = await nextOffers(m, fw);
  const offer = offers.find((o) => o.agentId === "a1");
  assert.ok(offer);
  const tasks = [1, 2, 3].map((n) =>
    aTask().id(`web.${n}`).app("web").on("a1").cpus(0.01).mem(16).labels({ team: "x" }),
  );
  await m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId], tasks));
  const [t1, t2, t3] = ["web.1", "web.2", "web.3"].map((id) => m.leader.state.task(id));
  assert.ok(t1 && t2 && t3);
  assert.ok(t1.info.labels === t2.info.labels && t2.info.labels === t3.info.labels, "labels shared");
  assert.deepEqual(t1.info.labels, { team: "x" });
  await m.leader.stop();
});
