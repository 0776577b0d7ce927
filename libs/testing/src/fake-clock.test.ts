import assert from "node:assert/strict";
import { test } from "node:test";
import { coalesce } from "@drover/common";
import fc from "fast-check";
import { FakeClock, TEST_EPOCH_MS } from "./fake-clock.js";
import { MemoryKv } from "./memory-kv.js";

test("timers run in time order, equal times in the order they were set; the time is each timer's own", async () => {
  const clock = new FakeClock();
  assert.equal(clock.now(), TEST_EPOCH_MS);
  const ran: string[] = [];
  const at = (name: string) => () => ran.push(`${name}@${clock.now() - TEST_EPOCH_MS}`);
  clock.setTimeout(at("c"), 300);
  clock.setTimeout(at("a"), 100);
  clock.setTimeout(at("b1"), 200);
  clock.setTimeout(at("b2"), 200);
  clock.setTimeout(at("late"), 1001);
  await clock.advance(1000);
  assert.deepEqual(ran, ["a@100", "b1@200", "b2@200", "c@300"]);
  assert.equal(clock.now(), TEST_EPOCH_MS + 1000);
  assert.equal(clock.pending(), 1);
  await clock.advance(1);
  assert.deepEqual(ran.at(-1), "late@1001");
});

test("timers set by timers run in the same advance when they are due; cancel stops a timer", async () => {
  const clock = new FakeClock(0);
  const ran: number[] = [];
  clock.setTimeout(() => {
    ran.push(clock.now());
    clock.setTimeout(() => ran.push(clock.now()), 50);
    clock.setTimeout(() => ran.push(clock.now()), 0);
  }, 100);
  const cancelled = clock.setTimeout(() => ran.push(-1), 120);
  cancelled.cancel();
  await clock.advance(200);
  assert.deepEqual(ran, [100, 100, 150]);
  assert.equal(clock.pending(), 0);
});

test("intervals repeat at their period and interleave with timeouts in time order (a run re-arms an interval)", async () => {
  const clock = new FakeClock(0);
  const ran: string[] = [];
  const every = clock.setInterval(() => ran.push(`i${clock.now()}`), 100);
  clock.setTimeout(() => ran.push(`t${clock.now()}`), 250);
  clock.setTimeout(() => ran.push(`t${clock.now()}`), 300);
  await clock.advance(350);
  // At 300: the timeout was set at 0, the interval's third run when its second ran (at 200).
  assert.deepEqual(ran, ["i100", "i200", "t250", "t300", "i300"]);
  every.cancel();
  await clock.advance(1000);
  assert.equal(ran.length, 5);
});

test("advance awaits the async work a timer starts (a store call, then another timer)", async () => {
  const clock = new FakeClock(0);
  const kv = new MemoryKv();
  const log: string[] = [];
  const work = async () => {
    await kv.txn({ success: [{ request_put: { key: Buffer.from("k"), value: Buffer.from("1") } }] });
    const res = await kv.range({ key: Buffer.from("k") });
    log.push(`read ${res.kvs[0]?.value.toString()} at ${clock.now()}`);
    clock.setTimeout(() => log.push(`follow-up at ${clock.now()}`), 10);
  };
  clock.setTimeout(() => void work(), 100);
  await clock.advance(110);
  assert.deepEqual(log, ["read 1 at 100", "follow-up at 110"]);
});

test("coalesce (libs/common) runs on the fake clock: at most once per window", async () => {
  const clock = new FakeClock(0);
  const runs: number[] = [];
  const c = coalesce(() => void runs.push(clock.now()), 1000, undefined, clock);
  c.trigger();
  c.trigger();
  await clock.advance(500);
  c.trigger();
  await clock.advance(500);
  assert.deepEqual(runs, [1000]);
  c.trigger();
  await clock.advance(2000);
  assert.deepEqual(runs, [1000, 2000]);
  c.cancel();
});

test("runAll runs every one-shot timer (and intervals due on the way); next runs one; a self-arming timer is caught", async () => {
  const clock = new FakeClock(0);
  const ran: number[] = [];
  clock.setTimeout(() => ran.push(clock.now()), 5000);
  clock.setTimeout(() => clock.setTimeout(() => ran.push(clock.now()), 7000), 1000);
  const beat = clock.setInterval(() => undefined, 1000);
  await clock.runAll();
  assert.deepEqual(ran, [5000, 8000]);
  assert.equal(clock.now(), 8000);
  assert.equal(clock.pending(), 1);
  beat.cancel();

  clock.setTimeout(() => ran.push(-1), 10);
  assert.equal(clock.nextAt(), 8010);
  assert.equal(await clock.next(), true);
  assert.equal(await clock.next(), false);

  const rearm = () => {
    clock.setTimeout(rearm, 1);
  };
  rearm();
  await assert.rejects(clock.runAll(100), /re-arming/);
});

test("sleep resolves on the clock; advance refuses to run inside another advance", async () => {
  const clock = new FakeClock(0);
  let woke = false;
  const sleeping = clock.sleep(100).then(() => {
    woke = true;
  });
  await clock.advance(99);
  assert.equal(woke, false);
  await clock.advance(1);
  await sleeping;
  assert.equal(woke, true);

  let inner: Promise<unknown> | undefined;
  clock.setTimeout(() => {
    inner = clock.advance(1).then(
      () => "no error",
      (err: Error) => err.message,
    );
  }, 1);
  await clock.advance(1);
  assert.match(String(await inner), /while another advance/);
  await assert.rejects(clock.advance(-1), /not a duration/);
});

test("property: timers fire in (time, set order), each at its own time, however advance is split", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.nat(1000), { maxLength: 30 }),
      fc.array(fc.nat(400), { minLength: 1, maxLength: 8 }),
      async (delays, steps) => {
        const clock = new FakeClock(0);
        const fired: [number, number, number][] = [];
        delays.forEach((d, i) => {
          clock.setTimeout(() => fired.push([d, i, clock.now()]), d);
        });
        for (const s of steps) await clock.advance(s);
        const total = steps.reduce((a, b) => a + b, 0);
        const expected = delays
          .map((d, i) => [d, i, d] as [number, number, number])
          .filter(([d]) => d <= total)
          .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        assert.deepEqual(fired, expected);
        assert.equal(clock.now(), total);
      },
    ),
    { numRuns: 200 },
  );
});
