/**
 * Groups of apps (Marathon's /v2/groups), changed as one: a group's definition is flattened
 * (core's flattenGroup: ids resolved, group dependencies inherited by every app below), each app
 * checked with its path in the group, and the change of every app it touches is committed in one
 * transaction with the one deployment that carries it out (AppStore.applyAll and
 * DeploymentStore.groupHook). The deployment's plan is core's planSteps: removed apps stop first
 * (dependents before what they depend on), new apps start, then apps scale or restart level by
 * level in dependency order. A group is the set of apps below its id; nothing else is stored.
 */
import { AlreadyExistsError, type FieldIssue, InvalidArgumentError, NotFoundError } from "@drover/common";
import {
  APP_LIMITS,
  type AppSpec,
  type AppVersionEntry,
  checkPathId,
  type DependencyNode,
  type DeploymentPlanStep,
  isUnder,
  parseAppVersion,
  parseGroupJson,
  planSteps,
} from "@drover/core";
import { z } from "zod";
import { AppStore } from "./apps.js";
import type { DeploymentStore } from "./deployments.js";

/** The largest group definition taken (the gRPC message limit is 4 MiB). */
export const MAX_GROUP_JSON_BYTES = 2 * 1024 * 1024;

export const GroupRequestSchema = z.object({
  mode: z.enum(["create", "update", "remove", "scale"], {
    error: "must be create, update, remove or scale",
  }),
  groupJson: z.string().max(MAX_GROUP_JSON_BYTES, { error: `at most ${MAX_GROUP_JSON_BYTES} bytes` }),
  groupId: z.string().max(512),
  scaleBy: z.number(),
  force: z.boolean(),
  dryRun: z.boolean(),
});
export type GroupRequest = z.infer<typeof GroupRequestSchema>;

export interface GroupResult {
  deploymentId: string;
  steps: DeploymentPlanStep[];
  /** The apps changed, by kind. */
  changes: Record<string, "create" | "update" | "scale" | "remove">;
}

/** The group id of a request (`shop` is `/shop`, `/` the root). */
export function groupIdOf(raw: string, path = "groupId"): string {
  if (raw === "" || raw === "/") return "/";
  const c = checkPathId(raw, "/");
  if (!c.ok) throw new InvalidArgumentError([{ path, message: c.message }]);
  return c.id;
}

/**
 * What the request makes of the apps: each app id touched mapped to its new definition, or to
 * undefined to remove it. Refuses by field (with the path in the group definition).
 */
export function groupTarget(
  req: GroupRequest,
  apps: AppStore,
): { groupId: string; target: Map<string, AppSpec | undefined> } {
  const existing = apps.records();
  const target = new Map<string, AppSpec | undefined>();
  switch (req.mode) {
    case "create":
    case "update": {
      const base = req.mode === "update" ? groupIdOf(req.groupId) : "/";
      const g = parseGroupJson(req.groupJson, base);
      if (!g.ok) throw new InvalidArgumentError(g.issues);
      const groupId = g.value.id;
      if (req.mode === "update" && groupId !== base)
        throw new InvalidArgumentError([
          { path: "id", message: `must be ${base} (the group being updated)` },
        ]);
      const raw = JSON.parse(req.groupJson) as { version?: unknown };
      if (raw.version !== undefined)
        throw new InvalidArgumentError([
          { path: "version", message: "not supported yet: rolling a group back to a version" },
        ]);
      const issues: FieldIssue[] = [];
      for (const a of g.value.apps) {
        try {
          target.set(a.id, AppStore.parse(JSON.stringify(a.definition)));
        } catch (err) {
          if (!(err instanceof InvalidArgumentError)) throw err;
          for (const i of err.issues) issues.push({ path: `${a.path}.${i.path}`, message: i.message });
        }
      }
      if (issues.length > 0) throw new InvalidArgumentError(issues);
      if (req.mode === "create") {
        const taken = [...existing.keys()].find(
          (id) => target.has(id) || (groupId !== "/" && isUnder(id, groupId)),
        );
        if (taken !== undefined)
          throw new AlreadyExistsError(`group ${groupId}`, {
            message: `Group ${groupId} is already created (it holds app ${taken}). Use PUT to change this group.`,
          });
      } else
        for (const id of existing.keys())
          if (isUnder(id, groupId) && !target.has(id)) target.set(id, undefined);
      return { groupId, target };
    }
    case "remove":
    case "scale": {
      const groupId = groupIdOf(req.groupId);
      if (req.mode === "scale" && !(Number.isFinite(req.scaleBy) && req.scaleBy >= 0))
        throw new InvalidArgumentError([{ path: "scaleBy", message: "must be a number of at least 0" }]);
      for (const [id, r] of existing) {
        if (!isUnder(id, groupId)) continue;
        if (req.mode === "remove") target.set(id, undefined);
        else {
          const instances = Math.ceil(r.spec.instances * req.scaleBy);
          if (instances > APP_LIMITS.maxInstances)
            throw new InvalidArgumentError([
              {
                path: "scaleBy",
                message: `${id} would have ${instances} instances; at most ${APP_LIMITS.maxInstances}`,
              },
            ]);
          target.set(id, { ...r.spec, instances });
        }
      }
      if (target.size === 0 && groupId !== "/") throw new NotFoundError(`group ${groupId}`);
      return { groupId, target };
    }
  }
}

/** Carries a group request out (see the module comment). */
export async function applyGroup(
  apps: AppStore,
  deployments: DeploymentStore,
  req: GroupRequest,
): Promise<GroupResult> {
  return deployments.serial(async () => {
    const { groupId, target } = groupTarget(req, apps);
    return applyTarget(apps, deployments, groupId, target, req);
  });
}

/**
 * Changes the apps of `target` (an id to its definition, or to undefined to remove it) as one
 * transaction with the one deployment that carries them out (`groupId` "": not a group, e.g. a PUT of
 * several apps). Call within deployments.serial.
 */
export async function applyTarget(
  apps: AppStore,
  deployments: DeploymentStore,
  groupId: string,
  target: ReadonlyMap<string, AppSpec | undefined>,
  opts: { force: boolean; dryRun: boolean },
): Promise<GroupResult> {
  for (const id of target.keys()) await deployments.freshFor(id);
  const original: DependencyNode[] = [...apps.records().values()].map((r) => r.spec);
  const after = new Map<string, DependencyNode>(original.map((n) => [n.id, n]));
  for (const [id, spec] of target) {
    if (spec) after.set(id, spec);
    else after.delete(id);
  }
  const nodes = [...after.values()];
  const hook = deployments.groupHook(groupId, opts.force, original, nodes);
  let committed = false;
  const made = await apps.applyAll(
    target,
    {
      changes: hook.changes,
      committed: (rev) => {
        committed = true;
        hook.committed(rev);
      },
      failed: hook.failed,
    },
    { dryRun: opts.dryRun },
  );
  const steps = opts.dryRun
    ? planSteps(
        made.map((m) => ({ appId: m.appId, change: m.change })),
        original,
        nodes,
      )
    : (hook.planned() ?? []);
  return {
    deploymentId: committed ? hook.id : "",
    steps,
    changes: Object.fromEntries(made.map((m) => [m.appId, m.change === "config" ? "update" : m.change])),
  };
}

/** A group's versions: every kept version of the apps below it, newest first. */
export async function groupVersions(apps: AppStore, groupId: string): Promise<string[]> {
  const out = new Set<string>();
  // A copy of the ids: records() is live, and apps may change while this awaits.
  for (const id of [...apps.records().keys()])
    if (isUnder(id, groupId)) for (const v of await apps.versions(id)) out.add(v);
  return [...out].sort().reverse();
}

/**
 * The apps below `groupId` as of `version` (any ISO-8601 form): each app's definition at its latest
 * version at or before it, undefined for an app created after it. NotFoundError when no app of the
 * group existed then, or when an app's definition of then is no longer kept (DROVER_SCHEDULER_MAX_APP_VERSIONS).
 * An app removed since is not known any more (its versions went with it).
 */
export async function groupAt(
  apps: AppStore,
  groupId: string,
  version: string,
): Promise<{ version: string; apps: Map<string, AppVersionEntry | undefined> }> {
  const v = parseAppVersion(version);
  if (v === undefined)
    throw new InvalidArgumentError([
      { path: "version", message: "must be an ISO-8601 time, e.g. 2026-11-29T19:13:37.123Z" },
    ]);
  const out = new Map<string, AppVersionEntry | undefined>();
  let existed = false;
  for (const id of [...apps.records().keys()].filter((a) => isUnder(a, groupId)).sort()) {
    const kept = await apps.versions(id);
    const at = kept.find((x) => x <= v);
    if (at === undefined) {
      if (kept.length >= apps.versionsKept)
        throw new NotFoundError(`version ${v} of app ${id}`, {
          message: `App '${id}' does not keep its definition of ${v} any more (only the last ${apps.versionsKept} versions are kept)`,
        });
      out.set(id, undefined);
      continue;
    }
    existed = true;
    out.set(id, await apps.version(id, at));
  }
  if (!existed)
    throw new NotFoundError(`version ${v} of group ${groupId}`, {
      message: `Group '${groupId}' does not exist in version ${v}`,
    });
  return { version: v, apps: out };
}

/**
 * Takes the group back to its definition as of `version` (Marathon's PUT /v2/groups/{id} with
 * `{"version": …}`): every app below it back to its definition then, apps created since removed, as
 * one change and one deployment. Apps removed since stay removed (their definitions are gone).
 */
export async function rollbackGroup(
  apps: AppStore,
  deployments: DeploymentStore,
  groupId: string,
  version: string,
  opts: { force: boolean; dryRun: boolean },
): Promise<GroupResult> {
  return deployments.serial(async () => {
    const at = await groupAt(apps, groupId, version);
    const target = new Map<string, AppSpec | undefined>();
    for (const [id, entry] of at.apps) target.set(id, entry?.spec);
    return applyTarget(apps, deployments, groupId, target, opts);
  });
}
