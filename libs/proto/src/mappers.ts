/**
 * Hand-written mappers between wire types (generated) and domain types (@drover/core).
 * Inbound mapping validates with zod and throws InvalidArgumentError-compatible issues
 * through `validate` at the caller.
 */
import {
  type ReadinessResult as DomainReadinessResult,
  type Resources as DomainResources,
  type TaskHealth as DomainTaskHealth,
  type TaskInfo as DomainTaskInfo,
  type TaskRun as DomainTaskRun,
  type TaskState as DomainTaskState,
  type TaskStatus as DomainTaskStatus,
  TASK_STATES,
  type TaskRecord,
} from "@drover/core";
import type {
  ReadinessResult,
  Resources,
  Task,
  TaskHealth,
  TaskInfo,
  TaskRun,
  TaskStatus,
} from "./gen/drover/v1/common.js";
import { type TaskState, taskStateFromJSON, taskStateToJSON } from "./gen/drover/v1/common.js";

export function toWireState(s: DomainTaskState): TaskState {
  return taskStateFromJSON(s);
}

/** Maps a wire state to the domain; undefined for UNSPECIFIED or unknown values. */
export function fromWireState(s: TaskState): DomainTaskState | undefined {
  const name = taskStateToJSON(s);
  return (TASK_STATES as readonly string[]).includes(name) ? (name as DomainTaskState) : undefined;
}

export function toWireResources(r: DomainResources): Resources {
  return {
    cpus: r.cpus,
    mem: r.mem,
    disk: r.disk,
    ports: r.ports.map((p) => ({ begin: p.begin, end: p.end })),
  };
}

export function fromWireResources(r: Resources | undefined): DomainResources {
  return {
    cpus: r?.cpus ?? 0,
    mem: r?.mem ?? 0,
    disk: r?.disk ?? 0,
    ports: (r?.ports ?? []).map((p) => ({ begin: p.begin, end: p.end })),
  };
}

export function toWireTaskInfo(i: DomainTaskInfo): TaskInfo {
  return {
    taskId: i.taskId,
    name: i.name,
    agentId: i.agentId,
    frameworkId: i.frameworkId,
    appId: i.appId,
    container: { image: i.image, cmd: i.cmd ?? "", args: [...(i.args ?? [])] },
    resources: toWireResources(i.resources),
    env: { ...i.env },
    labels: { ...i.labels },
    ...(i.run ? { run: toWireRun(i.run) } : {}),
  };
}

export function toWireRun(r: DomainTaskRun): TaskRun {
  return {
    appVersion: r.appVersion ?? "",
    networkMode: r.network?.mode ?? "",
    networkName: r.network?.name ?? "",
    portMappings: (r.portMappings ?? []).map((m) => ({
      containerPort: m.containerPort,
      hostPort: m.hostPort,
      protocol: m.protocol,
      name: m.name ?? "",
    })),
    volumes: (r.volumes ?? []).map((v) => ({
      containerPath: v.containerPath,
      hostPath: v.hostPath ?? "",
      mode: v.mode,
      persistentName: v.persistent?.name ?? "",
      persistentSizeMib: v.persistent?.sizeMib ?? 0,
    })),
    fetch: (r.fetch ?? []).map((f) => ({
      uri: f.uri,
      extract: f.extract,
      executable: f.executable,
      cache: f.cache,
      outputFile: f.outputFile ?? "",
    })),
    privileged: r.privileged ?? false,
    dockerParameters: (r.dockerParameters ?? []).map((p) => ({ key: p.key, value: p.value })),
    forcePullImage: r.forcePullImage ?? false,
    user: r.user ?? "",
    killGracePeriodSeconds: r.killGracePeriodSeconds,
    healthChecks: (r.healthChecks ?? []).map((h) => ({
      protocol: h.protocol,
      portIndex: h.portIndex,
      port: h.port,
      path: h.path ?? "",
      gracePeriodSeconds: h.gracePeriodSeconds,
      intervalSeconds: h.intervalSeconds,
      timeoutSeconds: h.timeoutSeconds,
      maxConsecutiveFailures: h.maxConsecutiveFailures,
      delaySeconds: h.delaySeconds,
      ignoreHttp1xx: h.ignoreHttp1xx ?? false,
      command: h.command?.value ?? "",
    })),
    readinessChecks: (r.readinessChecks ?? []).map((c) => ({
      ...c,
      httpStatusCodesForReady: [...c.httpStatusCodesForReady],
    })),
    tty: r.tty ?? false,
    cpusLimit: limitToWire(r.limits?.cpus),
    memLimit: limitToWire(r.limits?.mem),
  };
}

/** A resource limit on the wire: absent → absent, "unlimited" → -1. */
function limitToWire(l: number | "unlimited" | undefined): number | undefined {
  return l === "unlimited" ? -1 : l;
}

function limitFromWire(l: number | undefined): number | "unlimited" | undefined {
  return l === undefined ? undefined : l < 0 ? "unlimited" : l;
}

/** Wire → domain shape of a TaskRun (validate with TaskRunSchema, through TaskInfoSchema). Empty fields are left out. */
export function fromWireRun(r: TaskRun): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (r.appVersion) out.appVersion = r.appVersion;
  if (r.networkMode) out.network = { mode: r.networkMode, ...(r.networkName ? { name: r.networkName } : {}) };
  if (r.portMappings.length)
    out.portMappings = r.portMappings.map((m) => ({
      containerPort: m.containerPort,
      hostPort: m.hostPort,
      protocol: m.protocol,
      ...(m.name ? { name: m.name } : {}),
    }));
  if (r.volumes.length)
    out.volumes = r.volumes.map((v) => ({
      containerPath: v.containerPath,
      ...(v.hostPath ? { hostPath: v.hostPath } : {}),
      mode: v.mode,
      ...(v.persistentName ? { persistent: { name: v.persistentName, sizeMib: v.persistentSizeMib } } : {}),
    }));
  if (r.fetch.length)
    out.fetch = r.fetch.map((f) => ({
      uri: f.uri,
      extract: f.extract,
      executable: f.executable,
      cache: f.cache,
      ...(f.outputFile ? { outputFile: f.outputFile } : {}),
    }));
  if (r.privileged) out.privileged = true;
  if (r.dockerParameters.length)
    out.dockerParameters = r.dockerParameters.map((p) => ({ key: p.key, value: p.value }));
  if (r.forcePullImage) out.forcePullImage = true;
  if (r.user) out.user = r.user;
  if (r.killGracePeriodSeconds !== undefined) out.killGracePeriodSeconds = r.killGracePeriodSeconds;
  if (r.healthChecks.length)
    out.healthChecks = r.healthChecks.map((h) => ({
      protocol: h.protocol,
      ...(h.portIndex !== undefined ? { portIndex: h.portIndex } : {}),
      ...(h.port !== undefined ? { port: h.port } : {}),
      ...(h.path ? { path: h.path } : {}),
      gracePeriodSeconds: h.gracePeriodSeconds,
      intervalSeconds: h.intervalSeconds,
      timeoutSeconds: h.timeoutSeconds,
      maxConsecutiveFailures: h.maxConsecutiveFailures,
      delaySeconds: h.delaySeconds,
      ...(h.ignoreHttp1xx ? { ignoreHttp1xx: true } : {}),
      ...(h.command ? { command: { value: h.command } } : {}),
    }));
  if (r.readinessChecks.length)
    out.readinessChecks = r.readinessChecks.map((c) => ({
      ...c,
      httpStatusCodesForReady: [...c.httpStatusCodesForReady],
    }));
  if (r.tty) out.tty = true;
  const cpus = limitFromWire(r.cpusLimit);
  const mem = limitFromWire(r.memLimit);
  if (cpus !== undefined || mem !== undefined)
    out.limits = { ...(cpus !== undefined ? { cpus } : {}), ...(mem !== undefined ? { mem } : {}) };
  return out;
}

/** Wire → domain shape (not yet validated: pass the result through TaskInfoSchema). */
export function fromWireTaskInfo(i: TaskInfo): Record<string, unknown> {
  return {
    taskId: i.taskId,
    name: i.name,
    agentId: i.agentId,
    frameworkId: i.frameworkId,
    appId: i.appId,
    image: i.container?.image ?? "",
    ...(i.container?.cmd ? { cmd: i.container.cmd } : {}),
    ...(i.container?.args.length ? { args: [...i.container.args] } : {}),
    resources: fromWireResources(i.resources),
    env: { ...i.env },
    labels: { ...i.labels },
    ...(i.run ? { run: fromWireRun(i.run) } : {}),
  };
}

function toWireHealth(h: DomainTaskHealth): TaskHealth {
  return {
    healthy: h.healthy,
    lastSuccessMs: h.lastSuccessMs ?? 0,
    lastFailureMs: h.lastFailureMs ?? 0,
    consecutiveFailures: h.consecutiveFailures,
    lastFailureCause: h.lastFailureCause ?? "",
  };
}

export function fromWireHealth(h: TaskHealth): DomainTaskHealth {
  return {
    healthy: h.healthy,
    ...(h.lastSuccessMs ? { lastSuccessMs: h.lastSuccessMs } : {}),
    ...(h.lastFailureMs ? { lastFailureMs: h.lastFailureMs } : {}),
    consecutiveFailures: h.consecutiveFailures,
    ...(h.lastFailureCause ? { lastFailureCause: h.lastFailureCause } : {}),
  };
}

export function fromWireReadiness(rs: ReadinessResult[]): DomainReadinessResult[] {
  return rs.map((r) => ({
    name: r.name,
    ready: r.ready,
    checkedAtMs: r.checkedAtMs,
    ...(r.lastResponse ? { lastResponse: r.lastResponse } : {}),
  }));
}

export function toWireStatus(taskId: string, agentId: string, s: DomainTaskStatus): TaskStatus {
  return {
    taskId,
    agentId,
    state: toWireState(s.state),
    message: s.message,
    exitCode: s.exitCode,
    timestampMs: s.timestampMs,
    uuid: s.uuid,
    containerId: s.containerId ?? "",
    source: s.source,
    health: s.health ? toWireHealth(s.health) : undefined,
    reason: s.reason ?? "",
    readiness: (s.readiness ?? []).map((r) => ({
      name: r.name,
      ready: r.ready,
      checkedAtMs: r.checkedAtMs,
      lastResponse: r.lastResponse ?? "",
    })),
    ipAddresses: s.ipAddresses ? [...s.ipAddresses] : [],
  };
}

/** Wire → domain shape (validate with TaskStatusSchema). */
export function fromWireStatus(s: TaskStatus): Record<string, unknown> {
  return {
    state: fromWireState(s.state) ?? `invalid(${s.state})`,
    message: s.message,
    ...(s.exitCode !== undefined ? { exitCode: s.exitCode } : {}),
    timestampMs: s.timestampMs,
    uuid: s.uuid,
    ...(s.containerId ? { containerId: s.containerId } : {}),
    source: s.source || "agent",
    ...(s.health ? { health: fromWireHealth(s.health) } : {}),
    ...(s.reason ? { reason: s.reason } : {}),
    ...(s.readiness.length ? { readiness: fromWireReadiness(s.readiness) } : {}),
    ...(s.ipAddresses.length ? { ipAddresses: [...s.ipAddresses] } : {}),
  };
}

export function toWireTask(t: TaskRecord): Task {
  return {
    info: toWireTaskInfo(t.info),
    status: toWireStatus(t.info.taskId, t.info.agentId, t.status),
    createdAtMs: t.createdAtMs,
    updatedAtMs: t.updatedAtMs,
  };
}
