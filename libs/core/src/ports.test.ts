import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isValidPort, PortSet, portsToRanges, rangesToPorts, splitLowestPorts } from "./ports.js";
import type { PortRange } from "./resources.js";

describe("ports", () => {
  it("turns ports into the fewest ranges and back", () => {
    assert.deepEqual(portsToRanges([5, 3, 4, 9, 4, 0, 70000, 1.5]), [
      { begin: 3, end: 5 },
      { begin: 9, end: 9 },
    ]);
    assert.deepEqual(
      rangesToPorts([
        { begin: 9, end: 10 },
        { begin: 3, end: 4 },
        { begin: 4, end: 5 },
      ]),
      [3, 4, 5, 9, 10],
    );
    assert.equal(isValidPort(65535), true);
    assert.equal(isValidPort(0), false);
  });

  it("splits off the lowest ports", () => {
    const ranges = [
      { begin: 31000, end: 31002 },
      { begin: 80, end: 80 },
    ];
    assert.deepEqual(splitLowestPorts(ranges, 2), {
      taken: [
        { begin: 80, end: 80 },
        { begin: 31000, end: 31000 },
      ],
      rest: [{ begin: 31001, end: 31002 }],
    });
    assert.deepEqual(splitLowestPorts(ranges, 9).rest, []);
    assert.deepEqual(splitLowestPorts(ranges, 0).taken, []);
  });

  it("a PortSet takes single ports and the lowest ones", () => {
    const set = new PortSet([{ begin: 10, end: 14 }]);
    assert.equal(set.size, 5);
    assert.equal(set.take(12), true);
    assert.equal(set.take(12), false);
    assert.equal(set.has(12), false);
    assert.deepEqual(set.takeLowest(3), [10, 11, 13]);
    assert.deepEqual(set.toRanges(), [{ begin: 14, end: 14 }]);
    assert.deepEqual(set.takeLowest(3), [14]);
    assert.equal(set.size, 0);
  });
});

const arbRanges = fc.array(
  fc
    .record({ begin: fc.integer({ min: 1, max: 60 }), len: fc.integer({ min: 0, max: 8 }) })
    .map(({ begin, len }): PortRange => ({ begin, end: begin + len })),
  { maxLength: 5 },
);

describe("ports properties", () => {
  it("a PortSet behaves as the set of its ports", () => {
    fc.assert(
      fc.property(
        arbRanges,
        fc.array(
          fc.oneof(
            fc.integer({ min: 0, max: 70 }).map((p) => ({ take: p })),
            fc.nat(4),
          ),
          { maxLength: 20 },
        ),
        (ranges, ops) => {
          const set = new PortSet(ranges);
          const model = new Set(rangesToPorts(ranges));
          for (const op of ops) {
            if (typeof op === "number") {
              const lowest = [...model].sort((a, b) => a - b).slice(0, op);
              assert.deepEqual(set.takeLowest(op), lowest);
              for (const p of lowest) model.delete(p);
            } else {
              assert.equal(set.take(op.take), model.delete(op.take));
            }
            assert.equal(set.size, model.size);
            assert.deepEqual(
              rangesToPorts(set.toRanges()),
              [...model].sort((a, b) => a - b),
            );
          }
        },
      ),
    );
  });

  it("splitLowestPorts partitions the ports, the taken ones below the rest", () => {
    fc.assert(
      fc.property(arbRanges, fc.nat(30), (ranges, n) => {
        const { taken, rest } = splitLowestPorts(ranges, n);
        const all = rangesToPorts(ranges);
        const t = rangesToPorts(taken);
        const r = rangesToPorts(rest);
        assert.equal(t.length, Math.min(n, all.length));
        assert.deepEqual([...t, ...r], all);
      }),
    );
  });
});
