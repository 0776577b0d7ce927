import assert from "node:assert/strict";
import { test } from "node:test";
import { AckBatcher } from "./framework.js";

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await tick(5);
  }
}

test("acknowledgements are sent in batches, one call at a time, in order", async () => {
  const calls: { frameworkId: string; ids: string[] }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const b = new AckBatcher(async (frameworkId, acks) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await tick(10);
    calls.push({ frameworkId, ids: acks.map((a) => a.taskId) });
    inFlight--;
  }, 5);
  for (let i = 0; i < 4500; i++) b.add("fw", `t${i}`, `u${i}`);
  await until(() => calls.reduce((n, c) => n + c.ids.length, 0) === 4500);
  assert.equal(maxInFlight, 1);
  assert.ok(calls.length <= 4, `${calls.length} calls for 4500 acknowledgements`);
  assert.ok(calls.every((c) => c.ids.length <= 2000));
  assert.deepEqual(
    calls.flatMap((c) => c.ids),
    Array.from({ length: 4500 }, (_, i) => `t${i}`),
  );
  b.stop();
});

test("a failed batch is dropped (the master resends) and later acknowledgements still go", async () => {
  let fail = true;
  const sent: string[] = [];
  const b = new AckBatcher(async (_fw, acks) => {
    if (fail) {
      fail = false;
      throw new Error("unavailable");
    }
    sent.push(...acks.map((a) => a.taskId));
  }, 1);
  b.add("fw", "a", "1");
  await until(() => !fail);
  b.add("fw", "b", "2");
  await until(() => sent.length === 1);
  assert.deepEqual(sent, ["b"]);
  b.stop();
  b.add("fw", "c", "3");
  await tick(20);
  assert.deepEqual(sent, ["b"]);
});

test("a change of framework id starts a new call", async () => {
  const calls: string[] = [];
  const b = new AckBatcher(async (frameworkId) => {
    calls.push(frameworkId);
  }, 5);
  b.add("fw1", "a", "1");
  b.add("fw2", "b", "2");
  await until(() => calls.length === 2);
  assert.deepEqual(calls, ["fw1", "fw2"]);
  b.stop();
});
