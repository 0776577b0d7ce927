import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { dependencyGraph, dependencyLevels, findCycle, flattenGroup, parseGroupJson } from "./order.js";

describe("flattenGroup", () => {
  it("resolves relative ids against the group and inherits group dependencies", () => {
    const g = flattenGroup({
      id: "/shop",
      dependencies: ["/infra"],
      apps: [
        { id: "db", cmd: "x" },
        { id: "web", cmd: "x", dependencies: ["db"] },
      ],
      groups: [{ id: "jobs", apps: [{ id: "/shop/jobs/mail", dependencies: ["../web"] }] }],
    });
    assert.ok(g.ok);
    assert.equal(g.value.id, "/shop");
    assert.deepEqual(g.value.groups, ["/shop", "/shop/jobs"]);
    assert.deepEqual(
      g.value.apps.map((a) => [a.id, a.dependencies]),
      [
        ["/shop/db", ["/infra"]],
        ["/shop/web", ["/shop/db", "/infra"]],
        ["/shop/jobs/mail", ["/shop/web", "/infra"]],
      ],
    );
    assert.equal(g.value.apps[1]?.definition.id, "/shop/web");
  });

  it("refuses group roles by name (enforceRole: true), at any depth; false is the default", () => {
    const g = flattenGroup({ id: "/a", enforceRole: false, groups: [{ id: "b", enforceRole: true }] });
    assert.ok(!g.ok);
    assert.deepEqual(
      g.issues.map((i) => i.path),
      ["groups[0].enforceRole"],
    );
    assert.match(g.issues[0]?.message ?? "", /not supported: Drover has no group roles/);
  });

  it("names the field of every problem", () => {
    const g = flattenGroup({
      id: "/shop",
      apps: [{ id: "/other/db" }, { id: "Bad_Id" }, {}],
      groups: [{ id: "sub", apps: [{ id: "a", dependencies: ["x_y"] }] }],
    });
    assert.ok(!g.ok);
    const paths = g.issues.map((i) => i.path);
    assert.deepEqual(paths, ["apps[0].id", "apps[1].id", "apps[2].id", "groups[0].apps[0].dependencies[0]"]);
    assert.match(g.issues[0]?.message ?? "", /identifier \/other\/db is not child of \/shop/);
  });

  it("refuses unknown fields and pods with their path", () => {
    const g = parseGroupJson('{"id":"/g","groups":[{"id":"s","pods":[{}]}],"nope":1}');
    assert.ok(!g.ok);
    assert.ok(g.issues.some((i) => i.path === "groups[0].pods"));
    assert.ok(g.issues.some((i) => i.path === "" || i.path.includes("nope")));
  });

  it("refuses the same app twice", () => {
    const g = flattenGroup({ id: "/g", apps: [{ id: "a" }, { id: "/g/a" }] });
    assert.ok(!g.ok);
    assert.equal(g.issues[0]?.path, "apps[1].id");
  });
});

describe("dependency order", () => {
  it("expands a group dependency to every app below it", () => {
    const g = dependencyGraph([
      { id: "/db/a", dependencies: [] },
      { id: "/db/b", dependencies: [] },
      { id: "/web", dependencies: ["/db", "/nothing"] },
    ]);
    assert.deepEqual(g.get("/web"), ["/db/a", "/db/b"]);
  });

  it("levels: dependencies first", () => {
    const r = dependencyLevels([
      { id: "/shop/web", dependencies: ["/shop/db"] },
      { id: "/shop/db", dependencies: [] },
      { id: "/shop/cache", dependencies: [] },
      { id: "/shop/lb", dependencies: ["/shop/web"] },
    ]);
    assert.ok(r.ok);
    assert.deepEqual(r.levels, [["/shop/cache", "/shop/db"], ["/shop/web"], ["/shop/lb"]]);
  });

  it("refuses a cycle naming it", () => {
    const r = dependencyLevels([
      { id: "/a", dependencies: ["/b"] },
      { id: "/b", dependencies: ["/a"] },
    ]);
    assert.ok(!r.ok);
    assert.equal(`${r.issues[0]?.path}: ${r.issues[0]?.message}`, "dependencies: cycle /a → /b → /a");
    const self = dependencyLevels([{ id: "/a", dependencies: ["/a"] }]);
    assert.ok(!self.ok);
    assert.deepEqual(self.cycle, ["/a", "/a"]);
  });

  const ids = ["/a", "/b", "/c", "/d", "/e", "/f", "/g/h", "/g/i"];
  const graphs = fc.array(fc.tuple(fc.constantFrom(...ids), fc.constantFrom(...ids, "/g")), {
    maxLength: 20,
  });
  const nodes = (edges: [string, string][]) =>
    ids.map((id) => ({ id, dependencies: edges.filter(([f]) => f === id).map(([, t]) => t) }));

  it("property: the order respects every edge, or there is a cycle", () => {
    fc.assert(
      fc.property(graphs, (edges) => {
        const apps = nodes(edges);
        const r = dependencyLevels(apps);
        const graph = dependencyGraph(apps);
        if (!r.ok) return;
        const at = new Map<string, number>();
        r.levels.forEach((l, i) => {
          for (const id of l) at.set(id, i);
        });
        assert.equal(at.size, ids.length);
        for (const [from, tos] of graph)
          for (const to of tos) assert.ok((at.get(to) ?? -1) < (at.get(from) ?? -1), `${from} → ${to}`);
      }),
      { numRuns: 500, seed: 9 },
    );
  });

  it("property: cycles are always detected, and a reported cycle is real", () => {
    fc.assert(
      fc.property(graphs, (edges) => {
        const graph = dependencyGraph(nodes(edges));
        // Reference: a graph is acyclic iff repeatedly removing nodes without out-edges empties it.
        const left = new Map([...graph].map(([k, v]) => [k, new Set(v)]));
        let changed = true;
        while (changed) {
          changed = false;
          for (const [k, v] of left)
            if ([...v].every((d) => !left.has(d))) {
              left.delete(k);
              changed = true;
            }
        }
        const cycle = findCycle(graph);
        assert.equal(cycle !== undefined, left.size > 0);
        if (cycle) {
          assert.equal(cycle[0], cycle[cycle.length - 1]);
          for (let i = 0; i + 1 < cycle.length; i++)
            assert.ok(graph.get(cycle[i] ?? "")?.includes(cycle[i + 1] ?? ""), "a real edge");
        }
      }),
      { numRuns: 500, seed: 9 },
    );
  });
});
