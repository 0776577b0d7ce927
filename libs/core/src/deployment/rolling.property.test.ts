import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isActive, type TaskState } from "../task-state.js";
import { type DeploymentTask, type RollingStep, rollingStep } from "./rolling.js";
import { healthyCount, RollingSim, type SimConfig } from "./rolling-sim.js";

/** Strategy values: the table's ones, the edges, and anything in [0, 1]. */
const capacity = fc.oneof(fc.constantFrom(0, 0.5, 1, 0.7, 0.25), fc.double({ min: 0, max: 1, noNaN: true }));

const taskShape = fc.record({
  state: fc.constantFrom<TaskState>(
    "TASK_RUNNING",
    "TASK_RUNNING",
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_KILLING",
    "TASK_UNREACHABLE",
  ),
  healthy: fc.boolean(),
  ready: fc.boolean(),
  killRequested: fc.boolean(),
  createdAtMs: fc.integer({ min: 0, max: 5 }),
});

const scenario = fc.record({
  n: fc.integer({ min: 0, max: 12 }),
  minimumHealthCapacity: capacity,
  maximumOverCapacity: capacity,
  resident: fc.boolean(),
  canary: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }),
  /** Old tasks as n + delta (an interrupted forced deployment leaves more, a failure fewer). */
  oldDelta: fc.integer({ min: -3, max: 3 }),
  oldShapes: fc.array(taskShape, { maxLength: 16 }),
  newShapes: fc.array(taskShape, { maxLength: 4 }),
});

type Event =
  | { kind: "step"; shuffle: number }
  | { kind: "start"; i: number }
  | { kind: "health"; i: number; healthy: boolean; ready: boolean }
  | { kind: "fail"; i: number; state: TaskState }
  | { kind: "killedDies"; i: number };

const event: fc.Arbitrary<Event> = fc.oneof(
  fc.record({ kind: fc.constant("step" as const), shuffle: fc.integer() }),
  fc.record({ kind: fc.constant("start" as const), i: fc.nat() }),
  fc.record({
    kind: fc.constant("health" as const),
    i: fc.nat(),
    healthy: fc.boolean(),
    ready: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("fail" as const),
    i: fc.nat(),
    state: fc.constantFrom<TaskState>("TASK_FAILED", "TASK_LOST", "TASK_UNREACHABLE", "TASK_KILLING"),
  }),
  fc.record({ kind: fc.constant("killedDies" as const), i: fc.nat() }),
);

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

function build(sc: Scenario): RollingSim {
  const config: SimConfig = {
    instances: sc.n,
    strategy: {
      minimumHealthCapacity: sc.minimumHealthCapacity,
      maximumOverCapacity: sc.maximumOverCapacity,
    },
    resident: sc.resident,
    ...(sc.canary === undefined ? {} : { canaryInstances: sc.canary }),
  };
  const s = new RollingSim(config);
  const oldCount = Math.max(0, sc.n + sc.oldDelta);
  for (let i = 0; i < oldCount; i++) s.addOld(1, consistent(sc.oldShapes[i]));
  for (const shape of sc.newShapes) s.addNew(1, consistent(shape));
  return s;
}

/** Health only on RUNNING tasks, as the scheduler reports it. */
function consistent(shape: Partial<DeploymentTask> | undefined): Partial<DeploymentTask> {
  if (shape === undefined) return {};
  const running = shape.state === "TASK_RUNNING";
  return { ...shape, healthy: running && shape.healthy === true, ready: running && shape.ready === true };
}

function strategyBounds(s: RollingSim) {
  const n = s.config.instances;
  const minHealthy = Math.ceil(n * s.config.strategy.minimumHealthCapacity);
  const strategyMax = Math.floor(n * (1 + s.config.strategy.maximumOverCapacity));
  return { n, minHealthy, strategyMax, meets: minHealthy === strategyMax };
}

function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let x = seed | 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = Math.abs(x) % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Checks (a), (b), (d), (e) and the canary rules on one step, then carries it out. */
function checkedStep(s: RollingSim, shuffle: number): RollingStep {
  const input = s.input();
  const st = rollingStep(input);
  const { n, minHealthy, strategyMax, meets } = strategyBounds(s);
  const canary = s.config.canaryInstances;

  // (d) the order of tasks does not matter
  assert.deepEqual(rollingStep({ ...input, tasks: shuffled(input.tasks, shuffle) }), st);
  assert.deepEqual(rollingStep({ ...input, tasks: [...input.tasks].reverse() }), st);

  // kills name live tasks, once each
  assert.equal(new Set(st.kill).size, st.kill.length);
  for (const id of st.kill) {
    const t = s.get(id);
    assert.ok(isActive(t.state) && !t.killRequested && t.state !== "TASK_KILLING", `kills ${id} again`);
  }

  const healthyBefore = healthyCount(s.tasks);
  const activeBefore = s.active().length;
  const oldLiveBefore = s.count((t) => !t.isNew && !t.killRequested && t.state !== "TASK_KILLING");
  const healthyOldKilled = st.kill.filter((id) => {
    const t = s.get(id);
    return !t.isNew && t.state === "TASK_RUNNING" && t.healthy;
  }).length;
  s.apply(st);
  const healthyAfter = healthyCount(s.tasks);

  // (a) kills keep the healthy count at the minimum (one below for a resident app at the limit)
  if (healthyBefore >= minHealthy) {
    const floor = minHealthy - (s.config.resident && meets ? 1 : 0);
    assert.ok(healthyAfter >= floor, `healthy ${healthyBefore} → ${healthyAfter} < ${floor}`);
  } else {
    assert.equal(healthyAfter, healthyBefore, "already below the minimum: no healthy kill");
  }

  // (b) launches keep active tasks within the capacity (+1 in the meeting case, non-resident)
  if (st.launch > 0) {
    const cap = strategyMax + (meets && !s.config.resident ? 1 : 0);
    assert.ok(activeBefore + st.launch <= cap, `${activeBefore} + ${st.launch} > ${cap}`);
    assert.ok(st.launch <= n);
  }

  // done means: no old task active, exactly n live new tasks, all healthy and ready
  if (st.done)
    assert.deepEqual(
      [
        input.tasks.filter((t) => isActive(t.state) && !t.isNew).length,
        input.tasks.filter(
          (t) => isActive(t.state) && t.isNew && !t.killRequested && t.state !== "TASK_KILLING",
        ).length,
        healthyCount(input.tasks),
      ],
      [0, n, n],
    );

  // (e) waitingFor is empty exactly when done, and names counts
  assert.equal(st.waitingFor === "", st.done);
  if (canary !== undefined) {
    assert.equal(st.done, false);
    const m = Math.min(n, canary);
    assert.ok(
      st.waitingFor.startsWith(
        `canary: ${st.counts.newHealthy} of ${m} new instances healthy; waiting for promote`,
      ),
      st.waitingFor,
    );
    // canaries: never more than that many live new tasks by a launch; no healthy old killed within n
    if (st.launch > 0) assert.ok(st.counts.new + st.launch <= m);
    if (oldLiveBefore <= n) assert.equal(healthyOldKilled, 0);
  } else if (!st.done) {
    if (st.counts.newHealthy < n)
      assert.ok(st.waitingFor.includes(`${n - st.counts.newHealthy} of ${n} new instances`), st.waitingFor);
    if (st.counts.old > 0) assert.ok(st.waitingFor.includes(`${st.counts.old} old instances`), st.waitingFor);
  }
  return st;
}

function pick(s: RollingSim, i: number, p: (t: DeploymentTask) => boolean): DeploymentTask | undefined {
  const ts = s.tasks.filter((t) => isActive(t.state) && p(t));
  return ts.length === 0 ? undefined : ts[i % ts.length];
}

function play(s: RollingSim, e: Event): void {
  switch (e.kind) {
    case "step":
      checkedStep(s, e.shuffle);
      return;
    case "start": {
      const t = pick(s, e.i, (x) => x.state === "TASK_STAGING" || x.state === "TASK_STARTING");
      if (t !== undefined) t.state = t.state === "TASK_STAGING" ? "TASK_STARTING" : "TASK_RUNNING";
      return;
    }
    case "health": {
      const t = pick(s, e.i, (x) => x.state === "TASK_RUNNING");
      if (t !== undefined) {
        t.healthy = e.healthy;
        t.ready = e.ready;
      }
      return;
    }
    case "fail": {
      const t = pick(s, e.i, () => true);
      if (t !== undefined) {
        t.state = e.state;
        if (e.state !== "TASK_RUNNING") {
          t.healthy = false;
          t.ready = false;
        }
      }
      return;
    }
    case "killedDies": {
      const t = pick(s, e.i, (x) => x.killRequested);
      if (t !== undefined) t.state = "TASK_KILLED";
    }
  }
}

/** One round of a world where nothing fails: the step is carried out, kills complete, every task comes up healthy and ready. */
function settleRound(s: RollingSim): RollingStep {
  const st = checkedStep(s, s.tasks.length);
  for (const t of s.active()) {
    if (t.killRequested || t.state === "TASK_KILLING") t.state = "TASK_KILLED";
    else {
      t.state = "TASK_RUNNING";
      t.healthy = true;
      t.ready = true;
    }
  }
  return st;
}

function converges(s: RollingSim): void {
  const { n } = strategyBounds(s);
  const bound = 4 * n + 4;
  if (s.config.canaryInstances !== undefined) {
    // the canary phase comes to rest, then promote
    let rounds = 0;
    for (; rounds < bound; rounds++) {
      const st = settleRound(s);
      if (st.launch === 0 && st.kill.length === 0) break;
    }
    assert.ok(rounds < bound, "the canary phase does not come to rest");
    const m = Math.min(n, s.config.canaryInstances);
    assert.ok(s.count((t) => t.isNew) <= Math.max(m, s.tasks.filter((t) => t.isNew).length));
    const { canaryInstances: _promoted, ...rest } = s.config;
    s.config = rest;
  }
  for (let round = 0; round <= bound; round++) {
    const st = settleRound(s);
    if (st.done) {
      assert.equal(
        s.count((t) => t.isNew && !t.killRequested && t.healthy && t.ready),
        n,
      );
      assert.equal(
        s.count((t) => !t.isNew),
        0,
      );
      return;
    }
  }
  assert.fail(`not done within ${bound} rounds: ${s.peek().waitingFor}`);
}

describe("rollingStep: properties over any interleaving", () => {
  it("(a) healthy floor, (b) capacity, (d) order-free, (e) waitingFor, canaries — then (c) convergence", () => {
    fc.assert(
      fc.property(scenario, fc.array(event, { maxLength: 60 }), (sc, events) => {
        const s = build(sc);
        for (const e of events) play(s, e);
        converges(s);
      }),
      { numRuns: 1500 },
    );
  });

  it("(c) from a clean start, converges within 4n + 4 rounds without ever breaking (a) or (b)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 12 }),
        capacity,
        capacity,
        fc.boolean(),
        (n, minimumHealthCapacity, maximumOverCapacity, resident) => {
          const s = new RollingSim({
            instances: n,
            strategy: { minimumHealthCapacity, maximumOverCapacity },
            resident,
          });
          s.addOld(n);
          converges(s);
        },
      ),
      { numRuns: 800 },
    );
  });

  it("the meeting case: 1/0 non-resident never exceeds n + 1, resident never exceeds n", () => {
    for (const resident of [false, true])
      for (let n = 1; n <= 12; n++) {
        const s = new RollingSim({
          instances: n,
          strategy: { minimumHealthCapacity: 1, maximumOverCapacity: 0 },
          resident,
        });
        s.addOld(n);
        let peak = 0;
        for (let r = 0; r < 4 * n + 4 && !s.peek().done; r++) {
          settleRound(s);
          peak = Math.max(peak, s.active().length);
        }
        assert.equal(s.peek().done, true);
        assert.ok(peak <= n + (resident ? 0 : 1), `n=${n} resident=${resident} peak ${peak}`);
      }
  });
});
