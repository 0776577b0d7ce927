/**
 * Hand-written mappers between wire types (generated) and domain types (@drover/core).
 * Inbound mapping validates with zod and throws InvalidArgumentError-compatible issues
 * through `validate` at the caller.
 */
import {
  type Resources as DomainResources,
  type TaskInfo as DomainTaskInfo,
  type TaskState as DomainTaskState,
  type TaskStatus as DomainTaskStatus,
  TASK_STATES,
  type TaskRecord,
} from "@drover/core";
import type { Resources, Task, TaskInfo, TaskStatus } from "./gen/drover/v1/common.js";
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
  };
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
  };
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
