import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { evaluateLaunch, type LaunchOffer } from "./launch.js";

const NOW = 1_000_000;

function offer(id: string, over: Partial<LaunchOffer> = {}): LaunchOffer {
  return {
    offerId: id,
    frameworkId: "fw",
    agentId: "a1",
    resources: { cpus: 2, mem: 1024, disk: 0, ports: [{ begin: 31000, end: 31009 }] },
    expiresAtMs: NOW + 10_000,
    ...over,
  };
}

function task(taskId: string, cpus: number, mem: number, ports: number[] = [], agentId = "a1") {
  return {
    taskId,
    name: taskId,
    agentId,
    frameworkId: "fw",
    appId: "web",
    image: "busybox",
    resources: { cpus, mem, disk: 0, ports: ports.map((p) => ({ begin: p, end: p })) },
    env: {},
    labels: {},
  };
}

const view = (offers: LaunchOffer[], existing: string[] = []) => {
  const byId = new Map(offers.map((o) => [o.offerId, o]));
  const tasks = new Set(existing);
  return { offer: (id: string) => byId.get(id), taskExists: (id: string) => tasks.has(id), nowMs: NOW };
};

const at = (i: number) => ["operations", 0, "launch", "tasks", i];

test("a repeated offer id counts the offer once and is refused by its field (D3)", () => {
  const v = evaluateLaunch(
    { frameworkId: "fw", offerIds: ["o1", "o1"], tasks: [{ path: at(0), task: task("t1", 3, 100) }] },
    view([offer("o1")]),
  );
  assert.equal(v.ok, false);
  assert.ok(
    !v.ok && v.issues.some((i) => i.path === "offerIds[1]" && /listed twice/.test(i.message)),
    JSON.stringify(v),
  );
  // Once is not enough for 3 cpus either: the offer holds 2.
  const once = evaluateLaunch(
    { frameworkId: "fw", offerIds: ["o1"], tasks: [{ path: at(0), task: task("t1", 3, 100) }] },
    view([offer("o1")]),
  );
  assert.ok(
    !once.ok && once.issues.some((i) => /need 3 cpus, the offers hold 2/.test(i.message)),
    JSON.stringify(once),
  );
});

test("two tasks of one accept claiming the same host port are refused (D4)", () => {
  const v = evaluateLaunch(
    {
      frameworkId: "fw",
      offerIds: ["o1"],
      tasks: [
        { path: at(0), task: task("t1", 0.1, 32, [31005]) },
        { path: at(1), task: task("t2", 0.1, 32, [31005]) },
      ],
    },
    view([offer("o1")]),
  );
  assert.ok(
    !v.ok &&
      v.issues.some(
        (i) => i.path === "operations[0].launch.tasks[1].resources.ports" && /31005/.test(i.message),
      ),
    JSON.stringify(v),
  );
});

test("expired, foreign and unknown offers, and existing task ids, are refused by field", () => {
  const v = evaluateLaunch(
    {
      frameworkId: "fw",
      offerIds: ["old", "theirs", "nope"],
      tasks: [{ path: at(0), task: task("t-existing", 0.1, 32) }],
    },
    view([offer("old", { expiresAtMs: NOW }), offer("theirs", { frameworkId: "other" })], ["t-existing"]),
  );
  assert.ok(!v.ok);
  const paths = v.issues.map((i) => i.path);
  assert.ok(
    paths.includes("offerIds[0]") && paths.includes("offerIds[1]") && paths.includes("offerIds[2]"),
    JSON.stringify(v.issues),
  );
  assert.ok(paths.includes("operations[0].launch.tasks[0].taskId"), JSON.stringify(v.issues));
});

test("an accept of 150 tasks that fit is one plan", () => {
  const big = offer("o1", { resources: { cpus: 64, mem: 65536, disk: 0, ports: [] } });
  const tasks = Array.from({ length: 150 }, (_, i) => ({ path: at(i), task: task(`t${i}`, 0.1, 32) }));
  const v = evaluateLaunch({ frameworkId: "fw", offerIds: ["o1"], tasks }, view([big]));
  assert.ok(v.ok, JSON.stringify(!v.ok && v.issues.slice(0, 3)));
  assert.equal(v.plan.tasks.length, 150);
});

/** A naive reference of the rules, written independently of launch.ts. */
function reference(
  offerIds: string[],
  tasks: ReturnType<typeof task>[],
  offers: LaunchOffer[],
  existing: Set<string>,
): boolean {
  if (offerIds.length === 0 || new Set(offerIds).size !== offerIds.length) return false;
  const chosen = offerIds.map((id) => offers.find((o) => o.offerId === id));
  if (chosen.some((o) => o?.frameworkId !== "fw" || o.expiresAtMs <= NOW)) return false;
  const agents = new Set(chosen.map((o) => o?.agentId));
  if (agents.size !== 1) return false;
  const ids = tasks.map((t) => t.taskId);
  if (new Set(ids).size !== ids.length || ids.some((id) => existing.has(id))) return false;
  if (tasks.some((t) => !agents.has(t.agentId))) return false;
  const ports = tasks.flatMap((t) => t.resources.ports.map((p) => p.begin));
  if (new Set(ports).size !== ports.length) return false;
  const sum = (f: (o: LaunchOffer) => number) => chosen.reduce((n, o) => n + (o ? f(o) : 0), 0);
  const cpus = tasks.reduce((n, t) => n + t.resources.cpus, 0);
  const mem = tasks.reduce((n, t) => n + t.resources.mem, 0);
  if (cpus > sum((o) => o.resources.cpus) + 1e-9 || mem > sum((o) => o.resources.mem) + 1e-9) return false;
  const held = new Set<number>();
  for (const o of chosen)
    for (const r of o?.resources.ports ?? []) for (let p = r.begin; p <= r.end; p++) held.add(p);
  return ports.every((p) => held.has(p));
}

test("evaluateLaunch accepts exactly what the naive reference accepts", () => {
  const offerArb = fc.record({
    agentId: fc.constantFrom("a1", "a2"),
    frameworkId: fc.constantFrom("fw", "fw", "other"),
    cpus: fc.integer({ min: 0, max: 8 }).map((n) => n / 2),
    mem: fc.integer({ min: 0, max: 8 }).map((n) => n * 128),
    portBegin: fc.integer({ min: 31000, max: 31010 }),
    portLen: fc.integer({ min: 0, max: 4 }),
    expired: fc.boolean(),
  });
  const taskArb = fc.record({
    id: fc.constantFrom("t1", "t2", "t3", "t4", "old"),
    agentId: fc.constantFrom("a1", "a1", "a2"),
    cpus: fc.integer({ min: 1, max: 6 }).map((n) => n / 2),
    mem: fc.integer({ min: 1, max: 6 }).map((n) => n * 64),
    ports: fc.uniqueArray(fc.integer({ min: 31000, max: 31014 }), { maxLength: 2 }),
  });
  fc.assert(
    fc.property(
      fc.array(offerArb, { minLength: 1, maxLength: 3 }),
      fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }),
      fc.array(taskArb, { maxLength: 4 }),
      (offerSpecs, picks, taskSpecs) => {
        const offers = offerSpecs.map((o, i) =>
          offer(`o${i}`, {
            agentId: o.agentId,
            frameworkId: o.frameworkId,
            expiresAtMs: o.expired ? NOW - 1 : NOW + 1,
            resources: {
              cpus: o.cpus,
              mem: o.mem,
              disk: 0,
              ports: o.portLen > 0 ? [{ begin: o.portBegin, end: o.portBegin + o.portLen - 1 }] : [],
            },
          }),
        );
        const offerIds = picks.map((i) => `o${i}`);
        const tasks = taskSpecs.map((t) => task(t.id, t.cpus, t.mem, t.ports, t.agentId));
        const existing = new Set(["old"]);
        const v = evaluateLaunch(
          { frameworkId: "fw", offerIds, tasks: tasks.map((t, i) => ({ path: at(i), task: t })) },
          view(offers, [...existing]),
        );
        assert.equal(v.ok, reference(offerIds, tasks, offers, existing), JSON.stringify(v));
        if (v.ok) {
          // Accepted plans never use more than the offers hold, counting each offer once.
          const unique = new Set(v.plan.offers.map((o) => o.offerId));
          assert.equal(unique.size, v.plan.offers.length);
        } else assert.ok(v.issues.length > 0 && v.issues.every((i) => i.message.length > 0));
      },
    ),
    { numRuns: 2000 },
  );
});
