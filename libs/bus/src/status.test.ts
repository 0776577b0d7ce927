/** Status messages: batches read by task in order, and an agent's outbox that packs what comes together. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TaskStatus } from "@drover/core";
import { MAX_STATUS_BATCH, StatusOutbox, type StatusUpdate, statusUpdatesOf } from "./status.js";

const status = (state: TaskStatus["state"], uuid: string): TaskStatus => ({
  state,
  message: "",
  timestampMs: 1,
  uuid,
  source: "agent",
});

test("a batch is read as each task's updates in order; a single message as one update", () => {
  const read = statusUpdatesOf({
    agentId: "a1",
    updates: [
      { taskId: "t1", status: status("TASK_STARTING", "u1") },
      { taskId: "t2", status: status("TASK_STARTING", "u2") },
      { taskId: "t1", status: status("TASK_RUNNING", "u3") },
    ],
  });
  assert.deepEqual(
    read.map((u) => [u.agentId, u.taskId, u.statuses.map((s) => s.uuid)]),
    [
      ["a1", "t1", ["u1", "u3"]],
      ["a1", "t2", ["u2"]],
    ],
  );
  assert.deepEqual(
    statusUpdatesOf({ agentId: "a1", taskId: "t9", status: status("TASK_RUNNING", "u9") }).map((u) => [
      u.taskId,
      u.statuses.length,
    ]),
    [["t9", 1]],
  );
  assert.throws(() => statusUpdatesOf({ agentId: "a1", updates: [] }), /updates/);
  assert.throws(() =>
    statusUpdatesOf({ agentId: "a1", updates: [{ taskId: "t/1", status: status("TASK_RUNNING", "u") }] }),
  );
  assert.throws(() =>
    statusUpdatesOf({
      agentId: "a1",
      updates: Array.from({ length: MAX_STATUS_BATCH + 1 }, (_, i) => ({
        taskId: `t${i}`,
        status: status("TASK_RUNNING", `u${i}`),
      })),
    }),
  );
});

test("the outbox sends updates queued together in one message, and what comes meanwhile in the next, in order", async () => {
  const sent: string[][] = [];
  let release: (() => void) | undefined;
  const outbox = new StatusOutbox(async (updates: StatusUpdate[]) => {
    sent.push(updates.map((u) => `${u.taskId}:${u.status.state}`));
    if (sent.length === 1) await new Promise<void>((r) => (release = r));
    return undefined;
  }, 3);
  const done = [
    outbox.push({ taskId: "t1", status: status("TASK_STARTING", "1") }),
    outbox.push({ taskId: "t1", status: status("TASK_RUNNING", "2") }),
  ];
  await new Promise((r) => setImmediate(r));
  // The first message is being stored: these wait for the next ones (3 at most each).
  for (let i = 2; i <= 5; i++)
    done.push(outbox.push({ taskId: `t${i}`, status: status("TASK_RUNNING", `${i}`) }));
  assert.deepEqual(sent, [["t1:TASK_STARTING", "t1:TASK_RUNNING"]]);
  assert.equal(outbox.size, 4);
  release?.();
  await Promise.all(done);
  assert.deepEqual(sent, [
    ["t1:TASK_STARTING", "t1:TASK_RUNNING"],
    ["t2:TASK_RUNNING", "t3:TASK_RUNNING", "t4:TASK_RUNNING"],
    ["t5:TASK_RUNNING"],
  ]);
});

test("a failed send rejects its updates only; the outbox goes on with the next", async () => {
  let calls = 0;
  const outbox = new StatusOutbox(async () => {
    calls++;
    if (calls === 1) throw new Error("stopped");
    return undefined;
  });
  const first = outbox.push({ taskId: "t1", status: status("TASK_RUNNING", "1") });
  await assert.rejects(first, /stopped/);
  await outbox.push({ taskId: "t2", status: status("TASK_RUNNING", "2") });
  assert.equal(calls, 2);
});

test("a send that names the failed updates rejects those only", async () => {
  const outbox = new StatusOutbox(async (updates: StatusUpdate[]) =>
    updates.map((u) => (u.taskId === "bad" ? new Error("invalid") : undefined)),
  );
  const results = await Promise.allSettled([
    outbox.push({ taskId: "t1", status: status("TASK_RUNNING", "1") }),
    outbox.push({ taskId: "bad", status: status("TASK_RUNNING", "2") }),
    outbox.push({ taskId: "t3", status: status("TASK_RUNNING", "3") }),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ["fulfilled", "rejected", "fulfilled"],
  );
});
