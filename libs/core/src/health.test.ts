import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  applyReadiness,
  applyResult,
  type CheckResult,
  checkTimeoutMs,
  classifyHttpStatus,
  HEALTH_CHECK_DEFAULTS,
  type HealthCheckSpec,
  type HealthProtocol,
  type HealthState,
  healthCheckPath,
  healthCheckPort,
  healthCheckSpec,
  inGracePeriod,
  initialHealth,
  initialReadiness,
  isMesosLevel,
  isTaskHealthy,
  killThreshold,
  nextCheckAtMs,
  nextReadinessCheckAtMs,
  READINESS_CHECK_DEFAULTS,
  type ReadinessProbe,
  readinessCheckSpec,
} from "./health.js";

const S = 1000;
const T0 = 1_700_000_000_000;
const PROTOCOLS: HealthProtocol[] = [
  "HTTP",
  "HTTPS",
  "TCP",
  "COMMAND",
  "MESOS_HTTP",
  "MESOS_HTTPS",
  "MESOS_TCP",
];
const MARATHON_LEVEL: HealthProtocol[] = ["HTTP", "HTTPS", "TCP"];
const MESOS_LEVEL: HealthProtocol[] = ["COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"];

const ok: CheckResult = { kind: "healthy" };
const bad = (cause = "500 Internal Server Error"): CheckResult => ({ kind: "unhealthy", cause });
const ignored: CheckResult = { kind: "ignored", cause: "102 Processing" };

/** Applies results one second apart from `startMs`; returns the kill decisions' failure numbers and the end state. */
function run(spec: HealthCheckSpec, results: CheckResult[], runningSinceMs: number, startMs: number) {
  let state = initialHealth();
  const kills: number[] = [];
  results.forEach((r, i) => {
    const u = applyResult(state, spec, r, startMs + i * S, runningSinceMs);
    state = u.state;
    if (u.decision.kind === "kill") kills.push(i + 1);
  });
  return { state, kills };
}

describe("health checks: SEMANTICS.md §2 worked examples", () => {
  it("has Marathon's defaults", () => {
    assert.deepEqual(healthCheckSpec(), {
      protocol: "HTTP",
      portIndex: 0,
      path: "/",
      gracePeriodSeconds: 300,
      intervalSeconds: 60,
      timeoutSeconds: 20,
      maxConsecutiveFailures: 3,
      delaySeconds: 15,
      ignoreHttp1xx: false,
    });
    assert.equal(HEALTH_CHECK_DEFAULTS.protocol, "HTTP");
    // `port` given: no portIndex is added (port wins); COMMAND has no port.
    assert.equal(healthCheckSpec({ port: 8080 }).portIndex, undefined);
    assert.equal(healthCheckSpec({ protocol: "COMMAND", command: { value: "true" } }).portIndex, undefined);
    assert.deepEqual(initialHealth(), { alive: false, consecutiveFailures: 0 });
  });

  it("splits the protocols into Marathon-level and Mesos-level", () => {
    assert.deepEqual(PROTOCOLS.filter(isMesosLevel), MESOS_LEVEL);
    assert.deepEqual(
      PROTOCOLS.filter((p) => !isMesosLevel(p)),
      MARATHON_LEVEL,
    );
  });

  it("HTTP(S): 200–399 healthy, 1xx ignored only with ignoreHttp1xx, the rest unhealthy with the status as cause", () => {
    assert.deepEqual(classifyHttpStatus(200, false), { kind: "healthy" });
    assert.deepEqual(classifyHttpStatus(399, false), { kind: "healthy" });
    assert.deepEqual(classifyHttpStatus(302, false, "Found"), { kind: "healthy" });
    assert.deepEqual(classifyHttpStatus(400, false, "Bad Request"), {
      kind: "unhealthy",
      cause: "400 Bad Request",
    });
    assert.deepEqual(classifyHttpStatus(500, true, "Internal Server Error"), {
      kind: "unhealthy",
      cause: "500 Internal Server Error",
    });
    assert.deepEqual(classifyHttpStatus(199, false), { kind: "unhealthy", cause: "199" });
    assert.deepEqual(classifyHttpStatus(102, true, "Processing"), {
      kind: "ignored",
      cause: "102 Processing",
    });
    assert.deepEqual(classifyHttpStatus(100, true), { kind: "ignored", cause: "100" });
  });

  it("resolves the port (`port` wins over `portIndex`, default index 0) and the path", () => {
    assert.equal(healthCheckPort(healthCheckSpec(), [31000, 31001]), 31000);
    assert.equal(healthCheckPort(healthCheckSpec({ portIndex: 1 }), [31000, 31001]), 31001);
    assert.equal(healthCheckPort(healthCheckSpec({ portIndex: 2 }), [31000, 31001]), undefined);
    assert.equal(healthCheckPort(healthCheckSpec({ port: 8080, portIndex: 1 }), [31000, 31001]), 8080);
    assert.equal(healthCheckPort(healthCheckSpec({ protocol: "COMMAND" }), [31000]), undefined);
    assert.equal(healthCheckPath(undefined), "/");
    assert.equal(healthCheckPath(""), "/");
    assert.equal(healthCheckPath("health"), "/health");
    assert.equal(healthCheckPath("/api/health"), "/api/health");
  });

  it("Marathon-level, defaults: kills on failure number 4 (more than maxConsecutiveFailures = 3), not before", () => {
    const spec = healthCheckSpec({ gracePeriodSeconds: 0 });
    const { kills, state } = run(spec, [bad(), bad(), bad(), bad(), bad()], T0, T0 + S);
    assert.deepEqual(kills, [4, 5]);
    assert.equal(state.consecutiveFailures, 5);
    assert.equal(killThreshold(spec), 4);
  });

  it("Marathon-level, maxConsecutiveFailures 0: never killed", () => {
    const spec = healthCheckSpec({ protocol: "TCP", maxConsecutiveFailures: 0, gracePeriodSeconds: 0 });
    const { kills, state } = run(
      spec,
      Array.from({ length: 50 }, () => bad()),
      T0,
      T0 + S,
    );
    assert.deepEqual(kills, []);
    assert.equal(state.consecutiveFailures, 50);
    assert.equal(state.alive, false);
  });

  it("Mesos-level: killed after maxConsecutiveFailures failures; 0 kills on the first failure", () => {
    const three = healthCheckSpec({ protocol: "MESOS_HTTP", gracePeriodSeconds: 0 });
    assert.deepEqual(run(three, [bad(), bad(), bad()], T0, T0 + S).kills, [3]);
    const zero = healthCheckSpec({ protocol: "COMMAND", maxConsecutiveFailures: 0, gracePeriodSeconds: 0 });
    assert.deepEqual(run(zero, [bad("exited with status 1")], T0, T0 + S).kills, [1]);
    assert.equal(killThreshold(zero), 1);
  });

  it("the kill decision carries the count and the last cause", () => {
    const spec = healthCheckSpec({ gracePeriodSeconds: 0, maxConsecutiveFailures: 1 });
    const s1 = applyResult(initialHealth(), spec, bad("503 Service Unavailable"), T0 + S, T0).state;
    const u = applyResult(s1, spec, bad("connect ECONNREFUSED 127.0.0.1:31000"), T0 + 2 * S, T0);
    assert.deepEqual(u.decision, {
      kind: "kill",
      reason:
        "HTTP health check failed 2 times in a row (maxConsecutiveFailures 1): connect ECONNREFUSED 127.0.0.1:31000",
    });
    assert.equal(u.state.lastFailureCause, "connect ECONNREFUSED 127.0.0.1:31000");
    assert.equal(u.state.lastFailureMs, T0 + 2 * S);
  });

  it("grace period: failures ignored until runningSince + grace (Marathon: end excluded; Mesos: end included)", () => {
    const http = healthCheckSpec({ gracePeriodSeconds: 300, maxConsecutiveFailures: 1 });
    const end = T0 + 300 * S;
    assert.equal(applyResult(initialHealth(), http, bad(), end - 1, T0).effect, "grace");
    assert.equal(applyResult(initialHealth(), http, bad(), end, T0).effect, "failure");
    const mesos = healthCheckSpec({
      protocol: "MESOS_TCP",
      gracePeriodSeconds: 300,
      maxConsecutiveFailures: 1,
    });
    assert.equal(applyResult(initialHealth(), mesos, bad(), end, T0).effect, "grace");
    const last = applyResult(initialHealth(), mesos, bad(), end + 1, T0);
    assert.equal(last.effect, "failure");
    assert.equal(last.decision.kind, "kill");
    // Mesos: a grace period of 0 ignores nothing, even at the start.
    const noGrace = healthCheckSpec({ protocol: "COMMAND", gracePeriodSeconds: 0 });
    assert.equal(inGracePeriod(initialHealth(), noGrace, T0, T0), false);
  });

  it("grace period: ends at the first success", () => {
    const spec = healthCheckSpec({ gracePeriodSeconds: 300, maxConsecutiveFailures: 1 });
    // Within the grace period: fail, fail (ignored), succeed, then fail twice: the second kills.
    const { kills, state } = run(spec, [bad(), bad(), ok, bad(), bad()], T0, T0 + S);
    assert.deepEqual(kills, [5]);
    assert.equal(state.firstSuccessMs, T0 + 3 * S);
    assert.equal(state.lastSuccessMs, T0 + 3 * S);
    assert.equal(state.consecutiveFailures, 2);
  });

  it("ignored (1xx) results change nothing, even at the kill threshold", () => {
    const spec = healthCheckSpec({ gracePeriodSeconds: 0, maxConsecutiveFailures: 1, ignoreHttp1xx: true });
    const { kills, state } = run(spec, [ok, bad(), ignored, ignored, ok], T0, T0 + S);
    assert.deepEqual(kills, []);
    assert.equal(state.alive, true);
    const s = applyResult(initialHealth(), spec, bad(), T0 + S, T0).state;
    const u = applyResult(s, spec, ignored, T0 + 2 * S, T0);
    assert.equal(u.state, s);
    assert.deepEqual(u.decision, { kind: "none" });
  });

  it("alive follows the last counted result, as Health.alive (lastSuccess > lastFailure)", () => {
    const spec = healthCheckSpec({ gracePeriodSeconds: 0, maxConsecutiveFailures: 0 });
    let s: HealthState = initialHealth();
    s = applyResult(s, spec, ok, T0 + S, T0).state;
    assert.equal(s.alive, true);
    s = applyResult(s, spec, bad(), T0 + 2 * S, T0).state;
    assert.equal(s.alive, false);
    s = applyResult(s, spec, ok, T0 + 3 * S, T0).state;
    assert.deepEqual(s, {
      alive: true,
      firstSuccessMs: T0 + S,
      lastSuccessMs: T0 + 3 * S,
      lastFailureMs: T0 + 2 * S,
      lastFailureCause: "500 Internal Server Error",
      consecutiveFailures: 0,
    });
    assert.equal(isTaskHealthy([s, s]), true);
    assert.equal(isTaskHealthy([s, initialHealth()]), false);
    assert.equal(isTaskHealthy([]), true);
  });

  it("schedules Marathon-level checks at min(interval, 5 s), then at a fixed rate, ignoring delaySeconds", () => {
    const spec = healthCheckSpec({ intervalSeconds: 60, delaySeconds: 15 });
    assert.equal(nextCheckAtMs(spec, T0), T0 + 5 * S);
    assert.equal(nextCheckAtMs(healthCheckSpec({ intervalSeconds: 2 }), T0), T0 + 2 * S);
    const due = T0 + 5 * S;
    assert.equal(nextCheckAtMs(spec, T0, { dueMs: due, finishedAtMs: due + 20 * S }), due + 60 * S);
    // A check that outlived a tick: the tick is skipped, the rate kept.
    assert.equal(nextCheckAtMs(spec, T0, { dueMs: due, finishedAtMs: due + 61 * S }), due + 120 * S);
  });

  it("schedules Mesos-level checks after delaySeconds, then interval after each result", () => {
    const spec = healthCheckSpec({ protocol: "MESOS_HTTP", intervalSeconds: 10, delaySeconds: 15 });
    assert.equal(nextCheckAtMs(spec, T0), T0 + 15 * S);
    assert.equal(nextCheckAtMs(spec, T0, { dueMs: T0 + 15 * S, finishedAtMs: T0 + 17 * S }), T0 + 27 * S);
    assert.equal(nextCheckAtMs(healthCheckSpec({ protocol: "COMMAND", delaySeconds: 0 }), T0), T0);
  });

  it("timeout: timeoutSeconds, or the interval when 0", () => {
    assert.equal(checkTimeoutMs(healthCheckSpec()), 20 * S);
    assert.equal(checkTimeoutMs(healthCheckSpec({ timeoutSeconds: 0, intervalSeconds: 30 })), 30 * S);
  });
});

// ─── properties ──────────────────────────────────────────────────────────────────────────────────

const protocolArb = fc.constantFrom(...PROTOCOLS);
const specArb = fc
  .record({
    protocol: protocolArb,
    gracePeriodSeconds: fc.integer({ min: 0, max: 600 }),
    intervalSeconds: fc.integer({ min: 0, max: 120 }),
    timeoutSeconds: fc.integer({ min: 0, max: 60 }),
    maxConsecutiveFailures: fc.integer({ min: 0, max: 8 }),
    delaySeconds: fc.integer({ min: 0, max: 60 }),
  })
  .map((r) => healthCheckSpec(r));
const resultArb: fc.Arbitrary<CheckResult> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(ok) },
  { weight: 6, arbitrary: fc.string({ maxLength: 8 }).map((c) => bad(`cause ${c}`)) },
  { weight: 1, arbitrary: fc.constant(ignored) },
);
/** Results with increasing times (gaps 0–120 s) from some offset around runningSince. */
const timedResultsArb = fc.array(fc.tuple(resultArb, fc.integer({ min: 0, max: 120_000 })), {
  maxLength: 60,
});

describe("health checks: properties", () => {
  it("a kill is decided exactly when the run of counted failures reaches the threshold, never in the grace period", () => {
    fc.assert(
      fc.property(
        specArb,
        timedResultsArb,
        fc.integer({ min: -10_000, max: 400_000 }),
        (spec, timed, offset) => {
          const since = T0;
          let now = since + offset;
          let state = initialHealth();
          let run = 0; // counted failures since the last success: the model
          let succeeded = false;
          const threshold = killThreshold(spec);
          for (const [result, gap] of timed) {
            now += gap;
            const graceBefore = inGracePeriod(state, spec, now, since);
            if (graceBefore) assert.ok(!succeeded, "a grace period after a success");
            const u = applyResult(state, spec, result, now, since);
            if (result.kind === "healthy") {
              run = 0;
              succeeded = true;
            } else if (result.kind === "unhealthy" && !graceBefore) run += 1;
            const counted = result.kind === "unhealthy" && !graceBefore;
            assert.equal(u.state.consecutiveFailures, run);
            const shouldKill = counted && threshold !== undefined && run >= threshold;
            assert.equal(u.decision.kind, shouldKill ? "kill" : "none");
            if (graceBefore && result.kind === "unhealthy") {
              assert.equal(u.state, state);
              assert.equal(u.effect, "grace");
            }
            state = u.state;
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("after the grace period, the first kill comes at failure max+1 (Marathon-level, max > 0, never for 0) or max (Mesos-level, at least 1)", () => {
    fc.assert(
      fc.property(
        specArb,
        fc.array(resultArb, { maxLength: 10 }),
        fc.integer({ min: 1, max: 20 }),
        (spec, prefix, n) => {
          const since = T0;
          const afterGrace = since + spec.gracePeriodSeconds * S + 1;
          let state = initialHealth();
          let t = afterGrace;
          for (const r of prefix) state = applyResult(state, spec, r, t++, since).state;
          state = applyResult(state, spec, ok, t++, since).state; // a success resets the count
          const kills: number[] = [];
          for (let i = 1; i <= n; i++) {
            const u = applyResult(state, spec, bad(), t++, since);
            if (u.decision.kind === "kill") kills.push(i);
            state = u.state;
          }
          const max = spec.maxConsecutiveFailures;
          const first = isMesosLevel(spec.protocol)
            ? Math.max(1, max)
            : max > 0
              ? max + 1
              : Number.POSITIVE_INFINITY;
          const expected = Array.from({ length: n }, (_, i) => i + 1).filter((i) => i >= first);
          assert.deepEqual(kills, expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("any success resets the count and makes the task alive, with no decision", () => {
    fc.assert(
      fc.property(specArb, timedResultsArb, (spec, timed) => {
        let state = initialHealth();
        let now = T0;
        for (const [r, gap] of timed) {
          now += gap;
          state = applyResult(state, spec, r, now, T0).state;
        }
        const u = applyResult(state, spec, ok, now + 1, T0);
        assert.equal(u.state.consecutiveFailures, 0);
        assert.equal(u.state.alive, true);
        assert.equal(u.state.lastSuccessMs, now + 1);
        assert.equal(u.state.firstSuccessMs, state.firstSuccessMs ?? now + 1);
        assert.deepEqual(u.decision, { kind: "none" });
      }),
    );
  });

  it("alive ⇔ lastSuccess after lastFailure; an ignored result returns the state itself", () => {
    fc.assert(
      fc.property(specArb, timedResultsArb, (spec, timed) => {
        let state = initialHealth();
        let now = T0;
        for (const [r, gap] of timed) {
          now += gap + 1; // strictly increasing times, as Health.alive compares them
          const u = applyResult(state, spec, r, now, T0);
          if (r.kind === "ignored") assert.equal(u.state, state);
          state = u.state;
          const expected =
            state.lastSuccessMs !== undefined &&
            (state.lastFailureMs === undefined || state.lastSuccessMs > state.lastFailureMs);
          assert.equal(state.alive, expected);
        }
      }),
    );
  });

  it("classifyHttpStatus: healthy exactly on 200–399; ignored exactly on 1xx with the flag", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 999 }), fc.boolean(), (code, flag) => {
        const r = classifyHttpStatus(code, flag);
        const expected =
          code >= 200 && code <= 399
            ? "healthy"
            : flag && code >= 100 && code <= 199
              ? "ignored"
              : "unhealthy";
        assert.equal(r.kind, expected);
      }),
    );
  });

  it("scheduling: never before the previous check finished; Marathon-level keeps its rate; Mesos waits the interval", () => {
    fc.assert(
      fc.property(
        specArb,
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.integer({ min: 0, max: 600_000 }),
        (spec, dueOffset, took) => {
          const first = nextCheckAtMs(spec, T0);
          const mesos = isMesosLevel(spec.protocol);
          const interval = Math.max(1000, spec.intervalSeconds * S);
          assert.equal(first, T0 + (mesos ? spec.delaySeconds * S : Math.min(interval, 5 * S)));
          const dueMs = T0 + dueOffset;
          const next = nextCheckAtMs(spec, T0, { dueMs, finishedAtMs: dueMs + took });
          assert.ok(next >= dueMs + took);
          if (mesos) assert.equal(next, dueMs + took + interval);
          else {
            assert.equal((next - dueMs) % interval, 0);
            assert.ok(next - interval < dueMs + took || next - interval === dueMs);
          }
        },
      ),
    );
  });
});

// ─── readiness ───────────────────────────────────────────────────────────────────────────────────

const answer = (status: number, body = "warming up"): ReadinessProbe => ({
  kind: "response",
  response: { status, contentType: "text/plain", body },
});

describe("readiness checks", () => {
  it("has Marathon's defaults", () => {
    assert.deepEqual(readinessCheckSpec(), {
      name: "readinessCheck",
      protocol: "HTTP",
      path: "/",
      portName: "http-api",
      intervalSeconds: 30,
      timeoutSeconds: 10,
      httpStatusCodesForReady: [200],
      preserveLastResponse: false,
    });
    assert.deepEqual(READINESS_CHECK_DEFAULTS.httpStatusCodesForReady, [200]);
    assert.deepEqual(initialReadiness(), { ready: false, checks: 0 });
  });

  it("ready on a status of httpStatusCodesForReady (default [200]); the answer kept only with preserveLastResponse", () => {
    const spec = readinessCheckSpec();
    const s1 = applyReadiness(initialReadiness(), spec, answer(503), T0);
    assert.deepEqual(s1, {
      ready: false,
      checks: 1,
      result: { name: "readinessCheck", ready: false, checkedAtMs: T0 },
    });
    const s2 = applyReadiness(s1, spec, answer(204), T0 + S);
    assert.equal(s2.ready, false);
    const s3 = applyReadiness(s2, spec, answer(200, "ok"), T0 + 2 * S);
    assert.deepEqual(s3, {
      ready: true,
      checks: 3,
      result: { name: "readinessCheck", ready: true, checkedAtMs: T0 + 2 * S },
    });

    const keep = readinessCheckSpec({
      name: "warm",
      httpStatusCodesForReady: [200, 204],
      preserveLastResponse: true,
    });
    const k = applyReadiness(initialReadiness(), keep, answer(204, ""), T0);
    assert.deepEqual(k.result, {
      name: "warm",
      ready: true,
      checkedAtMs: T0,
      lastResponse: { status: 204, contentType: "text/plain", body: "" },
    });
  });

  it("no answer is not ready, kept as a 504 text/plain answer, even when 504 would be ready", () => {
    const spec = readinessCheckSpec({ httpStatusCodesForReady: [504], preserveLastResponse: true });
    const s = applyReadiness(
      initialReadiness(),
      spec,
      { kind: "error", message: "connect ECONNREFUSED" },
      T0,
    );
    assert.equal(s.ready, false);
    assert.deepEqual(s.result?.lastResponse, {
      status: 504,
      contentType: "text/plain",
      body: "connect ECONNREFUSED",
    });
  });

  it("ready is final, and the probes stop: first at once, then interval after the previous one", () => {
    const spec = readinessCheckSpec({ intervalSeconds: 30 });
    const s0 = initialReadiness();
    assert.equal(nextReadinessCheckAtMs(s0, spec, T0), T0);
    const s1 = applyReadiness(s0, spec, answer(503), T0 + 100);
    assert.equal(nextReadinessCheckAtMs(s1, spec, T0, T0 + 100), T0 + 100 + 30 * S);
    const ready = applyReadiness(s1, spec, answer(200), T0 + 31 * S);
    assert.equal(nextReadinessCheckAtMs(ready, spec, T0, T0 + 31 * S), undefined);
    assert.equal(applyReadiness(ready, spec, answer(503), T0 + 62 * S), ready);
  });

  it("property: ready ⇔ some answer before had a ready status; checks count the probes until then", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 100, max: 599 }), { minLength: 1, maxLength: 4 }),
        fc.array(
          fc.oneof(
            fc.integer({ min: 100, max: 599 }).map((c) => answer(c)),
            fc.constant<ReadinessProbe>({ kind: "error", message: "timeout" }),
          ),
        ),
        fc.boolean(),
        (codes, probes, preserve) => {
          const spec = readinessCheckSpec({ httpStatusCodesForReady: codes, preserveLastResponse: preserve });
          let s = initialReadiness();
          probes.forEach((p, i) => {
            s = applyReadiness(s, spec, p, T0 + i);
          });
          const firstReady = probes.findIndex(
            (p) => p.kind === "response" && codes.includes(p.response.status),
          );
          assert.equal(s.ready, firstReady >= 0);
          assert.equal(s.checks, firstReady >= 0 ? firstReady + 1 : probes.length);
          if (s.result) assert.equal(s.result.lastResponse !== undefined, preserve);
        },
      ),
    );
  });
});
