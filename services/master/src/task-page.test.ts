/** ListTasks pages: every task exactly once, in order, whatever the page size; bad sizes and tokens refused by field. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { DroverError } from "@drover/common";
import type { TaskRecord } from "@drover/core";
import fc from "fast-check";
import { MAX_TASK_PAGE, taskPage } from "./service.js";

const rec = (taskId: string, createdAtMs: number) =>
  ({ createdAtMs, info: { taskId } }) as unknown as TaskRecord;

function sorted(list: TaskRecord[]): TaskRecord[] {
  return [...list].sort(
    (a, b) =>
      a.createdAtMs - b.createdAtMs ||
      (a.info.taskId < b.info.taskId ? -1 : a.info.taskId > b.info.taskId ? 1 : 0),
  );
}

test("paging yields every task once, in order, for any page size (ties in creation time included)", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(
        fc.record({ id: fc.string({ minLength: 1, maxLength: 6 }), at: fc.integer({ min: 0, max: 5 }) }),
        {
          selector: (r) => r.id,
          maxLength: 60,
        },
      ),
      fc.integer({ min: 1, max: 13 }),
      (rows, size) => {
        const all = sorted(rows.map((r) => rec(r.id, r.at)));
        const seen: string[] = [];
        let token = "";
        let pages = 0;
        do {
          const { items, next } = taskPage(size, token)(all);
          assert.ok(items.length <= size);
          for (const t of items) seen.push(t.info.taskId);
          token = next;
          pages += 1;
          assert.ok(pages <= all.length + 1, "paging does not end");
        } while (token !== "");
        assert.deepEqual(
          seen,
          all.map((t) => t.info.taskId),
        );
      },
    ),
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
  // A token whose task is gone still pages on from its place.
  assert.deepEqual(
    taskPage(10, "1:a0")(all).items.map((t) => t.info.taskId),
    ["a", "b"].filter((id) => id > "a0" || id === "b"),
  );
});
