import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { rollingStep } from "./rolling.js";
import { RollingSim } from "./rolling-sim.js";

const strategy = (minimumHealthCapacity: number, maximumOverCapacity: number) => ({
  minimumHealthCapacity,
  maximumOverCapacity,
});

function sim(n: number, minH: number, overCap: number, resident = false, canaryInstances?: number) {
  const s = new RollingSim({
    instances: n,
    strategy: strategy(minH, overCap),
    resident,
    ...(canaryInstances === undefined ? {} : { canaryInstances }),
  });
  s.addOld(n);
  return s;
}

/** Runs new tasks up to healthy one at a time and old ones down as killed; returns the peak of active tasks. */
function finish(s: RollingSim, maxRounds: number): number {
  let peak = s.active().length;
  for (let round = 0; round < maxRounds; round++) {
    const st = s.step();
    peak = Math.max(peak, s.active().length);
    if (st.done) return peak;
    s.startNew();
    s.healthyNew(1);
    s.dieKilled(1);
  }
  assert.fail(`not done after ${maxRounds} rounds: ${s.peek().waitingFor}`);
}

describe("rollingStep: SEMANTICS.md section 1, worked examples", () => {
  it("n=4, 1/1 (default): starts 4 at once, then kills one old per new healthy and ready", () => {
    const s = sim(4, 1, 1);
    const first = s.step();
    assert.deepEqual([first.kill, first.launch], [[], 4]);
    assert.equal(first.counts.minHealthy, 4);
    assert.equal(first.counts.maxInstances, 8);
    assert.deepEqual(s.step().kill, [], "calling again asks nothing more");
    s.startNew();
    assert.deepEqual([s.step().kill, s.peek().launch], [[], 0], "running but not healthy: nothing");
    for (let i = 0; i < 4; i++) {
      s.healthyNew(1);
      const st = s.step();
      assert.deepEqual(st.kill, [`old-00${i}`], `new healthy #${i + 1} kills exactly one old, the oldest`);
      assert.equal(st.launch, 0);
      assert.equal(st.done, false);
    }
    assert.match(s.peek().waitingFor, /waiting for 4 old instances to stop/);
    s.dieKilled();
    const end = s.step();
    assert.equal(end.done, true);
    assert.equal(end.waitingFor, "");
    assert.deepEqual([end.counts.new, end.counts.newHealthy, end.counts.old], [4, 4, 0]);
  });

  it("n=4, 0.5/0 (resident default): kills 2 at start, starts one per old death, kills one more per new healthy", () => {
    const s = sim(4, 0.5, 0, true);
    const first = s.step();
    assert.deepEqual(first.kill, ["old-000", "old-001"]);
    assert.equal(first.launch, 0, "the old ones being killed still hold capacity");
    assert.deepEqual([first.counts.minHealthy, first.counts.maxInstances], [2, 4]);
    assert.deepEqual([s.step().kill, s.peek().launch], [[], 0]);
    s.dieKilled(1);
    assert.equal(s.step().launch, 1, "an old death starts one new");
    s.dieKilled(1);
    assert.equal(s.step().launch, 1, "an old death starts one new");
    s.startNew();
    assert.deepEqual(s.step().kill, [], "running is not healthy");
    s.healthyNew(1);
    const k1 = s.step();
    assert.deepEqual([k1.kill, k1.launch], [["old-002"], 0], "a new healthy kills one more old");
    s.dieKilled();
    assert.equal(s.step().launch, 1);
    s.healthyNew(1);
    assert.deepEqual(s.step().kill, ["old-003"]);
    s.dieKilled();
    assert.equal(s.step().launch, 1);
    s.startNew();
    s.healthyNew();
    assert.equal(s.step().done, true);
  });

  it("n=3, 1/0: strictly one by one with one extra instance", () => {
    const s = sim(3, 1, 0);
    const first = s.step();
    assert.deepEqual([first.kill, first.launch], [[], 1]);
    assert.deepEqual([first.counts.minHealthy, first.counts.maxInstances], [3, 4]);
    for (let i = 0; i < 3; i++) {
      s.startNew();
      assert.deepEqual([s.step().kill, s.peek().launch], [[], 0], "waits for the new one");
      s.healthyNew();
      const k = s.step();
      assert.deepEqual([k.kill, k.launch], [[`old-00${i}`], 0], "then kills exactly one old");
      assert.equal(s.active().length, 4, "never more than one extra");
      s.dieKilled();
      const l = s.step();
      assert.equal(l.launch, i < 2 ? 1 : 0);
      assert.equal(l.done, i === 2);
    }
  });

  it("n=4, 0/0: stops all, then starts all", () => {
    const s = sim(4, 0, 0);
    const first = s.step();
    assert.equal(first.kill.length, 4);
    assert.equal(first.launch, 0);
    s.dieKilled(3);
    assert.equal(s.step().launch, 3, "each old death frees room for one new");
    s.dieKilled();
    assert.equal(s.step().launch, 1);
    s.startNew();
    s.healthyNew();
    assert.equal(s.step().done, true);
  });

  it("n=3, 0.7/1: minHealthy ceil(2.1) = 3, capacity 6: as the default", () => {
    const s = sim(3, 0.7, 1);
    const first = s.step();
    assert.deepEqual([first.kill, first.launch], [[], 3]);
    assert.deepEqual([first.counts.minHealthy, first.counts.maxInstances], [3, 6]);
    s.startNew();
    s.healthyNew(1);
    assert.deepEqual(s.step().kill, ["old-000"]);
  });
});

describe("rollingStep: the other rules", () => {
  it("a resident app at the limit (1/0) kills one more instead of running an extra instance", () => {
    const s = sim(3, 1, 0, true);
    const first = s.step();
    assert.deepEqual([first.kill, first.launch], [["old-000"], 0]);
    assert.equal(first.counts.maxInstances, 3, "no extra instance");
    assert.deepEqual(s.step().kill, [], "healthy is now below the minimum: no more kills");
    s.dieKilled();
    assert.equal(s.step().launch, 1);
    s.startNew();
    s.healthyNew();
    assert.deepEqual(s.step().kill, ["old-001"]);
    assert.equal(finish(s, 20), 3, "never above n");
  });

  it("kills the surplus beyond n left by an interrupted forced deployment", () => {
    const s = sim(3, 1, 1);
    s.addOld(2);
    const first = s.step();
    assert.deepEqual(first.kill, ["old-000", "old-001"], "5 old for n=3: the 2 oldest go");
    assert.equal(first.launch, 1, "capacity 6 − 5 active");
    assert.equal(finish(s, 20), 6);
  });

  it("an interrupted deployment's new tasks count: 4 old + 2 new healthy for n=4 at 1/1", () => {
    const s = sim(4, 1, 1);
    s.addNew(2);
    const first = s.step();
    assert.deepEqual([first.kill, first.launch], [["old-000", "old-001"], 2]);
    finish(s, 20);
  });

  it("kills new tasks beyond n, not-ready ones first, then the youngest", () => {
    const s = new RollingSim({ instances: 2, strategy: strategy(1, 1), resident: false });
    s.addNew(2);
    const [notReady] = s.addNew(1, { ready: false });
    s.addNew(1);
    const st = s.step();
    assert.deepEqual(st.kill, [notReady, "new-003"]);
    assert.equal(st.done, false);
    assert.match(st.waitingFor, /2 new instances beyond 2 to stop/);
    assert.equal(s.step().done, true, "done once they are going; no old task is left");
  });

  it("unhealthy old instances go first (and at once); healthy ones oldest first", () => {
    const s = new RollingSim({ instances: 4, strategy: strategy(0.5, 0), resident: true });
    s.addOld(3);
    const [sick] = s.addOld(1, { healthy: false });
    const st = s.step();
    assert.deepEqual(st.kill, [sick, "old-000"], "healthy 3, minimum 2: the sick one and one healthy");
  });

  it("an unhealthy old task does not stall n=3 at 1/0 (Marathon would wait forever)", () => {
    const s = new RollingSim({ instances: 3, strategy: strategy(1, 0), resident: false });
    s.addOld(2);
    const [sick] = s.addOld(1, { state: "TASK_STAGING", healthy: false });
    const st = s.step();
    assert.deepEqual([st.kill, st.launch], [[sick], 0]);
    s.dieKilled();
    assert.equal(s.step().launch, 1);
    finish(s, 20);
  });

  it("a new task healthy but not ready does not count; nor does a new task that is not RUNNING", () => {
    const s = sim(2, 1, 1);
    s.addNew(1, { ready: false });
    s.addNew(1, { state: "TASK_UNREACHABLE" });
    const st = s.peek();
    assert.deepEqual([st.kill, st.launch, st.counts.newHealthy, st.counts.healthy], [[], 0, 0, 2]);
    assert.equal(
      st.waitingFor,
      "waiting for 2 of 2 new instances to become healthy and ready; waiting for 2 old instances to stop (2 kept while the minimum health capacity needs them)",
    );
  });

  it("says why it cannot start more: no room", () => {
    const s = sim(4, 1, 0.25);
    const st = s.step();
    assert.deepEqual([st.launch, st.counts.maxInstances], [1, 5]);
    assert.equal(
      st.waitingFor,
      "waiting for 4 of 4 new instances to become healthy and ready; 3 not started yet: no room (4 active, at most 5); waiting for 4 old instances to stop (4 kept while the minimum health capacity needs them)",
    );
  });

  it("n=0 kills every old task and is done when they are gone", () => {
    const s = sim(0, 1, 1);
    s.addOld(2);
    const st = s.step();
    assert.deepEqual([st.kill.length, st.launch, st.done], [2, 0, false]);
    s.dieKilled();
    assert.equal(s.step().done, true);
  });

  it("does not kill what is already being killed, and counts it as capacity until terminal", () => {
    const s = sim(2, 0, 0);
    s.get("old-000").killRequested = true;
    s.get("old-001").state = "TASK_KILLING";
    const st = s.peek();
    assert.deepEqual([st.kill, st.launch, st.counts.old], [[], 0, 2]);
  });

  it("clamps the strategy and the counts", () => {
    const st = rollingStep({
      instances: 2.7,
      strategy: strategy(3, -1), // read as 1 / 0: minHealthy 2, capacity 2 (no extra: nothing healthy)
      resident: false,
      tasks: [],
    });
    assert.deepEqual([st.counts.minHealthy, st.counts.maxInstances, st.launch], [2, 2, 2]);
  });
});

describe("rollingStep: canaries", () => {
  it("launches only the canaries, kills no healthy old, and waits for promote", () => {
    const s = sim(4, 1, 1, false, 1);
    const first = s.step();
    assert.deepEqual([first.kill, first.launch, first.done], [[], 1, false]);
    assert.equal(first.waitingFor, "canary: 0 of 1 new instances healthy; waiting for promote");
    s.startNew();
    s.healthyNew();
    const st = s.step();
    assert.deepEqual([st.kill, st.launch, st.done], [[], 0, false]);
    assert.equal(st.waitingFor, "canary: 1 of 1 new instances healthy; waiting for promote");
    assert.equal(
      s.count((t) => !t.isNew),
      4,
      "all old ones still run",
    );
    // promote
    s.config = { ...s.config, canaryInstances: undefined };
    delete s.config.canaryInstances;
    const promoted = s.step();
    assert.deepEqual([promoted.kill, promoted.launch], [["old-000"], 3]);
    finish(s, 30);
  });

  it("kills only the surplus beyond n, unhealthy first", () => {
    const s = new RollingSim({ instances: 2, strategy: strategy(1, 1), resident: false, canaryInstances: 2 });
    s.addOld(2);
    const [sick] = s.addOld(1, { healthy: false });
    s.addOld(1);
    const st = s.step();
    assert.deepEqual(st.kill, [sick, "old-000"]);
    assert.equal(st.launch, 0, "4 active, at most 4");
    assert.equal(
      st.waitingFor,
      "canary: 0 of 2 new instances healthy; waiting for promote (no room to start 2 more: 4 active, at most 4)",
    );
  });

  it("does not kill an unhealthy old one within n during the canary phase", () => {
    const s = new RollingSim({ instances: 2, strategy: strategy(1, 1), resident: false, canaryInstances: 1 });
    s.addOld(1);
    s.addOld(1, { healthy: false });
    assert.deepEqual(s.step().kill, []);
  });

  it("canaryInstances 0 launches nothing and is never done; a canary count above n launches n", () => {
    assert.equal(sim(3, 1, 1, false, 0).step().launch, 0);
    const s = sim(2, 1, 1, false, 5);
    assert.equal(s.step().launch, 2);
    s.startNew();
    s.healthyNew();
    const st = s.step();
    assert.deepEqual([st.done, st.kill], [false, []]);
    assert.equal(st.waitingFor, "canary: 2 of 2 new instances healthy; waiting for promote");
  });
});
