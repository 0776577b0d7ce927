/**
 * The agent's health checks: Marathon's health and readiness checks of the tasks this agent runs,
 * run next to them (one HealthChecker per agent), and what they change in the tasks' statuses.
 *
 *   launch (TaskInfo.run has checks) ─► remembered(taskId: ports, env, run)
 *   TASK_RUNNING ─► targets: HTTP/HTTPS/TCP/MESOS_* on 127.0.0.1:<host port of portIndex> (or `port`);
 *                   a port without host port (container network): <container IP>:<container port>;
 *                   neither: the check fails with the reason as its cause. COMMAND: docker exec.
 *               ─► HealthChecker.watch
 *   a result that changes the task's health (unknown → healthy/unhealthy, healthy ⇄ unhealthy), or a
 *   readiness answer that changes readiness ─► publish: a TASK_RUNNING update with health/readiness
 *   a kill decision ─► executor kill (run.killGracePeriodSeconds, else 5 s); the terminal status
 *                      then carries reason REASON_TASK_UNHEALTHY_CHECK_STATUS and which check failed
 *   kill from the master, terminal state ─► stop watching, forget the task
 *
 * The rules (grace period, kill threshold, schedule, what healthy means) are @drover/core's; the
 * timers are the HealthChecker's. This module only maps tasks to checks and results to statuses.
 */
import { type Clock, errorMessage, type Logger, systemClock } from "@drover/common";
import {
  type HealthCheckSpec,
  REASON_HEALTH_UPDATED,
  REASON_UNHEALTHY,
  type ReadinessCheckSpec,
  type ReadinessResult,
  readinessResultsOf,
  type TaskHealth,
  type TaskRun,
  type TaskStatus,
  taskHealthOf,
} from "@drover/core";
import {
  type CheckTarget,
  HealthChecker,
  type HealthCheckerOptions,
  type HealthKillEvent,
  type HealthResultEvent,
  type ReadinessEvent,
  type TaskContainers,
} from "@drover/runtime";
import type { HealthCheckStore } from "./health-store.js";

/** SIGTERM → SIGKILL wait of a health kill when the task's run does not give one (as the master's kills). */
export const HEALTH_KILL_GRACE_SECONDS = 5;

const LOOPBACK = "127.0.0.1";

/** What the agent knows of a launched task that its checks need. */
export interface TaskChecks {
  /** The task's host ports in order (its `ports` resources): PORT0, PORT1, … */
  ports: readonly number[];
  /** The task's environment (PORT_<NAME> names the host port of a named port). */
  env: Readonly<Record<string, string>>;
  run: TaskRun;
}

/** What a health update changes in the task's TASK_RUNNING status. */
export interface HealthStatusUpdate {
  health?: TaskHealth;
  readiness?: ReadinessResult[];
  reason: string;
  message: string;
}

export interface AgentHealthDeps {
  /** Sends a TASK_RUNNING update of the task with these fields (the agent's status path). */
  publish(taskId: string, update: HealthStatusUpdate): void;
  /** Kills the task through the executor. */
  kill(taskId: string, gracePeriodSeconds: number): Promise<void>;
  /** The task containers (Docker): COMMAND checks and container IPs. Without it those checks fail. */
  containers?: TaskContainers | undefined;
  /** Keeps the tasks' checks across an agent restart (the work dir); without it, recovered tasks are not checked. */
  store?: HealthCheckStore | undefined;
  log: Logger;
  clock?: Clock;
  /** Tests replace the checks themselves. */
  runCheck?: HealthCheckerOptions["runCheck"];
  probeReadiness?: HealthCheckerOptions["probeReadiness"];
}

/** Where one check connects, or why it cannot: resolved once the task runs. */
export interface ResolvedTarget {
  target?: CheckTarget;
  unresolved?: string;
}

interface Watched {
  checks: TaskChecks;
  /** Descriptions of the health checks ("HTTP check on port 31002"), by index. */
  names: string[];
  /** What the last published update said; undefined before the first one. */
  healthy?: boolean | undefined;
  health?: TaskHealth | undefined;
  readiness?: ReadinessResult[] | undefined;
  readinessKey: string;
  /** Set when a check decided to kill the task: what its terminal status says. */
  killed?: { message: string; health: TaskHealth | undefined };
  /** Its checks were started (TASK_RUNNING seen). */
  started: boolean;
  /** The task ended or is being killed: nothing more is published. */
  done: boolean;
}

export class AgentHealth {
  private readonly checker: HealthChecker;
  private readonly tasks = new Map<string, Watched>();

  constructor(private readonly deps: AgentHealthDeps) {
    this.checker = new HealthChecker({
      listener: {
        onResult: (e) => this.onResult(e),
        onKill: (e) => this.onKill(e),
        onReadiness: (e) => this.onReadiness(e),
      },
      ...(deps.clock ? { clock: deps.clock } : {}),
      ...(deps.runCheck ? { runCheck: deps.runCheck } : {}),
      ...(deps.probeReadiness ? { probeReadiness: deps.probeReadiness } : {}),
      logger: deps.log,
    });
  }

  /** A task was launched: remember its checks (a task without any is not remembered). */
  launched(taskId: string, checks: TaskChecks): void {
    const { healthChecks = [], readinessChecks = [] } = checks.run;
    if (healthChecks.length === 0 && readinessChecks.length === 0) return;
    if (this.tasks.has(taskId)) return;
    this.tasks.set(taskId, { checks, names: [], readinessKey: "", started: false, done: false });
    this.deps.store?.save(taskId, checks);
  }

  /**
   * After an agent restart: the tasks found running, whose checks this agent kept, are checked
   * again (from now: the grace period starts over, as after a Marathon failover). What was kept of
   * any other task is dropped.
   */
  recover(running: ReadonlyArray<{ taskId: string; containerId: string }>): void {
    const { store } = this.deps;
    if (!store) return;
    store.prune(new Set(running.map((r) => r.taskId)));
    const now = (this.deps.clock ?? systemClock).now();
    for (const { taskId, containerId } of running) {
      const checks = store.load(taskId);
      if (!checks || this.tasks.has(taskId)) continue;
      this.tasks.set(taskId, { checks, names: [], readinessKey: "", started: false, done: false });
      this.running(taskId, containerId, now).catch((err: unknown) =>
        this.deps.log.warn("health checks not started", { taskId, err: errorMessage(err) }),
      );
    }
  }

  /**
   * The task is TASK_RUNNING (since `runningSinceMs`) in container `containerId`: its checks start.
   * Idempotent; a task this agent did not launch (its checks unknown) is not checked.
   */
  async running(taskId: string, containerId: string | undefined, runningSinceMs: number): Promise<void> {
    const w = this.tasks.get(taskId);
    if (!w || w.done || w.started) return;
    w.started = true;
    const { run } = w.checks;
    const health = run.healthChecks ?? [];
    const readiness = run.readinessChecks ?? [];
    const { containers } = this.deps;
    let ip: string | undefined;
    if (containers && containerId && needsContainerIp(w.checks)) {
      ip = await containers.ipAddress(containerId, run.network?.name).catch(() => undefined);
      if (w.done || this.tasks.get(taskId) !== w) return; // ended while we asked Docker
    }
    const resolved = health.map((spec) => resolveHealthTarget(spec, w.checks, ip));
    w.names = health.map((spec, i) => describeCheck(spec, resolved[i]?.target));
    const usesCommand = health.some((spec) => spec.protocol === "COMMAND");
    const commandRunner =
      usesCommand && containers && containerId ? containers.commandRunner(containerId) : undefined;
    this.checker.watch({
      taskId,
      runningSinceMs,
      healthChecks: health.map((spec, i) => ({
        spec,
        target: resolved[i]?.target,
        unresolved:
          resolved[i]?.unresolved ??
          (spec.protocol === "COMMAND" && !commandRunner
            ? "COMMAND checks need the task's container (not available on this agent)"
            : undefined),
      })),
      readinessChecks: readiness.map((spec) => ({
        spec,
        target: resolveReadinessTarget(spec, w.checks, ip),
      })),
      commandRunner,
    });
    this.deps.log.info("health checks started", { taskId, checks: w.names, readiness: readiness.length });
  }

  /** The master kills the task: its checks stop (a kill is not a health failure). */
  stop(taskId: string): void {
    const w = this.tasks.get(taskId);
    if (w) w.done = true;
    this.checker.stop(taskId);
  }

  /**
   * The task reached terminal state `status`: its checks stop and it is forgotten. Returns the
   * status to send: as given, or, for a task a check killed, with reason
   * REASON_TASK_UNHEALTHY_CHECK_STATUS, the check and its cause as message, and the health.
   */
  finished(taskId: string, status: TaskStatus): TaskStatus {
    this.checker.stop(taskId);
    const w = this.tasks.get(taskId);
    this.tasks.delete(taskId);
    if (w) this.deps.store?.remove(taskId);
    if (!w?.killed) return status;
    return {
      ...status,
      message: w.killed.message,
      reason: REASON_UNHEALTHY,
      ...(w.killed.health ? { health: w.killed.health } : {}),
    };
  }

  /** Tasks whose checks run now. */
  watching(): string[] {
    return this.checker.watching();
  }

  close(): void {
    this.checker.close();
    this.tasks.clear();
  }

  private onResult(e: HealthResultEvent): void {
    const w = this.tasks.get(e.taskId);
    if (!w || w.done) return;
    if (e.update.effect !== "success" && e.update.effect !== "failure") return;
    const checks = this.checker.health(e.taskId)?.checks ?? [];
    const health = taskHealthOf(checks);
    if (e.update.decision.kind === "kill") {
      const n = e.update.state.consecutiveFailures;
      w.killed = {
        message: `unhealthy: ${w.names[e.check] ?? "health check"} failed ${n} ${n === 1 ? "time" : "times"}: ${e.update.state.lastFailureCause ?? "unknown cause"}`,
        health,
      };
      return; // the terminal status says it
    }
    if (!health || health.healthy === w.healthy) return;
    w.healthy = health.healthy;
    w.health = health;
    const failing = checks.findIndex((s) => !s.alive && s.lastFailureMs !== undefined);
    const message = health.healthy
      ? "healthy"
      : `unhealthy: ${w.names[failing] ?? "health check"} failed: ${health.lastFailureCause ?? "unknown cause"}`;
    this.publish(e.taskId, w, message);
  }

  private onKill(e: HealthKillEvent): void {
    const w = this.tasks.get(e.taskId);
    if (!w || w.done) return;
    w.done = true;
    w.killed ??= { message: `unhealthy: ${e.reason}`, health: undefined };
    const grace = w.checks.run.killGracePeriodSeconds ?? HEALTH_KILL_GRACE_SECONDS;
    this.deps.log.warn("killing unhealthy task", { taskId: e.taskId, why: w.killed.message, grace });
    // A kill that fails is tried again (1 s, doubling to 30 s) while the task is still watched:
    // an unhealthy task must not keep running because one kill call failed.
    const attempt = (n: number): void => {
      this.deps.kill(e.taskId, grace).catch((err: unknown) => {
        this.deps.log.warn("health kill failed; trying again", { taskId: e.taskId, err: errorMessage(err) });
        if (this.tasks.get(e.taskId) === w && n < 20)
          (this.deps.clock ?? systemClock).setTimeout(() => attempt(n + 1), Math.min(30_000, 1000 * 2 ** n));
      });
    };
    attempt(0);
  }

  private onReadiness(e: ReadinessEvent): void {
    const w = this.tasks.get(e.taskId);
    if (!w || w.done) return;
    const readiness = readinessResultsOf(this.checker.health(e.taskId)?.readiness ?? []);
    const key = readiness.map((r) => `${r.name}=${r.ready}`).join(",");
    if (key === w.readinessKey) return;
    w.readinessKey = key;
    w.readiness = readiness;
    const r = e.state.result;
    const message = r ? `readiness check ${r.name}: ${r.ready ? "ready" : "not ready"}` : "readiness checked";
    this.publish(e.taskId, w, message);
  }

  private publish(taskId: string, w: Watched, message: string): void {
    this.deps.publish(taskId, {
      ...(w.health ? { health: w.health } : {}),
      ...(w.readiness ? { readiness: w.readiness } : {}),
      reason: REASON_HEALTH_UPDATED,
      message,
    });
  }
}

/** Whether some check reaches the task only through its container's IP (a port without host port). */
export function needsContainerIp(task: TaskChecks): boolean {
  const noHostPort = (index: number) => {
    const m = mappingAt(task, index);
    return m !== undefined && m.hostPort === 0 && m.containerPort > 0;
  };
  const containerPort = (port: number) =>
    task.run.network?.mode === "container" &&
    !(task.run.portMappings ?? []).some((m) => m.containerPort === port && m.hostPort > 0);
  return (
    (task.run.healthChecks ?? []).some(
      (spec) =>
        spec.protocol !== "COMMAND" &&
        (spec.port !== undefined && spec.port > 0
          ? containerPort(spec.port)
          : noHostPort(spec.portIndex ?? 0)),
    ) ||
    (task.run.readinessChecks ?? []).some((spec) => {
      const i = (task.run.portMappings ?? []).findIndex((m) => m.name === spec.portName);
      return i >= 0 && noHostPort(i);
    })
  );
}

/** The port mapping of a port index, on a bridge or container network (undefined: host networking). */
function mappingAt(task: TaskChecks, index: number) {
  const mode = task.run.network?.mode ?? "host";
  if (mode === "host") return undefined;
  return task.run.portMappings?.[index];
}

/** The address of the task's port `index`: its host port on loopback, else its container port on `ip`. */
function portTarget(task: TaskChecks, index: number, ip: string | undefined): ResolvedTarget {
  const mapping = mappingAt(task, index);
  if (mapping === undefined) {
    const port = task.ports[index];
    if (port !== undefined) return { target: { host: LOOPBACK, port } };
    return { unresolved: `the task has no port at index ${index} (it has ${task.ports.length})` };
  }
  if (mapping.hostPort > 0) return { target: { host: LOOPBACK, port: mapping.hostPort } };
  if (ip !== undefined && mapping.containerPort > 0)
    return { target: { host: ip, port: mapping.containerPort } };
  return {
    unresolved: `port index ${index} has no host port and the container's IP address is not known`,
  };
}

/**
 * Where a health check connects: its `port` if given (on loopback; on a container network the
 * container's port: through the host port that publishes it, else on the container's address), else
 * the task's port at `portIndex` (default 0). COMMAND checks connect nowhere.
 */
export function resolveHealthTarget(
  spec: HealthCheckSpec,
  task: TaskChecks,
  containerIp: string | undefined,
): ResolvedTarget {
  if (spec.protocol === "COMMAND") return {};
  if (spec.port !== undefined && spec.port > 0) {
    if (task.run.network?.mode !== "container") return { target: { host: LOOPBACK, port: spec.port } };
    // A container network: the port is the container's (IP per task), reached through its host
    // port when a mapping publishes it, else on the container's address.
    const published = (task.run.portMappings ?? []).find(
      (m) => m.containerPort === spec.port && m.hostPort > 0,
    );
    if (published) return { target: { host: LOOPBACK, port: published.hostPort } };
    if (containerIp !== undefined) return { target: { host: containerIp, port: spec.port } };
    return { unresolved: `port ${spec.port} of the container: its IP address is not known` };
  }
  return portTarget(task, spec.portIndex ?? 0, containerIp);
}

/**
 * Where a readiness check connects: the port named `portName` (a port mapping's name, else the
 * task's PORT_<NAME> variable), undefined when there is none (the probe says "no port named …").
 */
export function resolveReadinessTarget(
  spec: ReadinessCheckSpec,
  task: TaskChecks,
  containerIp: string | undefined,
): CheckTarget | undefined {
  const index = (task.run.portMappings ?? []).findIndex((m) => m.name === spec.portName);
  if (index >= 0) return portTarget(task, index, containerIp).target;
  const port = Number(task.env[`PORT_${spec.portName.toUpperCase()}`]);
  return Number.isInteger(port) && port > 0 && port <= 65535 ? { host: LOOPBACK, port } : undefined;
}

/** "HTTP check on port 31002", "TCP check on 172.17.0.3:8080", "COMMAND check `curl …`". */
export function describeCheck(spec: HealthCheckSpec, target: CheckTarget | undefined): string {
  if (spec.protocol === "COMMAND") {
    const cmd = spec.command?.value ?? "";
    return `COMMAND check \`${cmd.length > 60 ? `${cmd.slice(0, 60)}…` : cmd}\``;
  }
  if (!target) return `${spec.protocol} check on port index ${spec.portIndex ?? 0}`;
  return target.host === LOOPBACK
    ? `${spec.protocol} check on port ${target.port}`
    : `${spec.protocol} check on ${target.host}:${target.port}`;
}
