import assert from "node:assert/strict";
import { test } from "node:test";
import { StopWaiting, waitFor } from "./wait.js";

test("waitFor returns the first truthy value", async () => {
  let calls = 0;
  const value = await waitFor("the third call", async () => (++calls >= 3 ? { calls } : undefined), {
    intervalMs: 1,
  });
  assert.deepEqual(value, { calls: 3 });
});

test("waitFor times out with the last error", async () => {
  await assert.rejects(
    waitFor(
      "something impossible",
      async () => {
        throw new Error("still broken");
      },
      { timeoutMs: 50, intervalMs: 10 },
    ),
    { message: "timed out after 50ms waiting for something impossible; last error: still broken" },
  );
});

test("waitFor reports a condition that stayed false", async () => {
  await assert.rejects(
    waitFor("a false condition", async () => false, { timeoutMs: 30, intervalMs: 10 }),
    /timed out after 30ms waiting for a false condition; last error: none/,
  );
});

test("waitFor gives up at once on StopWaiting", async () => {
  const started = Date.now();
  await assert.rejects(
    waitFor(
      "a dead process",
      async () => {
        throw new StopWaiting("it exited");
      },
      { timeoutMs: 10_000 },
    ),
    { message: "gave up waiting for a dead process: it exited" },
  );
  assert.ok(Date.now() - started < 1_000);
});
