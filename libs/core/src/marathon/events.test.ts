import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseAppSpecJson } from "../app.js";
import type { TaskStatus } from "../events/task.js";
import { REASON_UNHEALTHY } from "../task-health.js";
import { TASK_STATES, type TaskState } from "../task-state.js";
import {
  type CommittedEvent,
  EventContextMaps,
  foldEventContext,
  MARATHON_EVENT_TYPES,
  MarathonEventMapper,
  MarathonEventTypeNameSchema,
  marathonEventsOf,
} from "./events.js";

const spec = (() => {
  const r = parseAppSpecJson('{"id":"/web","cmd":"sleep 600","cpus":0.1,"mem":32,"instances":2}');
  assert.ok(r.ok);
  return r.value;
})();

const T0 = Date.parse("2026-11-29T20:00:00.000Z");
const TASK = "web.6f1c7e0a-3f5c-4a59-9d1e-1c2b3d4e5f60";
const DEP = "0f8fad5b-d9cb-469f-a165-70867728950e";
let version = 0;
const ev = (aggregate: string, id: string, event: object, atMs = T0): CommittedEvent => ({
  aggregate,
  id,
  version: ++version,
  atMs,
  event: event as { type: string },
});
const status = (state: TaskState, extra: Partial<TaskStatus> = {}): TaskStatus => ({
  state,
  message: `now ${state}`,
  timestampMs: T0,
  uuid: `u-${state}`,
  source: "agent",
  ...extra,
});
const launched = ev("task", TASK, {
  type: "TaskLaunched",
  info: {
    taskId: TASK,
    name: "/web",
    agentId: "agent-1",
    frameworkId: "fw-1",
    appId: "/web",
    image: "",
    cmd: "sleep 600",
    resources: { cpus: 0.1, mem: 32, disk: 0, ports: [{ begin: 31000, end: 31001 }] },
    env: {},
    labels: {},
    run: { appVersion: "2026-11-29T19:59:59.000Z" },
  },
  status: status("TASK_STAGING"),
});
const agent = ev("agent", "agent-1", {
  type: "AgentRegistered",
  hostname: "node-a",
  resources: { cpus: 4, mem: 4096, disk: 0, ports: [] },
  attributes: {},
});

/** Maps a log in order with one context, as a reader does. */
function mapAll(log: CommittedEvent[]) {
  const ctx = new EventContextMaps();
  return log.map((e) => {
    const out = marathonEventsOf(e, ctx);
    foldEventContext(ctx, e);
    return out;
  });
}

describe("marathon events", () => {
  it("a task's launch and status changes are status_update_event and instance_changed_event with Marathon's fields", () => {
    const [, staged, running, again] = mapAll([
      agent,
      launched,
      ev("task", TASK, { type: "TaskStatusUpdated", status: status("TASK_RUNNING") }, T0 + 1000),
      ev(
        "task",
        TASK,
        { type: "TaskStatusUpdated", status: status("TASK_RUNNING", { uuid: "dup" }) },
        T0 + 2000,
      ),
    ]);
    assert.deepEqual(
      staged?.map((e) => e.eventType),
      ["status_update_event", "instance_changed_event"],
    );
    assert.deepEqual(running?.[0], {
      eventType: "status_update_event",
      timestamp: "2026-11-29T20:00:01.000Z",
      slaveId: "agent-1",
      taskId: TASK,
      taskStatus: "TASK_RUNNING",
      message: "now TASK_RUNNING",
      appId: "/web",
      version: "2026-11-29T19:59:59.000Z",
      host: "node-a",
      ports: [31000, 31001],
    });
    assert.deepEqual(running?.[1], {
      eventType: "instance_changed_event",
      timestamp: "2026-11-29T20:00:01.000Z",
      instanceId: TASK,
      condition: "Running",
      runSpecId: "/web",
      agentId: "agent-1",
      host: "node-a",
      runSpecVersion: "2026-11-29T19:59:59.000Z",
    });
    // A repeated state (a duplicate delivery, or a health-only update) is no new status.
    assert.deepEqual(again, []);
  });

  it("status_update_event carries the status's ipAddresses in Marathon's shape, and none when it has none", () => {
    const [, staged, running, killed] = mapAll([
      agent,
      launched,
      ev("task", TASK, {
        type: "TaskStatusUpdated",
        status: status("TASK_RUNNING", { ipAddresses: ["172.17.0.5", "fd00::5"] }),
      }),
      ev("task", TASK, {
        type: "TaskStatusUpdated",
        status: status("TASK_KILLED", { ipAddresses: ["172.17.0.5"] }),
      }),
    ]);
    assert.equal("ipAddresses" in (staged?.[0] ?? {}), false);
    assert.deepEqual(running?.[0]?.ipAddresses, [
      { ipAddress: "172.17.0.5", protocol: "IPv4" },
      { ipAddress: "fd00::5", protocol: "IPv6" },
    ]);
    // Marathon's field order: ... host, ipAddresses, ports ...
    const keys = Object.keys(running?.[0] ?? {});
    assert.equal(keys.indexOf("ipAddresses"), keys.indexOf("host") + 1);
    assert.deepEqual(killed?.[0]?.ipAddresses, [{ ipAddress: "172.17.0.5", protocol: "IPv4" }]);
    assert.equal("ipAddresses" in (killed?.[1] ?? {}), false, "instance_changed_event has none");
  });

  it("a status of a task whose launch was not seen still names its app (from the task id), and nothing made up", () => {
    const [out] = mapAll([ev("task", TASK, { type: "TaskStatusUpdated", status: status("TASK_KILLED") })]);
    const su = out?.[0];
    assert.equal(su?.eventType, "status_update_event");
    assert.equal(su?.appId, "/web");
    assert.equal(su?.taskStatus, "TASK_KILLED");
    for (const f of ["host", "slaveId", "ports", "version"]) assert.equal(f in (su ?? {}), false, f);
  });

  it("health changes are health_status_changed_event (alive) and instance_health_changed_event, once per change", () => {
    const health = (healthy: boolean) => ({ healthy, consecutiveFailures: healthy ? 0 : 1 });
    const out = mapAll([
      agent,
      launched,
      ev("task", TASK, { type: "TaskStatusUpdated", status: status("TASK_RUNNING") }),
      ev("task", TASK, {
        type: "TaskStatusUpdated",
        status: status("TASK_RUNNING", { health: health(true) }),
      }),
      ev("task", TASK, {
        type: "TaskStatusUpdated",
        status: status("TASK_RUNNING", { health: health(true) }),
      }),
      ev("task", TASK, {
        type: "TaskStatusUpdated",
        status: status("TASK_RUNNING", { health: health(false) }),
      }),
      ev("task", TASK, {
        type: "TaskStatusUpdated",
        status: status("TASK_KILLED", {
          health: health(false),
          reason: REASON_UNHEALTHY,
          message: "http 500",
        }),
      }),
    ]);
    assert.deepEqual(
      out[3]?.map((e) => [e.eventType, e.alive ?? e.healthy]),
      [
        ["health_status_changed_event", true],
        ["instance_health_changed_event", true],
      ],
    );
    assert.deepEqual(out[4], []);
    assert.equal(out[5]?.[0]?.alive, false);
    assert.deepEqual(
      out[6]?.map((e) => e.eventType),
      ["status_update_event", "instance_changed_event", "unhealthy_instance_kill_event"],
    );
    assert.deepEqual(out[6]?.[2], {
      eventType: "unhealthy_instance_kill_event",
      timestamp: "2026-11-29T20:00:00.000Z",
      appId: "/web",
      version: "2026-11-29T19:59:59.000Z",
      taskId: TASK,
      instanceId: TASK,
      reason: "http 500",
      host: "node-a",
      slaveId: "agent-1",
    });
  });

  it("app changes are api_post_event with the definition; a removal is app_terminated_event too", () => {
    const v = "2026-11-29T20:00:00.000Z";
    const out = mapAll([
      ev("app", "web", { type: "AppCreated", spec, version: v }),
      ev("app", "web", { type: "AppScaled", instances: 5 }),
      ev("app", "web", { type: "AppDeleted" }),
    ]);
    const created = out[0]?.[0];
    assert.equal(created?.eventType, "api_post_event");
    assert.equal(created?.uri, "/v2/apps/web");
    const def = created?.appDefinition as Record<string, unknown>;
    assert.equal(def.id, "/web");
    assert.equal(def.instances, 2);
    assert.equal(def.version, v);
    assert.equal((out[1]?.[0]?.appDefinition as Record<string, unknown> | undefined)?.instances, 5);
    assert.deepEqual(
      out[2]?.map((e) => e.eventType),
      ["api_post_event", "app_terminated_event"],
    );
    assert.equal(out[2]?.[1]?.appId, "/web");
  });

  it("a deployment is deployment_info, then step success and success (or step failure and failed with the reason)", () => {
    const started = {
      type: "DeploymentStarted",
      id: DEP,
      kind: "upgrade",
      apps: [{ appId: "/web", toVersion: "2026-11-29T20:00:00.000Z" }],
    };
    const ok = mapAll([
      ev("deployment", DEP, started),
      ev("deployment", DEP, { type: "DeploymentSucceeded" }),
    ]);
    const plan = {
      id: DEP,
      steps: [{ actions: [{ action: "RestartApplication", app: "/web" }] }],
      version: "2026-11-29T20:00:00.000Z",
    };
    assert.deepEqual(ok[0], [
      {
        eventType: "deployment_info",
        timestamp: "2026-11-29T20:00:00.000Z",
        plan,
        currentStep: { actions: [{ action: "RestartApplication", app: "/web" }] },
      },
    ]);
    assert.deepEqual(
      ok[1]?.map((e) => e.eventType),
      ["deployment_step_success", "deployment_success"],
    );
    assert.deepEqual(ok[1]?.[1], {
      eventType: "deployment_success",
      timestamp: "2026-11-29T20:00:00.000Z",
      id: DEP,
      plan,
    });
    const failed = mapAll([
      ev("deployment", DEP, {
        ...started,
        apps: [{ ...started.apps[0], fromVersion: "2026-11-29T19:00:00.000Z" }],
      }),
      ev("deployment", DEP, { type: "DeploymentProgressed", waitingFor: "x", counts: {} }),
      ev("deployment", DEP, { type: "DeploymentCancelled", force: true, reason: "cancelled by request" }),
    ]);
    assert.deepEqual(failed[1], []);
    assert.deepEqual(
      failed[2]?.map((e) => [e.eventType, e.reason]),
      [
        ["deployment_step_failure", undefined],
        ["deployment_failed", "cancelled by request"],
      ],
    );
    assert.equal(
      (failed[2]?.[1]?.plan as { steps: { actions: { action: string }[] }[] } | undefined)?.steps[0]
        ?.actions[0]?.action,
      "RestartApplication",
    );
  });

  it("a plan of several steps: deployment_step_success as each step's actions are done, the last with the success", () => {
    const G = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
    const out = mapAll([
      ev("deployment", G, {
        type: "DeploymentStarted",
        id: G,
        kind: "group",
        groupId: "/g",
        apps: [
          { appId: "/g/db", toVersion: "2026-11-29T20:00:00.000Z" },
          { appId: "/g/web", toVersion: "2026-11-29T20:00:00.000Z" },
        ],
        steps: [
          {
            actions: [
              { action: "StartApplication", appId: "/g/db" },
              { action: "StartApplication", appId: "/g/web" },
            ],
          },
          { actions: [{ action: "ScaleApplication", appId: "/g/db" }] },
          { actions: [{ action: "ScaleApplication", appId: "/g/web" }] },
        ],
      }),
      ev("deployment", G, { type: "DeploymentActionsDone", appIds: ["/g/db"] }),
      ev("deployment", G, { type: "DeploymentActionsDone", appIds: ["/g/web"] }),
      ev("deployment", G, { type: "DeploymentSucceeded" }),
    ]);
    const info = out[0]?.[0];
    assert.equal(info?.eventType, "deployment_info");
    assert.deepEqual(
      (info?.plan as { steps: { actions: { action: string; app: string }[] }[] } | undefined)?.steps.map(
        (st) => st.actions.map((a) => `${a.action} ${a.app}`),
      ),
      [
        ["StartApplication /g/db", "StartApplication /g/web"],
        ["ScaleApplication /g/db"],
        ["ScaleApplication /g/web"],
      ],
    );
    assert.deepEqual(
      out[1]?.map((e) => [e.eventType, e.currentStep]),
      [["deployment_step_success", { actions: [{ action: "ScaleApplication", app: "/g/db" }] }]],
    );
    assert.deepEqual(out[2], [], "the last step ends with the success");
    assert.deepEqual(
      out[3]?.map((e) => [e.eventType, e.currentStep]),
      [
        ["deployment_step_success", { actions: [{ action: "ScaleApplication", app: "/g/web" }] }],
        ["deployment_success", undefined],
      ],
    );
  });

  it("invalid or unknown events map to nothing and do not throw", () => {
    assert.deepEqual(mapAll([ev("task", TASK, { type: "TaskStatusUpdated", status: { state: "NOPE" } })]), [
      [],
    ]);
    assert.deepEqual(mapAll([ev("martian", "x", { type: "Landed" })]), [[]]);
    assert.deepEqual(mapAll([agent]), [[]]);
  });

  it("every emitted type is a known Marathon name, and event_type filters refuse unknown names", () => {
    for (const t of MARATHON_EVENT_TYPES) assert.ok(MarathonEventTypeNameSchema.safeParse(t).success);
    assert.ok(MarathonEventTypeNameSchema.safeParse("event_stream_attached").success);
    assert.equal(MarathonEventTypeNameSchema.safeParse("status_update").success, false);
  });

  it("property: any log maps deterministically, in ordinal order, to known types with ISO timestamps", () => {
    const stateArb = fc.constantFrom(...TASK_STATES);
    const eventArb = fc.oneof(
      fc.constant(launched),
      fc.constant(agent),
      fc
        .tuple(stateArb, fc.option(fc.boolean(), { nil: undefined }), fc.boolean())
        .map(([s, healthy, unhealthyKill]) =>
          ev("task", TASK, {
            type: "TaskStatusUpdated",
            status: status(s, {
              ...(healthy !== undefined ? { health: { healthy, consecutiveFailures: 0 } } : {}),
              ...(unhealthyKill ? { reason: REASON_UNHEALTHY } : {}),
            }),
          }),
        ),
      fc.constant(ev("task", TASK, { type: "TaskExpunged" })),
      fc.constant(ev("app", "web", { type: "AppCreated", spec })),
      fc.nat(10).map((n) => ev("app", "web", { type: "AppScaled", instances: n })),
      fc.constant(ev("app", "web", { type: "AppDeleted" })),
      fc.constant(
        ev("deployment", DEP, {
          type: "DeploymentStarted",
          id: DEP,
          kind: "restart",
          apps: [{ appId: "/web", toVersion: "2026-11-29T20:00:00.000Z" }],
        }),
      ),
      fc.constant(ev("deployment", DEP, { type: "DeploymentSucceeded" })),
      fc.constant(ev("deployment", DEP, { type: "DeploymentFailed", reason: "deadline" })),
    );
    fc.assert(
      fc.property(
        fc.array(fc.array(eventArb, { minLength: 1, maxLength: 3 }), { maxLength: 30 }),
        (messages) => {
          const a = new MarathonEventMapper();
          const b = new MarathonEventMapper();
          messages.forEach((events, i) => {
            const x = a.map(i + 1, events);
            assert.deepEqual(b.map(i + 1, events), x);
            for (let j = 1; j < x.length; j++) assert.ok((x[j]?.ord ?? 0) > (x[j - 1]?.ord ?? 0));
            x.forEach((p, j) => {
              assert.equal(p.lastOfMessage, j === x.length - 1);
              assert.ok((MARATHON_EVENT_TYPES as readonly string[]).includes(p.event.eventType));
              assert.equal(new Date(p.event.timestamp).toISOString(), p.event.timestamp);
              if (p.event.eventType === "status_update_event") assert.equal(p.event.appId, "/web");
            });
          });
        },
      ),
      { numRuns: 300 },
    );
  });
});
