/** The relay's messages: one transaction's events cut into runs by subject, unpacked by followers. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { EventEnvelope } from "@drover/core";
import { eventMessages, type LoggedEvent, PublishedEventSchema, unpackEventMessage } from "./events.js";

const dec = new TextDecoder();

function logged(revision: string, aggregate: string, id: string, version: number, type: string): LoggedEvent {
  const env: EventEnvelope = { aggregate, id, version, atMs: 1000, event: { type, n: `${id}@${version}` } };
  return {
    key: `/drover/log/${aggregate}/${id}/${String(version).padStart(10, "0")}`,
    value: JSON.stringify(env),
    env,
    revision,
  };
}

const unpack = (payload: Uint8Array) =>
  unpackEventMessage(JSON.parse(dec.decode(payload))).events.map((e) => PublishedEventSchema.parse(e));

test("one transaction's events go out as one message per run of the same subject, in version order", () => {
  const events = [
    logged("7", "task", "a", 2, "TaskStatusUpdated"),
    logged("7", "task", "a", 3, "TaskStatusUpdated"),
    logged("7", "task", "b", 5, "TaskStatusUpdated"),
    logged("7", "agent", "x", 1, "AgentRegistered"),
    logged("8", "task", "c", 1, "TaskStatusUpdated"),
  ];
  const messages = eventMessages(events);
  assert.deepEqual(
    messages.map((m) => [m.subject, m.revision, m.count]),
    [
      ["drover.events.agent.AgentRegistered", "7", 1],
      ["drover.events.task.TaskStatusUpdated", "7", 3],
      ["drover.events.task.TaskStatusUpdated", "8", 1],
    ],
  );
  const batch = messages[1];
  assert.ok(batch);
  assert.equal(batch.msgId, `7:${events[0]?.key}`);
  assert.deepEqual(
    unpack(batch.payload).map((e) => [e.id, e.version, e.revision]),
    [
      ["a", 2, "7"],
      ["a", 3, "7"],
      ["b", 5, "7"],
    ],
  );
  // A run of one is the single-event message, as before batches (the envelope and its revision).
  const single = messages[2];
  assert.ok(single);
  assert.deepEqual(JSON.parse(dec.decode(single.payload)), { ...events[4]?.env, revision: "8" });
  assert.deepEqual(
    unpack(single.payload).map((e) => [e.id, e.version]),
    [["c", 1]],
  );
});

test("the same events make the same messages whatever order they were read in (a republish is de-duplicated)", () => {
  const events = Array.from({ length: 40 }, (_, i) =>
    logged(
      String(10 + (i % 3)),
      "task",
      `t${i % 17}`,
      1 + Math.floor(i / 17),
      i % 5 === 0 ? "TaskLaunched" : "TaskStatusUpdated",
    ),
  );
  const ids = (list: LoggedEvent[]) => eventMessages(list, 600).map((m) => `${m.msgId}/${m.count}`);
  const forward = ids(events);
  assert.deepEqual(ids([...events].reverse()), forward);
  assert.deepEqual(ids([...events].sort(() => 0.5 - Math.random())), forward);
  assert.equal(
    eventMessages(events, 600).reduce((n, m) => n + m.count, 0),
    events.length,
  );
});

test("a run larger than the message size is cut into several messages, none over the limit", () => {
  const events = Array.from({ length: 50 }, (_, i) =>
    logged("3", "task", `t${String(i).padStart(3, "0")}`, 1, "TaskStatusUpdated"),
  );
  const each = events[0]?.value.length ?? 0;
  const messages = eventMessages(events, each * 10 + 20);
  assert.ok(messages.length >= 5, `${messages.length} messages`);
  for (const m of messages) assert.ok(m.payload.length <= each * 10 + 20 + 40, `${m.payload.length} bytes`);
  assert.deepEqual(
    messages.flatMap((m) => unpack(m.payload).map((e) => e.id)),
    events.map((e) => e.env.id),
  );
});

test("each event of a batch carries its revision (a reader that parses PublishedEvents one by one reads it)", () => {
  const events = [
    logged("9", "task", "a", 1, "TaskStatusUpdated"),
    logged("9", "task", "b", 1, "TaskStatusUpdated"),
  ];
  const [m] = eventMessages(events);
  assert.ok(m);
  const batch = JSON.parse(dec.decode(m.payload)) as { revision: string; events: unknown[] };
  assert.equal(batch.revision, "9");
  assert.deepEqual(
    batch.events.map((e) => PublishedEventSchema.parse(e)).map((e) => [e.id, e.revision]),
    [
      ["a", "9"],
      ["b", "9"],
    ],
  );
});
