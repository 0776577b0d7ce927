import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type AgentLedger,
  allocate,
  DEFAULT_ALLOCATION_POLICY,
  dominantShare,
  type FrameworkView,
  freeResources,
  type RefuseFilter,
} from "./allocation.js";
import { emptyResources, fitsIn, type PortRange, type Resources } from "./resources.js";

function res(cpus: number, mem: number, disk = 0, ports: PortRange[] = []): Resources {
  return { cpus, mem, disk, ports };
}

function agent(agentId: string, total: Resources, over: Partial<AgentLedger> = {}): AgentLedger {
  return {
    agentId,
    hostname: `${agentId}.local`,
    total,
    used: emptyResources(),
    offered: emptyResources(),
    attributes: {},
    connected: true,
    ...over,
  };
}

function framework(frameworkId: string, over: Partial<FrameworkView> = {}): FrameworkView {
  return { frameworkId, connected: true, suppressed: false, allocated: emptyResources(), ...over };
}

const NOW = 1_000_000;

describe("allocate", () => {
  it("grants all of an agent's free resources", () => {
    const a = agent("a1", res(4, 8192, 100, [{ begin: 31000, end: 32000 }]), {
      used: res(1, 1024, 10, [{ begin: 31000, end: 31000 }]),
      offered: res(1, 1024),
    });
    assert.deepEqual(allocate([a], [framework("f1")], [], NOW), [
      { frameworkId: "f1", agentId: "a1", resources: res(2, 6144, 90, [{ begin: 31001, end: 32000 }]) },
    ]);
  });

  it("skips disconnected agents and agents below the minimum allocatable size", () => {
    const agents = [
      agent("a1", res(4, 4096), { connected: false }),
      agent("a2", res(4, 4096), { used: res(3.995, 0) }),
      agent("a3", res(4, 4096), { used: res(0, 4093) }),
      agent("a4", res(4, 4096), { used: res(3.99, 4092) }),
    ];
    const grants = allocate(agents, [framework("f1")], [], NOW);
    assert.deepEqual(
      grants.map((g) => g.agentId),
      ["a4"],
    );
    assert.deepEqual(
      allocate(agents, [framework("f1")], [], NOW, { minAllocatable: { cpus: 0.001, mem: 1 } }).length,
      3,
    );
  });

  it("skips disconnected and suppressed frameworks", () => {
    const fws = [framework("f1", { connected: false }), framework("f2", { suppressed: true })];
    assert.deepEqual(allocate([agent("a1", res(4, 4096))], fws, [], NOW), []);
  });

  it("honours refuse filters until they expire", () => {
    const agents = [agent("a1", res(4, 4096)), agent("a2", res(4, 4096))];
    const filters: RefuseFilter[] = [{ frameworkId: "f1", agentId: "a1", untilMs: NOW + 1 }];
    assert.deepEqual(
      allocate(agents, [framework("f1")], filters, NOW).map((g) => g.agentId),
      ["a2"],
    );
    assert.deepEqual(
      allocate(agents, [framework("f1")], filters, NOW + 1).map((g) => g.agentId),
      ["a1", "a2"],
    );
    const two = allocate(agents, [framework("f1"), framework("f2")], filters, NOW);
    assert.deepEqual(
      two.map((g) => [g.agentId, g.frameworkId]),
      [
        ["a1", "f2"],
        ["a2", "f1"],
      ],
    );
  });

  it("gives each agent to the framework with the smallest dominant share, spreading as it goes", () => {
    const agents = ["a4", "a3", "a2", "a1"].map((id) => agent(id, res(4, 4096)));
    const fws = [framework("f2"), framework("f1"), framework("f3", { allocated: res(8, 0) })];
    const grants = allocate(agents, fws, [], NOW);
    assert.deepEqual(
      grants.map((g) => [g.agentId, g.frameworkId]),
      [
        ["a1", "f1"],
        ["a2", "f2"],
        ["a3", "f1"],
        ["a4", "f2"],
      ],
    );
  });

  it("computes dominant shares", () => {
    assert.equal(dominantShare(res(1, 4096), { cpus: 10, mem: 8192 }), 0.5);
    assert.equal(dominantShare(res(5, 0), { cpus: 10, mem: 8192 }), 0.5);
    assert.equal(dominantShare(res(5, 5), { cpus: 0, mem: 0 }), 0);
    assert.deepEqual(DEFAULT_ALLOCATION_POLICY, { minAllocatable: { cpus: 0.01, mem: 4 } });
  });

  it("does not mutate its inputs", () => {
    const fws = [framework("f1")];
    allocate([agent("a1", res(4, 4096))], fws, [], NOW);
    assert.deepEqual(fws[0]?.allocated, emptyResources());
  });
});

const arbRes = (max: number) =>
  fc.record({
    cpus: fc.integer({ min: 0, max: max * 1000 }).map((m) => m / 1000),
    mem: fc.integer({ min: 0, max: max * 1024 * 10 }).map((m) => m / 10),
    disk: fc.integer({ min: 0, max: 1000 }),
    ports: fc.constant<PortRange[]>([]),
  });
/** used and offered as fractions of total, so that many agents have something free (and some overcommit). */
const arbAgent = fc
  .record({
    agentId: fc.constantFrom("a1", "a2", "a3", "a4", "a5"),
    total: arbRes(16),
    usedShare: fc.integer({ min: 0, max: 80 }).map((n) => n / 100),
    offeredShare: fc.integer({ min: 0, max: 40 }).map((n) => n / 100),
    connected: fc.boolean(),
  })
  .map(({ agentId, total, usedShare, offeredShare, connected }): AgentLedger => {
    const part = (share: number): Resources => ({
      cpus: total.cpus * share,
      mem: total.mem * share,
      disk: Math.round(total.disk * share),
      ports: [],
    });
    return agent(agentId, total, { used: part(usedShare), offered: part(offeredShare), connected });
  });
const arbFramework = fc.record({
  frameworkId: fc.constantFrom("f1", "f2", "f3"),
  connected: fc.boolean(),
  suppressed: fc.boolean(),
  allocated: arbRes(8),
});
const arbFilter = fc.record({
  frameworkId: fc.constantFrom("f1", "f2", "f3"),
  agentId: fc.constantFrom("a1", "a2", "a3", "a4", "a5"),
  untilMs: fc.integer({ min: NOW - 10, max: NOW + 10 }),
});

describe("allocate properties", () => {
  it("never grants more than an agent's free resources, nor to a filtered or unavailable framework", () => {
    let granted = 0;
    fc.assert(
      fc.property(
        fc.uniqueArray(arbAgent, { selector: (a) => a.agentId }),
        fc.uniqueArray(arbFramework, { selector: (f) => f.frameworkId }),
        fc.array(arbFilter, { maxLength: 8 }),
        (agents, fws, filters) => {
          const grants = allocate(agents, fws, filters, NOW);
          granted += grants.length;
          const seen = new Set<string>();
          for (const g of grants) {
            const a = agents.find((x) => x.agentId === g.agentId);
            const f = fws.find((x) => x.frameworkId === g.frameworkId);
            assert.ok(a !== undefined && f !== undefined);
            assert.ok(a.connected && f.connected && !f.suppressed);
            assert.ok(fitsIn(g.resources, freeResources(a)), "granted more than free");
            const total = a.total;
            assert.ok(
              g.resources.cpus <= total.cpus - a.used.cpus - a.offered.cpus + 1e-9 || g.resources.cpus === 0,
            );
            assert.ok(
              !filters.some(
                (x) => x.frameworkId === g.frameworkId && x.agentId === g.agentId && x.untilMs > NOW,
              ),
              "granted to a filtered framework",
            );
            assert.ok(!seen.has(g.agentId), "agent granted twice");
            seen.add(g.agentId);
          }
        },
      ),
      { numRuns: 300 },
    );
    assert.ok(granted > 100, `the generator should produce grants (got ${granted})`);
  });
});
