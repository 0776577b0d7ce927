import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Clock, systemClock } from "@drover/common";
import { FakeClock } from "@drover/testing";
import { assertEventOrder, describeExecutor, EventRecorder } from "../conformance.js";
import type { ExecutorEvent, TaskLaunchSpec } from "../executor.js";
import { parseCmd, type SimulationProfileInput, SimulationProfileSchema, taskFate } from "./fate.js";
import { SimulatedHost } from "./host.js";
import { mulberry32 } from "./random.js";
import { SimulatedExecutor } from "./simulated.js";

// ── the conformance suite, on the real clock ─────────────────────────────────────────────────────

const host = new SimulatedHost();
describeExecutor(
  "SimulatedExecutor",
  (agentId) =>
    new SimulatedExecutor({
      agentId,
      host,
      profile: { seed: 7, startLatencyMs: { min: 1, max: 20 }, stopMs: { min: 0, max: 20 } },
    }),
  {
    // The same commands the Docker run uses: the simulated runtime reads them as busybox would run them.
    faults: {
      runsUntilKilled: () => ({ cmd: "sleep 300" }),
      exitsWith: (code, afterSeconds = 0) => ({
        cmd: afterSeconds > 0 ? `sleep ${afterSeconds}; exit ${code}` : `exit ${code}`,
      }),
      ignoresSigterm: () => ({ cmd: "trap '' TERM; sleep 300" }),
      failsToLaunch: () => ({ image: "registry.invalid/drover/none:1" }),
      crash: async (agentId, taskId) => {
        assert.ok(host.crash(agentId, taskId, 137), "the container was running");
        return 137;
      },
    },
    waitMs: 10_000,
    killSlackMs: 1_000,
    cleanup: async () => host.clear(),
  },
);

// ── what only the simulated runtime does ─────────────────────────────────────────────────────────

function spec(agentId: string, taskId: string, over: Partial<TaskLaunchSpec> = {}): TaskLaunchSpec {
  return {
    taskId,
    appId: "sim",
    frameworkId: "fw",
    agentId,
    image: "drover/busybox:1",
    cpus: 0.1,
    mem: 32,
    env: {},
    labels: {},
    ...over,
  };
}

/** A simulation on a fake clock: executors for agents a0…a(n-1) on one host, their events recorded. */
function simulation(agents: number, profile: SimulationProfileInput) {
  const clock = new FakeClock(1_000_000);
  const host = new SimulatedHost({ clock });
  const rec = new EventRecorder();
  const executors = Array.from({ length: agents }, (_, i) => {
    const ex = new SimulatedExecutor({ agentId: `a${i}`, host, profile });
    ex.onEvent(rec.push);
    return ex;
  });
  return { clock, host, rec, executors };
}

describe("SimulatedExecutor", () => {
  test("commands follow the busybox conventions", () => {
    const cases: Array<[string | undefined, ReturnType<typeof parseCmd>]> = [
      [undefined, { defined: false, runMs: 0, exitCode: 0, ignoresTerm: false }],
      ["echo hello; httpd -f -p 8080", { defined: false, runMs: 0, exitCode: 0, ignoresTerm: false }],
      ["exit 3", { defined: true, runMs: 0, exitCode: 3, ignoresTerm: false }],
      ["sleep 1.5; exit 7; sleep 9", { defined: true, runMs: 1500, exitCode: 7, ignoresTerm: false }],
      ["sleep 2 && sleep 3", { defined: true, runMs: 5000, exitCode: 0, ignoresTerm: false }],
      ["sleep infinity", { defined: true, runMs: undefined, exitCode: 0, ignoresTerm: false }],
      ["trap '' TERM; sleep 300", { defined: true, runMs: 300_000, exitCode: 0, ignoresTerm: true }],
      ["sleep 1; false", { defined: true, runMs: 1000, exitCode: 1, ignoresTerm: false }],
      ["true", { defined: true, runMs: 0, exitCode: 0, ignoresTerm: false }],
      ["exit 300", { defined: true, runMs: 0, exitCode: 44, ignoresTerm: false }],
    ];
    for (const [cmd, want] of cases) assert.deepEqual(parseCmd(cmd), want, String(cmd));
  });

  test("a profile is validated with the field named", () => {
    assert.deepEqual(SimulationProfileSchema.parse({}).startLatencyMs, { min: 10, max: 100 });
    for (const [bad, path] of [
      [{ startLatencyMs: { min: 5, max: 1 } }, "startLatencyMs.max"],
      [{ failureRate: 2 }, "failureRate"],
      [{ failureExitCodes: [] }, "failureExitCodes"],
      [{ seed: -1 }, "seed"],
      [{ launchFailureRate: 0.1, extra: 1 }, ""],
    ] as const) {
      const r = SimulationProfileSchema.safeParse(bad);
      assert.equal(r.success, false, JSON.stringify(bad));
      assert.ok(
        r.error?.issues.some((i) => i.path.join(".") === path),
        `${JSON.stringify(bad)}: ${JSON.stringify(r.error?.issues)}`,
      );
    }
    assert.throws(
      () => new SimulatedExecutor({ agentId: "a", host: new SimulatedHost(), profile: { failureRate: 2 } }),
    );
  });

  test("mulberry32 is deterministic and spread over [0, 1)", () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 10_000 }, () => a());
    assert.deepEqual(
      xs.slice(0, 5),
      Array.from({ length: 5 }, () => b()),
    );
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    assert.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`);
  });

  test("a task's fate depends on the seed, its agent and its id, not on the order of launches", async () => {
    const profile = {
      seed: 1234,
      startLatencyMs: { min: 10, max: 500 },
      runMs: { min: 1_000, max: 60_000 },
      failureRate: 0.5,
      failureExitCodes: [2, 3, 4],
    };
    const outcome = async (order: number[], seed = profile.seed) => {
      const sim = simulation(2, { ...profile, seed });
      for (const i of order) {
        void sim.executors[i % 2]?.launch(spec(`a${i % 2}`, `t${i}`));
      }
      await sim.clock.advance(70_000);
      const t0 = 1_000_000;
      return new Map(
        sim.rec.events.map((e) => [`${e.taskId}/${e.state}`, [e.timestampMs - t0, e.exitCode ?? null]]),
      );
    };
    const ids = Array.from({ length: 40 }, (_, i) => i);
    const forward = await outcome(ids);
    const backward = await outcome([...ids].reverse());
    assert.equal(forward.size, 40 * 3, "every task started, ran and exited within 70 s");
    assert.deepEqual(forward, backward);
    const reseeded = await outcome(ids, 99);
    assert.notDeepEqual(forward, reseeded);
    const codes = new Set([...forward.entries()].filter(([k]) => k.endsWith("FAILED")).map(([, v]) => v[1]));
    assert.ok(
      [...codes].every((c) => c === 2 || c === 3 || c === 4),
      JSON.stringify([...codes]),
    );
  });

  test("start latency, run time, failure and launch failure rates follow the profile", async () => {
    const sim = simulation(10, {
      seed: 5,
      startLatencyMs: { min: 100, max: 200 },
      runMs: { min: 1_000, max: 2_000 },
      failureRate: 0.3,
      failureExitCodes: [9],
      launchFailureRate: 0.1,
    });
    const launchedAt = sim.clock.now();
    const n = 2_000;
    for (let i = 0; i < n; i++) void sim.executors[i % 10]?.launch(spec(`a${i % 10}`, `t${i}`));
    await sim.clock.advance(2_500);
    const byTask = new Map<string, ExecutorEvent[]>();
    for (const e of sim.rec.events) byTask.set(e.taskId, [...(byTask.get(e.taskId) ?? []), e]);
    assert.equal(byTask.size, n);
    let launchFailures = 0;
    let failures = 0;
    for (const events of byTask.values()) {
      const states = events.map((e) => e.state);
      const end = events[events.length - 1] as ExecutorEvent;
      if (states.length === 2) {
        assert.deepEqual(states, ["TASK_STARTING", "TASK_FAILED"]);
        assert.equal(end.message, "simulated launch failure");
        launchFailures++;
        continue;
      }
      const running = events[1] as ExecutorEvent;
      const latency = running.timestampMs - launchedAt;
      assert.ok(latency >= 100 && latency <= 200, `start latency ${latency}`);
      const ran = end.timestampMs - running.timestampMs;
      assert.ok(ran >= 1_000 && ran <= 2_000, `run time ${ran}`);
      if (end.state === "TASK_FAILED") {
        assert.equal(end.exitCode, 9);
        failures++;
      } else assert.equal(end.state, "TASK_FINISHED");
    }
    // Binomial bounds far outside chance (the draws are seeded: the figures never change).
    assert.ok(launchFailures > 120 && launchFailures < 280, `launch failures ${launchFailures} of ${n}`);
    const started = n - launchFailures;
    assert.ok(failures > 0.22 * started && failures < 0.38 * started, `failures ${failures} of ${started}`);
    assertEventOrder(sim.rec.events);
    assert.equal(sim.host.size, 0, "exited containers are removed");
    assert.equal(sim.clock.pending(), 0);
  });

  test("startingWithRunning: STARTING is reported with what follows the start latency, not at launch", async () => {
    const sim = simulation(1, {
      seed: 2,
      startLatencyMs: { min: 100, max: 100 },
      launchFailureRate: 0,
      startingWithRunning: true,
    });
    const ex = sim.executors[0] as SimulatedExecutor;
    void ex.launch(spec("a0", "runs"));
    void ex.launch(spec("a0", "killed", { cmd: "sleep 300" }));
    assert.equal(sim.rec.events.length, 0, "nothing is reported at launch");
    await sim.clock.advance(50);
    assert.equal(sim.rec.events.length, 0);
    const kill = ex.kill("killed", 0);
    await kill;
    await sim.clock.advance(100);
    assert.deepEqual(sim.rec.states("runs"), ["TASK_STARTING", "TASK_RUNNING"]);
    const runs = (sim.rec.events as ExecutorEvent[]).filter((e) => e.taskId === "runs");
    assert.equal(runs[0]?.timestampMs, runs[1]?.timestampMs, "both at the end of the start latency");
    assert.deepEqual(sim.rec.states("killed"), ["TASK_STARTING", "TASK_KILLED"]);
    assertEventOrder(sim.rec.events);
    // Off (the default): STARTING at launch.
    const off = simulation(1, { seed: 2, startLatencyMs: { min: 100, max: 100 } });
    void off.executors[0]?.launch(spec("a0", "t"));
    assert.deepEqual(off.rec.states("t"), ["TASK_STARTING"]);
  });

  test("an image on a .invalid registry cannot be pulled", () => {
    const profile = SimulationProfileSchema.parse({});
    assert.match(
      taskFate(profile, "a", { taskId: "t", image: "sim.invalid/app:1" }).launchError ?? "",
      /pull access denied for sim.invalid\/app:1/,
    );
    assert.equal(taskFate(profile, "a", { taskId: "t", image: "drover/busybox:1" }).launchError, undefined);
    assert.equal(
      taskFate(profile, "a", { taskId: "t", image: "localhost:5000/app:1" }).launchError,
      undefined,
    );
  });

  test("kill timing on a fake clock: SIGTERM answered after stopMs, SIGKILL after the grace period", async () => {
    const sim = simulation(1, { startLatencyMs: { min: 0, max: 0 }, stopMs: { min: 300, max: 300 } });
    const ex = sim.executors[0] as SimulatedExecutor;
    await ex.launch(spec("a0", "polite", { cmd: "sleep 100" }));
    await ex.launch(spec("a0", "stubborn", { cmd: "trap '' TERM; sleep 100" }));
    await ex.launch(spec("a0", "slow", { cmd: "sleep 100" }));
    const t0 = sim.clock.now();
    let politeDone = -1;
    let stubbornDone = -1;
    let slowDone = -1;
    void ex.kill("polite", 10).then(() => {
      politeDone = sim.clock.now() - t0;
    });
    void ex.kill("stubborn", 10).then(() => {
      stubbornDone = sim.clock.now() - t0;
    });
    void ex.kill("slow", 0.1).then(() => {
      slowDone = sim.clock.now() - t0;
    });
    await sim.clock.advance(20_000);
    assert.deepEqual([politeDone, stubbornDone, slowDone], [300, 10_000, 100]);
    const codes = ["polite", "stubborn", "slow"].map((id) => sim.rec.terminals(id)[0]?.exitCode);
    assert.deepEqual(codes, [143, 137, 137]);
    assert.ok(
      ["polite", "stubborn", "slow"].every((id) => sim.rec.terminals(id)[0]?.state === "TASK_KILLED"),
    );
  });

  test("a task that exits on its own during a stop exits with its own code", async () => {
    const sim = simulation(1, { startLatencyMs: { min: 0, max: 0 } });
    const ex = sim.executors[0] as SimulatedExecutor;
    await ex.launch(spec("a0", "t", { cmd: "trap '' TERM; sleep 2; exit 4" }));
    void ex.kill("t", 10);
    await sim.clock.advance(3_000);
    const end = sim.rec.terminals("t");
    assert.equal(end.length, 1);
    assert.equal(end[0]?.state, "TASK_KILLED", "a kill was requested: KILLED whatever the code");
    assert.equal(end[0]?.exitCode, 4);
    assert.equal(sim.clock.pending(), 0, "the SIGKILL timer was cancelled");
  });

  test("5,000 agents × 20 tasks: all RUNNING, no timer left for services, small per-task memory", async (t) => {
    const agents = 5_000;
    const perAgent = 20;
    // The real clock, counting the timers that are set and neither run nor cancelled.
    let pending = 0;
    const clock: Clock = {
      now: () => systemClock.now(),
      setTimeout: (fn, ms) => {
        pending++;
        let live = true;
        const timer = systemClock.setTimeout(() => {
          live = false;
          pending--;
          fn();
        }, ms);
        return {
          cancel: () => {
            if (live) pending--;
            live = false;
            timer.cancel();
          },
        };
      },
      setInterval: () => assert.fail("the simulated runtime sets no interval"),
    };
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const heap0 = process.memoryUsage().heapUsed;
    const host = new SimulatedHost({ clock });
    let running = 0;
    const executors = Array.from({ length: agents }, (_, a) => {
      const ex = new SimulatedExecutor({
        agentId: `a${a}`,
        host,
        profile: { seed: 3, startLatencyMs: { min: 10, max: 100 } },
      });
      ex.onEvent((e) => {
        if (e.state === "TASK_RUNNING") running++;
      });
      return ex;
    });
    const t0 = performance.now();
    const launches: Promise<void>[] = [];
    for (const [a, ex] of executors.entries()) {
      for (let i = 0; i < perAgent; i++)
        launches.push(ex.launch(spec(`a${a}`, `a${a}.t${i}`, { cmd: "sleep infinity" })));
    }
    assert.equal(pending, agents * perAgent, "one start-latency timer per launch");
    await Promise.all(launches);
    launches.length = 0;
    const ms = performance.now() - t0;
    assert.equal(running, agents * perAgent);
    assert.equal(host.size, agents * perAgent);
    assert.equal(pending, 0, "a running service holds no timer");
    assert.equal((await (executors[4_999] as SimulatedExecutor).running()).size, perAgent);
    gc?.();
    const heapMiB = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
    t.diagnostic(
      `${agents * perAgent} tasks RUNNING in ${ms.toFixed(0)} ms; heap +${heapMiB.toFixed(1)} MiB ` +
        `(executors included${gc ? "" : "; without --expose-gc, garbage included"})`,
    );
    host.clear();
  });
});
