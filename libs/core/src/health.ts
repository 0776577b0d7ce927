/**
 * Marathon health checks and readiness checks: the state of one task under one check, and what to
 * do about a check's result. Pure: the time is always passed in; states are immutable values.
 * The checks themselves (HTTP, TCP, commands) and their timers are @drover/runtime's `health/`.
 *
 * Upstream (mesosphere/marathon @ 90619da70d79, Mesos for the Mesos-level checks):
 * - `core/health/Health.scala`: the state and its update (success resets the count; `alive`);
 * - `core/health/impl/HealthCheckActor.scala`: grace period, kill rule, ignored results, first tick;
 * - `core/health/impl/HealthCheckWorker.scala`: 200–399 healthy, 1xx ignored on request;
 * - `core/health/HealthCheck.scala`: defaults; `docs/docs/health-checks.md`;
 * - apache/mesos `src/checks/health_checker.cpp` and `checker_process.cpp`: the Mesos-level grace
 *   period, kill rule (`consecutiveFailures >= consecutive_failures`) and scheduling (delay, then
 *   the interval after each result);
 * - `core/readiness/ReadinessCheck.scala`, `ReadinessCheckResult.scala`,
 *   `impl/ReadinessCheckExecutorImpl.scala`: readiness checks.
 */

/** Marathon-level (HTTP, HTTPS, TCP) or Mesos-level (MESOS_*, COMMAND: run next to the task). */
export type HealthProtocol =
  | "HTTP"
  | "HTTPS"
  | "TCP"
  | "COMMAND"
  | "MESOS_HTTP"
  | "MESOS_HTTPS"
  | "MESOS_TCP";

/**
 * One health check of an app. Structurally a superset of the normalized Marathon health check, so an
 * app definition's check can be passed as is. Durations are in seconds, as in the app JSON.
 */
export interface HealthCheckSpec {
  protocol: HealthProtocol;
  /** Index into the task's ports (portDefinitions / portMappings); `port` wins when both are given. */
  portIndex?: number | undefined;
  /** A fixed port number to probe. */
  port?: number | undefined;
  /** HTTP(S) only; default "/" (a path without a leading "/" gets one). */
  path?: string | undefined;
  /** Failures are ignored until the first success or until `runningSince + gracePeriodSeconds`. */
  gracePeriodSeconds: number;
  intervalSeconds: number;
  /** A check that has not answered within this time is a failure (0: the interval, see checkTimeoutMs). */
  timeoutSeconds: number;
  maxConsecutiveFailures: number;
  /** Wait before the first check: Mesos-level checks only (not implemented upstream for the others). */
  delaySeconds: number;
  /** HTTP and HTTPS: a 1xx answer is discarded and the health stays as it was. */
  ignoreHttp1xx?: boolean | undefined;
  /** COMMAND: run with `/bin/sh -c <value>` next to the task; exit code 0 is healthy. */
  command?: { value: string } | undefined;
}

/** Marathon's defaults (`HealthCheck.scala`, health-checks.md). */
export const HEALTH_CHECK_DEFAULTS = {
  protocol: "HTTP",
  portIndex: 0,
  path: "/",
  gracePeriodSeconds: 300,
  intervalSeconds: 60,
  timeoutSeconds: 20,
  maxConsecutiveFailures: 3,
  delaySeconds: 15,
  ignoreHttp1xx: false,
} as const satisfies Partial<HealthCheckSpec>;

/** A check with Marathon's defaults for the fields not given (`portIndex` 0 only when `port` is absent). */
export function healthCheckSpec(given: Partial<HealthCheckSpec> = {}): HealthCheckSpec {
  const { portIndex, ...defaults } = HEALTH_CHECK_DEFAULTS;
  const spec: HealthCheckSpec = { ...defaults, ...given };
  if (spec.port === undefined && spec.portIndex === undefined && spec.protocol !== "COMMAND") {
    spec.portIndex = portIndex;
  }
  return spec;
}

/** Mesos-level checks run next to the task; their grace, kill and scheduling rules are Mesos's. */
export function isMesosLevel(protocol: HealthProtocol): boolean {
  return protocol === "COMMAND" || protocol.startsWith("MESOS_");
}

export function isHttpProtocol(protocol: HealthProtocol): boolean {
  return (
    protocol === "HTTP" || protocol === "HTTPS" || protocol === "MESOS_HTTP" || protocol === "MESOS_HTTPS"
  );
}

/** The port a check probes: `port` if given, else the task's port at `portIndex` (default 0). */
export function healthCheckPort(spec: HealthCheckSpec, taskPorts: readonly number[]): number | undefined {
  if (spec.protocol === "COMMAND") return undefined;
  const port = spec.port ?? taskPorts[spec.portIndex ?? 0];
  return port !== undefined && Number.isInteger(port) && port > 0 && port <= 65535 ? port : undefined;
}

/** The request path: absent → "/", and a leading "/" added when missing (HealthCheckWorker.http). */
export function healthCheckPath(path: string | undefined): string {
  const raw = path ?? "";
  return raw.startsWith("/") ? raw : `/${raw}`;
}

/** The outcome of one check. `ignored`: a 1xx answer under `ignoreHttp1xx` (health unchanged). */
export type CheckResult =
  | { kind: "healthy" }
  | { kind: "unhealthy"; cause: string }
  | { kind: "ignored"; cause: string };

/**
 * An HTTP status as a check result: 200–399 healthy (`acceptableResponses = Range(200, 400)`),
 * 100–199 ignored when `ignoreHttp1xx`, anything else unhealthy with "<code> <reason>" as cause.
 */
export function classifyHttpStatus(code: number, ignoreHttp1xx: boolean, reason = ""): CheckResult {
  if (code >= 200 && code < 400) return { kind: "healthy" };
  const cause = reason ? `${code} ${reason}` : String(code);
  if (ignoreHttp1xx && code >= 100 && code < 200) return { kind: "ignored", cause };
  return { kind: "unhealthy", cause };
}

/** Marathon's `Health`, times in ms since the epoch. Immutable. */
export interface HealthState {
  /** Healthy now: the last result that counted was a success. */
  alive: boolean;
  firstSuccessMs?: number | undefined;
  lastSuccessMs?: number | undefined;
  lastFailureMs?: number | undefined;
  lastFailureCause?: string | undefined;
  /** Failures counted since the last success (failures in the grace period do not count). */
  consecutiveFailures: number;
}

export function initialHealth(): HealthState {
  return { alive: false, consecutiveFailures: 0 };
}

export type HealthDecision = { kind: "none" } | { kind: "kill"; reason: string };

export interface HealthUpdate {
  state: HealthState;
  decision: HealthDecision;
  /** What the result did: `grace` and `ignored` leave the state as it was. */
  effect: "success" | "failure" | "grace" | "ignored";
}

/**
 * Whether a failure at `nowMs` is ignored: no success yet and the grace period not over.
 * Marathon-level (HealthCheckActor.ignoreFailures): `runningSince + grace > now`. Mesos-level
 * (HealthChecker::failure): `grace > 0 && now − start ≤ grace`, the end itself included.
 */
export function inGracePeriod(
  state: HealthState,
  spec: HealthCheckSpec,
  nowMs: number,
  runningSinceMs: number,
): boolean {
  if (state.firstSuccessMs !== undefined) return false;
  const graceMs = spec.gracePeriodSeconds * 1000;
  if (isMesosLevel(spec.protocol)) return graceMs > 0 && nowMs - runningSinceMs <= graceMs;
  return runningSinceMs + graceMs > nowMs;
}

/**
 * The counted failure (1, 2, …) from which a task is killed, or undefined for never.
 * Marathon-level: the failure after `maxConsecutiveFailures` of them (the actor compares the count
 * *before* this failure: `previous >= max && max > 0`), and 0 never kills. Mesos-level:
 * `consecutiveFailures >= max` after counting this one, so 0 kills on the first counted failure.
 */
export function killThreshold(spec: HealthCheckSpec): number | undefined {
  const max = Math.max(0, Math.floor(spec.maxConsecutiveFailures));
  if (isMesosLevel(spec.protocol)) return Math.max(1, max);
  return max > 0 ? max + 1 : undefined;
}

/**
 * Applies one check result of a Running task. A success resets the count and makes the task alive;
 * a failure outside the grace period is counted, makes it not alive and may decide a kill (on this
 * and every later failure while the count stays at or above the threshold); a failure in the grace
 * period and an ignored (1xx) result change nothing.
 */
export function applyResult(
  state: HealthState,
  spec: HealthCheckSpec,
  result: CheckResult,
  nowMs: number,
  runningSinceMs: number,
): HealthUpdate {
  const none: HealthDecision = { kind: "none" };
  switch (result.kind) {
    case "ignored":
      return { state, decision: none, effect: "ignored" };
    case "healthy":
      return {
        state: {
          ...state,
          alive: true,
          firstSuccessMs: state.firstSuccessMs ?? nowMs,
          lastSuccessMs: nowMs,
          consecutiveFailures: 0,
        },
        decision: none,
        effect: "success",
      };
    case "unhealthy": {
      if (inGracePeriod(state, spec, nowMs, runningSinceMs))
        return { state, decision: none, effect: "grace" };
      const consecutiveFailures = state.consecutiveFailures + 1;
      const next: HealthState = {
        ...state,
        alive: false,
        lastFailureMs: nowMs,
        lastFailureCause: result.cause,
        consecutiveFailures,
      };
      const threshold = killThreshold(spec);
      if (threshold === undefined || consecutiveFailures < threshold) {
        return { state: next, decision: none, effect: "failure" };
      }
      const reason =
        `${spec.protocol} health check failed ${consecutiveFailures} times in a row ` +
        `(maxConsecutiveFailures ${spec.maxConsecutiveFailures}): ${result.cause}`;
      return { state: next, decision: { kind: "kill", reason }, effect: "failure" };
    }
  }
}

/** A task is healthy when every one of its checks is alive; a task without checks is healthy once Running. */
export function isTaskHealthy(states: readonly HealthState[]): boolean {
  return states.every((s) => s.alive);
}

/** Marathon starts checking after `min(interval, 5 s)` (`HealthCheck.DefaultFirstHealthCheckAfter`). */
export const FIRST_CHECK_AFTER_MS = 5000;
/** Shortest interval between two checks of one task (an interval of 0 would be a busy loop). */
export const MIN_CHECK_INTERVAL_MS = 1000;

export function checkIntervalMs(spec: { intervalSeconds: number }): number {
  return Math.max(MIN_CHECK_INTERVAL_MS, spec.intervalSeconds * 1000);
}

/** `timeoutSeconds`, or the interval when it is 0 (Mesos reads 0 as "no timeout"; one must end). */
export function checkTimeoutMs(spec: { intervalSeconds: number; timeoutSeconds: number }): number {
  return spec.timeoutSeconds > 0 ? spec.timeoutSeconds * 1000 : checkIntervalMs(spec);
}

/**
 * When the next check of a task runs. The first (no `previous`): Mesos-level after `delaySeconds`
 * (CheckerProcess::initialize), Marathon-level after `min(interval, 5 s)` (delaySeconds is "NOT
 * implemented" for them). Then Mesos-level `interval` after the previous result (processCheckResult
 * → scheduleNext(checkInterval)); Marathon-level at a fixed rate (`Source.tick`) from the previous
 * due time, skipping ticks that fall while the previous check still runs (one check of a task in
 * flight at a time, as a tick source drops ticks under backpressure).
 */
export function nextCheckAtMs(
  spec: HealthCheckSpec,
  startedAtMs: number,
  previous?: { dueMs: number; finishedAtMs: number },
): number {
  const interval = checkIntervalMs(spec);
  const mesos = isMesosLevel(spec.protocol);
  if (!previous) {
    return (
      startedAtMs + (mesos ? Math.max(0, spec.delaySeconds * 1000) : Math.min(interval, FIRST_CHECK_AFTER_MS))
    );
  }
  if (mesos) return previous.finishedAtMs + interval;
  const ticks = Math.max(1, Math.ceil((previous.finishedAtMs - previous.dueMs) / interval));
  return previous.dueMs + ticks * interval;
}

// ─── Readiness checks ────────────────────────────────────────────────────────────────────────────

/** One readiness check (at most one per app upstream); consulted during deployments only. */
export interface ReadinessCheckSpec {
  name: string;
  protocol: "HTTP" | "HTTPS";
  path: string;
  /** The port (by name in portDefinitions / portMappings) the caller resolves to a host port. */
  portName: string;
  intervalSeconds: number;
  /** Must be below the interval (validated upstream). */
  timeoutSeconds: number;
  httpStatusCodesForReady: number[];
  preserveLastResponse: boolean;
}

/** Marathon's defaults (`ReadinessCheck.scala`, readiness-checks.md). */
export const READINESS_CHECK_DEFAULTS = {
  name: "readinessCheck",
  protocol: "HTTP",
  path: "/",
  portName: "http-api",
  intervalSeconds: 30,
  timeoutSeconds: 10,
  httpStatusCodesForReady: [200],
  preserveLastResponse: false,
} as const;

export function readinessCheckSpec(given: Partial<ReadinessCheckSpec> = {}): ReadinessCheckSpec {
  return {
    ...READINESS_CHECK_DEFAULTS,
    httpStatusCodesForReady: [...READINESS_CHECK_DEFAULTS.httpStatusCodesForReady],
    ...given,
  };
}

/** Bytes of a readiness answer's body that are kept (the rest is cut). */
export const READINESS_BODY_LIMIT_BYTES = 4096;

/** Marathon's `HttpResponse` of a readiness check. */
export interface ReadinessResponse {
  status: number;
  contentType: string;
  body: string;
}

/** What the probe saw: an answer, or none (refused, timed out, TLS error…). */
export type ReadinessProbe =
  | { kind: "response"; response: ReadinessResponse }
  | { kind: "error"; message: string };

export interface ReadinessCheckResult {
  name: string;
  ready: boolean;
  /** Only when `preserveLastResponse`. */
  lastResponse?: ReadinessResponse | undefined;
  checkedAtMs: number;
}

export interface ReadinessState {
  /** Final once true: upstream stops checking at the first ready answer. */
  ready: boolean;
  /** Probes applied so far. */
  checks: number;
  result?: ReadinessCheckResult | undefined;
}

export function initialReadiness(): ReadinessState {
  return { ready: false, checks: 0 };
}

/**
 * Applies one probe. Ready ⇔ the answer's status is in `httpStatusCodesForReady` (default [200]).
 * No answer is not ready, recorded as Marathon does as a 504 "text/plain" answer whose body is the
 * error (`exceptionToErrorResponse`, with `ready = false` whatever the codes). A state already ready
 * is returned unchanged.
 */
export function applyReadiness(
  state: ReadinessState,
  spec: ReadinessCheckSpec,
  probe: ReadinessProbe,
  nowMs: number,
): ReadinessState {
  if (state.ready) return state;
  const codes = spec.httpStatusCodesForReady.length > 0 ? spec.httpStatusCodesForReady : [200];
  const response: ReadinessResponse =
    probe.kind === "response"
      ? probe.response
      : { status: 504, contentType: "text/plain", body: probe.message };
  const ready = probe.kind === "response" && codes.includes(response.status);
  const result: ReadinessCheckResult = {
    name: spec.name,
    ready,
    checkedAtMs: nowMs,
    ...(spec.preserveLastResponse ? { lastResponse: response } : {}),
  };
  return { ready, checks: state.checks + 1, result };
}

/**
 * When the next readiness probe runs: the first at once (`serialChecksIterator` is eager), then
 * `interval` after the previous one finished; undefined once ready.
 */
export function nextReadinessCheckAtMs(
  state: ReadinessState,
  spec: ReadinessCheckSpec,
  startedAtMs: number,
  previousFinishedAtMs?: number,
): number | undefined {
  if (state.ready) return undefined;
  if (previousFinishedAtMs === undefined) return startedAtMs;
  return previousFinishedAtMs + checkIntervalMs(spec);
}

/** The probe's timeout: `timeoutSeconds` (at least 1 s; upstream requires 0 < timeout < interval). */
export function readinessTimeoutMs(spec: ReadinessCheckSpec): number {
  return Math.max(1000, spec.timeoutSeconds * 1000);
}
