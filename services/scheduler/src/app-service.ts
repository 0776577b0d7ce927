/**
 * The scheduler's application service: what the gRPC surface (service.ts) and the Marathon HTTP
 * API (http/) both call. It owns the domain rules of a request (which app, which deployment, what a
 * change is refused for) and throws typed errors (libs/common errors.ts); each transport maps them
 * through the one table ERROR_STATUS. It reads the leader's in-memory views (AppStore, the
 * framework's task view, the deployment store): no request scans etcd.
 *
 * Every call needs the leader; on a follower it throws NotLeaderError naming the leader.
 */
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  NotLeaderError,
  UnavailableError,
} from "@drover/common";
import {
  APP_LIMITS,
  type AppRecord,
  type AppSpec,
  type AppVersionEntry,
  checkAppId,
  type DeploymentRecord,
  isResident,
  toFieldIssues,
} from "@drover/core";
import { z } from "zod";
import { AppStore, type ChangeHook } from "./apps.js";
import type { DeploymentStore } from "./deployments.js";
import type { FrameworkDriver, QueueEntry, TaskEntry } from "./framework.js";
import {
  applyGroup,
  applyTarget,
  type GroupRequest,
  type GroupResult,
  groupAt,
  groupVersions,
  rollbackGroup,
} from "./groups.js";
import { AppLockedError } from "./locks.js";
import { rollBack } from "./rollback.js";

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
  /** Gives up the leadership (Marathon's DELETE /v2/leader); absent: not supported here. */
  abdicate?(): Promise<void>;
}

export { AppLockedError } from "./locks.js";

/** An app with its aggregate version (what views need). */
export interface AppRead {
  record: AppRecord;
  /** The aggregate version (number of events), gRPC's `version`. */
  version: number;
}

/** The outcome of a change: the app after it (undefined when removed) and the deployment it started ("" none). */
export interface ChangeResult {
  app: AppRead | undefined;
  deploymentId: string;
}

export interface UpdateOptions {
  force: boolean;
  canaryInstances?: number;
  /**
   * Refuse with AppLockedError when a deployment runs for the app and `force` is false, whatever
   * the change (Marathon locks scales too); without it only a config change is refused (by the
   * deployment store, as gRPC always did).
   */
  lockAll?: boolean;
}

export const DeploymentIdSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, {
    error: "must be a deployment id (a uuid)",
  }),
});

/** A request's fields checked with zod; INVALID_ARGUMENT naming the field otherwise. */
export function parseFields<T>(schema: z.ZodType<T>, req: unknown): T {
  const v = schema.safeParse(req);
  if (!v.success) throw new InvalidArgumentError(toFieldIssues(v.error.issues, req));
  return v.data;
}

/**
 * An app id in a request, made absolute (`web` is `/web`): refused by its field before any lookup
 * (NOT_FOUND is for valid ids).
 */
export function requireAppId(id: string, path = "id"): string {
  if (!id) throw new InvalidArgumentError([{ path, message: "required" }]);
  const v = checkAppId(id);
  if (!v.ok) throw new InvalidArgumentError([{ path, message: v.message }]);
  return v.id;
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

export class AppService {
  constructor(private readonly ref: SchedulerRef) {}

  /** The leader's state on this replica; NotLeaderError (naming the leader) otherwise. */
  async leader(): Promise<SchedulerLeader> {
    const l = this.ref.current();
    if (l) return l;
    // Elected but still starting: no hint to itself (callers back off instead of retrying at once).
    const address = await this.ref.leaderAddress();
    throw new NotLeaderError(address === this.ref.self ? undefined : address);
  }

  /** Whether this replica leads now (and has loaded its state). */
  leading(): boolean {
    return this.ref.current() !== undefined;
  }

  async leaderAddress(): Promise<string | undefined> {
    return this.ref.leaderAddress();
  }

  get self(): string {
    return this.ref.self;
  }

  private read(l: SchedulerLeader, id: string): AppRead | undefined {
    const e = l.apps.record(id);
    return e ? { record: e, version: l.apps.get(id).version } : undefined;
  }

  // ----------------------------------------------------------------------------------- apps

  /**
   * Creates the app with its `create` deployment (StartApplication, then ScaleApplication; it locks
   * nothing and ends once every instance runs healthy and ready). A retried create (its first answer
   * lost) answers with the app and the deployment it started.
   */
  async create(spec: AppSpec, requestId?: string): Promise<ChangeResult> {
    const l = await this.leader();
    const { rec, deploymentId } = await l.deployments.serial(async () => {
      await l.deployments.freshFor(spec.id);
      const start = started(l.deployments.startHook(spec.id, "create", false));
      const rec = await l.apps.create(spec, requestId, start.hook);
      return { rec, deploymentId: start.id() || (l.deployments.runningFor(spec.id)?.id ?? "") };
    });
    l.changed();
    return { app: rec ? { record: rec, version: l.apps.get(spec.id).version } : undefined, deploymentId };
  }

  async get(id: string): Promise<AppRead & { deploymentId: string }> {
    const l = await this.leader();
    const { state, version } = l.apps.get(id);
    return { record: state, version, deploymentId: l.deployments.runningFor(id)?.id ?? "" };
  }

  /** Every app, sorted by id (the in-memory view). */
  async list(): Promise<AppRead[]> {
    const l = await this.leader();
    return [...l.apps.records().entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([id, r]) => ({ record: r, version: l.apps.get(id).version }));
  }

  /** Throws AppLockedError when a deployment runs for `id` and `force` is false. Call within deployments.serial. */
  private refuseLocked(l: SchedulerLeader, id: string, force: boolean): void {
    if (force) return;
    const running = l.deployments.runningFor(id);
    // A create's or a scale's deployment locks nothing (a change supersedes it).
    if (running && !running.tracking) throw new AppLockedError(id, [running.id]);
  }

  async update(id: string, spec: AppSpec, opts: UpdateOptions): Promise<ChangeResult> {
    const canaryInstances = opts.canaryInstances ?? 0;
    const room = canaryRoom(spec);
    if (canaryInstances > room)
      throw new InvalidArgumentError([
        {
          path: "canary_instances",
          message: `at most ${room} for this app: its upgradeStrategy leaves room for ${room} new instance(s) next to its ${spec.instances} old ones (canaries kill no old instance)`,
        },
      ]);
    const l = await this.leader();
    const { rec, deploymentId } = await l.deployments.serial(async () => {
      await l.deployments.freshFor(id);
      if (opts.lockAll) this.refuseLocked(l, id, opts.force);
      const hook = l.deployments.startHook(
        id,
        "upgrade",
        opts.force,
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
    return { app: rec ? { record: rec, version: l.apps.get(id).version } : undefined, deploymentId };
  }

  async restart(id: string, force: boolean): Promise<ChangeResult> {
    const l = await this.leader();
    const { rec, deploymentId } = await l.deployments.serial(async () => {
      await l.deployments.freshFor(id);
      // What startHook refuses too (same message), typed so that HTTP can name the deployment.
      this.refuseLocked(l, id, force);
      const hook = l.deployments.startHook(id, "restart", force);
      const rec = await l.apps.restart(id, hook);
      return { rec, deploymentId: hook.id };
    });
    l.changed();
    return { app: rec ? { record: rec, version: l.apps.get(id).version } : undefined, deploymentId };
  }

  /**
   * Scales the app with its `scale` deployment (ScaleApplication; it locks nothing). `force`
   * undefined (gRPC's ScaleApp): no lock check, and while another deployment of the app runs no
   * deployment starts (that one goes on with the new count); false: AppLockedError while one runs;
   * true: the running one is cancelled.
   */
  async scale(id: string, instances: number, force?: boolean): Promise<ChangeResult> {
    const l = await this.leader();
    const { rec, deploymentId } = await l.deployments.serial(async () => {
      await l.deployments.freshFor(id);
      if (force !== undefined) this.refuseLocked(l, id, force);
      const start = started(l.deployments.startHook(id, "scale", force));
      const rec = await l.apps.scale(id, instances, start.hook);
      return { rec, deploymentId: start.id() };
    });
    l.changed();
    return { app: rec ? { record: rec, version: l.apps.get(id).version } : undefined, deploymentId };
  }

  /**
   * Removes the app with its `remove` deployment (StopApplication, done once no task of it is active);
   * its running deployment is cancelled with it unless `force` is false (then AppLockedError).
   */
  async remove(id: string, force = true): Promise<{ deploymentId: string }> {
    const l = await this.leader();
    const deploymentId = await l.deployments.serial(async () => {
      await l.deployments.freshFor(id);
      this.refuseLocked(l, id, force);
      const start = started(l.deployments.removeHook(id));
      await l.apps.remove(id, start.hook);
      return start.id();
    });
    l.changed();
    return { deploymentId };
  }

  async versions(id: string): Promise<string[]> {
    const l = await this.leader();
    return l.apps.versions(id);
  }

  async version(id: string, version: string): Promise<AppVersionEntry> {
    if (!version) throw new InvalidArgumentError([{ path: "version", message: "required" }]);
    const l = await this.leader();
    return l.apps.version(id, version);
  }

  /** The app as the views read it now, or undefined (for a view after a change). */
  async current(id: string): Promise<AppRead | undefined> {
    return this.read(await this.leader(), id);
  }

  // ---------------------------------------------------------------------------------- tasks

  /** The tasks of one app (or all) from the leader's task view (no call to the master). */
  async taskEntries(appId?: string): Promise<TaskEntry[]> {
    const l = await this.leader();
    if (appId !== undefined) {
      l.apps.get(appId);
      return [...l.framework.tasks.ofApp(appId)];
    }
    return [...l.framework.tasks.values()];
  }

  /** This framework's tasks as the master knows them (gRPC ListTasks), paged. */
  async listMasterTasks(
    appId: string,
    includeTerminal: boolean,
    page: { pageSize: number; pageToken: string },
  ): ReturnType<FrameworkDriver["listTasks"]> {
    const l = await this.leader();
    return l.framework.listTasks(appId, includeTerminal, page);
  }

  /**
   * Kills tasks (Marathon's task kill); ids not in the task view are left out (callers that must
   * know every id check first). `scale`: each app's instances are lowered by its tasks killed, in the same turn as the
   * kill (AppLockedError while a deployment runs for it, unless `force`). `wipe`: as a kill for an
   * app without local volumes; refused for a resident app (its reservation would be kept).
   */
  async killTasks(
    taskIds: readonly string[],
    opts: { scale: boolean; wipe: boolean; force: boolean },
  ): Promise<{ killed: TaskEntry[]; scaled: Map<string, AppRead> }> {
    const l = await this.leader();
    for (const id of taskIds) {
      const t = l.framework.tasks.get(id);
      if (!t) continue;
      if (opts.wipe) {
        const app = l.apps.record(t.appId);
        if (app && isResident(app.spec))
          throw new InvalidArgumentError([
            {
              path: "wipe",
              message: `not supported for resident app ${t.appId}: Drover keeps a resident task's reservation (kill it without wipe)`,
            },
          ]);
      }
    }
    const scaled = new Map<string, AppRead>();
    const killed = await l.framework.killTasks(taskIds, async (found) => {
      if (!opts.scale) return;
      const byApp = new Map<string, number>();
      for (const t of found) byApp.set(t.appId, (byApp.get(t.appId) ?? 0) + 1);
      await l.deployments.serial(async () => {
        for (const [appId, n] of byApp) {
          const app = l.apps.record(appId);
          if (!app) continue;
          await l.deployments.freshFor(appId);
          this.refuseLocked(l, appId, opts.force);
          const rec = await l.apps.scale(appId, Math.max(0, app.spec.instances - n));
          if (rec) scaled.set(appId, { record: rec, version: l.apps.get(appId).version });
        }
      });
    });
    l.changed();
    return { killed, scaled };
  }

  /** The apps with instances waiting for a launch, with why (the framework's queue). */
  async queue(appId?: string): Promise<QueueEntry[]> {
    const l = await this.leader();
    if (appId) l.apps.get(appId);
    return l.framework.queue().filter((q) => !appId || q.appId === appId);
  }

  /** Resets an app's launch backoff (Marathon's DELETE /v2/queue/{id}/delay); NotFoundError when it is not queued. */
  async resetDelay(appId: string): Promise<void> {
    const l = await this.leader();
    l.apps.get(appId);
    const queued = l.framework.queue().some((q) => q.appId === appId);
    if (!queued)
      throw new NotFoundError(`app ${appId} in the launch queue`, {
        message: `Application ${appId} not found in tasks queue.`,
      });
    l.framework.backoff.delete(appId);
    l.changed();
  }

  // ---------------------------------------------------------------------------- deployments

  async listDeployments(includeEnded: boolean): Promise<DeploymentRecord[]> {
    const l = await this.leader();
    return l.deployments.list(includeEnded);
  }

  async getDeployment(id: string): Promise<DeploymentRecord> {
    const l = await this.leader();
    return l.deployments.get(id);
  }

  /**
   * Cancels a running deployment. Without force each app goes back to the definition it had before,
   * as a new deployment that supersedes this one (rollback.ts; `rollbackId`); with force it just stops.
   */
  async cancelDeployment(
    id: string,
    force: boolean,
  ): Promise<{ deployment: DeploymentRecord; rollbackId: string }> {
    const l = await this.leader();
    const out = await l.deployments.serial(async () => {
      const d = l.deployments.get(id);
      if (d.state !== "running")
        throw new FailedPreconditionError(`deployment ${id} is ${d.state}, not running`);
      if (force)
        return { deployment: await l.deployments.cancel(id, "cancelled by request", true), rollbackId: "" };
      // A restart's earlier definition is the same one: it just stops.
      const rollbackId = await rollBack(l.apps, l.deployments, d, (rid) => ({
        type: "DeploymentCancelled",
        force: false,
        reason: "cancelled by request",
        rollbackId: rid,
      }));
      if (rollbackId === "")
        return { deployment: await l.deployments.cancel(id, "cancelled by request", false), rollbackId };
      return { deployment: l.deployments.get(id), rollbackId };
    });
    l.changed();
    return out;
  }

  async promoteDeployment(id: string): Promise<DeploymentRecord> {
    const l = await this.leader();
    const d = await l.deployments.promote(id);
    l.changed();
    return d;
  }

  // --------------------------------------------------------------------------------- groups

  /**
   * A group created, replaced, scaled or removed as one change (groups.ts): every app change in one
   * transaction with the one deployment that carries it out; `dryRun` answers with the plan only.
   */
  async applyGroup(req: GroupRequest): Promise<GroupResult> {
    const l = await this.leader();
    const out = await applyGroup(l.apps, l.deployments, req);
    if (out.deploymentId) l.changed();
    return out;
  }

  /** A group's versions, newest first, and the group as of one of them (groups.ts). */
  async groupVersions(groupId: string): Promise<string[]> {
    return groupVersions((await this.leader()).apps, groupId);
  }

  async groupAt(groupId: string, version: string): ReturnType<typeof groupAt> {
    return groupAt((await this.leader()).apps, groupId, version);
  }

  /** The group back to its definition as of `version`, as one change and one deployment. */
  async rollbackGroup(
    groupId: string,
    version: string,
    opts: { force: boolean; dryRun: boolean },
  ): Promise<GroupResult> {
    const l = await this.leader();
    const out = await rollbackGroup(l.apps, l.deployments, groupId, version, opts);
    if (out.deploymentId) l.changed();
    return out;
  }

  /**
   * Several apps created or changed as one (Marathon's PUT/PATCH /v2/apps): every change in one
   * transaction with the one deployment that carries them out, in dependency order.
   */
  async applyMany(specs: readonly AppSpec[], force: boolean): Promise<GroupResult> {
    const l = await this.leader();
    const out = await l.deployments.serial(() =>
      applyTarget(l.apps, l.deployments, "", new Map(specs.map((s) => [s.id, s])), { force, dryRun: false }),
    );
    if (out.deploymentId) l.changed();
    return out;
  }

  // --------------------------------------------------------------------------------- leader

  /** Gives up the leadership (another replica, or this one again, is elected). */
  async abdicate(): Promise<void> {
    await this.leader();
    if (!this.ref.abdicate) throw new UnavailableError("abdication is not available on this replica");
    await this.ref.abdicate();
  }
}

/** A deployment hook that says whether its deployment was committed (`id()`: its id then, else ""). */
function started(hook: ChangeHook & { id: string }): { hook: ChangeHook; id(): string } {
  let committed = false;
  return {
    hook: {
      ...hook,
      committed: (rev) => {
        committed = true;
        hook.committed(rev);
      },
    },
    id: () => (committed ? hook.id : ""),
  };
}

/** A Marathon app definition (JSON text) checked and normalized; INVALID_ARGUMENT by field otherwise. */
export function parseAppJson(json: string): AppSpec {
  return AppStore.parse(json);
}

/** Instances a request may ask for (ScaleApp, PUT with only `instances`). */
export const MAX_INSTANCES = APP_LIMITS.maxInstances;
