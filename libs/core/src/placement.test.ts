import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { attributeText, type Constraint, formatScalar, parseConstraints } from "./constraints.js";
import {
  type DeclinedFunnel,
  explainAgents,
  formatReasons,
  type InstanceDemand,
  type OfferView,
  type PlacementResult,
  placeInstances,
  type UnplacedReason,
} from "./placement.js";
import { rangesToPorts } from "./ports.js";
import { addResources, emptyResources, fitsIn, type PortRange, type Resources } from "./resources.js";

const noDeclines: DeclinedFunnel = { constraint: 0, cpus: 0, mem: 0, disk: 0, ports: 0 };

function res(cpus: number, mem: number, disk = 0, ports: PortRange[] = []): Resources {
  return { cpus, mem, disk, ports };
}

function offer(offerId: string, agentId: string, resources: Resources): OfferView {
  return { offerId, agentId, hostname: `${agentId}.local`, resources, attributes: {} };
}

function demand(
  appId: string,
  count: number,
  resources: Resources,
  ports: Partial<InstanceDemand> = {},
): InstanceDemand {
  return { appId, count, resources, ...ports };
}

const none = new Map<string, Map<string, number>>();

function perAgent(result: PlacementResult, appId: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of result.placements.filter((x) => x.appId === appId))
    out[p.agentId] = (out[p.agentId] ?? 0) + 1;
  return out;
}

describe("placeInstances", () => {
  it("spreads an app's instances across agents", () => {
    const offers = [
      offer("o1", "a1", res(4, 4096)),
      offer("o2", "a2", res(4, 4096)),
      offer("o3", "a3", res(4, 4096)),
    ];
    const r = placeInstances(offers, [demand("web", 6, res(0.5, 128))], none);
    assert.deepEqual(perAgent(r, "web"), { a1: 2, a2: 2, a3: 2 });
    assert.deepEqual(r.unplaced, []);
    assert.deepEqual(r.unusedOfferIds, []);
  });

  it("takes existing instances into account", () => {
    const offers = [offer("o1", "a1", res(4, 4096)), offer("o2", "a2", res(4, 4096))];
    const existing = new Map([["web", new Map([["a1", 3]])]]);
    const r = placeInstances(offers, [demand("web", 3, res(0.5, 128))], existing);
    assert.deepEqual(perAgent(r, "web"), { a2: 3 });
    assert.deepEqual(r.unusedOfferIds, ["o1"]);
    assert.deepEqual(existing.get("web")?.get("a1"), 3);
    assert.equal(existing.size, 1);
  });

  it("breaks ties by most free mem, then agentId", () => {
    const offers = [
      offer("o1", "b", res(4, 1024)),
      offer("o2", "c", res(4, 2048)),
      offer("o3", "a", res(4, 2048)),
    ];
    const r = placeInstances(offers, [demand("web", 1, res(1, 64))], none);
    assert.deepEqual(r.placements, [
      { offerId: "o3", agentId: "a", appId: "web", resources: res(1, 64), ports: [] },
    ]);
  });

  it("places several instances from one offer while the sum fits", () => {
    const r = placeInstances([offer("o1", "a1", res(1, 1000))], [demand("web", 5, res(0.3, 100))], none);
    assert.equal(r.placements.length, 3);
    assert.deepEqual(r.unplaced, [
      {
        appId: "web",
        count: 2,
        reasons: [{ kind: "insufficient", resource: "cpus", agents: 1 }],
        declined: { ...noDeclines, cpus: 1 },
      },
    ]);
  });

  it("explains why instances are not placed", () => {
    const offers = [
      offer("o1", "a1", res(8, 64)),
      offer("o2", "a2", res(0.1, 8192)),
      offer("o3", "a3", res(0.1, 16, 0)),
      offer("o4", "a3", res(8, 8192, 0)),
    ];
    const r = placeInstances(offers, [demand("db", 1, res(2, 4096, 100))], none);
    assert.deepEqual(r.placements, []);
    assert.deepEqual(r.unplaced, [
      {
        appId: "db",
        count: 1,
        reasons: [
          { kind: "insufficient", resource: "cpus", agents: 1 },
          { kind: "insufficient", resource: "mem", agents: 1 },
          { kind: "insufficient", resource: "disk", agents: 3 },
        ],
        // Each agent once, at its first reason: a1 mem, a2 cpus, a3 disk.
        declined: { ...noDeclines, cpus: 1, mem: 1, disk: 1 },
      },
    ]);
    assert.deepEqual(r.unusedOfferIds, ["o1", "o2", "o3", "o4"]);
  });

  it("reports no_offers when there are none", () => {
    const r = placeInstances([], [demand("web", 2, res(1, 64)), demand("idle", 0, res(1, 64))], none);
    assert.deepEqual(r, {
      placements: [],
      unplaced: [{ appId: "web", count: 2, reasons: [{ kind: "no_offers" }], declined: noDeclines }],
      unusedOfferIds: [],
    });
  });

  it("serves demands round-robin so a big app cannot starve a small one", () => {
    const r = placeInstances(
      [offer("o1", "a1", res(2, 4096))],
      [demand("big", 10, res(0.5, 64)), demand("small", 1, res(0.5, 64))],
      none,
    );
    assert.equal(perAgent(r, "small").a1, 1);
    assert.equal(perAgent(r, "big").a1, 3);
  });
});

describe("placeInstances: host ports", () => {
  const range = (begin: number, end: number): PortRange[] => [{ begin, end }];

  it("assigns requested ports first, then the lowest free ones, and never one port twice", () => {
    const offers = [offer("o1", "a1", res(8, 8192, 0, [...range(80, 80), ...range(31000, 31004)]))];
    const r = placeInstances(
      offers,
      [
        demand("web", 1, res(1, 64), { requestedPorts: [80], ports: 2 }),
        demand("api", 2, res(1, 64), { ports: 1 }),
      ],
      none,
    );
    assert.deepEqual(
      r.placements.map((p) => [p.appId, p.ports]),
      [
        ["web", [80, 31000, 31001]],
        ["api", [31002]],
        ["api", [31003]],
      ],
    );
    assert.deepEqual(r.placements[0]?.resources.ports, [...range(80, 80), ...range(31000, 31001)]);
  });

  it("says which requested port is taken, and on how many agents", () => {
    const offers = [
      offer("o1", "a1", res(4, 4096, 0, range(31000, 32000))),
      offer("o2", "a2", res(4, 4096, 0, range(31000, 32000))),
      offer("o3", "a3", res(4, 4096, 0, [...range(80, 80), ...range(31000, 32000)])),
    ];
    const r = placeInstances(offers, [demand("web", 2, res(1, 64), { requestedPorts: [80] })], none);
    assert.deepEqual(
      r.placements.map((p) => [p.agentId, p.ports]),
      [["a3", [80]]],
    );
    assert.deepEqual(r.unplaced, [
      {
        appId: "web",
        count: 1,
        reasons: [{ kind: "port_taken", port: 80, agents: 3 }],
        declined: { ...noDeclines, ports: 3 },
      },
    ]);
  });

  it("says when too few ports are left, and treats resources.ports as requested ports", () => {
    const offers = [offer("o1", "a1", res(4, 4096, 0, range(31000, 31002)))];
    const r = placeInstances(
      offers,
      [demand("fixed", 2, res(1, 64, 0, range(31000, 31000))), demand("any", 2, res(1, 64), { ports: 2 })],
      none,
    );
    assert.deepEqual(
      r.placements.map((p) => [p.appId, p.ports]),
      [
        ["fixed", [31000]],
        ["any", [31001, 31002]],
      ],
    );
    assert.deepEqual(r.unplaced, [
      {
        appId: "fixed",
        count: 1,
        reasons: [{ kind: "port_taken", port: 31000, agents: 1 }],
        declined: { ...noDeclines, ports: 1 },
      },
      {
        appId: "any",
        count: 1,
        reasons: [{ kind: "insufficient", resource: "ports", agents: 1 }],
        declined: { ...noDeclines, ports: 1 },
      },
    ]);
  });
});

// --------------------------------------------------------------------- a naive reference model

interface RefNeed {
  cpus: number;
  mem: number;
  disk: number;
  any: number;
  req: number[];
}

/**
 * The documented behaviour, written the slow and obvious way (every instance scans every offer):
 * what the indexed implementation must reproduce exactly.
 */
function referencePlace(
  offers: OfferView[],
  demands: InstanceDemand[],
  existing: ReadonlyMap<string, ReadonlyMap<string, number>>,
): PlacementResult {
  const slots = offers.map((o, index) => ({
    o,
    index,
    cpus: o.resources.cpus,
    mem: o.resources.mem,
    disk: o.resources.disk,
    ports: new Set(rangesToPorts(o.resources.ports)),
    used: false,
  }));
  const placed = new Map<string, number>();
  const count = (app: string, agentId: string) =>
    (existing.get(app)?.get(agentId) ?? 0) + (placed.get(`${app}\u0000${agentId}`) ?? 0);
  const sub = (a: number, b: number) => (a - b < 1e-9 ? 0 : a - b);
  const fits = (s: (typeof slots)[number], n: RefNeed) =>
    n.cpus <= s.cpus + 1e-9 &&
    n.mem <= s.mem + 1e-9 &&
    n.disk <= s.disk + 1e-9 &&
    n.req.every((p) => s.ports.has(p)) &&
    s.ports.size - n.req.length >= n.any;
  const pending = demands.map((d) => ({
    d,
    left: Number.isFinite(d.count) ? Math.max(0, Math.floor(d.count)) : 0,
    stuck: false,
    need: {
      cpus: d.resources.cpus,
      mem: d.resources.mem,
      disk: d.resources.disk,
      any: Math.max(0, Math.floor(d.ports ?? 0)),
      req: [...new Set([...(d.requestedPorts ?? []), ...rangesToPorts(d.resources.ports)])],
    },
  }));
  const placements: PlacementResult["placements"] = [];
  for (let progress = true; progress; ) {
    progress = false;
    for (const p of pending) {
      if (p.left === 0 || p.stuck) continue;
      let best: (typeof slots)[number] | undefined;
      for (const s of slots) {
        if (!fits(s, p.need)) continue;
        if (best === undefined) {
          best = s;
          continue;
        }
        const c = count(p.d.appId, s.o.agentId) - count(p.d.appId, best.o.agentId);
        const order =
          c ||
          best.mem - s.mem ||
          (s.o.agentId < best.o.agentId ? -1 : s.o.agentId > best.o.agentId ? 1 : 0) ||
          (s.o.offerId < best.o.offerId ? -1 : s.o.offerId > best.o.offerId ? 1 : 0);
        if (order < 0) best = s;
      }
      if (best === undefined) {
        p.stuck = true;
        continue;
      }
      best.cpus = sub(best.cpus, p.need.cpus);
      best.mem = sub(best.mem, p.need.mem);
      best.disk = sub(best.disk, p.need.disk);
      best.used = true;
      for (const port of p.need.req) best.ports.delete(port);
      const dynamic = [...best.ports].sort((a, b) => a - b).slice(0, p.need.any);
      for (const port of dynamic) best.ports.delete(port);
      const ports = [...p.need.req, ...dynamic];
      const key = `${p.d.appId}\u0000${best.o.agentId}`;
      placed.set(key, (placed.get(key) ?? 0) + 1);
      const sorted = [...ports].sort((a, b) => a - b);
      const ranges: PortRange[] = [];
      for (const port of sorted) {
        const last = ranges[ranges.length - 1];
        if (last !== undefined && last.end + 1 === port) last.end = port;
        else ranges.push({ begin: port, end: port });
      }
      placements.push({
        offerId: best.o.offerId,
        agentId: best.o.agentId,
        appId: p.d.appId,
        resources: { cpus: p.need.cpus, mem: p.need.mem, disk: p.need.disk, ports: ranges },
        ports,
      });
      p.left -= 1;
      progress = true;
    }
  }
  /** Per agent, its closest offer's shortfalls for `n` (fewest missing items; tie: lowest offer id). */
  const closestOf = (n: RefNeed): Map<string, { short: string[]; taken: number[] }> => {
    const closest = new Map<string, { short: string[]; taken: number[] }>();
    const byId = [...slots].sort((a, b) =>
      a.o.offerId < b.o.offerId ? -1 : a.o.offerId > b.o.offerId ? 1 : 0,
    );
    for (const s of byId) {
      const short: string[] = [];
      if (n.cpus > s.cpus + 1e-9) short.push("cpus");
      if (n.mem > s.mem + 1e-9) short.push("mem");
      if (n.disk > s.disk + 1e-9) short.push("disk");
      const taken = n.req.filter((p) => !s.ports.has(p));
      if (s.ports.size - (n.req.length - taken.length) < n.any) short.push("ports");
      const prev = closest.get(s.o.agentId);
      if (prev === undefined || short.length + taken.length < prev.short.length + prev.taken.length)
        closest.set(s.o.agentId, { short, taken });
    }
    return closest;
  };
  const funnel = (n: RefNeed): DeclinedFunnel => {
    const declined = { constraint: 0, cpus: 0, mem: 0, disk: 0, ports: 0 };
    for (const m of closestOf(n).values()) {
      const first =
        (m.short[0] as keyof DeclinedFunnel | undefined) ?? (m.taken.length > 0 ? "ports" : undefined);
      if (first !== undefined) declined[first] += 1;
    }
    return declined;
  };
  const explain = (n: RefNeed): UnplacedReason[] => {
    if (slots.length === 0) return [{ kind: "no_offers" }];
    const closest = closestOf(n);
    const reasons: UnplacedReason[] = [];
    for (const resource of ["cpus", "mem", "disk", "ports"] as const) {
      const agents = [...closest.values()].filter((m) => m.short.includes(resource)).length;
      if (agents > 0) reasons.push({ kind: "insufficient", resource, agents });
    }
    for (const port of n.req) {
      const agents = [...closest.values()].filter((m) => m.taken.includes(port)).length;
      if (agents > 0) reasons.push({ kind: "port_taken", port, agents });
    }
    return reasons;
  };
  return {
    placements,
    unplaced: pending
      .filter((p) => p.left > 0)
      .map((p) => ({ appId: p.d.appId, count: p.left, reasons: explain(p.need), declined: funnel(p.need) })),
    unusedOfferIds: slots.filter((s) => !s.used).map((s) => s.o.offerId),
  };
}

// ------------------------------------------------------------------------------ generators

const arbOffer = (agents: number) =>
  fc.record({
    agent: fc.integer({ min: 1, max: agents }),
    // Coarse values, so that ties in free mem (broken by agentId, offerId) are common.
    cpus: fc.integer({ min: 0, max: 16 }).map((n) => n / 2),
    mem: fc.integer({ min: 0, max: 32 }).map((n) => n * 256),
    disk: fc.integer({ min: 0, max: 4 }).map((n) => n * 100),
    portBegin: fc.integer({ min: 1000, max: 1010 }),
    portLen: fc.integer({ min: 0, max: 6 }),
  });
const arbDemand = (maxCount: number) =>
  fc.record({
    app: fc.constantFrom("web", "api", "db", "cache"),
    count: fc.integer({ min: 0, max: maxCount }),
    cpus: fc.integer({ min: 1, max: 8 }).map((n) => n / 4),
    mem: fc.integer({ min: 1, max: 8 }).map((n) => n * 128),
    disk: fc.integer({ min: 0, max: 2 }).map((n) => n * 50),
    ports: fc.integer({ min: 0, max: 2 }),
    requested: fc.uniqueArray(fc.integer({ min: 1000, max: 1016 }), { maxLength: 2 }),
    legacy: fc.boolean(),
  });
type OfferSpec = {
  agent: number;
  cpus: number;
  mem: number;
  disk: number;
  portBegin: number;
  portLen: number;
};
type DemandSpec = {
  app: string;
  count: number;
  cpus: number;
  mem: number;
  disk: number;
  ports: number;
  requested: number[];
  legacy: boolean;
};

function toOffers(specs: OfferSpec[]): OfferView[] {
  return specs.map((o, i) =>
    offer(
      `o${String(i).padStart(3, "0")}`,
      `a${String(o.agent).padStart(3, "0")}`,
      res(o.cpus, o.mem, o.disk, [{ begin: o.portBegin, end: o.portBegin + o.portLen }]),
    ),
  );
}

function toDemands(specs: DemandSpec[]): InstanceDemand[] {
  return specs.map((d) => {
    // A requested port goes either in requestedPorts or, the older way, in resources.ports.
    const legacy = d.legacy ? d.requested.map((p) => ({ begin: p, end: p })) : [];
    return demand(d.app, d.count, res(d.cpus, d.mem, d.disk, legacy), {
      ports: d.ports,
      ...(d.legacy ? {} : { requestedPorts: d.requested }),
    });
  });
}

const arbExisting = (agents: number) =>
  fc
    .array(
      fc.record({
        app: fc.constantFrom("web", "api", "db", "cache"),
        agent: fc.integer({ min: 1, max: agents }),
        n: fc.integer({ min: 1, max: 3 }),
      }),
      { maxLength: agents * 2 },
    )
    .map((rows) => {
      const m = new Map<string, Map<string, number>>();
      for (const r of rows) {
        const perApp = m.get(r.app) ?? new Map<string, number>();
        perApp.set(`a${String(r.agent).padStart(3, "0")}`, r.n);
        m.set(r.app, perApp);
      }
      return m;
    });

describe("placeInstances properties", () => {
  it("places exactly as the naive reference does (small clusters)", () => {
    let placed = 0;
    fc.assert(
      fc.property(
        fc.array(arbOffer(4), { maxLength: 8 }),
        fc.array(arbDemand(12), { maxLength: 5 }),
        arbExisting(4),
        (os, ds, existing) => {
          const offers = toOffers(os);
          const demands = toDemands(ds);
          const result = placeInstances(offers, demands, existing);
          placed += result.placements.length;
          assert.deepEqual(result, referencePlace(offers, demands, existing));
        },
      ),
      { numRuns: 500 },
    );
    assert.ok(placed > 800, `the generator should produce placements (got ${placed})`);
  });

  it("places exactly as the naive reference does (larger clusters, big apps)", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 5, max: 60 })
          .chain((agents) =>
            fc.tuple(
              fc.array(arbOffer(agents), { minLength: 20, maxLength: 120 }),
              fc.array(arbDemand(200), { minLength: 1, maxLength: 5 }),
              arbExisting(agents),
            ),
          ),
        ([os, ds, existing]) => {
          const offers = toOffers(os);
          const demands = toDemands(ds);
          assert.deepEqual(
            placeInstances(offers, demands, existing),
            referencePlace(offers, demands, existing),
          );
        },
      ),
      { numRuns: 60 },
    );
  });

  it("places exactly as the naive reference does (an app already running on most agents)", () => {
    // Most searches skip many agents that already run the app, so demands switch to heaps of their own.
    fc.assert(
      fc.property(
        fc
          .integer({ min: 80, max: 200 })
          .chain((agents) =>
            fc.tuple(
              fc.array(arbOffer(agents), { minLength: agents, maxLength: agents + 20 }),
              fc.array(fc.integer({ min: 0, max: 9 }), { minLength: agents, maxLength: agents }),
              fc.array(arbDemand(300), { minLength: 1, maxLength: 3 }),
            ),
          ),
        ([os, hosting, ds]) => {
          const offers = toOffers(os);
          const existing = new Map([
            [
              "web",
              new Map(
                hosting.flatMap((h, i) =>
                  h < 8 ? [[`a${String(i + 1).padStart(3, "0")}`, 1 + (h % 2)]] : [],
                ),
              ),
            ],
          ]) as Map<string, Map<string, number>>;
          const demands = [demand("web", 250, res(0.25, 128), { ports: 1 }), ...toDemands(ds)];
          assert.deepEqual(
            placeInstances(offers, demands, existing),
            referencePlace(offers, demands, existing),
          );
        },
      ),
      { numRuns: 25 },
    );
  });

  it("the placements from each offer fit in it together, each host port at most once", () => {
    let withPorts = 0;
    fc.assert(
      fc.property(
        fc.array(arbOffer(4), { maxLength: 8 }),
        fc.array(arbDemand(20), { maxLength: 5 }),
        (os, ds) => {
          const offers = toOffers(os);
          const demands = toDemands(ds);
          const result = placeInstances(offers, demands, none);
          const byOffer = new Map<string, Resources>();
          const portsByOffer = new Map<string, number[]>();
          for (const p of result.placements) {
            byOffer.set(p.offerId, addResources(byOffer.get(p.offerId) ?? emptyResources(), p.resources));
            portsByOffer.set(p.offerId, [...(portsByOffer.get(p.offerId) ?? []), ...p.ports]);
            assert.deepEqual(
              rangesToPorts(p.resources.ports),
              [...p.ports].sort((a, b) => a - b),
            );
            if (p.ports.length > 0) withPorts++;
          }
          for (const [offerId, sum] of byOffer) {
            const o = offers.find((x) => x.offerId === offerId);
            assert.ok(o !== undefined);
            assert.ok(fitsIn(sum, o.resources), `offer ${offerId} overcommitted`);
            const ports = portsByOffer.get(offerId) ?? [];
            assert.equal(new Set(ports).size, ports.length, `a port of ${offerId} assigned twice`);
            assert.ok(!result.unusedOfferIds.includes(offerId));
          }
          const total = result.placements.length + result.unplaced.reduce((n, u) => n + u.count, 0);
          assert.equal(
            total,
            ds.reduce((n, d) => n + d.count, 0),
          );
          assert.equal(byOffer.size + result.unusedOfferIds.length, offers.length);
          // Whoever waits is told why: no offers, or something every agent lacks.
          for (const u of result.unplaced) {
            assert.ok(u.reasons.length > 0, "an unplaced demand without a reason");
            assert.equal(
              u.reasons.some((r) => r.kind === "no_offers"),
              offers.length === 0,
            );
          }
        },
      ),
      { numRuns: 300 },
    );
    assert.ok(withPorts > 300, `the generator should assign ports (got ${withPorts})`);
  });

  it("is deterministic and does not depend on the order of the offers", () => {
    fc.assert(
      fc.property(
        fc.array(arbOffer(4), { maxLength: 8 }),
        fc.array(arbDemand(12), { maxLength: 4 }),
        fc.integer(),
        (os, ds, seed) => {
          const offers = toOffers(os);
          const demands = toDemands(ds);
          const a = placeInstances(offers, demands, none);
          assert.deepEqual(placeInstances(offers, demands, none), a);
          const shuffled = [...offers];
          let x = seed >>> 0;
          for (let i = shuffled.length - 1; i > 0; i--) {
            x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
            const j = x % (i + 1);
            [shuffled[i], shuffled[j]] = [shuffled[j] as OfferView, shuffled[i] as OfferView];
          }
          const b = placeInstances(shuffled, demands, none);
          assert.deepEqual(b.placements, a.placements);
          assert.deepEqual(b.unplaced, a.unplaced);
          assert.deepEqual([...b.unusedOfferIds].sort(), [...a.unusedOfferIds].sort());
        },
      ),
      { numRuns: 200 },
    );
  });
});

// ------------------------------------------------------------------------------ constraints

/** Three agents a1..a3 on hosts h1..h3 in racks r1..r3, each offering 4 cpus and 4096 MiB. */
function rackOffers(mem: [number, number, number] = [4096, 4096, 4096]): OfferView[] {
  return [1, 2, 3].map((k) => ({
    offerId: `o${k}`,
    agentId: `a${k}`,
    hostname: `h${k}`,
    resources: res(4, mem[k - 1] ?? 0),
    attributes: { rack: `r${k}` },
  }));
}

function constrained(count: number, ...constraints: string[]): InstanceDemand {
  const parsed = parseConstraints(constraints);
  assert.ok(parsed.ok);
  return { appId: "web", count, resources: res(0.5, 256), constraints: parsed.value };
}

const agentsOf = (r: PlacementResult) => r.placements.map((p) => p.agentId);
const why = (r: PlacementResult) => r.unplaced.map((u) => `${u.count}: ${formatReasons(u.reasons)}`);

describe("placeInstances: constraints, worked examples on three agents", () => {
  it("UNIQUE hostname: at most one instance per host, counting the ones already running", () => {
    const r = placeInstances(rackOffers(), [constrained(5, "hostname:UNIQUE")], none);
    assert.deepEqual(agentsOf(r), ["a1", "a2", "a3"]);
    assert.deepEqual(why(r), ["2: constraint hostname:UNIQUE excluded 3 agents"]);
    const existing = new Map([["web", new Map([["a2", 1]])]]);
    assert.deepEqual(agentsOf(placeInstances(rackOffers(), [constrained(5, "@hostname:UNIQUE")], existing)), [
      "a1",
      "a3",
    ]);
  });

  it("GROUP_BY rack 3: spreads evenly over three racks, and waits for a third rack before a second round", () => {
    const r = placeInstances(rackOffers(), [constrained(6, "rack:GROUP_BY:3")], none);
    assert.deepEqual(agentsOf(r), ["a1", "a2", "a3", "a1", "a2", "a3"]);
    // r3 has too little mem: one instance in r1 and one in r2, then nothing until 3 groups exist.
    const short = placeInstances(rackOffers([4096, 4096, 100]), [constrained(6, "rack:GROUP_BY:3")], none);
    assert.deepEqual(agentsOf(short), ["a1", "a2"]);
    assert.deepEqual(why(short), [
      "4: constraint rack:GROUP_BY:3 excluded 2 agents; insufficient mem on 1 agent",
    ]);
  });

  it("GROUP_BY without a value: new racks first, then always the smallest group", () => {
    const existing = new Map([["web", new Map([["a1", 2]])]]);
    const r = placeInstances(rackOffers(), [constrained(6, "rack:GROUP_BY")], existing);
    assert.deepEqual(agentsOf(r), ["a2", "a3", "a2", "a3", "a1", "a2"]);
  });

  it("GROUP_BY ranks by the rack's instances before the agent's: an empty rack beats a roomier agent", () => {
    const offers = [
      { offerId: "o1", agentId: "a1", hostname: "h1", resources: res(4, 4096), attributes: { rack: "r1" } },
      { offerId: "o2", agentId: "a2", hostname: "h2", resources: res(4, 8192), attributes: { rack: "r1" } },
      { offerId: "o3", agentId: "a3", hostname: "h3", resources: res(4, 2048), attributes: { rack: "r2" } },
      { offerId: "o4", agentId: "a4", hostname: "h4", resources: res(4, 2048), attributes: { rack: "r3" } },
    ];
    // Then every rack has one: the agent without any (a1) goes before a2.
    assert.deepEqual(agentsOf(placeInstances(offers, [constrained(4, "rack:GROUP_BY")], none)), [
      "a2",
      "a3",
      "a4",
      "a1",
    ]);
    // Without the constraint, agents alone spread: a1 (empty, 4096 MiB) comes second.
    assert.deepEqual(agentsOf(placeInstances(offers, [constrained(2)], none)), ["a2", "a1"]);
  });

  it("LIKE / UNLIKE: only agents whose rack matches the whole regex / does not", () => {
    const like = placeInstances(rackOffers(), [constrained(4, "rack:LIKE:r[12]")], none);
    assert.deepEqual(agentsOf(like), ["a1", "a2", "a1", "a2"]);
    const unlike = placeInstances(rackOffers(), [constrained(2, "rack:UNLIKE:r[12]")], none);
    assert.deepEqual(agentsOf(unlike), ["a3", "a3"]);
    const prefix = placeInstances(rackOffers(), [constrained(1, "rack:LIKE:r")], none);
    assert.deepEqual(why(prefix), ["1: constraint rack:LIKE:r excluded 3 agents"]);
  });

  it("MAX_PER rack 2: at most two instances per rack, counting the ones already running", () => {
    const existing = new Map([["web", new Map([["a1", 1]])]]);
    const r = placeInstances(rackOffers(), [constrained(6, "rack:MAX_PER:2")], existing);
    assert.deepEqual(agentsOf(r), ["a2", "a3", "a1", "a2", "a3"]);
    assert.deepEqual(why(r), ["1: constraint rack:MAX_PER:2 excluded 3 agents"]);
  });

  it("CLUSTER: with a value, that rack only; without one, where the app runs, else the first agent chosen", () => {
    assert.deepEqual(agentsOf(placeInstances(rackOffers(), [constrained(3, "rack:CLUSTER:r3")], none)), [
      "a3",
      "a3",
      "a3",
    ]);
    assert.deepEqual(agentsOf(placeInstances(rackOffers(), [constrained(3, "rack:CLUSTER")], none)), [
      "a1",
      "a1",
      "a1",
    ]);
    const existing = new Map([["web", new Map([["a2", 1]])]]);
    const r = placeInstances(rackOffers([4096, 600, 4096]), [constrained(3, "rack:CLUSTER")], existing);
    assert.deepEqual(agentsOf(r), ["a2", "a2"]);
    assert.deepEqual(why(r), ["1: constraint rack:CLUSTER excluded 2 agents; insufficient mem on 1 agent"]);
  });

  it("IS: equal values; a scalar attribute compares as Marathon prints it", () => {
    assert.deepEqual(agentsOf(placeInstances(rackOffers(), [constrained(2, "rack:IS:r2")], none)), [
      "a2",
      "a2",
    ]);
    const offers = rackOffers().map((o, k) => ({
      ...o,
      attributes: { ...o.attributes, level: ["0.80", "1", "0.8001"][k] ?? "" },
    }));
    assert.deepEqual(agentsOf(placeInstances(offers, [constrained(4, "level:IS:0.8")], none)), [
      "a1",
      "a3",
      "a1",
      "a3",
    ]);
  });

  it("an agent lacking the attribute passes only UNLIKE", () => {
    const offers = rackOffers().map((o) => (o.agentId === "a3" ? { ...o, attributes: {} } : o));
    for (const c of [
      "rack:UNIQUE",
      "rack:CLUSTER",
      "rack:GROUP_BY",
      "rack:LIKE:.*",
      "rack:MAX_PER:9",
      "rack:IS:r3",
    ]) {
      const r = placeInstances(offers, [constrained(40, c)], none);
      assert.ok(!agentsOf(r).includes("a3"), c);
      assert.match(
        why(r)[0] ?? "",
        new RegExp(`constraint ${c.replace(/[.*]/g, "\\$&")} excluded [1-3] agent`),
        c,
      );
    }
    assert.deepEqual(agentsOf(placeInstances(offers, [constrained(1, "rack:UNLIKE:r[12]")], none)), ["a3"]);
  });

  it("reads the attributes of agents that run instances but offer nothing from options.agents", () => {
    const existing = new Map([["web", new Map([["a9", 1]])]]);
    const agents = new Map([["a9", { hostname: "h9", attributes: { rack: "r1" } }]]);
    const known = placeInstances(rackOffers(), [constrained(3, "rack:UNIQUE")], existing, { agents });
    assert.deepEqual(agentsOf(known), ["a2", "a3"]);
    // Unknown: counted as on an agent lacking the field, which UNIQUE ignores.
    assert.deepEqual(agentsOf(placeInstances(rackOffers(), [constrained(3, "rack:UNIQUE")], existing)), [
      "a1",
      "a2",
      "a3",
    ]);
  });

  it("combines constraints: every one must accept, GROUP_BY ranks first", () => {
    const offers = [
      ...rackOffers(),
      { offerId: "o4", agentId: "a4", hostname: "h4", resources: res(4, 8192), attributes: { rack: "r1" } },
    ];
    const r = placeInstances(offers, [constrained(5, "rack:GROUP_BY:3", "hostname:UNIQUE")], none);
    // a4 (r1) has the most mem, so r1 goes first on a4; then r2, r3; then r1 again on a1.
    assert.deepEqual(agentsOf(r), ["a4", "a2", "a3", "a1"]);
    assert.deepEqual(why(r), [
      "1: constraint rack:GROUP_BY:3 excluded 2 agents; constraint hostname:UNIQUE excluded 4 agents",
    ]);
  });

  it("a demand GROUP_BY blocked tries again once another demand of the app adds a group", () => {
    // A needs 1000 MiB, which r3 lacks; B (same app, unconstrained) fits r3 in its second round.
    const offers = rackOffers([4096, 4096, 100]);
    const a = constrained(4, "rack:GROUP_BY:3");
    const b: InstanceDemand = { appId: "web", count: 2, resources: res(0.5, 10) };
    const r = placeInstances(offers, [{ ...a, resources: res(0.5, 1000) }, b], none);
    assert.deepEqual(
      r.placements.map((p) => `${p.agentId}:${p.resources.mem}`),
      ["a1:1000", "a2:10", "a3:10", "a2:1000", "a1:1000"],
    );
    assert.deepEqual(why(r), [
      "1: constraint rack:GROUP_BY:3 excluded 2 agents; insufficient mem on 1 agent",
    ]);
  });

  it("explains per agent which predicate rejects it", () => {
    const existing = new Map([["web", new Map([["a1", 1]])]]);
    const verdicts = explainAgents(
      rackOffers([4096, 4096, 100]),
      constrained(1, "rack:GROUP_BY:3"),
      existing,
    );
    assert.deepEqual(verdicts, [
      { agentId: "a1", verdicts: [{ kind: "constraint", constraint: "rack:GROUP_BY:3" }] },
      { agentId: "a2", verdicts: [] },
      { agentId: "a3", verdicts: [{ kind: "insufficient", resource: "mem" }] },
    ]);
  });

  it("formats reasons as a user reads them", () => {
    assert.equal(
      formatReasons([
        { kind: "constraint", constraint: "rack:GROUP_BY:3", agents: 2 },
        { kind: "insufficient", resource: "mem", agents: 1 },
        { kind: "port_taken", port: 80, agents: 3 },
        { kind: "no_offers" },
      ]),
      "constraint rack:GROUP_BY:3 excluded 2 agents; insufficient mem on 1 agent; port 80 taken on 3 agents; no offers received yet",
    );
  });
});

// ------------------------------------------------ constraints: a naive checker of the result

const RACKS = ["r1", "r2", "r3", undefined] as const;
const LEVELS = ["1", "1.0", "2", "0.80", undefined] as const;

/** An agent's facts: hostnames are shared now and then (agents re-registered on one host). */
const arbFacts = fc.record({
  host: fc.integer({ min: 1, max: 5 }),
  rack: fc.constantFrom(...RACKS),
  level: fc.constantFrom(...LEVELS),
});
type FactsSpec = { host: number; rack: string | undefined; level: string | undefined };

function factsOf(spec: FactsSpec): { hostname: string; attributes: Record<string, string> } {
  const attributes: Record<string, string> = {};
  if (spec.rack !== undefined) attributes.rack = spec.rack;
  if (spec.level !== undefined) attributes.level = spec.level;
  return { hostname: `h${spec.host}`, attributes };
}

const arbConstraint = fc.oneof(
  fc.record({
    field: fc.constantFrom("hostname", "@hostname", "rack", "level"),
    operator: fc.constantFrom("UNIQUE", "GROUP_BY", "CLUSTER"),
  }),
  fc.record({
    field: fc.constantFrom("hostname", "rack", "level"),
    operator: fc.constantFrom("GROUP_BY", "MAX_PER"),
    value: fc.constantFrom("1", "2", "3", "4"),
  }),
  fc.record({
    field: fc.constantFrom("hostname", "rack", "level", "zone"),
    operator: fc.constantFrom("LIKE", "UNLIKE"),
    value: fc.constantFrom("r[12]", "h[1-3]", ".*", "1", "r1|h2"),
  }),
  fc.record({
    field: fc.constantFrom("hostname", "rack", "level"),
    operator: fc.constantFrom("IS", "CLUSTER"),
    value: fc.constantFrom("r1", "r3", "h2", "1", "1.0", "0.8"),
  }),
) as fc.Arbitrary<Constraint>;

const APPS = ["web", "api", "db"] as const;

/** A cluster: agents with offers, agents known only from `options.agents`, and unknown ones. */
const arbConstrainedCase = fc
  .integer({ min: 1, max: 7 })
  .chain((agents) =>
    fc.record({
      facts: fc.array(arbFacts, { minLength: agents + 2, maxLength: agents + 2 }),
      offers: fc.array(arbOffer(agents), { maxLength: agents + 6 }),
      constraints: fc.array(fc.array(arbConstraint, { maxLength: 2 }), { minLength: 3, maxLength: 3 }),
      demands: fc.array(
        fc.record({
          // Fewer requested ports than arbDemand asks: constraints, not ports, should keep instances waiting.
          spec: arbDemand(12).map((d) => (d.ports === 2 ? d : { ...d, requested: [] })),
          app: fc.integer({ min: 0, max: 2 }),
        }),
        {
          minLength: 1,
          maxLength: 4,
        },
      ),
      existing: fc.array(
        fc.record({
          app: fc.integer({ min: 0, max: 2 }),
          // agents + 1: known from options.agents only; agents + 2: unknown.
          agent: fc.integer({ min: 1, max: agents + 2 }),
          n: fc.integer({ min: 1, max: 3 }),
        }),
        { maxLength: 6 },
      ),
    }),
  )
  .map((c) => {
    const agentId = (k: number) => `a${String(k).padStart(3, "0")}`;
    const offers = toOffers(c.offers).map((o) => {
      const k = Number(o.agentId.slice(1));
      return { ...o, ...factsOf(c.facts[k - 1] as FactsSpec) };
    });
    const known = c.facts.length - 1;
    const agents = new Map([[agentId(known), factsOf(c.facts[known - 1] as FactsSpec)]]);
    const existing = new Map<string, Map<string, number>>();
    for (const e of c.existing) {
      const app = APPS[e.app] as string;
      const m = existing.get(app) ?? new Map<string, number>();
      m.set(agentId(e.agent), e.n);
      existing.set(app, m);
    }
    // Demands of one app share its constraints; a distinct mem tells which demand a placement served.
    const demands = toDemands(c.demands.map((d) => d.spec)).map((d, j) => {
      const app = c.demands[j]?.app ?? 0;
      const resources = { ...d.resources, mem: d.resources.mem + j };
      return { ...d, resources, appId: APPS[app] as string, constraints: c.constraints[app] ?? [] };
    });
    return { offers, demands, existing, agents };
  });

/**
 * Marathon's `Constraints.checkConstraint`, transcribed as plainly as possible: `offerValue` is the
 * agent's value (undefined: lacks the field), `placed` the values of the app's instances so far,
 * `anchor` the value CLUSTER without a value pins to (null: none yet).
 */
function marathonMeets(
  c: Constraint,
  offerValue: string | undefined,
  placed: (string | undefined)[],
  anchor: string | undefined | null,
): boolean {
  if (offerValue === undefined) return c.operator === "UNLIKE";
  const v = c.value ?? "";
  const regex = () => new RegExp(`^(?:${v})$`);
  switch (c.operator) {
    case "LIKE":
      return regex().test(offerValue);
    case "UNLIKE":
      return !regex().test(offerValue);
    case "UNIQUE":
      return placed.every((p) => p !== offerValue);
    case "MAX_PER":
      return placed.filter((p) => p === offerValue).length < Number(v);
    case "CLUSTER":
      return v !== "" ? offerValue === v : anchor === null || anchor === offerValue;
    case "IS":
      return offerValue === (/^[0-9]+(\.[0-9]+)?$/.test(v) ? formatScalar(Number(v)) : v);
    case "GROUP_BY": {
      const groups = new Map<string | undefined, number>();
      for (const p of placed) groups.set(p, (groups.get(p) ?? 0) + 1);
      const min = Math.min(...groups.values());
      const mine = groups.get(offerValue);
      return mine === undefined || (groups.size >= Number(v || "0") && mine === min);
    }
  }
}

interface Slot {
  offer: OfferView;
  cpus: number;
  mem: number;
  disk: number;
  ports: Set<number>;
}

/** Checks a result of placeInstances against Marathon's rules, replaying its placements in order. */
function checkConstrained(
  offers: OfferView[],
  demands: InstanceDemand[],
  existing: ReadonlyMap<string, ReadonlyMap<string, number>>,
  agents: ReadonlyMap<string, { hostname: string; attributes: Record<string, string> }>,
  result: PlacementResult,
): void {
  const factsById = new Map(agents);
  for (const o of offers) factsById.set(o.agentId, { hostname: o.hostname, attributes: o.attributes });
  const valueOn = (agentId: string, field: string): string | undefined => {
    const f = factsById.get(agentId);
    if (f === undefined) return undefined;
    if (field === "hostname" || field === "@hostname") return f.hostname;
    const raw = Object.hasOwn(f.attributes, field) ? f.attributes[field] : undefined;
    return raw === undefined ? undefined : attributeText(raw);
  };
  // The app's instances, as agent ids: the running ones, then the placed ones in order.
  const instances = new Map<string, string[]>();
  for (const [app, perAgent] of existing)
    instances.set(
      app,
      [...perAgent].flatMap(([agentId, n]) => Array.from({ length: Math.floor(n) }, () => agentId)),
    );
  const running = new Map([...instances].map(([app, list]) => [app, list.length]));
  const anchorOf = (app: string, field: string): string | undefined | null => {
    const list = instances.get(app) ?? [];
    const old = list.slice(0, running.get(app) ?? 0).map((id) => valueOn(id, field));
    if (old.length > 0) {
      const tally = new Map<string, number>();
      for (const v of old) if (v !== undefined) tally.set(v, (tally.get(v) ?? 0) + 1);
      const best = [...tally].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
      return best?.[0];
    }
    return list.length > 0 ? valueOn(list[0] as string, field) : null;
  };
  const accepts = (d: InstanceDemand, agentId: string) =>
    (d.constraints ?? []).every((c) =>
      marathonMeets(
        c,
        valueOn(agentId, c.field),
        (instances.get(d.appId) ?? []).map((id) => valueOn(id, c.field)),
        anchorOf(d.appId, c.field),
      ),
    );
  const slots = new Map<string, Slot>(
    offers.map((o) => [
      o.offerId,
      {
        offer: o,
        cpus: o.resources.cpus,
        mem: o.resources.mem,
        disk: o.resources.disk,
        ports: new Set(rangesToPorts(o.resources.ports)),
      },
    ]),
  );
  const needOf = (d: InstanceDemand) => ({
    cpus: d.resources.cpus,
    mem: d.resources.mem,
    disk: d.resources.disk,
    any: Math.max(0, Math.floor(d.ports ?? 0)),
    req: [...new Set([...(d.requestedPorts ?? []), ...rangesToPorts(d.resources.ports)])],
  });
  const missing = (s: Slot, d: InstanceDemand) => {
    const n = needOf(d);
    const short: string[] = [];
    if (n.cpus > s.cpus + 1e-9) short.push("cpus");
    if (n.mem > s.mem + 1e-9) short.push("mem");
    if (n.disk > s.disk + 1e-9) short.push("disk");
    const taken = n.req.filter((p) => !s.ports.has(p));
    if (s.ports.size - (n.req.length - taken.length) < n.any) short.push("ports");
    return { short, taken };
  };
  const fits = (s: Slot, d: InstanceDemand) => {
    const m = missing(s, d);
    return m.short.length === 0 && m.taken.length === 0;
  };

  // 1. Every placement was feasible when it was made: resources, and every constraint of its app.
  const left = demands.map((d) => Math.max(0, Math.floor(d.count)));
  for (const p of result.placements) {
    const j = demands.findIndex((x) => x.appId === p.appId && x.resources.mem === p.resources.mem);
    const d = demands[j] as InstanceDemand;
    left[j] = (left[j] ?? 0) - 1;
    const s = slots.get(p.offerId) as Slot;
    assert.ok(fits(s, d), `placement on ${p.offerId} does not fit`);
    assert.ok(accepts(d, p.agentId), `placement of ${p.appId} on ${p.agentId} breaks a constraint`);
    s.cpus -= d.resources.cpus;
    s.mem -= d.resources.mem;
    s.disk -= d.resources.disk;
    for (const port of p.ports) assert.ok(s.ports.delete(port), `port ${port} of ${p.offerId} twice`);
    instances.set(p.appId, [...(instances.get(p.appId) ?? []), p.agentId]);
  }

  // 2. Nothing more could have been placed: no offer is feasible for any demand left waiting.
  const waiting = demands.flatMap((d, j) => ((left[j] ?? 0) > 0 ? [{ d, left: left[j] }] : []));
  assert.deepEqual(
    result.unplaced.map((u) => [u.appId, u.count]),
    waiting.map((w) => [w.d.appId, w.left]),
  );
  for (const { d } of waiting) {
    const u = { appId: d.appId };
    for (const s of slots.values())
      assert.ok(
        !(fits(s, d) && accepts(d, s.offer.agentId)),
        `${u.appId} left waiting, ${s.offer.offerId} fits`,
      );
  }

  // 3. The reasons count the agents each constraint rejects, then the resources of the others.
  const byAgent = new Map<string, Slot[]>();
  for (const s of [...slots.values()].sort((a, b) => (a.offer.offerId < b.offer.offerId ? -1 : 1)))
    byAgent.set(s.offer.agentId, [...(byAgent.get(s.offer.agentId) ?? []), s]);
  for (const [k, u] of result.unplaced.entries()) {
    const d = waiting[k]?.d as InstanceDemand;
    if (offers.length === 0) {
      assert.deepEqual(u.reasons, [{ kind: "no_offers" }]);
      continue;
    }
    const reasons: UnplacedReason[] = [];
    const passing = new Set(byAgent.keys());
    for (const c of d.constraints ?? []) {
      const text = c.value === undefined ? `${c.field}:${c.operator}` : `${c.field}:${c.operator}:${c.value}`;
      let agentsRejected = 0;
      for (const agentId of byAgent.keys())
        if (!accepts({ ...d, constraints: [c] }, agentId)) {
          agentsRejected++;
          passing.delete(agentId);
        }
      if (agentsRejected > 0) reasons.push({ kind: "constraint", constraint: text, agents: agentsRejected });
    }
    const closest = [...passing].map((agentId) => {
      let best: { short: string[]; taken: number[] } | undefined;
      for (const s of byAgent.get(agentId) ?? []) {
        const m = missing(s, d);
        if (best === undefined || m.short.length + m.taken.length < best.short.length + best.taken.length)
          best = m;
      }
      return best as { short: string[]; taken: number[] };
    });
    for (const resource of ["cpus", "mem", "disk", "ports"] as const) {
      const n = closest.filter((m) => m.short.includes(resource)).length;
      if (n > 0) reasons.push({ kind: "insufficient", resource, agents: n });
    }
    for (const port of needOf(d).req) {
      const n = closest.filter((m) => m.taken.includes(port)).length;
      if (n > 0) reasons.push({ kind: "port_taken", port, agents: n });
    }
    assert.deepEqual(u.reasons, reasons);
    assert.ok(u.reasons.length > 0, "an unplaced demand without a reason");
    // The funnel counts every agent once: rejected by a constraint, else its first shortfall.
    const declined = { ...noDeclines, constraint: byAgent.size - passing.size };
    for (const m of closest) {
      const first =
        (m.short[0] as keyof DeclinedFunnel | undefined) ?? (m.taken.length > 0 ? "ports" : undefined);
      if (first !== undefined) declined[first] += 1;
    }
    assert.deepEqual(u.declined, declined);
  }
  const total = result.placements.length + result.unplaced.reduce((n, u) => n + u.count, 0);
  assert.equal(
    total,
    demands.reduce((n, d) => n + Math.max(0, Math.floor(d.count)), 0),
  );
}

describe("placeInstances properties: constraints", () => {
  it("every placement meets every constraint, nothing feasible is left, reasons count agents right", () => {
    let placed = 0;
    let waiting = 0;
    let rejectedBy = 0;
    fc.assert(
      fc.property(arbConstrainedCase, ({ offers, demands, existing, agents }) => {
        const result = placeInstances(offers, demands, existing, { agents });
        placed += result.placements.length;
        waiting += result.unplaced.length;
        rejectedBy += result.unplaced.filter((u) => u.reasons.some((r) => r.kind === "constraint")).length;
        checkConstrained(offers, demands, existing, agents, result);
      }),
      { numRuns: 600 },
    );
    assert.ok(placed > 1000, `the generator should produce placements (got ${placed})`);
    assert.ok(
      rejectedBy > 100 && waiting > rejectedBy,
      `constraints should reject (${rejectedBy}/${waiting})`,
    );
  });

  it("the same on larger clusters, where demands search their own heaps", () => {
    const bigConstraint = fc.constantFrom<Constraint[]>(
      [{ field: "hostname", operator: "UNIQUE" }],
      [{ field: "rack", operator: "GROUP_BY" }],
      [{ field: "rack", operator: "GROUP_BY", value: "4" }],
      [{ field: "hostname", operator: "GROUP_BY", value: "2" }],
      [{ field: "rack", operator: "MAX_PER", value: "30" }],
      [{ field: "rack", operator: "LIKE", value: "r[12]" }],
      [{ field: "rack", operator: "CLUSTER" }],
      [
        { field: "rack", operator: "GROUP_BY", value: "3" },
        { field: "hostname", operator: "MAX_PER", value: "2" },
      ],
      [
        { field: "rack", operator: "GROUP_BY" },
        { field: "level", operator: "GROUP_BY" },
      ],
    );
    let placed = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 130, max: 220 }).chain((agents) =>
          fc.record({
            facts: fc.array(arbFacts, { minLength: agents, maxLength: agents }),
            offers: fc.array(arbOffer(agents), { minLength: agents, maxLength: agents + 20 }),
            constraints: fc.array(bigConstraint, { minLength: 3, maxLength: 3 }),
            demands: fc.array(
              fc.record({
                spec: arbDemand(150).map((d) => ({ ...d, requested: [] })),
                app: fc.integer({ min: 0, max: 2 }),
              }),
              { minLength: 1, maxLength: 4 },
            ),
            // Per app, its instances per agent (0: none): most agents run some, so searches skip many.
            hosting: fc.array(
              fc.array(fc.integer({ min: 0, max: 2 }), { minLength: agents, maxLength: agents }),
              {
                minLength: 3,
                maxLength: 3,
              },
            ),
          }),
        ),
        (c) => {
          const offers = toOffers(c.offers).map((o) => ({
            ...o,
            // Distinct hostnames here (shared ones are covered above), so UNIQUE can place many.
            ...factsOf({
              ...(c.facts[Number(o.agentId.slice(1)) - 1] as FactsSpec),
              host: Number(o.agentId.slice(1)),
            }),
          }));
          const demands = toDemands(c.demands.map((d) => d.spec)).map((d, j) => {
            const app = c.demands[j]?.app ?? 0;
            const resources = { ...d.resources, mem: d.resources.mem + j };
            return { ...d, resources, appId: APPS[app] as string, constraints: c.constraints[app] ?? [] };
          });
          const existing = new Map(
            APPS.map((app, j) => [
              app as string,
              new Map(
                (c.hosting[j] ?? []).flatMap((n, k) =>
                  n > 0 ? [[`a${String(k + 1).padStart(3, "0")}`, n]] : [],
                ),
              ) as Map<string, number>,
            ]),
          );
          const agents = new Map<string, { hostname: string; attributes: Record<string, string> }>();
          const result = placeInstances(offers, demands, existing, { agents });
          placed += result.placements.length;
          checkConstrained(offers, demands, existing, agents, result);
        },
      ),
      { numRuns: 40 },
    );
    assert.ok(placed > 1500, `the generator should produce placements (got ${placed})`);
  });

  it("is deterministic and does not depend on the order of the offers", () => {
    fc.assert(
      fc.property(arbConstrainedCase, fc.integer(), ({ offers, demands, existing, agents }, seed) => {
        const a = placeInstances(offers, demands, existing, { agents });
        assert.deepEqual(placeInstances(offers, demands, existing, { agents }), a);
        const shuffled = [...offers];
        let x = seed >>> 0;
        for (let i = shuffled.length - 1; i > 0; i--) {
          x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
          const j = x % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j] as OfferView, shuffled[i] as OfferView];
        }
        const b = placeInstances(shuffled, demands, existing, { agents });
        assert.deepEqual(b.placements, a.placements);
        assert.deepEqual(b.unplaced, a.unplaced);
      }),
      { numRuns: 200 },
    );
  });

  it("constraints every agent meets change nothing (same placements as without, by the exact reference)", () => {
    fc.assert(
      fc.property(
        fc.array(arbOffer(6), { maxLength: 10 }),
        fc.array(arbDemand(15), { maxLength: 4 }),
        arbExisting(6),
        (os, ds, existing) => {
          const offers = toOffers(os);
          const demands = toDemands(ds);
          const always = demands.map((d, j) => ({
            ...d,
            constraints: [
              j % 2 === 0
                ? ({ field: "hostname", operator: "LIKE", value: ".*" } as const)
                : ({ field: "rack", operator: "UNLIKE", value: "x" } as const),
            ],
          }));
          assert.deepEqual(
            placeInstances(offers, always, existing),
            referencePlace(offers, demands, existing),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
