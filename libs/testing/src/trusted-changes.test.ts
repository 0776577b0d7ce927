/**
 * A change marked trusted (events the master built from input it validated at its boundary) is not
 * parsed with the aggregate's schema again; any other change is.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { TaskAggregate, type TaskEvent } from "@drover/core";
import { AggregateCache, CommitQueue } from "@drover/store";
import { aTask } from "./builders.js";
import { TEST_EPOCH_MS } from "./fake-clock.js";
import { memoryStore } from "./memory-store.js";

/** A launch whose status has a field the schema refuses (strict object). */
function invalidLaunch(id: string): TaskEvent {
  const e = aTask().id(id).state("TASK_STAGING").launched() as TaskEvent & { type: "TaskLaunched" };
  return { ...e, status: { ...e.status, bogus: 1 } as never };
}

test("prepare parses an untrusted change's events and refuses an invalid one", () => {
  const { store } = memoryStore();
  assert.throws(() =>
    store.prepare(
      { def: TaskAggregate, id: "t1", expectedVersion: 0, state: undefined, events: [invalidLaunch("t1")] },
      TEST_EPOCH_MS,
    ),
  );
});

test("prepare does not parse a trusted change's events again", () => {
  const { store } = memoryStore();
  let parses = 0;
  const def = {
    ...TaskAggregate,
    eventSchema: {
      parse: (e: unknown) => {
        parses++;
        return TaskAggregate.eventSchema.parse(e);
      },
    },
  } as unknown as typeof TaskAggregate;
  const event = aTask().id("t2").state("TASK_STAGING").launched();
  const p = store.prepare(
    { def, id: "t2", expectedVersion: 0, state: undefined, events: [event], trusted: true },
    TEST_EPOCH_MS,
  );
  assert.equal(parses, 0);
  assert.equal(p.result.version, 1);
  store.prepare({ def, id: "t3", expectedVersion: 0, state: undefined, events: [event] }, TEST_EPOCH_MS);
  assert.equal(parses, 1);
});

test("the commit queue passes trusted through, and a unit merged with an untrusted change is parsed", async () => {
  const m = memoryStore();
  const cache = new AggregateCache();
  await cache.load(m.store, TaskAggregate);
  const queue = new CommitQueue({
    store: m.store,
    leadership: m.leadership,
    cache,
    now: () => TEST_EPOCH_MS,
  });
  // Trusted: the invalid event is written as given (the caller vouched for it).
  assert.equal(
    await queue.commit([{ def: TaskAggregate, id: "a", events: [invalidLaunch("a")], trusted: true }]),
    true,
  );
  // One change trusted, one not, on the same aggregate: merged, and parsed.
  await assert.rejects(
    queue.commit([
      {
        def: TaskAggregate,
        id: "b",
        events: [aTask().id("b").state("TASK_STAGING").launched()],
        trusted: true,
      },
      { def: TaskAggregate, id: "b", events: [invalidLaunch("b")] },
    ]),
  );
});
