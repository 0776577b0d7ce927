/**
 * The OfferBook (its incremental totals, property-tested against a naive sum) and the offer
 * lifecycle on the in-process master: expiry (rescinded, then a 5 s refusal), decline filters,
 * revive, suppress.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { addResources, emptyResources, normalizePorts, type Resources } from "@drover/core";
import { anAgent } from "@drover/testing";
import fc from "fast-check";
import {
  keepAlive,
  type Master,
  nextOffers,
  registerAgent,
  type Subscription,
  startMaster,
  subscribe,
} from "./harness.test.js";
import { OfferBook, type OutstandingOffer } from "./offers.js";

// ── OfferBook ────────────────────────────────────────────────────────────────

type Op =
  | {
      kind: "create";
      fw: number;
      agent: number;
      cpus: number;
      mem: number;
      disk: number;
      ports: number;
      ttl: number;
    }
  | { kind: "remove"; pick: number }
  | { kind: "removeUnknown" }
  | { kind: "removeOnAgent"; agent: number }
  | { kind: "removeOfFramework"; fw: number }
  | { kind: "expire"; advance: number };

const thousandths = (max: number) => fc.integer({ min: 1, max: max * 1000 }).map((n) => n / 1000);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("create" as const),
      fw: fc.nat(2),
      agent: fc.nat(3),
      cpus: thousandths(8),
      mem: thousandths(16384),
      disk: fc.oneof(fc.constant(0), thousandths(1000)),
      ports: fc.nat(3),
      ttl: fc.integer({ min: 0, max: 10_000 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("remove" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("removeUnknown" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("removeOnAgent" as const), agent: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("removeOfFramework" as const), fw: fc.nat(2) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("expire" as const),
      advance: fc.integer({ min: 0, max: 5_000 }),
    }),
  },
);

function sum(offers: OutstandingOffer[]): Resources {
  return offers.reduce((r, o) => addResources(r, o.resources), emptyResources());
}

function assertTotal(got: Resources, offers: OutstandingOffer[], what: string): void {
  if (offers.length === 0) {
    // No offer left: exactly zero, no drift.
    assert.deepEqual(got, emptyResources(), `${what}: no offers, so exactly nothing`);
    return;
  }
  const want = sum(offers);
  for (const k of ["cpus", "mem", "disk"] as const)
    assert.ok(Math.abs(got[k] - want[k]) < 1e-6, `${what}.${k}: ${got[k]} != ${want[k]}`);
  assert.deepEqual(normalizePorts(got.ports), normalizePorts(want.ports), `${what}.ports`);
}

test("OfferBook: per-agent and per-framework totals always equal the sum of the offers (random create/remove/expire)", () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 80 }), (ops) => {
      let now = 1_000_000;
      const book = new OfferBook(() => now);
      const model = new Map<string, OutstandingOffer>();
      let portSeq = 0;
      for (const op of ops) {
        switch (op.kind) {
          case "create": {
            // An agent's offers never share a port (each holds ports no other offer holds).
            const ports =
              op.ports === 0 ? [] : [{ begin: 31000 + portSeq, end: 31000 + portSeq + op.ports - 1 }];
            portSeq += op.ports;
            const o = book.create(
              `f${op.fw}`,
              `a${op.agent}`,
              { cpus: op.cpus, mem: op.mem, disk: op.disk, ports },
              now + op.ttl,
            );
            assert.ok(!model.has(o.offerId), "offer ids are unique");
            model.set(o.offerId, { ...o });
            break;
          }
          case "remove": {
            const ids = [...model.keys()];
            const id = ids.length > 0 ? ids[op.pick % ids.length] : undefined;
            if (id === undefined) break;
            assert.equal(book.remove(id)?.offerId, id);
            assert.equal(book.remove(id), undefined, "a second remove finds nothing");
            model.delete(id);
            break;
          }
          case "removeUnknown":
            assert.equal(book.remove("o-unknown"), undefined);
            break;
          case "removeOnAgent": {
            const gone = book.removeOnAgent(`a${op.agent}`).map((o) => o.offerId);
            const want = [...model.values()]
              .filter((o) => o.agentId === `a${op.agent}`)
              .map((o) => o.offerId);
            assert.deepEqual([...gone].sort(), [...want].sort());
            for (const id of want) model.delete(id);
            break;
          }
          case "removeOfFramework": {
            const gone = book.removeOfFramework(`f${op.fw}`).map((o) => o.offerId);
            const want = [...model.values()]
              .filter((o) => o.frameworkId === `f${op.fw}`)
              .map((o) => o.offerId);
            assert.deepEqual([...gone].sort(), [...want].sort());
            for (const id of want) model.delete(id);
            break;
          }
          case "expire": {
            now += op.advance;
            const gone = book.removeExpired(now).map((o) => o.offerId);
            const want = [...model.values()].filter((o) => o.expiresAtMs <= now).map((o) => o.offerId);
            assert.deepEqual([...gone].sort(), [...want].sort());
            for (const id of want) model.delete(id);
            break;
          }
        }
        assert.deepEqual([...book.offers.keys()].sort(), [...model.keys()].sort());
        for (let a = 0; a < 4; a++) {
          const of = [...model.values()].filter((o) => o.agentId === `a${a}`);
          assertTotal(book.offeredOn(`a${a}`), of, `offeredOn(a${a})`);
        }
        for (let f = 0; f < 3; f++) {
          const of = [...model.values()].filter((o) => o.frameworkId === `f${f}`);
          assertTotal(book.offeredTo(`f${f}`), of, `offeredTo(f${f})`);
        }
      }
    }),
    { numRuns: 300 },
  );
});

test("OfferBook: refusal filters hold until their time, per framework and agent; revive clears a framework's", () => {
  const book = new OfferBook(() => 0);
  book.refuse("f1", "a1", 5_000);
  book.refuse("f1", "a2", 10_000);
  book.refuse("f2", "a1", 10_000);
  const active = (now: number) =>
    book
      .activeFilters(now)
      .map((f) => `${f.frameworkId}/${f.agentId}`)
      .sort();
  assert.deepEqual(active(4_999), ["f1/a1", "f1/a2", "f2/a1"]);
  assert.deepEqual(active(5_000), ["f1/a2", "f2/a1"]);
  book.revive("f1");
  assert.deepEqual(active(5_000), ["f2/a1"]);
  assert.deepEqual(active(10_000), []);
});

// ── the offer lifecycle in the master ───────────────────────────────────────

async function offered(config: Parameters<typeof startMaster>[0] = {}) {
  const m = await startMaster(config);
  const fw = await subscribe(m);
  const agent = await registerAgent(m, anAgent().id("a1"));
  keepAlive(m, "a1", agent);
  const offer = (await nextOffers(m, fw)).find((o) => o.agentId === "a1");
  assert.ok(offer);
  return { m, fw, agent, offer };
}

const offersOnA1 = (fw: Subscription, since: number) =>
  fw.conn
    .where((e) => e.event?.$case === "offers", since)
    .flatMap((e) =>
      e.event?.$case === "offers" ? e.event.value.offers.filter((o) => o.agentId === "a1") : [],
    );

/** Moves the time in 1 s steps until `done()` (at most `maxMs`). */
async function advanceUntil(m: Master, done: () => boolean, maxMs: number): Promise<void> {
  for (let waited = 0; !done(); waited += 1000) {
    assert.ok(waited < maxMs, "did not happen in time");
    await m.clock.advance(1000);
  }
}

test("an offer that expires is rescinded, and its agent is not offered to that framework again for 5 s", async () => {
  const { m, fw, offer } = await offered({ config: { offerTimeoutSeconds: 5 } });
  await advanceUntil(m, () => fw.conn.rescinds().includes(offer.offerId), 10_000);
  // The expiry ran within the last second: the refusal lasts until at least now + 4 s.
  assert.equal(m.leader.offers.offers.size, 0);
  assert.deepEqual(m.leader.offers.offeredOn("a1"), emptyResources());
  const mark = fw.conn.mark();
  await m.clock.advance(3_900);
  assert.deepEqual(offersOnA1(fw, mark), [], "refused for 5 s after the expiry");
  await m.clock.advance(2_200);
  assert.equal(offersOnA1(fw, mark).length, 1, "offered again once the 5 s have passed");
  await m.leader.stop();
});

test("a declined offer's agent is refused for refuseSeconds, then offered again", async () => {
  const { m, fw, offer } = await offered();
  m.leader.decline({ frameworkId: fw.frameworkId, offerIds: [offer.offerId], refuseSeconds: 3 });
  assert.equal(m.leader.offers.offers.size, 0);
  const mark = fw.conn.mark();
  await m.clock.advance(2_900);
  assert.deepEqual(offersOnA1(fw, mark), []);
  await m.clock.advance(1_200);
  assert.equal(offersOnA1(fw, mark).length, 1);
  await m.leader.stop();
});

test("revive clears the framework's decline filters: offered at once", async () => {
  const { m, fw, offer } = await offered();
  m.leader.decline({ frameworkId: fw.frameworkId, offerIds: [offer.offerId], refuseSeconds: 3600 });
  const mark = fw.conn.mark();
  await m.clock.advance(10_000);
  assert.deepEqual(offersOnA1(fw, mark), []);
  m.leader.revive(fw.frameworkId);
  const offers = await nextOffers(m, fw, { since: mark });
  assert.ok(offers.some((o) => o.agentId === "a1"));
  await m.leader.stop();
});

test("suppress rescinds the outstanding offers and stops new ones until revive", async () => {
  const { m, fw, offer } = await offered();
  m.leader.suppress(fw.frameworkId);
  assert.ok(fw.conn.rescinds().includes(offer.offerId));
  assert.equal(m.leader.offers.offers.size, 0);
  assert.equal(m.leader.isSuppressed(fw.frameworkId), true);
  const mark = fw.conn.mark();
  await m.clock.advance(10_000);
  assert.deepEqual(offersOnA1(fw, mark), []);
  m.leader.revive(fw.frameworkId);
  assert.equal(m.leader.isSuppressed(fw.frameworkId), false);
  assert.ok((await nextOffers(m, fw, { since: mark })).some((o) => o.agentId === "a1"));
  await m.leader.stop();
});

test("an agent's offers are rescinded when its session ends", async () => {
  const { m, fw, agent, offer } = await offered();
  m.leader.agentDisconnected("a1", agent);
  assert.deepEqual(fw.conn.rescinds(), [offer.offerId]);
  assert.equal(m.leader.offers.offers.size, 0);
  assert.deepEqual(m.leader.offers.offeredOn("a1"), emptyResources());
  assert.deepEqual(m.leader.offers.offeredTo(fw.frameworkId), emptyResources());
  await m.leader.stop();
});
