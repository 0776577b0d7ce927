/** gRPC surface of the scheduler. Followers answer UNAVAILABLE with the leader's address. */

import {
  FailedPreconditionError,
  InvalidArgumentError,
  type Logger,
  NotLeaderError,
  requestIdOf,
  unaryHandler,
} from "@drover/common";
import {
  APP_LIMITS,
  type AppRecord,
  type AppSpec,
  appVersionOf,
  checkAppId,
  type DeploymentRecord,
  hostPortsWanted,
  isResident,
  toFieldIssues,
  toMarathonJson,
} from "@drover/core";
import type { App, Deployment, SchedulerServer } from "@drover/proto";
import { z } from "zod";
import { AppStore } from "./apps.js";
import type { DeploymentStore } from "./deployments.js";
import type { FrameworkDriver } from "./framework.js";
import { reasonToWire } from "./reasons.js";
import { rollBack } from "./rollback.js";

export { reasonToWire };

export interface SchedulerLeader {
  apps: AppStore;
  deployments: DeploymentStore;
  framework: FrameworkDriver;
  changed(): void;
}

export interface SchedulerRef {
  current(): SchedulerLeader | undefined;
  leaderAddress(): Promise<string | undefined>;
  /** This replica's advertised address. */
  self: string;
}

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
const DeploymentIdSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, {
    error: "must be a deployment id (a uuid)",
  }),
});

/** A request's fields checked with zod; INVALID_ARGUMENT naming the field otherwise. */
function parse<T>(schema: z.ZodType<T>, req: unknown): T {
  const v = schema.safeParse(req);
  if (!v.success) throw new InvalidArgumentError(toFieldIssues(v.error.issues, req));
  return v.data;
}

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
  };
}

/** Tasks per ListTasks page at most (as the master's). */
const MAX_TASK_PAGE = 10_000;

export function schedulerService(ref: SchedulerRef, log: Logger): SchedulerServer {
  const leader = async (): Promise<SchedulerLeader> => {
    const l = ref.current();
    if (l) return l;
    // Elected but still starting: no hint to itself (callers back off instead of retrying at once).
    const address = await ref.leaderAddress();
    throw new NotLeaderError(address === ref.self ? undefined : address);
  };
  /**
   * An app id in a request, made absolute (`web` is `/web`): refused by its field before any lookup
   * (NOT_FOUND is for valid ids).
   */
  const requireId = (id: string, path = "id"): string => {
    if (!id) throw new InvalidArgumentError([{ path, message: "required" }]);
    const v = checkAppId(id);
    if (!v.ok) throw new InvalidArgumentError([{ path, message: v.message }]);
    return v.id;
  };
  return {
    createApp: unaryHandler(log, "CreateApp", async (req, call) => {
      const spec = AppStore.parse(req.appJson);
      const l = await leader();
      const rec = await l.apps.create(spec, requestIdOf(call));
      l.changed();
      const { version } = l.apps.get(spec.id);
      return { app: rec ? toApp(l, rec, version) : undefined, deploymentId: "" };
    }),
    getApp: unaryHandler(log, "GetApp", async (req) => {
      const id = requireId(req.id);
      const l = await leader();
      const { state, version } = l.apps.get(id);
      return { app: toApp(l, state, version), deploymentId: l.deployments.runningFor(id)?.id ?? "" };
    }),
    listApps: unaryHandler(log, "ListApps", async () => {
      const l = await leader();
      return {
        apps: [...l.apps.records().entries()]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([id, r]) => toApp(l, r, l.apps.get(id).version)),
      };
    }),
    updateApp: unaryHandler(log, "UpdateApp", async (req) => {
      const id = requireId(req.id);
      const { force } = parse(ForceSchema, req);
      const { canaryInstances } = parse(CanarySchema, req);
      const spec = AppStore.parse(req.appJson);
      const room = canaryRoom(spec);
      if (canaryInstances > room)
        throw new InvalidArgumentError([
          {
            path: "canary_instances",
            message: `at most ${room} for this app: its upgradeStrategy leaves room for ${room} new instance(s) next to its ${spec.instances} old ones (canaries kill no old instance)`,
          },
        ]);
      const l = await leader();
      const { rec, deploymentId } = await l.deployments.serial(async () => {
        await l.deployments.freshFor(id);
        const hook = l.deployments.startHook(
          id,
          "upgrade",
          force,
          canaryInstances > 0 ? { canaryInstances } : {},
        );
        let started = false;
        const rec = await l.apps.update(id, spec, {
          ...hook,
          committed: (rev) => {
            started = true;
            hook.committed(rev);
          },
        });
        return { rec, deploymentId: started ? hook.id : "" };
      });
      l.changed();
      return { app: rec ? toApp(l, rec, l.apps.get(id).version) : undefined, deploymentId };
    }),
    restartApp: unaryHandler(log, "RestartApp", async (req) => {
      const id = requireId(req.id);
      const { force } = parse(ForceSchema, req);
      const l = await leader();
      const { rec, deploymentId } = await l.deployments.serial(async () => {
        await l.deployments.freshFor(id);
        const hook = l.deployments.startHook(id, "restart", force);
        const rec = await l.apps.restart(id, hook);
        return { rec, deploymentId: hook.id };
      });
      l.changed();
      return { app: rec ? toApp(l, rec, l.apps.get(id).version) : undefined, deploymentId };
    }),
    listDeployments: unaryHandler(log, "ListDeployments", async (req) => {
      const { includeEnded } = parse(z.object({ includeEnded: z.boolean() }), req);
      const l = await leader();
      return { deployments: l.deployments.list(includeEnded).map(toDeployment) };
    }),
    getDeployment: unaryHandler(log, "GetDeployment", async (req) => {
      const { id } = parse(DeploymentIdSchema, req);
      const l = await leader();
      return { deployment: toDeployment(l.deployments.get(id)) };
    }),
    cancelDeployment: unaryHandler(log, "CancelDeployment", async (req) => {
      const { id, force } = parse(DeploymentIdSchema.extend(ForceSchema.shape), req);
      const l = await leader();
      const out = await l.deployments.serial(async () => {
        const d = l.deployments.get(id);
        if (d.state !== "running")
          throw new FailedPreconditionError(`deployment ${id} is ${d.state}, not running`);
        if (force) return { d: await l.deployments.cancel(id, "cancelled by request", true), rollbackId: "" };
        // Without force: each app goes back to the definition it had before, as a new deployment
        // that supersedes this one (in the same transaction; rollback.ts). A restart's earlier
        // definition is the same one: it just stops.
        const rollbackId = await rollBack(l.apps, l.deployments, d, (rid) => ({
          type: "DeploymentCancelled",
          force: false,
          reason: "cancelled by request",
          rollbackId: rid,
        }));
        if (rollbackId === "")
          return { d: await l.deployments.cancel(id, "cancelled by request", false), rollbackId };
        return { d: l.deployments.get(id), rollbackId };
      });
      l.changed();
      return { deployment: toDeployment(out.d), rollbackId: out.rollbackId };
    }),
    promoteDeployment: unaryHandler(log, "PromoteDeployment", async (req) => {
      const { id } = parse(DeploymentIdSchema, req);
      const l = await leader();
      const d = await l.deployments.promote(id);
      l.changed();
      return { deployment: toDeployment(d) };
    }),
    scaleApp: unaryHandler(log, "ScaleApp", async (req) => {
      const id = requireId(req.id);
      const l = await leader();
      const rec = await l.apps.scale(id, req.instances);
      l.changed();
      return { app: rec ? toApp(l, rec, l.apps.get(id).version) : undefined, deploymentId: "" };
    }),
    deleteApp: unaryHandler(log, "DeleteApp", async (req) => {
      const id = requireId(req.id);
      const l = await leader();
      await l.deployments.serial(async () => {
        await l.deployments.freshFor(id);
        await l.apps.remove(id, l.deployments.removeHook(id));
      });
      l.changed();
      return {};
    }),
    listAppVersions: unaryHandler(log, "ListAppVersions", async (req) => {
      const id = requireId(req.appId, "appId");
      const l = await leader();
      return { versions: await l.apps.versions(id) };
    }),
    getAppVersion: unaryHandler(log, "GetAppVersion", async (req) => {
      const id = requireId(req.appId, "appId");
      if (!req.version) throw new InvalidArgumentError([{ path: "version", message: "required" }]);
      const l = await leader();
      const entry = await l.apps.version(id, req.version);
      return { definitionJson: JSON.stringify(toMarathonJson(entry.spec, entry)) };
    }),
    getQueue: unaryHandler(log, "GetQueue", async (req) => {
      const appId = req.appId ? requireId(req.appId, "appId") : "";
      const l = await leader();
      if (appId) l.apps.get(appId);
      const apps = l.framework
        .queue()
        .filter((q) => !appId || q.appId === appId)
        .map((q) => ({
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
      const l = await leader();
      if (req.pageSize > MAX_TASK_PAGE)
        throw new InvalidArgumentError([{ path: "pageSize", message: `at most ${MAX_TASK_PAGE}` }]);
      return l.framework.listTasks(appId, req.includeTerminal, {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
    }),
  };
}

/**
 * How many canaries fit next to an app's old instances: its upgradeStrategy's over-capacity
 * (rollingStep's maximum, with Marathon's one extra instance when the minimum meets it; none for a
 * resident app, which may not exceed its instances).
 */
export function canaryRoom(spec: AppSpec): number {
  const n = spec.instances;
  const { minimumHealthCapacity, maximumOverCapacity } = spec.upgradeStrategy;
  const max = Math.floor(n * (1 + maximumOverCapacity));
  const meeting = Math.ceil(n * minimumHealthCapacity) === max;
  return Math.max(0, max - n + (meeting && !isResident(spec) ? 1 : 0));
}
