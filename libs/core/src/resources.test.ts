import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  addResources,
  emptyResources,
  fitsIn,
  isEmpty,
  missingResources,
  normalizePorts,
  type PortRange,
  portCount,
  type Resources,
  ResourcesSchema,
  subtractResources,
} from "./resources.js";

function res(cpus: number, mem: number, disk = 0, ports: PortRange[] = []): Resources {
  return { cpus, mem, disk, ports };
}

describe("resources arithmetic", () => {
  it("emptyResources is all zero and a fresh object", () => {
    assert.deepEqual(emptyResources(), { cpus: 0, mem: 0, disk: 0, ports: [] });
    emptyResources().ports.push({ begin: 1, end: 2 });
    assert.deepEqual(emptyResources().ports, []);
  });

  it("adds scalars and unions port ranges", () => {
    const sum = addResources(
      res(1, 100, 10, [{ begin: 31000, end: 31010 }]),
      res(0.5, 28, 0, [
        { begin: 31005, end: 31020 },
        { begin: 30000, end: 30000 },
      ]),
    );
    assert.deepEqual(sum, {
      cpus: 1.5,
      mem: 128,
      disk: 10,
      ports: [
        { begin: 30000, end: 30000 },
        { begin: 31000, end: 31020 },
      ],
    });
  });

  it("merges adjacent ranges", () => {
    assert.deepEqual(
      normalizePorts([
        { begin: 5, end: 6 },
        { begin: 1, end: 4 },
        { begin: 9, end: 8 },
      ]),
      [{ begin: 1, end: 6 }],
    );
  });

  it("subtracts without going below zero and splits port ranges", () => {
    const d = subtractResources(
      res(1, 64, 0, [{ begin: 100, end: 200 }]),
      res(2, 32, 5, [{ begin: 150, end: 160 }]),
    );
    assert.deepEqual(d, {
      cpus: 0,
      mem: 32,
      disk: 0,
      ports: [
        { begin: 100, end: 149 },
        { begin: 161, end: 200 },
      ],
    });
  });

  it("clamps float noise to zero", () => {
    assert.equal(subtractResources(res(0.3, 0), res(0.1 + 0.2, 0)).cpus, 0);
  });

  it("fitsIn uses a 1e-9 tolerance and requires ports to be a subset", () => {
    assert.equal(fitsIn(res(0.1 + 0.2, 32), res(0.3, 32)), true);
    assert.equal(fitsIn(res(0.3 + 1e-6, 32), res(0.3, 32)), false);
    assert.equal(fitsIn(res(1, 33), res(1, 32)), false);
    assert.equal(fitsIn(res(0, 0, 11), res(1, 32, 10)), false);
    const have = res(1, 32, 0, [{ begin: 31000, end: 31100 }]);
    assert.equal(fitsIn(res(1, 32, 0, [{ begin: 31050, end: 31060 }]), have), true);
    assert.equal(fitsIn(res(1, 32, 0, [{ begin: 31050, end: 31101 }]), have), false);
    assert.deepEqual(missingResources(res(2, 64, 1, [{ begin: 1, end: 1 }]), res(1, 32)), [
      "cpus",
      "mem",
      "disk",
      "ports",
    ]);
  });

  it("isEmpty: below the minimum allocatable size", () => {
    assert.equal(isEmpty(emptyResources()), true);
    assert.equal(isEmpty(res(0.005, 1024)), true);
    assert.equal(isEmpty(res(4, 2)), true);
    assert.equal(isEmpty(res(0.01, 4)), false);
    assert.equal(isEmpty(res(0.5, 100), { cpus: 1, mem: 64 }), true);
    assert.equal(isEmpty(res(1, 64), { cpus: 1, mem: 64 }), false);
    assert.equal(isEmpty(emptyResources(), { cpus: 0, mem: 0 }), true);
  });

  it("ResourcesSchema validates and defaults ports", () => {
    assert.deepEqual(ResourcesSchema.parse({ cpus: 1, mem: 2, disk: 3 }), res(1, 2, 3));
    assert.equal(ResourcesSchema.safeParse({ cpus: -1, mem: 2, disk: 3 }).success, false);
    assert.equal(ResourcesSchema.safeParse({ cpus: 1, mem: 2, disk: 3, gpus: 1 }).success, false);
    assert.equal(
      ResourcesSchema.safeParse({ cpus: 1, mem: 2, disk: 3, ports: [{ begin: 9, end: 8 }] }).success,
      false,
    );
  });
});

const portRange = fc
  .tuple(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 0, max: 50 }))
  .map(([begin, len]): PortRange => ({ begin, end: begin + len }));
/** Mostly realistic values (fc.double alone is dominated by tiny magnitudes), plus edge doubles. */
const scalar = (max: number) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 0, max: max * 1000 }).map((m) => m / 1000) },
    { weight: 1, arbitrary: fc.double({ min: 0, max, noNaN: true }) },
  );
const arbResources = fc.record({
  cpus: scalar(64),
  mem: scalar(65536),
  disk: scalar(65536),
  ports: fc.array(portRange, { maxLength: 4 }),
});

describe("resources properties", () => {
  it("a - b never goes negative, and b fits in a + b", () => {
    fc.assert(
      fc.property(arbResources, arbResources, (a, b) => {
        const d = subtractResources(a, b);
        assert.ok(d.cpus >= 0 && d.mem >= 0 && d.disk >= 0);
        assert.ok(fitsIn(b, addResources(a, b)));
        assert.ok(fitsIn(d, a));
      }),
    );
  });

  it("(a - b) + b covers a and has the ports of a ∪ b", () => {
    fc.assert(
      fc.property(arbResources, arbResources, (a, b) => {
        const back = addResources(subtractResources(a, b), b);
        assert.ok(fitsIn(a, back));
        assert.equal(portCount(addResources(a, b).ports), portCount(back.ports));
      }),
    );
  });
});
