/**
 * Marathon's event bus (`/v2/events`) from Drover's committed events. Pure: `marathonEventsOf`
 * maps one committed event, given what earlier events said (`MarathonEventContext`), to the
 * Marathon events it stands for; `foldEventContext` then records the event in the context.
 * A reader folds every committed event in log order, so a context is a function of the log.
 *
 * Upstream: `core/event/Events.scala` (the case classes and their JSON), `docs/docs/event-bus.md`.
 * Field names are Marathon's; values Drover does not have are left out (each place says so), never
 * made up.
 *
 * Identity: Marathon 1.4+ has instances with tasks inside; Drover runs one task per instance and
 * its task id (`<app key>.<uuid>`) is both `taskId` and `instanceId`.
 */
import { z } from "zod";
import type { AppSpec } from "../app.js";
import { currentStepOf, type DeploymentPlanStep } from "../deployment/plan.js";
import { type AppEvent, appVersionAt } from "../events/app.js";
import {
  type DeploymentApp,
  type DeploymentEvent,
  type DeploymentKind,
  stepsOf,
} from "../events/deployment.js";
import { AGGREGATES } from "../events/index.js";
import type { JobEvent } from "../events/job.js";
import type { JobRunEvent } from "../events/job-run.js";
import type { TaskEvent, TaskInfo, TaskStatus } from "../events/task.js";
import { marathonIpAddresses } from "../task-addresses.js";
import { REASON_UNHEALTHY } from "../task-health.js";
import { isTerminal, type TaskState } from "../task-state.js";
import { JOB_EVENT_TYPES, jobEvents, jobRunEvents } from "./job-events.js";
import { type JsonObject, toMarathonJson } from "./json.js";
import { keyToAppId, taskIdToAppId } from "./path-id.js";

/**
 * Every event type this mapping emits, in the order they are emitted for one committed event. The
 * position is the event's `slot`: one committed event yields at most one event of each type, so
 * (stream position, event index, slot) names a Marathon event whatever the context held.
 */
export const MARATHON_EVENT_TYPES = [
  "api_post_event",
  "app_terminated_event",
  "status_update_event",
  "instance_changed_event",
  "health_status_changed_event",
  "instance_health_changed_event",
  "unhealthy_instance_kill_event",
  "deployment_info",
  "deployment_step_success",
  "deployment_step_failure",
  "deployment_success",
  "deployment_failed",
  // Metronome's, for jobs and their runs (job-events.ts); appended so earlier slots keep their place.
  ...JOB_EVENT_TYPES,
] as const;
export type MarathonEventType = (typeof MARATHON_EVENT_TYPES)[number];

/** Types a client may name in `event_type` although this mapping never emits them itself. */
export const MARATHON_OTHER_EVENT_TYPES = [
  "event_stream_attached",
  "event_stream_detached",
  "pod_created_event",
  "pod_updated_event",
  "pod_deleted_event",
  "unknown_instance_terminated_event",
  "framework_message_event",
  "subscribe_event",
  "unsubscribe_event",
  "add_health_check_event",
  "remove_health_check_event",
  "failed_health_check_event",
  "unhealthy_task_kill_event",
  "group_change_success",
  "group_change_failed",
  "scheduler_registered_event",
  "scheduler_reregistered_event",
  "scheduler_disconnected_event",
] as const;

/** An `event_type` query value: any Marathon event type name (unknown names are refused). */
export const MarathonEventTypeNameSchema = z.enum([...MARATHON_EVENT_TYPES, ...MARATHON_OTHER_EVENT_TYPES]);

/** The slot of each emitted type (its index in MARATHON_EVENT_TYPES). */
export const MARATHON_EVENT_SLOT: Readonly<Record<MarathonEventType, number>> = Object.fromEntries(
  MARATHON_EVENT_TYPES.map((t, i) => [t, i]),
) as Record<MarathonEventType, number>;

/** A Marathon event as sent on the bus: `eventType` (also the SSE `event:` name), `timestamp`, fields. */
export interface MarathonEvent extends JsonObject {
  eventType: string;
  timestamp: string;
}

/** A committed Drover event as the relay publishes it (libs/bus PublishedEvent, less transport fields). */
export interface CommittedEvent {
  aggregate: string;
  id: string;
  version: number;
  atMs: number;
  event: { type: string };
}

/** What the mapping remembers of a task. */
export interface TaskContext {
  appId: string;
  agentId: string;
  /** The task's host ports, in order (TaskInfo.resources.ports expanded). */
  ports: number[];
  /** The app version the task runs (TaskRun.appVersion); absent for tasks launched before versions. */
  version?: string;
  state: TaskState;
  /** The last health the task's status carried (absent: unknown, no check counted yet or none). */
  healthy?: boolean;
  reason?: string;
}

export interface DeploymentContext {
  kind: DeploymentKind;
  apps: DeploymentApp[];
  startedAtMs: number;
  /** The plan's steps (DeploymentStarted.steps; absent in older logs: one step restarting each app). */
  steps?: DeploymentPlanStep[];
  /** Apps whose action is done (DeploymentActionsDone). */
  done?: ReadonlySet<string>;
}

/** What earlier committed events said, as the mapping needs it. */
export interface MarathonEventContext {
  app(appId: string): AppSpec | undefined;
  task(taskId: string): TaskContext | undefined;
  agentHost(agentId: string): string | undefined;
  deployment(id: string): DeploymentContext | undefined;
}

/** The context as maps, grown by foldEventContext. */
export class EventContextMaps implements MarathonEventContext {
  readonly apps = new Map<string, AppSpec>();
  readonly tasks = new Map<string, TaskContext>();
  readonly agents = new Map<string, string>();
  readonly deployments = new Map<string, DeploymentContext>();
  app(id: string) {
    return this.apps.get(id);
  }
  task(id: string) {
    return this.tasks.get(id);
  }
  agentHost(id: string) {
    return this.agents.get(id);
  }
  deployment(id: string) {
    return this.deployments.get(id);
  }
}

/** An app's id from the key its aggregate is stored under (`web` → `/web`); an id stays as it is. */
function appIdOf(keyOrId: string): string {
  return keyOrId.startsWith("/") ? keyOrId : keyToAppId(keyOrId);
}

/** At most this many host ports are listed per task (LIMITS.portsPerApp is 32; ranges may hold more). */
const MAX_PORTS = 64;

function portsOf(info: TaskInfo): number[] {
  const out: number[] = [];
  for (const r of info.resources.ports)
    for (let p = r.begin; p <= r.end && out.length < MAX_PORTS; p++) out.push(p);
  return out;
}

/** Validates a committed event against its aggregate's schema; undefined if unknown or invalid. */
function validated(e: CommittedEvent): { type: string } | undefined {
  const def = AGGREGATES[e.aggregate];
  if (!def) return undefined;
  const parsed = def.eventSchema.safeParse(e.event);
  return parsed.success ? parsed.data : undefined;
}

/** Records a committed event in the context (call after marathonEventsOf for the same event). */
export function foldEventContext(ctx: EventContextMaps, e: CommittedEvent): void {
  const ev = validated(e);
  if (ev) foldValid(ctx, e, ev);
}

function foldValid(ctx: EventContextMaps, e: CommittedEvent, ev: { type: string }): void {
  switch (e.aggregate) {
    case "app": {
      const a = ev as AppEvent;
      if (a.type === "AppCreated" || a.type === "AppUpdated") ctx.apps.set(e.id, a.spec);
      else if (a.type === "AppScaled") {
        const spec = ctx.apps.get(e.id);
        if (spec) ctx.apps.set(e.id, { ...spec, instances: a.instances });
      } else if (a.type === "AppDeleted") ctx.apps.delete(e.id);
      return;
    }
    case "task": {
      const t = ev as TaskEvent;
      if (t.type === "TaskLaunched") ctx.tasks.set(e.id, { ...taskOf(t.info), ...statusFields(t.status) });
      else if (t.type === "TaskStatusUpdated") {
        const prev = ctx.tasks.get(e.id);
        if (prev) ctx.tasks.set(e.id, { ...prev, ...statusFields(t.status) });
      } else ctx.tasks.delete(e.id);
      return;
    }
    case "agent": {
      const a = ev as { type: string; hostname?: string };
      if (a.type === "AgentRegistered" && a.hostname !== undefined) ctx.agents.set(e.id, a.hostname);
      // AgentRemoved keeps the host: late status updates of its tasks still name it.
      return;
    }
    case "deployment": {
      const d = ev as DeploymentEvent;
      if (d.type === "DeploymentStarted")
        ctx.deployments.set(e.id, {
          kind: d.kind,
          apps: d.apps,
          startedAtMs: e.atMs,
          ...(d.steps ? { steps: d.steps } : {}),
        });
      else if (d.type === "DeploymentRemoved") ctx.deployments.delete(e.id);
      else if (d.type === "DeploymentActionsDone") {
        const prev = ctx.deployments.get(e.id);
        if (prev) ctx.deployments.set(e.id, { ...prev, done: new Set([...(prev.done ?? []), ...d.appIds]) });
      }
      return;
    }
  }
}

function taskOf(info: TaskInfo): Omit<TaskContext, "state"> {
  return {
    appId: appIdOf(info.appId),
    agentId: info.agentId,
    ports: portsOf(info),
    ...(info.run?.appVersion !== undefined ? { version: info.run.appVersion } : {}),
  };
}

function statusFields(s: TaskStatus): Pick<TaskContext, "state" | "healthy" | "reason"> {
  return {
    state: s.state,
    ...(s.health !== undefined ? { healthy: s.health.healthy } : {}),
    ...(s.reason !== undefined ? { reason: s.reason } : {}),
  };
}

/** Marathon's instance condition of a task state (`core/condition/Condition.scala`). */
export function conditionOf(state: TaskState): string {
  switch (state) {
    case "TASK_STAGING":
      return "Staging";
    case "TASK_STARTING":
      return "Starting";
    case "TASK_RUNNING":
      return "Running";
    case "TASK_KILLING":
      return "Killing";
    case "TASK_FINISHED":
      return "Finished";
    case "TASK_FAILED":
      return "Failed";
    case "TASK_KILLED":
      return "Killed";
    case "TASK_LOST":
      return "Unknown";
    case "TASK_UNREACHABLE":
      return "Unreachable";
    case "TASK_GONE":
      return "Gone";
  }
}

/**
 * The Marathon events one committed event stands for, in MARATHON_EVENT_TYPES order. `ctx` must
 * hold every earlier event of the log (and not this one). Invalid or unknown events map to none.
 */
export function marathonEventsOf(e: CommittedEvent, ctx: MarathonEventContext): MarathonEvent[] {
  const ev = validated(e);
  return ev ? mapValid(e, ev, ctx) : [];
}

function mapValid(e: CommittedEvent, ev: { type: string }, ctx: MarathonEventContext): MarathonEvent[] {
  const timestamp = new Date(e.atMs).toISOString();
  switch (e.aggregate) {
    case "app":
      return appEvents(e.id, ev as AppEvent, timestamp, ctx);
    case "task":
      return taskEvents(e.id, ev as TaskEvent, timestamp, ctx);
    case "deployment":
      return deploymentEvents(e.id, ev as DeploymentEvent, timestamp, e.atMs, ctx);
    case "job":
      return jobEvents(e.id, ev as JobEvent, timestamp) as MarathonEvent[];
    case "job-run":
      return jobRunEvents(e.id, ev as JobRunEvent, timestamp) as MarathonEvent[];
    default:
      // agent, framework, residency: Marathon publishes nothing for them on its bus
      // (scheduler_registered_event is about Marathon's own Mesos registration).
      return [];
  }
}

/**
 * api_post_event: Marathon sends it for each app create, update, scale and delete through its API.
 * Drover records neither the caller's address nor the request path in the event, so `clientIp` is
 * left out and `uri` is the app's resource (`/v2/apps/<id>`), not necessarily the path called.
 */
function appEvents(key: string, a: AppEvent, timestamp: string, ctx: MarathonEventContext): MarathonEvent[] {
  const id = appIdOf(key);
  const uri = `/v2/apps${id}`;
  const post = (def: AppSpec | undefined, version?: string): MarathonEvent => ({
    eventType: "api_post_event",
    timestamp,
    uri,
    // Unknown when the app's creation is older than what the reader has seen: left out.
    ...(def !== undefined
      ? {
          appDefinition: toMarathonJson(
            def,
            version !== undefined
              ? { version, versionInfo: { lastScalingAt: version, lastConfigChangeAt: version } }
              : undefined,
          ),
        }
      : {}),
  });
  switch (a.type) {
    case "AppCreated":
    case "AppUpdated":
      return [post(a.spec, a.version)];
    case "AppScaled": {
      const spec = ctx.app(key);
      // versionInfo of a scale keeps lastConfigChangeAt, which this context does not hold: no version.
      return [post(spec ? { ...spec, instances: a.instances } : undefined)];
    }
    case "AppDeleted":
      return [post(ctx.app(key)), { eventType: "app_terminated_event", timestamp, appId: id }];
  }
}

function taskEvents(
  taskId: string,
  t: TaskEvent,
  timestamp: string,
  ctx: MarathonEventContext,
): MarathonEvent[] {
  if (t.type === "TaskExpunged") return []; // Drover's bookkeeping; the terminal status was already sent.
  const prev = ctx.task(taskId);
  const task: TaskContext | undefined =
    t.type === "TaskLaunched" ? { ...taskOf(t.info), ...statusFields(t.status) } : prev && { ...prev };
  const s = t.status;
  // A status of a task whose launch this reader has not seen still names its app (the task id does).
  const appId = task?.appId ?? taskIdToAppId(taskId);
  const host = task ? ctx.agentHost(task.agentId) : undefined;
  const common = {
    ...(appId !== undefined ? { appId } : {}),
    ...(task?.version !== undefined ? { version: task.version } : {}),
  };
  const out: MarathonEvent[] = [];
  const stateChanged = t.type === "TaskLaunched" || prev === undefined || prev.state !== s.state;
  if (stateChanged) {
    // ipAddresses: the task's addresses as its status keeps them (the master keeps those reported at
    // RUNNING on later statuses); left out when none is known, as Marathon leaves out an absent list.
    out.push({
      eventType: "status_update_event",
      timestamp,
      ...(task ? { slaveId: task.agentId } : {}),
      taskId,
      taskStatus: s.state,
      message: s.message,
      ...common,
      ...(host !== undefined ? { host } : {}),
      ...(s.ipAddresses?.length ? { ipAddresses: marathonIpAddresses(s.ipAddresses) } : {}),
      ...(task ? { ports: task.ports } : {}),
    });
    out.push({
      eventType: "instance_changed_event",
      timestamp,
      instanceId: taskId,
      condition: conditionOf(s.state),
      ...(appId !== undefined ? { runSpecId: appId } : {}),
      ...(task ? { agentId: task.agentId } : {}),
      ...(host !== undefined ? { host } : {}),
      ...(task?.version !== undefined ? { runSpecVersion: task.version } : {}),
    });
  }
  // A health result changed (or is the first known): Marathon's HealthStatusChanged and the 1.4+
  // InstanceHealthChanged. A terminal task's last health is not news.
  if (s.health !== undefined && !isTerminal(s.state) && prev?.healthy !== s.health.healthy) {
    out.push({
      eventType: "health_status_changed_event",
      timestamp,
      ...common,
      instanceId: taskId,
      alive: s.health.healthy,
    });
    out.push({
      eventType: "instance_health_changed_event",
      timestamp,
      instanceId: taskId,
      ...(appId !== undefined ? { runSpecId: appId } : {}),
      ...(task?.version !== undefined ? { runSpecVersion: task.version } : {}),
      healthy: s.health.healthy,
    });
  }
  // Drover's agent kills a task whose checks failed too often and says so in the status's reason
  // (Marathon decides the kill itself and announces it before the kill; here it comes with it).
  if (s.reason === REASON_UNHEALTHY && prev?.reason !== REASON_UNHEALTHY) {
    out.push({
      eventType: "unhealthy_instance_kill_event",
      timestamp,
      ...common,
      taskId,
      instanceId: taskId,
      reason: s.message,
      ...(host !== undefined ? { host } : {}),
      ...(task ? { slaveId: task.agentId } : {}),
    });
  }
  return out;
}

/**
 * The steps of a deployment (core's stepsOf: its plan, or one step restarting each app for one
 * from before plans were kept).
 */
function stepsOfContext(d: DeploymentContext): DeploymentPlanStep[] {
  return stepsOf({ apps: d.apps, ...(d.steps ? { steps: d.steps } : {}) });
}

const stepJson = (st: DeploymentPlanStep | undefined): JsonObject => ({
  actions: (st?.actions ?? []).map((a) => ({ action: a.action, app: appIdOf(a.appId) })),
});

/**
 * A deployment as Marathon's DeploymentPlan JSON (`{id, steps: [{actions: [{action, app}]}],
 * version}`). `original` and `target` (whole group trees in Marathon) are not kept with a
 * deployment: left out. `version` is the version the deployment brings its (first) app to. Unknown
 * deployment (started before what this reader has seen): `steps` is empty.
 */
function planOf(id: string, d: DeploymentContext | undefined): JsonObject {
  const version = d?.apps[0]?.toVersion ?? (d ? appVersionAt(d.startedAtMs) : undefined);
  return {
    id,
    steps: d ? stepsOfContext(d).map(stepJson) : [],
    ...(version !== undefined ? { version } : {}),
  };
}

function deploymentEvents(
  id: string,
  d: DeploymentEvent,
  timestamp: string,
  atMs: number,
  ctx: MarathonEventContext,
): MarathonEvent[] {
  if (d.type === "DeploymentStarted") {
    const dc: DeploymentContext = {
      kind: d.kind,
      apps: d.apps,
      startedAtMs: atMs,
      ...(d.steps ? { steps: d.steps } : {}),
    };
    return [
      {
        eventType: "deployment_info",
        timestamp,
        plan: planOf(id, dc),
        currentStep: stepJson(stepsOfContext(dc)[0]),
      },
    ];
  }
  const dc = ctx.deployment(id);
  const plan = planOf(id, dc);
  const steps = dc ? stepsOfContext(dc) : [];
  const done = dc?.done ?? new Set<string>();
  // The step being carried out (core's currentStepOf: StartApplication is done when the plan starts).
  const open = currentStepOf(steps, done);
  const last = steps[steps.length - 1];
  switch (d.type) {
    case "DeploymentActionsDone": {
      // Steps this event completes: one deployment_step_success, for the last of them (one event
      // per type per committed event; several steps ending at once are rare). The last step ends
      // with DeploymentSucceeded.
      const after = currentStepOf(steps, new Set([...done, ...d.appIds]));
      if (after <= open || after >= steps.length) return [];
      return [
        { eventType: "deployment_step_success", timestamp, plan, currentStep: stepJson(steps[after - 1]) },
      ];
    }
    case "DeploymentSucceeded":
      return [
        // The last step ends now (unknown deployment: an empty step).
        { eventType: "deployment_step_success", timestamp, plan, currentStep: stepJson(last) },
        { eventType: "deployment_success", timestamp, id, plan },
      ];
    case "DeploymentFailed":
    case "DeploymentCancelled":
      // Marathon ends a cancelled deployment with DeploymentFailed too (its reason says why).
      return [
        {
          eventType: "deployment_step_failure",
          timestamp,
          plan,
          currentStep: stepJson(steps[Math.min(open, steps.length - 1)]),
        },
        { eventType: "deployment_failed", timestamp, id, plan, reason: d.reason },
      ];
    // DeploymentProgressed (what the step waits for), DeploymentPromoted (a canary goes on) and
    // DeploymentRemoved (retention) have no Marathon event: its bus has no progress within a step.
    default:
      return [];
  }
}

/** A Marathon event with its place in the log: stream sequence `seq` and ordinal `ord` within it. */
export interface PlacedMarathonEvent {
  seq: number;
  /** `eventIndex * ORD_PER_EVENT + slot`: increasing within a message, the same for every reader. */
  ord: number;
  /** The last Marathon event that message yields (its id can be the bare sequence). */
  lastOfMessage: boolean;
  event: MarathonEvent;
}

/** Ordinals reserved per committed event (one per slot, room to grow). */
export const ORD_PER_EVENT = 32;

/**
 * Maps the log message by message, keeping the context: feed it every message in stream order
 * (including those before the part a reader shows, so that the context is right).
 */
export class MarathonEventMapper {
  readonly context = new EventContextMaps();

  map(seq: number, events: readonly CommittedEvent[]): PlacedMarathonEvent[] {
    const out: PlacedMarathonEvent[] = [];
    events.forEach((e, i) => {
      // Validated once for both the mapping and the context.
      const ev = validated(e);
      if (!ev) return;
      for (const event of mapValid(e, ev, this.context))
        out.push({
          seq,
          ord:
            i * ORD_PER_EVENT +
            (MARATHON_EVENT_SLOT[event.eventType as MarathonEventType] ?? ORD_PER_EVENT - 1),
          lastOfMessage: false,
          event,
        });
      foldValid(this.context, e, ev);
    });
    const last = out[out.length - 1];
    if (last) last.lastOfMessage = true;
    return out;
  }
}
