import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type AgentLedger,
  type AllocationPolicy,
  allocate,
  DEFAULT_ALLOCATION_POLICY,
  dominantShare,
  type FrameworkView,
  freeCpusMem,
  freeResources,
  type OfferGrant,
  type RefuseFilter,
  type RoleConfig,
  weightedShare,
} from "./allocation.js";
import { rangesToPorts, splitLowestPorts } from "./ports.js";
import {
  addResources,
  emptyResources,
  fitsIn,
  isEmpty,
  type PortRange,
  type Resources,
} from "./resources.js";

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
const EPS = 1e-6;
const MIN = { cpus: 0.01, mem: 4 };

const pairs = (grants: OfferGrant[]) => grants.map((g) => [g.agentId, g.frameworkId]);

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
    assert.deepEqual(pairs(allocate(agents, [framework("f1"), framework("f2")], filters, NOW)), [
      ["a1", "f2"],
      ["a2", "f1"],
    ]);
  });

  it("gives each agent to the framework with the smallest dominant share, spreading as it goes", () => {
    const agents = ["a4", "a3", "a2", "a1"].map((id) => agent(id, res(4, 4096)));
    const fws = [framework("f2"), framework("f1"), framework("f3", { allocated: res(8, 0) })];
    assert.deepEqual(pairs(allocate(agents, fws, [], NOW)), [
      ["a1", "f1"],
      ["a2", "f2"],
      ["a3", "f1"],
      ["a4", "f2"],
    ]);
  });

  it("computes dominant shares", () => {
    assert.equal(dominantShare(res(1, 4096), { cpus: 10, mem: 8192 }), 0.5);
    assert.equal(dominantShare(res(5, 0), { cpus: 10, mem: 8192 }), 0.5);
    assert.equal(dominantShare(res(5, 5), { cpus: 0, mem: 0 }), 0);
    assert.equal(weightedShare(res(5, 0), { cpus: 10, mem: 8192 }, 2), 0.25);
    assert.equal(weightedShare(res(5, 0), { cpus: 10, mem: 8192 }, -1), 0.5, "a bad weight counts as 1");
    assert.deepEqual(DEFAULT_ALLOCATION_POLICY, { minAllocatable: { cpus: 0.01, mem: 4 } });
  });

  it("does not mutate its inputs", () => {
    const fws = [framework("f1", { role: "r" })];
    const policy: AllocationPolicy = { roles: [{ role: "r", weight: 2, guarantee: { cpus: 1, mem: 64 } }] };
    const before = structuredClone(policy);
    allocate([agent("a1", res(4, 4096))], fws, [], NOW, policy);
    assert.deepEqual(fws[0]?.allocated, emptyResources());
    assert.deepEqual(policy, before);
  });
});

describe("allocate: roles, weights and quota", () => {
  const eight = ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"].map((id) => agent(id, res(4, 4096)));

  it("spreads agents in proportion to framework weights", () => {
    const grants = allocate(eight, [framework("f1"), framework("f3", { weight: 3 })], [], NOW);
    assert.deepEqual(
      grants.map((g) => g.frameworkId),
      ["f1", "f3", "f3", "f3", "f1", "f3", "f3", "f3"],
    );
  });

  it("shares between roles first (by role weight), then between a role's frameworks", () => {
    const fws = [
      framework("x1", { role: "x" }),
      framework("x2", { role: "x" }),
      framework("y1", { role: "y" }),
    ];
    const even = allocate(eight, fws, [], NOW);
    const count = (gs: OfferGrant[], id: string) => gs.filter((g) => g.frameworkId === id).length;
    assert.deepEqual([count(even, "x1"), count(even, "x2"), count(even, "y1")], [2, 2, 4]);
    const weighted = allocate(eight, fws, [], NOW, { roles: [{ role: "x", weight: 3 }] });
    assert.deepEqual([count(weighted, "x1"), count(weighted, "x2"), count(weighted, "y1")], [3, 3, 2]);
  });

  it("serves a role below its guarantee first, capped to what it lacks; the rest goes on", () => {
    const a1 = agent("a1", res(8, 8192, 80, [{ begin: 31000, end: 31009 }]));
    const fws = [framework("fq", { role: "q", allocated: res(1, 1024) }), framework("fn")];
    const policy = { roles: [{ role: "q", guarantee: { cpus: 2, mem: 2048 } }] };
    assert.deepEqual(allocate([a1], fws, [], NOW, policy), [
      // capped: 1/8 of the agent, so 1/8 of its disk and of its ports (lowest first)
      { frameworkId: "fq", agentId: "a1", resources: res(1, 1024, 10, [{ begin: 31000, end: 31001 }]) },
      { frameworkId: "fn", agentId: "a1", resources: res(7, 7168, 70, [{ begin: 31002, end: 31009 }]) },
    ]);
    // Alone, the quota framework gets its guarantee and then the rest: one grant, merged.
    assert.deepEqual(allocate([a1], [fws[0] as FrameworkView], [], NOW, policy), [
      { frameworkId: "fq", agentId: "a1", resources: a1.total },
    ]);
  });

  it("a met dimension of a guarantee follows the lacking one in proportion", () => {
    const agents = [agent("a1", res(4, 65536)), agent("a2", res(4, 65536)), agent("a3", res(4, 65536))];
    const fws = [framework("fq", { role: "q" }), framework("fn", { allocated: res(0, 0) })];
    const grants = allocate(agents, fws, [], NOW, {
      roles: [{ role: "q", guarantee: { cpus: 10, mem: 10240 } }],
    });
    // a1: 4 cpus, 10240 mem (mem met); a2: 4 cpus, and as 60% of the cpus lack, 60% of the mem guarantee.
    assert.deepEqual(
      grants.filter((g) => g.frameworkId === "fq").map((g) => [g.agentId, g.resources.cpus, g.resources.mem]),
      [
        ["a1", 4, 10240],
        ["a2", 4, 6144],
        ["a3", 2, 2048],
      ],
    );
  });

  it("never grants a role beyond its limit, and skips a capped grant below the minimum", () => {
    const two = [agent("a1", res(4, 4096)), agent("a2", res(4, 4096))];
    const fws = [framework("fb", { role: "b" }), framework("fn", { allocated: res(8, 8192) })];
    assert.deepEqual(allocate(two, fws, [], NOW, { roles: [{ role: "b", limit: { cpus: 6, mem: 6144 } }] }), [
      { frameworkId: "fb", agentId: "a1", resources: res(4, 4096) },
      { frameworkId: "fb", agentId: "a2", resources: res(2, 2048) },
      { frameworkId: "fn", agentId: "a2", resources: res(2, 2048) },
    ]);
    const tiny = { roles: [{ role: "b", limit: { cpus: 4.005, mem: 8192 } }] };
    assert.deepEqual(pairs(allocate(two, fws, [], NOW, tiny)), [
      ["a1", "fb"],
      ["a2", "fn"],
    ]);
  });

  it("keeps back from other roles the headroom an unmet guarantee needs", () => {
    const two = [agent("a1", res(4, 4096)), agent("a2", res(4, 4096))];
    const filters = ["a1", "a2"].map((agentId) => ({ frameworkId: "fq", agentId, untilMs: NOW + 1 }));
    const policy = { roles: [{ role: "q", guarantee: { cpus: 6, mem: 1024 } }] };
    const fq = framework("fq", { role: "q" });
    assert.deepEqual(allocate(two, [fq, framework("fn")], filters, NOW, policy), [
      { frameworkId: "fn", agentId: "a1", resources: res(2, 4096) },
    ]);
    // A disconnected quota framework keeps its headroom; a role whose frameworks all suppress does not.
    const away = framework("fq", { role: "q", connected: false });
    assert.equal(allocate(two, [away, framework("fn")], [], NOW, policy).length, 1);
    const quiet = framework("fq", { role: "q", suppressed: true });
    assert.deepEqual(pairs(allocate(two, [quiet, framework("fn")], [], NOW, policy)), [
      ["a1", "fn"],
      ["a2", "fn"],
    ]);
  });

  it("gives each free port to at most one grant, also when grants are capped", () => {
    const a1 = agent("a1", res(10, 10240, 0, [{ begin: 1, end: 7 }]));
    const fws = [
      framework("f1", { role: "r1" }),
      framework("f2", { role: "r2" }),
      framework("f3", { allocated: res(5, 5120) }),
    ];
    const grants = allocate([a1], fws, [], NOW, {
      roles: [
        { role: "r1", limit: { cpus: 3, mem: 3072 } },
        { role: "r2", limit: { cpus: 3, mem: 3072 } },
      ],
    });
    assert.deepEqual(
      grants.map((g) => [g.frameworkId, rangesToPorts(g.resources.ports)]),
      [
        ["f1", [1, 2, 3]],
        ["f2", [4, 5]],
        ["f3", [6, 7]],
      ],
    );
  });
});

// ------------------------------------------------------------------------------ generators

const ROLES = ["*", "web", "batch"];
const AGENT_IDS = ["a1", "a2", "a3", "a4", "a5", "a6"];
const FW_IDS = ["f1", "f2", "f3", "f4"];

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
    agentId: fc.constantFrom(...AGENT_IDS),
    total: arbRes(16),
    portBegin: fc.integer({ min: 1000, max: 1010 }),
    portLen: fc.integer({ min: 0, max: 12 }),
    usedShare: fc.integer({ min: 0, max: 80 }).map((n) => n / 100),
    offeredShare: fc.integer({ min: 0, max: 40 }).map((n) => n / 100),
    connected: fc.boolean(),
  })
  .map(({ agentId, total, portBegin, portLen, usedShare, offeredShare, connected }): AgentLedger => {
    const part = (share: number, ports: PortRange[]): Resources => ({
      cpus: total.cpus * share,
      mem: total.mem * share,
      disk: Math.round(total.disk * share),
      ports,
    });
    const ports = [{ begin: portBegin, end: portBegin + portLen }];
    return agent(
      agentId,
      { ...total, ports },
      {
        used: part(usedShare, [{ begin: portBegin, end: portBegin }]),
        offered: part(offeredShare, [{ begin: portBegin + 2, end: portBegin + 3 }]),
        connected,
      },
    );
  });
const arbFramework = fc.record({
  frameworkId: fc.constantFrom(...FW_IDS),
  connected: fc.boolean(),
  suppressed: fc.boolean(),
  allocated: arbRes(8),
  role: fc.constantFrom(...ROLES),
  weight: fc.option(fc.constantFrom(0.5, 1, 2, 3), { nil: undefined }),
});
const arbFilter = fc.record({
  frameworkId: fc.constantFrom(...FW_IDS),
  agentId: fc.constantFrom(...AGENT_IDS),
  untilMs: fc.integer({ min: NOW - 10, max: NOW + 10 }),
});
const arbQuantity = (max: number) =>
  fc.record({
    cpus: fc.integer({ min: 0, max: max * 10 }).map((n) => n / 10),
    mem: fc.integer({ min: 0, max: max * 1024 }),
  });
const arbRoleConfig: fc.Arbitrary<RoleConfig> = fc.record(
  {
    role: fc.constantFrom(...ROLES),
    weight: fc.constantFrom(0.5, 1, 2, 4),
    guarantee: arbQuantity(24),
    limit: arbQuantity(40),
  },
  { requiredKeys: ["role"] },
);
const arbPolicy: fc.Arbitrary<AllocationPolicy> = fc.record({
  minAllocatable: fc.constant(MIN),
  roles: fc.array(arbRoleConfig, { maxLength: 3 }),
});

/** The first config per role, as allocate reads it. */
function roleConfig(policy: AllocationPolicy, role: string): RoleConfig | undefined {
  return policy.roles?.find((r) => r.role === role);
}

/** Checks that the grants on each agent fit its free resources together and share no port. */
function assertGrantsFitAgents(agents: AgentLedger[], grants: OfferGrant[]): void {
  for (const a of agents) {
    const mine = grants.filter((g) => g.agentId === a.agentId);
    if (mine.length === 0) continue;
    const free = freeResources(a);
    const sum = mine.reduce((s, g) => addResources(s, g.resources), emptyResources());
    assert.ok(fitsIn(sum, free), `grants on ${a.agentId} exceed its free resources`);
    const ports = mine.flatMap((g) => rangesToPorts(g.resources.ports));
    assert.equal(new Set(ports).size, ports.length, `a port of ${a.agentId} is in two grants`);
  }
}

describe("allocate properties", () => {
  it("(c) leaving out the agents with nothing to offer, given the cluster's capacity, grants the same", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(arbAgent, { selector: (a) => a.agentId }),
        fc.uniqueArray(arbFramework, { selector: (f) => f.frameworkId }),
        fc.array(arbFilter, { maxLength: 8 }),
        arbPolicy,
        (agents, fws, filters, policy) => {
          const min = policy.minAllocatable ?? MIN;
          const capacity = { cpus: 0, mem: 0 };
          for (const a of agents.filter((x) => x.connected)) {
            capacity.cpus += a.total.cpus;
            capacity.mem += a.total.mem;
          }
          // What the master leaves out: connected agents whose free cpus or mem is below the minimum.
          const unlisted = { cpus: 0, mem: 0 };
          const some = agents.filter((a) => {
            const free = freeCpusMem(a);
            if (!a.connected || !isEmpty({ ...free, disk: 0, ports: [] }, min)) return true;
            // Summed in thousandths, as the master does.
            unlisted.cpus = (Math.round(unlisted.cpus * 1000) + Math.round(free.cpus * 1000)) / 1000;
            unlisted.mem = (Math.round(unlisted.mem * 1000) + Math.round(free.mem * 1000)) / 1000;
            return false;
          });
          assert.deepEqual(
            allocate(some, fws, filters, NOW, { ...policy, capacity, unlisted }),
            allocate(agents, fws, filters, NOW, policy),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it("(b) never grants more than an agent's free resources or a role's limit, nor to whom it must not", () => {
    let granted = 0;
    let capped = 0;
    fc.assert(
      fc.property(
        fc.uniqueArray(arbAgent, { selector: (a) => a.agentId }),
        fc.uniqueArray(arbFramework, { selector: (f) => f.frameworkId }),
        fc.array(arbFilter, { maxLength: 8 }),
        arbPolicy,
        (agents, fws, filters, policy) => {
          const grants = allocate(agents, fws, filters, NOW, policy);
          granted += grants.length;
          const seen = new Set<string>();
          for (const g of grants) {
            const a = agents.find((x) => x.agentId === g.agentId);
            const f = fws.find((x) => x.frameworkId === g.frameworkId);
            assert.ok(a !== undefined && f !== undefined);
            assert.ok(a.connected && f.connected && !f.suppressed);
            assert.ok(
              g.resources.cpus >= MIN.cpus - EPS && g.resources.mem >= MIN.mem - EPS,
              "below minimum",
            );
            assert.ok(
              !filters.some(
                (x) => x.frameworkId === g.frameworkId && x.agentId === g.agentId && x.untilMs > NOW,
              ),
              "granted to a filtered framework",
            );
            const key = `${g.frameworkId}@${g.agentId}`;
            assert.ok(!seen.has(key), "two grants for one framework on one agent");
            seen.add(key);
            if (!fitsIn(freeResources(a), g.resources)) capped++;
          }
          assertGrantsFitAgents(agents, grants);
          for (const role of ROLES) {
            const limit = roleConfig(policy, role)?.limit;
            if (limit === undefined) continue;
            const members = fws.filter((f) => (f.role ?? "*") === role);
            const before = members.reduce((s, f) => addResources(s, f.allocated), emptyResources());
            const got = grants
              .filter((g) => members.some((f) => f.frameworkId === g.frameworkId))
              .reduce((s, g) => addResources(s, g.resources), emptyResources());
            assert.ok(
              got.cpus <= Math.max(0, limit.cpus - before.cpus) + EPS,
              `role ${role} beyond its cpus limit`,
            );
            assert.ok(
              got.mem <= Math.max(0, limit.mem - before.mem) + EPS,
              `role ${role} beyond its mem limit`,
            );
          }
        },
      ),
      // A fixed seed: the coverage checks below count what the generator produced, which varies by seed.
      { numRuns: 400, seed: 20261129 },
    );
    assert.ok(granted > 200, `the generator should produce grants (got ${granted})`);
    assert.ok(capped > 20, `the generator should produce capped grants (got ${capped})`);
  });

  it("(a) over many cycles of an offer book, no resource is in two outstanding offers, nor beyond capacity", () => {
    interface Held {
      frameworkId: string;
      agentId: string;
      resources: Resources;
    }
    let offersMade = 0;
    fc.assert(
      fc.property(
        fc.uniqueArray(arbAgent, { selector: (a) => a.agentId, minLength: 1 }),
        fc.uniqueArray(arbFramework, { selector: (f) => f.frameworkId, minLength: 1 }),
        arbPolicy,
        fc.array(fc.integer({ min: 0, max: 99 }), { minLength: 40, maxLength: 200 }),
        (agentSpecs, fws, policy, dice) => {
          let roll = 0;
          const die = () => dice[roll++ % dice.length] ?? 0;
          const agents = agentSpecs.map((a) => ({ ...a, used: emptyResources(), offered: emptyResources() }));
          let offers: Held[] = [];
          let tasks: Held[] = [];
          let filters: RefuseFilter[] = [];
          let now = NOW;
          const sum = (hs: Held[]) => hs.reduce((s, h) => addResources(s, h.resources), emptyResources());
          for (let cycle = 0; cycle < 12; cycle++) {
            const ledgers = agents.map((a) => ({
              ...a,
              connected: a.connected || die() < 30,
              used: sum(tasks.filter((t) => t.agentId === a.agentId)),
              offered: sum(offers.filter((o) => o.agentId === a.agentId)),
            }));
            const views = fws.map((f) => ({
              ...f,
              connected: die() < 90,
              suppressed: die() < 10,
              allocated: sum([...tasks, ...offers].filter((h) => h.frameworkId === f.frameworkId)),
            }));
            const grants = allocate(ledgers, views, filters, now, policy);
            offersMade += grants.length;
            offers.push(...grants);
            for (const a of agents) {
              const held = [...tasks, ...offers].filter((h) => h.agentId === a.agentId);
              const total = sum(held);
              assert.ok(total.cpus <= a.total.cpus + EPS, `cpus of ${a.agentId} lent twice`);
              assert.ok(total.mem <= a.total.mem + EPS, `mem of ${a.agentId} lent twice`);
              assert.ok(total.disk <= a.total.disk + EPS, `disk of ${a.agentId} lent twice`);
              const ports = held.flatMap((h) => rangesToPorts(h.resources.ports));
              assert.equal(new Set(ports).size, ports.length, `a port of ${a.agentId} lent twice`);
              assert.ok(
                fitsIn({ ...emptyResources(), ports: total.ports }, a.total),
                "a port not on the agent",
              );
            }
            // The frameworks answer: accept part of an offer, decline (maybe with a filter), or leave it
            // outstanding; the master rescinds some; some tasks end.
            const still: Held[] = [];
            for (const o of offers) {
              const d = die();
              if (d < 35) {
                const part = (die() + 1) / 100;
                const ports = splitLowestPorts(o.resources.ports, die() % 3).taken;
                const r = o.resources;
                tasks.push({ ...o, resources: res(r.cpus * part, r.mem * part, r.disk * part, ports) });
              } else if (d < 60) {
                if (die() < 50)
                  filters.push({ frameworkId: o.frameworkId, agentId: o.agentId, untilMs: now + die() * 10 });
              } else if (d < 70) {
                // rescinded
              } else still.push(o);
            }
            offers = still;
            tasks = tasks.filter(() => die() >= 15);
            filters = filters.filter((f) => f.untilMs > now);
            now += die() * 5;
          }
        },
      ),
      { numRuns: 150 },
    );
    assert.ok(offersMade > 1000, `the book should see many offers (got ${offersMade})`);
  });

  it("(d) honours refuse filters until they expire or the framework revives", () => {
    let blocked = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.integer({ min: 0, max: 99 }), { minLength: 30, maxLength: 120 }),
        (nAgents, nFws, dice) => {
          let roll = 0;
          const die = () => dice[roll++ % dice.length] ?? 0;
          const agents = AGENT_IDS.slice(0, nAgents).map((id) => agent(id, res(4, 4096)));
          const fws = FW_IDS.slice(0, nFws).map((id) => framework(id));
          let filters: RefuseFilter[] = [];
          let now = NOW;
          for (let step = 0; step < 25; step++) {
            const grants = allocate(agents, fws, filters, now);
            for (const g of grants) {
              const active = filters.find(
                (f) => f.frameworkId === g.frameworkId && f.agentId === g.agentId && f.untilMs > now,
              );
              assert.equal(active, undefined, `${g.frameworkId} offered ${g.agentId} while filtered`);
            }
            blocked += filters.filter((f) => f.untilMs > now).length;
            // Every offer is declined, most with a filter (untilMs may land exactly on a later now).
            for (const g of grants)
              if (die() < 70)
                filters.push({ frameworkId: g.frameworkId, agentId: g.agentId, untilMs: now + die() });
            if (die() < 20) {
              const revived = fws[die() % fws.length]?.frameworkId;
              filters = filters.filter((f) => f.frameworkId !== revived);
            }
            now += die() % 3 === 0 ? 0 : die();
          }
        },
      ),
      { numRuns: 300 },
    );
    assert.ok(blocked > 1000, `filters should be active often (got ${blocked})`);
  });

  /**
   * Progressive filling on one agent: each cycle, every framework that gets a grant launches one task
   * from it if the task fits and declines the rest without a filter; a framework whose task no longer
   * fits has run out (nothing ever frees up) and suppresses. One agent, because a grant is a whole
   * agent's free resources: with many agents, "one task per grant" gives every framework about the
   * same number of tasks per cycle whatever its share, and that is not what DRF is about.
   * Returns the weighted shares when each framework ran out, and at the end.
   */
  function progressiveFilling(
    total: Resources,
    tasks: { cpus: number; mem: number }[],
    weightOf: (i: number) => number,
    roleOf: (i: number) => string,
    policy: AllocationPolicy,
  ): { runOut: { who: number; shares: number[] }[]; final: number[]; taskShare: number; launched: number } {
    const capacity = { cpus: total.cpus, mem: total.mem };
    const alloc = tasks.map(() => emptyResources());
    const out = tasks.map(() => false);
    const weighted = () => alloc.map((a, i) => dominantShare(a, capacity) / weightOf(i));
    const runOut: { who: number; shares: number[] }[] = [];
    let used = emptyResources();
    let launched = 0;
    for (let cycle = 0; cycle < 10_000 && out.includes(false); cycle++) {
      const views = tasks.map((_, i) =>
        framework(`f${i}`, {
          allocated: alloc[i] as Resources,
          suppressed: out[i] as boolean,
          ...(roleOf(i) === "*" ? { weight: weightOf(i) } : { role: roleOf(i) }),
        }),
      );
      const grants = allocate([agent("a1", total, { used })], views, [], NOW, policy);
      if (grants.length === 0) {
        // The agent is full: nothing fits any more for anyone still running.
        for (const [i, o] of out.entries()) if (!o) runOut.push({ who: i, shares: weighted() });
        break;
      }
      for (const g of grants) {
        const i = Number(g.frameworkId.slice(1));
        const t = tasks[i];
        if (t === undefined) continue;
        const need = res(t.cpus, t.mem);
        if (fitsIn(need, g.resources)) {
          alloc[i] = addResources(alloc[i] as Resources, need);
          used = addResources(used, need);
          launched++;
        } else {
          out[i] = true;
          runOut.push({ who: i, shares: weighted() });
        }
      }
    }
    const taskShare = Math.max(...tasks.map((t, i) => dominantShare(t, capacity) / weightOf(i)));
    return { runOut, final: weighted(), taskShare, launched };
  }

  /**
   * When a framework runs out, its (weighted) dominant share is within one task's share of every
   * framework still running: DRF offered it the agent because it had the lowest share, and none of
   * the others was served while more than one task above it.
   */
  function assertFairAtRunOut(r: ReturnType<typeof progressiveFilling>, n: number): void {
    assert.equal(r.runOut.length, n, "every framework runs out in the end");
    const gone = new Set<number>();
    for (const { who, shares } of r.runOut) {
      const mine = shares[who] ?? 0;
      for (const [i, s] of shares.entries()) {
        if (gone.has(i) || i === who) continue;
        assert.ok(Math.abs(s - mine) <= r.taskShare + EPS, `f${who} ran out at ${mine}, f${i} is at ${s}`);
      }
      gone.add(who);
    }
  }

  const arbTask = fc.record({
    cpus: fc.integer({ min: 1, max: 40 }).map((n) => n / 10),
    mem: fc.integer({ min: 64, max: 4096 }),
  });
  const arbTotal = fc
    .record({
      cpus: fc.integer({ min: 4, max: 64 }),
      mem: fc.integer({ min: 4, max: 64 }).map((g) => g * 1024),
    })
    .map(({ cpus, mem }) => res(cpus, mem));

  it("(c) DRF: frameworks of equal weight end within one task's dominant share of each other", () => {
    let launched = 0;
    fc.assert(
      fc.property(
        arbTotal,
        fc.array(arbTask, { minLength: 2, maxLength: 4 }),
        fc.boolean(),
        (total, ts, same) => {
          // With one task size, all run out together: then the final shares too are within one task.
          const tasks = same ? ts.map(() => ts[0] as { cpus: number; mem: number }) : ts;
          const r = progressiveFilling(
            total,
            tasks,
            () => 1,
            () => "*",
            {},
          );
          launched += r.launched;
          assertFairAtRunOut(r, tasks.length);
          if (same)
            for (const a of r.final)
              for (const b of r.final)
                assert.ok(Math.abs(a - b) <= r.taskShare + EPS, `final shares ${r.final}`);
        },
      ),
      { numRuns: 200 },
    );
    // Not vacuous: over 2 tasks a run on average (about 10 is typical; the sum varies with the seed,
    // 1,869 was seen once, so the bound is far below what a working allocator gives).
    assert.ok(launched > 400, `frameworks should launch many tasks (got ${launched})`);
  });

  it("(c) weighted DRF: with weights 1:2, weighted shares end within one task's share of each other", () => {
    fc.assert(
      fc.property(arbTotal, arbTask, arbTask, fc.boolean(), (total, t0, t1, byRole) => {
        // Either two frameworks weighted 1:2 in one role, or two roles weighted 1:2 with one framework each.
        const weightOf = (i: number) => (i === 0 ? 1 : 2);
        const r = byRole
          ? progressiveFilling(total, [t0, t1], weightOf, (i) => `r${i}`, {
              roles: [
                { role: "r0", weight: 1 },
                { role: "r1", weight: 2 },
              ],
            })
          : progressiveFilling(total, [t0, t1], weightOf, () => "*", {});
        assertFairAtRunOut(r, 2);
        const [a = 0, b = 0] = r.final;
        // The weight-2 framework holds about twice as much, unless it ran out of room first.
        if (r.runOut[0]?.who === 0) assert.ok(b >= a - r.taskShare - EPS);
      }),
      { numRuns: 200 },
    );
  });

  it("(c) why not the final shares: a framework that is not blocked may go on past one that is", () => {
    // f1 and f2 need 5 and 3.5 cpus and run out when cpus do; f0 needs little cpu and goes on alone,
    // to 0.55 above f2 when the largest task share is 0.5: DRF is Pareto efficient, not equal at the end.
    const r = progressiveFilling(
      res(10, 10240),
      [
        { cpus: 0.1, mem: 1024 },
        { cpus: 5, mem: 10 },
        { cpus: 3.5, mem: 10 },
      ],
      () => 1,
      () => "*",
      {},
    );
    assertFairAtRunOut(r, 3);
    assert.deepEqual(
      r.final.map((s) => Math.round(s * 100) / 100),
      [0.9, 0.5, 0.35],
    );
  });

  it("(e) regression: a guarantee's remainder below the minimum in one dimension is still served in the other", () => {
    // fast-check seed 770713711: 4.005 cpus / 1029.12 MiB guaranteed; one agent of 4 cpus / 1024 MiB
    // left 0.005 cpus (below the minimum) and 5.12 MiB unmet, and the quota role got no more.
    const agents = [agent("a0", res(4, 1024)), agent("a1", res(1, 1024)), agent("a2", res(4, 1024))];
    const guarantee = { cpus: 4.005, mem: 1029.12 };
    const grants = allocate(
      agents,
      [framework("q1", { role: "quota" }), framework("n0", { role: "*" })],
      [],
      NOW,
      {
        roles: [{ role: "quota", guarantee }],
      },
    );
    const quota = grants
      .filter((g) => g.frameworkId === "q1")
      .reduce((t, g) => addResources(t, g.resources), emptyResources());
    assert.ok(quota.cpus >= guarantee.cpus - MIN.cpus - EPS, `quota got ${quota.cpus} cpus`);
    assert.ok(quota.mem >= guarantee.mem - MIN.mem - EPS, `quota got ${quota.mem} MiB`);
  });

  it("(e) a role gets its guarantee before other roles get more than the surplus", () => {
    let guaranteed = 0;
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            cpus: fc.integer({ min: 1, max: 16 }),
            mem: fc.integer({ min: 1, max: 32 }).map((g) => g * 1024),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        fc.array(fc.integer({ min: 0, max: 100 }), { minLength: 2, maxLength: 2 }),
        fc.array(fc.record({ role: fc.constantFrom("*", "batch"), held: fc.integer({ min: 0, max: 20 }) }), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.boolean(),
        fc.constantFrom("serves", "filtered", "away"),
        (sizes, [gc = 0, gm = 0], others, overcommit, quotaFramework) => {
          const agents = sizes.map((s, i) => agent(`a${i}`, res(s.cpus, s.mem)));
          const total = sizes.reduce((t, s) => ({ cpus: t.cpus + s.cpus, mem: t.mem + s.mem }), {
            cpus: 0,
            mem: 0,
          });
          // A guarantee up to half the cluster (or up to twice the cluster when `overcommit`).
          const scale = overcommit ? 2 : 0.5;
          const guarantee = { cpus: (total.cpus * scale * gc) / 100, mem: (total.mem * scale * gm) / 100 };
          // The quota framework takes offers, or has declined every other agent, or is away: its
          // headroom is kept all the same.
          const filters =
            quotaFramework === "filtered"
              ? agents
                  .filter((_, i) => i % 2 === 1)
                  .map((a) => ({ frameworkId: "q1", agentId: a.agentId, untilMs: NOW + 1 }))
              : [];
          const fws = [
            framework("q1", { role: "quota", connected: quotaFramework !== "away" }),
            ...others.map((o, i) =>
              framework(`n${i}`, { role: o.role, allocated: res(o.held / 10, o.held * 10) }),
            ),
          ];
          const grants = allocate(agents, fws, filters, NOW, { roles: [{ role: "quota", guarantee }] });
          const got = (ids: (id: string) => boolean) =>
            grants
              .filter((g) => ids(g.frameworkId))
              .reduce((s, g) => addResources(s, g.resources), emptyResources());
          const quota = got((id) => id === "q1");
          const rest = got((id) => id !== "q1");
          if (!overcommit && quotaFramework === "serves") {
            guaranteed++;
            assert.ok(
              quota.cpus >= guarantee.cpus - MIN.cpus - EPS,
              `quota got ${quota.cpus} of ${guarantee.cpus} cpus`,
            );
            assert.ok(
              quota.mem >= guarantee.mem - MIN.mem - EPS,
              `quota got ${quota.mem} of ${guarantee.mem} mem`,
            );
          }
          // Headroom: the other roles never take what the guarantee needs, only the surplus beyond it.
          assert.ok(
            rest.cpus <= Math.max(0, total.cpus - guarantee.cpus) + EPS,
            "others took quota headroom (cpus)",
          );
          assert.ok(
            rest.mem <= Math.max(0, total.mem - guarantee.mem) + EPS,
            "others took quota headroom (mem)",
          );
        },
      ),
      { numRuns: 400 },
    );
    assert.ok(guaranteed > 20, `the quota role should often be served (got ${guaranteed})`);
  });

  it("is deterministic and independent of the order of agents and frameworks", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(arbAgent, { selector: (a) => a.agentId }),
        fc.uniqueArray(arbFramework, { selector: (f) => f.frameworkId }),
        fc.array(arbFilter, { maxLength: 8 }),
        arbPolicy,
        (agents, fws, filters, policy) => {
          const a = allocate(agents, fws, filters, NOW, policy);
          assert.deepEqual(allocate([...agents].reverse(), [...fws].reverse(), filters, NOW, policy), a);
        },
      ),
      { numRuns: 200 },
    );
  });
});
