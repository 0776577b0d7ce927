import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type InstanceDemand,
  type OfferView,
  type PlacementResult,
  placeInstances,
  type UnplacedReason,
} from "./placement.js";
import { rangesToPorts } from "./ports.js";
import { addResources, emptyResources, fitsIn, type PortRange, type Resources } from "./resources.js";

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
      { appId: "web", count: 2, reasons: [{ kind: "insufficient", resource: "cpus", agents: 1 }] },
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
      },
    ]);
    assert.deepEqual(r.unusedOfferIds, ["o1", "o2", "o3", "o4"]);
  });

  it("reports no_offers when there are none", () => {
    const r = placeInstances([], [demand("web", 2, res(1, 64)), demand("idle", 0, res(1, 64))], none);
    assert.deepEqual(r, {
      placements: [],
      unplaced: [{ appId: "web", count: 2, reasons: [{ kind: "no_offers" }] }],
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
      { appId: "web", count: 1, reasons: [{ kind: "port_taken", port: 80, agents: 3 }] },
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
      { appId: "fixed", count: 1, reasons: [{ kind: "port_taken", port: 31000, agents: 1 }] },
      { appId: "any", count: 1, reasons: [{ kind: "insufficient", resource: "ports", agents: 1 }] },
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
  const explain = (n: RefNeed): UnplacedReason[] => {
    if (slots.length === 0) return [{ kind: "no_offers" }];
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
      .map((p) => ({ appId: p.d.appId, count: p.left, reasons: explain(p.need) })),
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
