import assert from "node:assert/strict";
import { test } from "node:test";
import {
  AgentAggregate,
  AppAggregate,
  AppSpecSchema,
  allocate,
  fold,
  placeInstances,
  TaskAggregate,
  TaskRecordSchema,
} from "@drover/core";
import { fromWireResources, fromWireTaskInfo, RegisterAgent } from "@drover/proto";
import { anAgent, anApp, anOffer, aTask } from "./builders.js";
import { TEST_EPOCH_MS } from "./fake-clock.js";

test("anAgent builds a registration with sensible defaults and what was set", () => {
  const a = anAgent().id("a1").cpus(4).mem(8192).ports(31000, 32000).attrs({ rack: "r1" }).build();
  assert.deepEqual(a, {
    agentId: "a1",
    hostname: "a1.test",
    resources: { cpus: 4, mem: 8192, disk: 10240, ports: [{ begin: 31000, end: 32000 }] },
    attributes: { rack: "r1" },
    tasks: [],
  });
  const re = anAgent()
    .id("a2")
    .reporting("web.1")
    .reporting(aTask().id("web.2").state("TASK_STARTING"))
    .build();
  assert.deepEqual(
    re.tasks.map((t) => [t.taskId, t.status.state]),
    [
      ["web.1", "TASK_RUNNING"],
      ["web.2", "TASK_STARTING"],
    ],
  );
  assert.throws(() => anAgent().cpus(-1).build(), /cpus|>=/);
});

test("builders are immutable: a shared base can be varied", () => {
  const base = anAgent().attrs({ zone: "z1" });
  const big = base.id("big").cpus(64);
  const small = base.id("small").cpus(1).attrs({ rack: "r9" });
  assert.equal(base.build().agentId, "a1");
  assert.equal(base.build().resources.cpus, 4);
  assert.deepEqual(base.build().attributes, { zone: "z1" });
  assert.equal(big.build().resources.cpus, 64);
  assert.deepEqual(small.build().attributes, { zone: "z1", rack: "r9" });
  // Built objects are fresh: mutating one changes neither the builder nor the next build.
  const built = base.build();
  built.resources.ports.push({ begin: 1, end: 2 });
  built.attributes.x = "y";
  assert.deepEqual(base.build().resources.ports, [{ begin: 31000, end: 32000 }]);
  assert.deepEqual(base.build().attributes, { zone: "z1" });
});

test("anApp builds an AppSpec that AppSpecSchema accepts; unchecked() gives bad input for validation tests", () => {
  const app = anApp().id("web").instances(3).cpus(0.1).mem(32).build();
  assert.deepEqual(AppSpecSchema.parse(app), app, "normalizing is idempotent");
  assert.equal(app.id, "/web");
  assert.equal(app.instances, 3);
  assert.equal(app.container?.docker?.image, "drover/busybox:1");
  assert.deepEqual(app.portDefinitions, []);
  const full = anApp().cmd("echo hi").env({ A: "1" }).labels({ team: "x" }).ports(0, 8080).disk(10).build();
  assert.deepEqual(
    full.portDefinitions?.map((p) => p.port),
    [0, 8080],
  );
  assert.equal(full.requirePorts, true);
  assert.throws(() => anApp().id("Bad_Id").build());
  assert.equal(AppSpecSchema.safeParse(anApp().instances(1001).unchecked()).success, false);
  const rec = anApp().id("web").record(5);
  assert.deepEqual(fold(AppAggregate, "web", [{ event: anApp().id("web").created(), atMs: 5 }]), rec);
});

test("aTask builds a TaskRecord (TaskRecordSchema) and its TaskInfo, events and wire form agree", () => {
  const t = aTask().app("db").id("db.7").on("a3").cpus(0.5).mem(64).ports(31005).state("TASK_FAILED", {
    message: "exited",
    exitCode: 2,
  });
  const rec = t.build();
  assert.deepEqual(TaskRecordSchema.parse(rec), rec);
  assert.equal(rec.info.taskId, "db.7");
  assert.equal(rec.info.agentId, "a3");
  assert.deepEqual(rec.info.resources, {
    cpus: 0.5,
    mem: 64,
    disk: 0,
    ports: [{ begin: 31005, end: 31005 }],
  });
  assert.deepEqual([rec.status.state, rec.status.exitCode, rec.status.message], ["TASK_FAILED", 2, "exited"]);
  assert.equal(aTask().build().info.taskId, "web.1");
  assert.deepEqual(fromWireTaskInfo(t.toWire()), t.info());
  // Replaying launched + updated gives the record.
  const replayed = fold(TaskAggregate, "db.7", [
    { event: t.state("TASK_STAGING").launched(), atMs: TEST_EPOCH_MS },
    { event: t.updated(), atMs: TEST_EPOCH_MS },
  ]);
  assert.deepEqual(replayed, rec);
});

test("anOffer: on(agent) takes the agent's id, hostname, attributes and resources; toWire round-trips", () => {
  const agent = anAgent().id("a7").cpus(2).attrs({ rack: "r2" });
  const o = anOffer().on(agent).id("o-9").framework("fw-2").build();
  assert.deepEqual(o, {
    offerId: "o-9",
    frameworkId: "fw-2",
    agentId: "a7",
    hostname: "a7.test",
    resources: agent.build().resources,
    attributes: { rack: "r2" },
    expiresAtMs: TEST_EPOCH_MS + 60_000,
  });
  const wire = anOffer().on(agent).toWire();
  assert.deepEqual(fromWireResources(wire.resources), agent.build().resources);
  assert.deepEqual(wire.attributes, [{ key: "rack", value: "r2" }]);
});

test("the built objects feed core's allocate and placeInstances as they are", () => {
  const agents = [anAgent().id("a1").ledger(), anAgent().id("a2").cpus(1).ledger()];
  const grants = allocate(
    agents,
    [
      {
        frameworkId: "fw-1",
        connected: true,
        suppressed: false,
        allocated: { cpus: 0, mem: 0, disk: 0, ports: [] },
      },
    ],
    [],
    TEST_EPOCH_MS,
  );
  assert.deepEqual(grants.map((g) => g.agentId).sort(), ["a1", "a2"]);
  const offers = ["a1", "a2"].map((id, i) => anOffer().on(anAgent().id(id)).id(`o-${i}`).build());
  const app = anApp().instances(3).build();
  const placed = placeInstances(
    offers,
    [{ appId: app.id, count: 3, resources: { cpus: app.cpus, mem: app.mem, disk: 0, ports: [] } }],
    new Map(),
  );
  assert.equal(placed.placements.length, 3);
});

test("anAgent().toWire() is a RegisterAgent that encodes; record() and registered() agree with the aggregate", () => {
  const agent = anAgent().id("a1").attrs({ rack: "r1" }).reporting("web.1");
  const wire = agent.toWire();
  const decoded = RegisterAgent.decode(RegisterAgent.encode(wire).finish());
  assert.equal(decoded.agentId, "a1");
  assert.equal(decoded.tasks[0]?.taskId, "web.1");
  assert.deepEqual(fold(AgentAggregate, "a1", [{ event: agent.registered(), atMs: 7 }]), agent.record(7));
});
