import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Reservation } from "./events/residency.js";
import { assignReservations, persistentVolumeName, residentLaunches } from "./residency.js";

const res = (id: string, agentId = "a1"): Reservation => ({ id, agentId, hostname: agentId, createdAtMs: 0 });

describe("resident apps", () => {
  it("free reservations are reused first, in order; the rest need new ones", () => {
    const r = [res("r1"), res("r2", "a2"), res("r3")];
    assert.deepEqual(residentLaunches(r, new Set(["r1"]), 1), { pinned: [r[1]], fresh: 0 });
    assert.deepEqual(residentLaunches(r, new Set(["r1"]), 4), { pinned: [r[1], r[2]], fresh: 2 });
    assert.deepEqual(residentLaunches(r, new Set(), 0), { pinned: [], fresh: 0 });
  });

  it("property: every launch gets exactly one reservation, never one in use, never twice", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.stringMatching(/^[a-z0-9]{1,4}$/), { maxLength: 12 }),
        fc.array(fc.boolean(), { maxLength: 12 }),
        fc.nat(20),
        (ids, used, launch) => {
          const reservations = ids.map((id) => res(id));
          const inUse = new Set(ids.filter((_, i) => used[i]));
          const { pinned, fresh } = residentLaunches(reservations, inUse, launch);
          assert.equal(pinned.length + fresh, launch);
          assert.equal(new Set(pinned.map((p) => p.id)).size, pinned.length);
          for (const p of pinned) assert.ok(!inUse.has(p.id));
          assert.equal(pinned.length, Math.min(launch, ids.length - inUse.size));
        },
      ),
    );
  });

  it("tasks on an agent take its pinned reservations, then new ones", () => {
    let n = 0;
    const out = assignReservations("a1", "h1", 3, [res("r1")], () => `n${++n}`, 5);
    assert.deepEqual(out.ids, ["r1", "n1", "n2"]);
    assert.deepEqual(out.created, [
      { id: "n1", agentId: "a1", hostname: "h1", createdAtMs: 5 },
      { id: "n2", agentId: "a1", hostname: "h1", createdAtMs: 5 },
    ]);
  });

  it("volume names follow Docker's rules and differ for different paths", () => {
    const names = ["data", "/data", "data/", "a b", "ünï", "", "x".repeat(300)].map((p) =>
      persistentVolumeName("/prod/db", "abc123", p),
    );
    for (const n of names) assert.match(n, /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/);
    assert.equal(new Set(names).size, names.length);
    assert.ok(names[0]?.startsWith("drover-prod_db-abc123-data-"));
    assert.equal(persistentVolumeName("/a", "r", "data"), persistentVolumeName("/a", "r", "data"));
  });
});
