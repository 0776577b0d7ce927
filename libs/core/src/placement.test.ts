import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type InstanceDemand, type OfferView, placeInstances } from "./placement.js";
import { addResources, emptyResources, fitsIn, type PortRange, type Resources } from "./resources.js";

function res(cpus: number, mem: number, disk = 0, ports: PortRange[] = []): Resources {
  return { cpus, mem, disk, ports };
}

function offer(offerId: string, agentId: string, resources: Resources): OfferView {
  return { offerId, agentId, hostname: `${agentId}.local`, resources, attributes: {} };
}

function demand(appId: string, count: number, resources: Resources): InstanceDemand {
  return { appId, count, resources };
}

const none = new Map<string, Map<string, number>>();

function perAgent(result: ReturnType<typeof placeInstances>, appId: string): Record<string, number> {
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
    assert.deepEqual(r.placements, [{ offerId: "o3", agentId: "a", appId: "web", resources: res(1, 64) }]);
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

  it("needs the requested ports to be in the offer, and does not hand a port out twice", () => {
    const offers = [offer("o1", "a1", res(4, 4096, 0, [{ begin: 31000, end: 31001 }]))];
    const r = placeInstances(offers, [demand("web", 2, res(1, 64, 0, [{ begin: 31000, end: 31000 }]))], none);
    assert.equal(r.placements.length, 1);
    assert.deepEqual(r.unplaced[0]?.reasons, [{ kind: "insufficient", resource: "ports", agents: 1 }]);
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

const arbOffer = fc.record({
  agent: fc.constantFrom("a1", "a2", "a3", "a4"),
  cpus: fc.integer({ min: 0, max: 8000 }).map((m) => m / 1000),
  mem: fc.integer({ min: 0, max: 8192 }),
  disk: fc.integer({ min: 0, max: 1000 }),
  portBegin: fc.integer({ min: 1000, max: 1010 }),
  portLen: fc.integer({ min: 0, max: 5 }),
});
const arbDemand = fc.record({
  app: fc.constantFrom("web", "api", "db"),
  count: fc.integer({ min: 0, max: 20 }),
  cpus: fc.integer({ min: 1, max: 4000 }).map((m) => m / 1000),
  mem: fc.integer({ min: 4, max: 2048 }),
  disk: fc.integer({ min: 0, max: 200 }),
  port: fc.option(fc.integer({ min: 1000, max: 1015 }), { nil: undefined }),
});

describe("placeInstances properties", () => {
  it("the placements from each offer sum to something that fits in the offer", () => {
    let placedTotal = 0;
    fc.assert(
      fc.property(fc.array(arbOffer, { maxLength: 8 }), fc.array(arbDemand, { maxLength: 5 }), (os, ds) => {
        const offers = os.map((o, i) =>
          offer(
            `o${i}`,
            o.agent,
            res(o.cpus, o.mem, o.disk, [{ begin: o.portBegin, end: o.portBegin + o.portLen }]),
          ),
        );
        const demands = ds.map((d) =>
          demand(
            d.app,
            d.count,
            res(d.cpus, d.mem, d.disk, d.port === undefined ? [] : [{ begin: d.port, end: d.port }]),
          ),
        );
        const result = placeInstances(offers, demands, none);
        placedTotal += result.placements.length;
        const byOffer = new Map<string, Resources>();
        for (const p of result.placements) {
          const sum = byOffer.get(p.offerId) ?? emptyResources();
          byOffer.set(p.offerId, addResources(sum, p.resources));
        }
        for (const [offerId, sum] of byOffer) {
          const o = offers.find((x) => x.offerId === offerId);
          assert.ok(o !== undefined);
          assert.ok(fitsIn(sum, o.resources), `offer ${offerId} overcommitted`);
          assert.ok(!result.unusedOfferIds.includes(offerId));
        }
        // A fixed port is never handed out twice from one offer (the union above would hide it).
        for (const p of result.placements) {
          if (p.resources.ports.length === 0) continue;
          const same = result.placements.filter(
            (q) => q.offerId === p.offerId && q.resources.ports[0]?.begin === p.resources.ports[0]?.begin,
          );
          assert.equal(same.length, 1);
        }
        const placed = result.placements.length + result.unplaced.reduce((n, u) => n + u.count, 0);
        assert.equal(
          placed,
          ds.reduce((n, d) => n + d.count, 0),
        );
        assert.equal(byOffer.size + result.unusedOfferIds.length, offers.length);
      }),
      { numRuns: 300 },
    );
    assert.ok(placedTotal > 300, `the generator should produce placements (got ${placedTotal})`);
  });

  it("is deterministic", () => {
    fc.assert(
      fc.property(fc.array(arbOffer, { maxLength: 6 }), fc.array(arbDemand, { maxLength: 4 }), (os, ds) => {
        const offers = os.map((o, i) => offer(`o${i}`, o.agent, res(o.cpus, o.mem, o.disk)));
        const demands = ds.map((d) => demand(d.app, d.count, res(d.cpus, d.mem, d.disk)));
        assert.deepEqual(placeInstances(offers, demands, none), placeInstances(offers, demands, none));
      }),
    );
  });
});
