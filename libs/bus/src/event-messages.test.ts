import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { EventEnvelope } from "@drover/core";
import { decodeEventMessage } from "./event-messages.js";
import { eventMessages, type LoggedEvent } from "./events.js";

const logged = (id: string, version: number, revision: string, type = "TaskExpunged"): LoggedEvent => {
  const env: EventEnvelope = { aggregate: "task", id, version, atMs: 1000 + version, event: { type } };
  return {
    key: `/drover/log/task/${id}/${String(version).padStart(10, "0")}`,
    value: JSON.stringify(env),
    env,
    revision,
  };
};
const enc = new TextEncoder();

describe("decodeEventMessage", () => {
  it("reads what the relay publishes: a single event and a batch, in commit order, each with its revision", () => {
    const messages = eventMessages([logged("a", 1, "7"), logged("b", 1, "7"), logged("c", 1, "8")]);
    assert.equal(messages.length, 2);
    const batch = decodeEventMessage(messages[0]?.payload ?? new Uint8Array());
    assert.deepEqual(batch.invalid, []);
    assert.deepEqual(
      batch.events.map((e) => [e.id, e.revision]),
      [
        ["a", "7"],
        ["b", "7"],
      ],
    );
    const single = decodeEventMessage(messages[1]?.payload ?? new Uint8Array());
    assert.deepEqual(
      single.events.map((e) => [e.id, e.revision, e.event.type]),
      [["c", "8", "TaskExpunged"]],
    );
  });

  it("never throws: undecodable JSON and invalid events are reported, valid ones kept", () => {
    assert.deepEqual(decodeEventMessage(enc.encode("{not json")), {
      events: [],
      invalid: ["undecodable JSON"],
    });
    const good = {
      aggregate: "app",
      id: "x",
      version: 1,
      atMs: 1,
      revision: "3",
      event: { type: "AppDeleted" },
    };
    const r = decodeEventMessage(
      enc.encode(JSON.stringify({ revision: "3", events: [good, { aggregate: 5 }] })),
    );
    assert.equal(r.events.length, 1);
    assert.equal(r.invalid.length, 1);
  });
});
