/**
 * gRPC surface of the scheduler: a thin transport over the application service (app-service.ts),
 * which the Marathon HTTP API (http/) calls too. Followers answer UNAVAILABLE with the leader's address.
 */

import { InvalidArgumentError, type Logger, requestIdOf, unaryHandler } from "@drover/common";
import {
  APP_LIMITS,
  type AppRecord,
  appVersionOf,
  currentStep,
  type DeploymentRecord,
  hostPortsWanted,
  stepsOf,
  toMarathonJson,
} from "@drover/core";
import type { App, Deployment, SchedulerServer } from "@drover/proto";
import { z } from "zod";
import {
  type AppRead,
  AppService,
  DeploymentIdSchema,
  parseFields as parse,
  requireAppId as requireId,
  type SchedulerLeader,
  type SchedulerRef,
} from "./app-service.js";
import { AppStore } from "./apps.js";
import { GroupRequestSchema } from "./groups.js";
import { reasonToWire } from "./reasons.js";

export { canaryRoom, type SchedulerLeader, type SchedulerRef } from "./app-service.js";
export { reasonToWire };

function toApp(l: SchedulerLeader, r: AppRecord, version: number): App {
  const s = r.spec;
  const c = l.framework.counts(s.id);
  const versioned = appVersionOf(r);
  return {
    id: s.id,
    image: s.container?.docker?.image ?? "",
    cmd: s.cmd ?? (s.args ?? []).join(" "),
    instances: s.instances,
    cpus: s.cpus,
    mem: s.mem,
    env: Object.fromEntries(
      Object.entries(s.env).filter((e): e is [string, string] => typeof e[1] === "string"),
    ),
    labels: { ...s.labels },
    version,
    tasksRunning: c.running,
    tasksStaged: c.staged,
    backoffUntilMs: l.framework.backoffUntil(s.id),
    // The definition in Marathon's shape, every default filled in, with its version (`app show --json`).
    definitionJson: JSON.stringify(toMarathonJson(s, versioned)),
    ports: hostPortsWanted(s).map((p) => p ?? 0),
    appVersion: versioned.version,
    lastScalingAt: versioned.versionInfo.lastScalingAt,
    lastConfigChangeAt: versioned.versionInfo.lastConfigChangeAt,
  };
}

const ForceSchema = z.object({ force: z.boolean() });
/** UpdateApp's canary_instances (a Drover extension): 0 is none. */
const CanarySchema = z.object({
  canaryInstances: z
    .number()
    .int()
    .min(0, { error: "must be 0 (no canary) or more" })
    .max(APP_LIMITS.maxInstances),
});

function toDeployment(d: DeploymentRecord): Deployment {
  return {
    id: d.id,
    kind: d.kind,
    state: d.state,
    apps: d.apps.map((a) => ({
      appId: a.appId,
      fromVersion: a.fromVersion ?? "",
      toVersion: a.toVersion,
      old: a.counts?.old ?? 0,
      new: a.counts?.new ?? 0,
      newHealthy: a.counts?.newHealthy ?? 0,
      healthy: a.counts?.healthy ?? 0,
      minHealthy: a.counts?.minHealthy ?? 0,
      maxInstances: a.counts?.maxInstances ?? 0,
      instances: a.counts?.instances ?? 0,
    })),
    waitingFor: d.waitingFor,
    createdAtMs: d.createdAtMs,
    updatedAtMs: d.updatedAtMs,
    reason: d.reason ?? "",
    rollbackId: d.rollbackId ?? "",
    canaryInstances: d.canaryInstances ?? 0,
    steps: stepsOf(d).map((s) => ({
      actions: s.actions.map((a) => ({
        action: a.action,
        appId: a.appId,
        done:
          d.state === "succeeded" || a.action === "StartApplication" || (d.doneApps ?? []).includes(a.appId),
      })),
    })),
    currentStep: d.state === "succeeded" ? stepsOf(d).length : currentStep(d),
    groupId: d.groupId ?? "",
  };
}

/** Tasks per ListTasks page at most (as the master's). */
const MAX_TASK_PAGE = 10_000;

export function schedulerService(ref: SchedulerRef, log: Logger): SchedulerServer {
  const svc = new AppService(ref);
  /** The app view of a change's result (the leader that made it). */
  const appOf = async (a: AppRead | undefined): Promise<App | undefined> =>
    a ? toApp(await svc.leader(), a.record, a.version) : undefined;
  return {
    createApp: unaryHandler(log, "CreateApp", async (req, call) => {
      const spec = AppStore.parse(req.appJson);
      const out = await svc.create(spec, requestIdOf(call));
      return { app: await appOf(out.app), deploymentId: "" };
    }),
    getApp: unaryHandler(log, "GetApp", async (req) => {
      const id = requireId(req.id);
      const a = await svc.get(id);
      return { app: await appOf(a), deploymentId: a.deploymentId };
    }),
    listApps: unaryHandler(log, "ListApps", async () => {
      const l = await svc.leader();
      return { apps: (await svc.list()).map((a) => toApp(l, a.record, a.version)) };
    }),
    updateApp: unaryHandler(log, "UpdateApp", async (req) => {
      const id = requireId(req.id);
      const { force } = parse(ForceSchema, req);
      const { canaryInstances } = parse(CanarySchema, req);
      const spec = AppStore.parse(req.appJson);
      const out = await svc.update(id, spec, { force, canaryInstances });
      return { app: await appOf(out.app), deploymentId: out.deploymentId };
    }),
    restartApp: unaryHandler(log, "RestartApp", async (req) => {
      const id = requireId(req.id);
      const { force } = parse(ForceSchema, req);
      const out = await svc.restart(id, force);
      return { app: await appOf(out.app), deploymentId: out.deploymentId };
    }),
    listDeployments: unaryHandler(log, "ListDeployments", async (req) => {
      const { includeEnded } = parse(z.object({ includeEnded: z.boolean() }), req);
      return { deployments: (await svc.listDeployments(includeEnded)).map(toDeployment) };
    }),
    getDeployment: unaryHandler(log, "GetDeployment", async (req) => {
      const { id } = parse(DeploymentIdSchema, req);
      return { deployment: toDeployment(await svc.getDeployment(id)) };
    }),
    cancelDeployment: unaryHandler(log, "CancelDeployment", async (req) => {
      const { id, force } = parse(DeploymentIdSchema.extend(ForceSchema.shape), req);
      const out = await svc.cancelDeployment(id, force);
      return { deployment: toDeployment(out.deployment), rollbackId: out.rollbackId };
    }),
    applyGroup: unaryHandler(log, "ApplyGroup", async (req) => {
      const out = await svc.applyGroup(parse(GroupRequestSchema, req));
      return {
        deploymentId: out.deploymentId,
        changes: out.changes,
        steps: out.steps.map((s) => ({ actions: s.actions.map((a) => ({ ...a, done: false })) })),
      };
    }),
    promoteDeployment: unaryHandler(log, "PromoteDeployment", async (req) => {
      const { id } = parse(DeploymentIdSchema, req);
      return { deployment: toDeployment(await svc.promoteDeployment(id)) };
    }),
    scaleApp: unaryHandler(log, "ScaleApp", async (req) => {
      const id = requireId(req.id);
      const out = await svc.scale(id, req.instances);
      return { app: await appOf(out.app), deploymentId: out.deploymentId };
    }),
    deleteApp: unaryHandler(log, "DeleteApp", async (req) => {
      const id = requireId(req.id);
      return await svc.remove(id);
    }),
    listAppVersions: unaryHandler(log, "ListAppVersions", async (req) => {
      const id = requireId(req.appId, "appId");
      return { versions: await svc.versions(id) };
    }),
    getAppVersion: unaryHandler(log, "GetAppVersion", async (req) => {
      const id = requireId(req.appId, "appId");
      if (!req.version) throw new InvalidArgumentError([{ path: "version", message: "required" }]);
      const entry = await svc.version(id, req.version);
      return { definitionJson: JSON.stringify(toMarathonJson(entry.spec, entry)) };
    }),
    getQueue: unaryHandler(log, "GetQueue", async (req) => {
      const appId = req.appId ? requireId(req.appId, "appId") : "";
      const apps = (await svc.queue(appId || undefined)).map((q) => ({
        appId: q.appId,
        waiting: q.waiting,
        reasons: [
          ...(q.dependency ? [{ kind: "dependency", agents: 0, port: 0, text: q.dependency }] : []),
          ...(q.backoffUntilMs > 0
            ? [
                {
                  kind: "backoff",
                  agents: 0,
                  port: 0,
                  text: `crash-loop backoff until ${new Date(q.backoffUntilMs).toISOString()}`,
                },
              ]
            : []),
          ...(q.launchFailure
            ? [
                {
                  kind: "launch_failed",
                  agents: 0,
                  port: 0,
                  text: `the master failed the last launch (${q.launchFailure.attempts} in a row): ${q.launchFailure.message}; next try at ${new Date(q.launchFailure.retryAtMs).toISOString()}`,
                },
              ]
            : []),
          ...q.reasons.map(reasonToWire),
        ],
        sinceMs: q.sinceMs,
        backoffUntilMs: q.backoffUntilMs,
        offersSeen: q.offersSeen,
      }));
      return { apps };
    }),
    listTasks: unaryHandler(log, "ListTasks", async (req) => {
      const appId = req.appId ? requireId(req.appId, "appId") : "";
      await svc.leader();
      if (req.pageSize > MAX_TASK_PAGE)
        throw new InvalidArgumentError([{ path: "pageSize", message: `at most ${MAX_TASK_PAGE}` }]);
      return svc.listMasterTasks(appId, req.includeTerminal, {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
    }),
  };
}
