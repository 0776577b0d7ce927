/** ListTasks pages: every task exactly once, in order, whatever the page size; bad sizes and tokens refused by field. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { DroverError } from "@drover/common";
import type { TaskRecord } from "@drover/core";
import { aTask } from "@drover/testing";
import fc from "fast-check";
import { MAX_TASK_PAGE, smallest, taskPage } from "./service.js";

const rec = (taskId: string, createdAtMs: number): TaskRecord =>
  aTask().id(taskId).createdAt(createdAtMs).build();

function sorted(list: TaskRecord[]): TaskRecord[] {
  return [...list].sort(
    (a, b) =>
      a.createdAtMs - b.createdAtMs ||
      (a.info.taskId < b.info.taskId ? -1 : a.info.taskId > b.info.taskId ? 1 : 0),
  );
}

/** Every page, from the first, at `size` a page. */
function pages(all: TaskRecord[], size: number): TaskRecord[][] {
  const out: TaskRecord[][] = [];
  let token = "";
  do {
    const { items, next } = taskPage(size, token)(all);
    out.push(items);
    token = next;
    assert.ok(out.length <= all.length + 1, "paging does not end");
  } while (token !== "");
  return out;
}

/** Tasks by id and creation time (ties likely), and a page size. */
const rowsArb = fc.uniqueArray(
  fc.record({ id: fc.stringMatching(/^[a-z0-9.]{1,8}$/), at: fc.integer({ min: 0, max: 5 }) }),
  { selector: (r) => r.id, maxLength: 60 },
);
const sizeArb = fc.integer({ min: 1, max: 13 });

test("paging yields every task once, in order, for any page size (ties in creation time included)", () => {
  fc.assert(
    fc.property(rowsArb, sizeArb, (rows, size) => {
      const all = sorted(rows.map((r) => rec(r.id, r.at)));
      const got = pages(all, size);
      for (const p of got) assert.ok(p.length <= size);
      assert.deepEqual(
        got.flat().map((t) => t.info.taskId),
        all.map((t) => t.info.taskId),
      );
    }),
  );
});

/** `list` in an order drawn from `seed` (a Fisher-Yates shuffle on a small LCG). */
function shuffled<T>(list: readonly T[], seed: number): T[] {
  const out = [...list];
  let x = seed >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

test("the tasks may come in any order (the master's map order): the pages are the same", () => {
  fc.assert(
    fc.property(rowsArb, sizeArb, fc.integer(), (rows, size, seed) => {
      const all = sorted(rows.map((r) => rec(r.id, r.at)));
      const mixed = shuffled(all, seed);
      const got: string[][] = [];
      let token = "";
      do {
        const { items, next } = taskPage(size, token)(mixed);
        got.push(items.map((t) => t.info.taskId));
        token = next;
        assert.ok(got.length <= all.length + 1, "paging does not end");
      } while (token !== "");
      assert.deepEqual(
        got,
        pages(all, size).map((p) => p.map((t) => t.info.taskId)),
      );
    }),
  );
});

test("smallest(k) is the first k of the sorted list", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: -50, max: 50 })), fc.integer({ min: 0, max: 20 }), (xs, k) => {
      const cmp = (a: number, b: number) => a - b;
      assert.deepEqual(smallest(xs, k, cmp), [...xs].sort(cmp).slice(0, k));
    }),
  );
});

test("100,000 tasks (a full-size cluster) page through in 20 pages of 5,000, each task once", () => {
  const all = sorted(
    Array.from({ length: 100_000 }, (_, i) => rec(`bench-${i % 200}.${i}`, 1_000 + (i % 977))),
  );
  const got = pages(shuffled(all, 7), 5000);
  assert.equal(got.length, 20);
  const ids = got.flat().map((t) => t.info.taskId);
  assert.equal(new Set(ids).size, 100_000);
  assert.deepEqual(
    ids,
    all.map((t) => t.info.taskId),
  );
});

test("page size 0 is everything at once; a size over the maximum or a malformed token is refused by field", () => {
  const all = sorted([rec("a", 1), rec("b", 2)]);
  assert.deepEqual(taskPage(0, "")(all), { items: all, next: "" });
  const field = (path: string) => (err: unknown) => {
    assert.equal((err as DroverError).code, "INVALID_ARGUMENT");
    assert.match(String(err), new RegExp(path));
    return true;
  };
  assert.throws(() => taskPage(MAX_TASK_PAGE + 1, ""), field("pageSize"));
  for (const bad of ["x", ":a", "12:", "1.5:a", "abc:def"])
    assert.throws(() => taskPage(10, bad), field("pageToken"));
  // A token whose task is gone meanwhile still pages on from its place: after (1, "a0") comes b.
  assert.deepEqual(
    taskPage(10, "1:a0")(all).items.map((t) => t.info.taskId),
    ["b"],
  );
});
