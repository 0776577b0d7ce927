import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { allActionsDone, currentStep, DeploymentAggregate } from "../events/deployment.js";
import { type DependencyNode, dependencyGraph } from "./order.js";
import { type AppChangeKind, currentStepOf, planSteps, stepOfApp } from "./plan.js";

const ids = ["/a", "/b", "/c", "/d", "/e", "/g/x", "/g/y"];

/** Acyclic dependencies: an app depends only on apps earlier in `ids` (or the group /g). */
const nodesArb = (pool: readonly string[]) =>
  fc
    .tuple(...pool.map((_, i) => fc.subarray(pool.slice(0, i))))
    .map((deps) => pool.map((id, i): DependencyNode => ({ id, dependencies: deps[i] ?? [] })));

const scenarioArb = fc
  .tuple(
    nodesArb(ids),
    nodesArb(ids),
    fc.array(fc.constantFrom<AppChangeKind | "none">("none", "scale", "config"), {
      minLength: ids.length,
      maxLength: ids.length,
    }),
    fc.array(fc.boolean(), { minLength: ids.length, maxLength: ids.length }),
    fc.array(fc.boolean(), { minLength: ids.length, maxLength: ids.length }),
  )
  .map(([before, after, kinds, inBefore, inAfter]) => {
    const original = before.filter((_, i) => inBefore[i]);
    const target = after.filter((_, i) => inAfter[i]);
    const changes = ids.flatMap((id, i) => {
      const was = inBefore[i];
      const is = inAfter[i];
      if (was && !is) return [{ appId: id, change: "remove" as const }];
      if (!was && is) return [{ appId: id, change: "create" as const }];
      const k = kinds[i];
      return was && is && k !== undefined && k !== "none" ? [{ appId: id, change: k }] : [];
    });
    // Dependencies may only name apps that exist on their side.
    const keep = (nodes: DependencyNode[]) => {
      const have = new Set(nodes.map((n) => n.id));
      return nodes.map((n) => ({ id: n.id, dependencies: n.dependencies.filter((d) => have.has(d)) }));
    };
    return { original: keep(original), target: keep(target), changes };
  });

test("every changed app has one action that moves it (a new one also its start); unchanged apps none", () => {
  fc.assert(
    fc.property(scenarioArb, ({ original, target, changes }) => {
      const steps = planSteps(changes, original, target);
      const actions = steps.flatMap((s) => s.actions);
      for (const c of changes) {
        const mine = actions.filter((a) => a.appId === c.appId).map((a) => a.action);
        const want = {
          remove: ["StopApplication"],
          create: ["StartApplication", "ScaleApplication"],
          scale: ["ScaleApplication"],
          config: ["RestartApplication"],
        }[c.change];
        assert.deepEqual(mine, want, `${c.appId} (${c.change})`);
      }
      const changed = new Set(changes.map((c) => c.appId));
      assert.ok(actions.every((a) => changed.has(a.appId)));
      assert.ok(steps.every((s) => s.actions.length > 0));
    }),
  );
});

test("stops come first, dependents before what they depend on; starts and upgrades after their dependencies", () => {
  fc.assert(
    fc.property(scenarioArb, ({ original, target, changes }) => {
      const steps = planSteps(changes, original, target);
      const at = (appId: string, kinds: string[]) =>
        steps.findIndex((s) => s.actions.some((a) => a.appId === appId && kinds.includes(a.action)));
      const lastStop = Math.max(
        -1,
        ...changes.filter((c) => c.change === "remove").map((c) => at(c.appId, ["StopApplication"])),
      );
      for (const c of changes)
        if (c.change !== "remove")
          assert.ok(at(c.appId, ["StartApplication", "ScaleApplication", "RestartApplication"]) > lastStop);
      const before = dependencyGraph(original);
      const after = dependencyGraph(target);
      for (const c of changes) {
        if (c.change === "remove") {
          // Everything removed that depends on it stops in an earlier step.
          for (const other of changes)
            if (other.change === "remove" && (before.get(other.appId) ?? []).includes(c.appId))
              assert.ok(at(other.appId, ["StopApplication"]) < at(c.appId, ["StopApplication"]));
          continue;
        }
        const mine = at(c.appId, ["ScaleApplication", "RestartApplication"]);
        for (const dep of after.get(c.appId) ?? []) {
          const d = at(dep, ["ScaleApplication", "RestartApplication"]);
          if (d >= 0) assert.ok(d < mine, `${dep} before ${c.appId}`);
        }
      }
    }),
  );
});

test("the current step moves on as apps finish; held apps are in later steps", () => {
  const steps = planSteps(
    [
      { appId: "/db", change: "create" },
      { appId: "/web", change: "create" },
      { appId: "/old", change: "remove" },
    ],
    [{ id: "/old", dependencies: [] }],
    [
      { id: "/db", dependencies: [] },
      { id: "/web", dependencies: ["/db"] },
    ],
  );
  assert.deepEqual(
    steps.map((s) => s.actions.map((a) => `${a.action} ${a.appId}`)),
    [
      ["StopApplication /old"],
      ["StartApplication /db", "StartApplication /web"],
      ["ScaleApplication /db"],
      ["ScaleApplication /web"],
    ],
  );
  assert.equal(currentStepOf(steps, new Set()), 0);
  // The starts are done by themselves: once /old stopped, the scale of /db runs.
  assert.equal(currentStepOf(steps, new Set(["/old"])), 2);
  assert.equal(currentStepOf(steps, new Set(["/old", "/db"])), 3);
  assert.equal(currentStepOf(steps, new Set(["/old", "/db", "/web"])), 4);
  assert.equal(stepOfApp(steps, "/web"), 3);
});

test("the deployment aggregate records actions done and says when all are", () => {
  const steps = planSteps(
    [
      { appId: "/db", change: "config" },
      { appId: "/web", change: "config" },
    ],
    [],
    [
      { id: "/db", dependencies: [] },
      { id: "/web", dependencies: ["/db"] },
    ],
  );
  const id = "00000000-0000-4000-8000-000000000001";
  const v = "2026-01-01T00:00:00.000Z";
  let d = DeploymentAggregate.apply(
    undefined,
    {
      type: "DeploymentStarted",
      id,
      kind: "group",
      apps: [
        { appId: "/db", toVersion: v },
        { appId: "/web", toVersion: v },
      ],
      steps,
    },
    { id, atMs: 1 },
  );
  assert.ok(d);
  assert.equal(currentStep(d), 0);
  assert.equal(allActionsDone(d, ["/db"]), false);
  d = DeploymentAggregate.apply(d, { type: "DeploymentActionsDone", appIds: ["/db"] }, { id, atMs: 2 });
  assert.ok(d);
  assert.equal(currentStep(d), 1);
  assert.equal(allActionsDone(d, ["/web"]), true);
  assert.ok(DeploymentAggregate.stateSchema.safeParse(d).success);
});
