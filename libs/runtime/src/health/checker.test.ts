import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { systemClock } from "@drover/common";
import {
  type CheckResult,
  type HealthCheckSpec,
  healthCheckSpec,
  type ReadinessProbe,
  readinessCheckSpec,
} from "@drover/core";
import { FakeClock } from "@drover/testing";
import type { CheckTarget, RunCheckOptions } from "./check.js";
import {
  type HealthChangedEvent,
  HealthChecker,
  type HealthKillEvent,
  type HealthResultEvent,
  type ReadinessEvent,
} from "./checker.js";
import { LocalCommandRunner } from "./command.js";
import { httpServer, until } from "./test-support.js";

const S = 1000;
const TARGET: CheckTarget = { host: "127.0.0.1", port: 31000 };

/** Records every event, with the time it came. */
function recorder() {
  const results: HealthResultEvent[] = [];
  const changes: HealthChangedEvent[] = [];
  const kills: HealthKillEvent[] = [];
  const readiness: ReadinessEvent[] = [];
  return {
    results,
    changes,
    kills,
    readiness,
    listener: {
      onResult: (e: HealthResultEvent) => results.push(e),
      onHealthChanged: (e: HealthChangedEvent) => changes.push(e),
      onKill: (e: HealthKillEvent) => kills.push(e),
      onReadiness: (e: ReadinessEvent) => readiness.push(e),
    },
  };
}

/** A scripted check: answers from `script` in turn (the last one forever), after `tookMs` on the clock. */
function scripted(clock: FakeClock, script: CheckResult[], tookMs = 0) {
  const calls: Array<{
    atMs: number;
    spec: HealthCheckSpec;
    timeoutMs: number;
    signal: AbortSignal | undefined;
  }> = [];
  let i = 0;
  const run = async (
    spec: HealthCheckSpec,
    _t: CheckTarget | undefined,
    timeoutMs: number,
    o: RunCheckOptions,
  ) => {
    calls.push({ atMs: clock.now(), spec, timeoutMs, signal: o.signal });
    const r = script[Math.min(i++, script.length - 1)];
    if (!r) throw new Error("empty script");
    if (tookMs > 0) await clock.sleep(tookMs);
    return r;
  };
  return { run, calls };
}

const ok: CheckResult = { kind: "healthy" };
const bad: CheckResult = { kind: "unhealthy", cause: "500 Internal Server Error" };

describe("HealthChecker on a fake clock", () => {
  it("Marathon-level: first check after min(interval, 5 s), then every interval; grace, then a kill on failure max+1", async () => {
    const clock = new FakeClock();
    const since = clock.now();
    const rec = recorder();
    const { run, calls } = scripted(clock, [bad]);
    const checker = new HealthChecker({ clock, listener: rec.listener, runCheck: run });
    const spec = healthCheckSpec({ intervalSeconds: 10, gracePeriodSeconds: 30, maxConsecutiveFailures: 3 });
    checker.watch({ taskId: "t1", runningSinceMs: since, healthChecks: [{ spec, target: TARGET }] });

    await clock.advance(120 * S);
    assert.deepEqual(
      calls.map((c) => (c.atMs - since) / S),
      [5, 15, 25, 35, 45, 55, 65],
    );
    assert.deepEqual(
      rec.results.map((r) => r.update.effect),
      ["grace", "grace", "grace", "failure", "failure", "failure", "failure"],
    );
    assert.equal(rec.kills.length, 1);
    assert.equal((rec.kills[0]?.atMs ?? 0) - since, 65 * S);
    assert.equal(rec.kills[0]?.state.consecutiveFailures, 4);
    assert.match(rec.kills[0]?.reason ?? "", /failed 4 times in a row \(maxConsecutiveFailures 3\)/);
    assert.equal(calls[0]?.timeoutMs, 20 * S);
    // A kill ends the watch: no timer is left and the task is forgotten.
    assert.equal(clock.pending(), 0);
    assert.deepEqual(checker.watching(), []);
    assert.equal(rec.changes.length, 0); // never alive, so never changed
  });

  it("Mesos-level: first check after delaySeconds, then interval after each result; killed at maxConsecutiveFailures", async () => {
    const clock = new FakeClock();
    const since = clock.now();
    const rec = recorder();
    const { run, calls } = scripted(clock, [ok, bad], 2 * S);
    const checker = new HealthChecker({ clock, listener: rec.listener, runCheck: run });
    const spec = healthCheckSpec({
      protocol: "MESOS_HTTP",
      delaySeconds: 15,
      intervalSeconds: 10,
      gracePeriodSeconds: 0,
      maxConsecutiveFailures: 2,
    });
    checker.watch({ taskId: "t1", runningSinceMs: since, healthChecks: [{ spec, target: TARGET }] });
    await clock.advance(100 * S);
    // Each check takes 2 s: 15 (ends 17), 27 (ends 29), 39 (ends 41): the second failure kills.
    assert.deepEqual(
      calls.map((c) => (c.atMs - since) / S),
      [15, 27, 39],
    );
    assert.deepEqual(
      rec.changes.map((c) => [(c.atMs - since) / S, c.alive, c.taskHealthy]),
      [
        [17, true, true],
        [29, false, false],
      ],
    );
    assert.equal((rec.kills[0]?.atMs ?? 0) - since, 41 * S);
    assert.equal(clock.pending(), 0);
  });

  it("Marathon-level with a check slower than its interval: one in flight at a time, ticks skipped, rate kept", async () => {
    const clock = new FakeClock();
    const since = clock.now();
    const rec = recorder();
    const { run, calls } = scripted(clock, [ok], 25 * S);
    const checker = new HealthChecker({ clock, listener: rec.listener, runCheck: run });
    const spec = healthCheckSpec({ intervalSeconds: 10, timeoutSeconds: 30 });
    checker.watch({ taskId: "t1", runningSinceMs: since, healthChecks: [{ spec, target: TARGET }] });
    await clock.advance(100 * S);
    assert.deepEqual(
      calls.map((c) => (c.atMs - since) / S),
      [5, 35, 65, 95],
    );
    checker.close();
    await clock.advance(30 * S); // the scripted check in flight ends; its result is dropped
    assert.equal(calls.length, 4);
    assert.equal(rec.results.length, 3);
    assert.equal(clock.pending(), 0);
  });

  it("reports each check's change and the task's health (every check alive)", async () => {
    const clock = new FakeClock();
    const since = clock.now();
    const rec = recorder();
    const answers: Record<string, CheckResult[]> = { "/a": [ok, ok, bad, ok], "/b": [bad, ok] };
    const seen: Record<string, number> = {};
    const run = async (spec: HealthCheckSpec) => {
      const path = spec.path ?? "";
      const list = answers[path] ?? [];
      const i = seen[path] ?? 0;
      seen[path] = i + 1;
      return list[Math.min(i, list.length - 1)] ?? bad;
    };
    const checker = new HealthChecker({ clock, listener: rec.listener, runCheck: run });
    const a = healthCheckSpec({
      path: "/a",
      intervalSeconds: 10,
      gracePeriodSeconds: 0,
      maxConsecutiveFailures: 0,
    });
    const b = healthCheckSpec({
      path: "/b",
      intervalSeconds: 10,
      gracePeriodSeconds: 0,
      maxConsecutiveFailures: 0,
    });
    checker.watch({
      taskId: "t1",
      runningSinceMs: since,
      healthChecks: [
        { spec: a, target: TARGET },
        { spec: b, target: TARGET },
      ],
    });
    await clock.advance(40 * S);
    assert.deepEqual(
      rec.changes.map((c) => [(c.atMs - since) / S, c.check, c.alive, c.taskHealthy]),
      [
        [5, 0, true, false],
        [15, 1, true, true],
        [25, 0, false, false],
        [35, 0, true, true],
      ],
    );
    assert.equal(checker.health("t1")?.healthy, true);
    assert.equal(rec.kills.length, 0); // maxConsecutiveFailures 0: Marathon-level never kills
    checker.stop("t1");
    assert.equal(checker.health("t1"), undefined);
    assert.equal(clock.pending(), 0);
  });

  it("stop() while a check is in flight: aborts it, drops its result, leaves no timer", async () => {
    const clock = new FakeClock();
    const rec = recorder();
    const signals: AbortSignal[] = [];
    const run = (_s: HealthCheckSpec, _t: CheckTarget | undefined, _ms: number, o: RunCheckOptions) =>
      new Promise<CheckResult>((resolve) => {
        if (o.signal) signals.push(o.signal);
        o.signal?.addEventListener("abort", () => resolve({ kind: "unhealthy", cause: "aborted" }));
      });
    const checker = new HealthChecker({ clock, listener: rec.listener, runCheck: run });
    const spec = healthCheckSpec({ protocol: "COMMAND", command: { value: "true" }, delaySeconds: 0 });
    checker.watch({ taskId: "t1", runningSinceMs: clock.now(), healthChecks: [{ spec }] });
    await clock.advance(1);
    assert.equal(signals.length, 1);
    checker.stop("t1");
    assert.equal(signals[0]?.aborted, true);
    await clock.advance(600 * S);
    assert.equal(rec.results.length, 0);
    assert.equal(clock.pending(), 0);
    checker.stop("t1"); // idempotent
  });

  it("watch() is idempotent; a task without checks is not watched; a re-attached task is checked at once", async () => {
    const clock = new FakeClock();
    const rec = recorder();
    const { run, calls } = scripted(clock, [ok]);
    const checker = new HealthChecker({ clock, listener: rec.listener, runCheck: run });
    checker.watch({ taskId: "none", runningSinceMs: clock.now(), healthChecks: [] });
    assert.deepEqual(checker.watching(), []);
    const spec = healthCheckSpec({ intervalSeconds: 60 });
    // Running for an hour (the agent restarted): the first check is due already.
    const task = {
      taskId: "old",
      runningSinceMs: clock.now() - 3600 * S,
      healthChecks: [{ spec, target: TARGET }],
    };
    checker.watch(task);
    checker.watch(task);
    assert.equal(clock.pending(), 1);
    await clock.advance(0);
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.atMs, clock.now());
    checker.close();
    assert.equal(clock.pending(), 0);
  });

  it("a listener that throws is logged and the checks go on", async () => {
    const clock = new FakeClock();
    const warnings: string[] = [];
    const { run, calls } = scripted(clock, [ok]);
    const checker = new HealthChecker({
      clock,
      runCheck: run,
      listener: {
        onResult: () => {
          throw new Error("listener bug");
        },
      },
      logger: { warn: (msg, fields) => warnings.push(`${msg}: ${String(fields?.error)}`) },
    });
    checker.watch({
      taskId: "t1",
      runningSinceMs: clock.now(),
      healthChecks: [{ spec: healthCheckSpec({ intervalSeconds: 10 }), target: TARGET }],
    });
    await clock.advance(30 * S);
    assert.equal(calls.length, 3);
    assert.deepEqual(warnings, Array(3).fill("health listener threw: listener bug"));
    checker.close();
  });

  it("readiness: probes at once, then interval after each answer, until ready", async () => {
    const clock = new FakeClock();
    const since = clock.now();
    const rec = recorder();
    const probes: number[] = [];
    const answers: ReadinessProbe[] = [
      { kind: "error", message: "could not query http://127.0.0.1:31000/: connect ECONNREFUSED" },
      { kind: "response", response: { status: 503, contentType: "text/plain", body: "warming" } },
      { kind: "response", response: { status: 200, contentType: "text/plain", body: "ready" } },
    ];
    const checker = new HealthChecker({
      clock,
      listener: rec.listener,
      probeReadiness: async () => {
        probes.push(clock.now() - since);
        return answers[Math.min(probes.length - 1, answers.length - 1)] as ReadinessProbe;
      },
    });
    const spec = readinessCheckSpec({ intervalSeconds: 30, preserveLastResponse: true });
    checker.watch({
      taskId: "t1",
      runningSinceMs: since,
      healthChecks: [],
      readinessChecks: [{ spec, target: TARGET }],
    });
    await clock.advance(300 * S);
    assert.deepEqual(probes, [0, 30 * S, 60 * S]);
    assert.deepEqual(
      rec.readiness.map((e) => [e.state.ready, e.state.result?.lastResponse?.status]),
      [
        [false, 504],
        [false, 503],
        [true, 200],
      ],
    );
    assert.equal(clock.pending(), 0); // ready: no more probes
    assert.equal(checker.health("t1")?.readiness[0]?.ready, true);
    checker.stop("t1");
  });
});

describe("HealthChecker on the real clock, against real servers and commands", () => {
  it("an HTTP check makes the task healthy, then a failing server gets it killed (maxConsecutiveFailures 1)", async () => {
    const server = await httpServer();
    const rec = recorder();
    const checker = new HealthChecker({ clock: systemClock, listener: rec.listener });
    try {
      const spec = healthCheckSpec({
        path: "/flip",
        intervalSeconds: 1,
        timeoutSeconds: 1,
        gracePeriodSeconds: 0,
        maxConsecutiveFailures: 1,
      });
      checker.watch({
        taskId: "web.1",
        runningSinceMs: Date.now(),
        healthChecks: [{ spec, target: { host: "127.0.0.1", port: server.port } }],
      });
      await until("the task to be healthy", () => rec.changes.some((c) => c.taskHealthy), 5000);
      server.flip.healthy = false;
      await until("the kill", () => rec.kills.length === 1, 6000);
      assert.equal(rec.kills[0]?.taskId, "web.1");
      assert.match(rec.kills[0]?.reason ?? "", /failed 2 times in a row.*500 Internal Server Error/);
      assert.deepEqual(checker.watching(), []);
    } finally {
      checker.close();
      await server.close();
    }
  });

  it("a COMMAND check (Mesos rules, maxConsecutiveFailures 0) kills on its first failure", async () => {
    const rec = recorder();
    const checker = new HealthChecker({ clock: systemClock, listener: rec.listener });
    try {
      const spec = healthCheckSpec({
        protocol: "COMMAND",
        command: { value: "false" },
        delaySeconds: 0,
        gracePeriodSeconds: 0,
        maxConsecutiveFailures: 0,
      });
      checker.watch({
        taskId: "cmd.1",
        runningSinceMs: Date.now(),
        healthChecks: [{ spec }],
        commandRunner: new LocalCommandRunner(),
      });
      await until("the kill", () => rec.kills.length === 1, 5000);
      assert.equal(rec.results.length, 1);
      assert.match(rec.kills[0]?.reason ?? "", /COMMAND health check failed 1 times in a row.*status 1/);
    } finally {
      checker.close();
    }
  });

  it("stop() aborts a check hanging on a real server (its connection is closed)", async () => {
    const server = await httpServer();
    const rec = recorder();
    const checker = new HealthChecker({ clock: systemClock, listener: rec.listener });
    try {
      const spec = healthCheckSpec({
        protocol: "MESOS_HTTP",
        path: "/hang",
        delaySeconds: 0,
        timeoutSeconds: 60,
      });
      checker.watch({
        taskId: "hang.1",
        runningSinceMs: Date.now(),
        healthChecks: [{ spec, target: { host: "127.0.0.1", port: server.port } }],
      });
      await until("the check to reach the server", () => server.open() === 1);
      checker.stop("hang.1");
      await until("the connection to close", () => server.open() === 0);
      assert.equal(rec.results.length, 0);
    } finally {
      checker.close();
      await server.close();
    }
  });
});
