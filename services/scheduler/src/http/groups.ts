/**
 * Marathon's /v2/groups (../shared/marathon/API.md) over the application service's ApplyGroup
 * (groups.ts): a group is the set of apps below its id; POST creates it, PUT replaces it (or scales
 * it: `{"scaleBy": F}`), DELETE removes it, each as one change carried out by one deployment whose
 * plan follows the dependencies; `dryRun=true` answers the plan only. GroupInfo is built from the
 * apps below the id. A group's versions are its apps' versions (each app keeps its own, up to
 * DROVER_SCHEDULER_MAX_APP_VERSIONS): the group as of one is each app's definition then, and a PUT of
 * `{"version": …}` takes every app back to it (apps created since are removed; apps removed since
 * cannot come back: their definitions went with them). Not here: group roles
 * (`enforceRole`: left out of GroupInfo, where Debian's python3-marathon 0.13 cannot read it; `true`
 * is refused by name; PATCH is not served).
 */
import { InvalidArgumentError, NotFoundError } from "@drover/common";
import {
  type AppRecord,
  type AppVersionEntry,
  appVersionOf,
  type DeploymentPlanStep,
  isUnder,
  type JsonObject,
  parentOf,
  toMarathonJson,
} from "@drover/core";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AppService } from "../app-service.js";
import type { GroupRequest } from "../groups.js";
import { groupIdOf } from "../groups.js";
import { BadRequestError } from "./errors.js";
import { bool, type Query, values } from "./query.js";
import type { HttpServerDeps } from "./server.js";
import { type AppEmbed, appInfoJson, deploymentResultJson, type ViewContext } from "./views.js";

/** What GET /v2/groups may embed (Marathon's `group.*`). */
export interface GroupEmbed {
  groups: boolean;
  apps: boolean;
  pods: boolean;
  app: Set<AppEmbed>;
}

const APP_EMBEDS: Record<string, AppEmbed> = {
  tasks: "tasks",
  counts: "counts",
  deployments: "deployments",
  readiness: "readiness",
  lastTaskFailure: "lastTaskFailure",
  taskStats: "taskStats",
};

/** `embed` of a group request; Marathon's default (none given): groups, apps and pods. */
export function groupEmbeds(q: Query): GroupEmbed {
  const raw = values(q, "embed")
    .flatMap((v) => v.split(",").map((s) => s.trim()))
    .filter(Boolean);
  if (raw.length === 0) return { groups: true, apps: true, pods: true, app: new Set() };
  const out: GroupEmbed = { groups: false, apps: false, pods: false, app: new Set() };
  for (const name of raw) {
    if (name === "group.groups") out.groups = true;
    else if (name === "group.apps") out.apps = true;
    else if (name === "group.pods") out.pods = true;
    else {
      const m = /^group\.apps\.(\w+)$/.exec(name);
      const e = m?.[1] ? APP_EMBEDS[m[1]] : undefined;
      if (!e)
        throw new BadRequestError(
          `query parameter embed: unknown '${name.slice(0, 60)}' (known: group.groups, group.apps, group.pods, ${Object.keys(
            APP_EMBEDS,
          )
            .map((k) => `group.apps.${k}`)
            .join(", ")})`,
        );
      out.apps = true;
      out.app.add(e);
    }
  }
  return out;
}

/** The parts of a path below /v2/groups: the group id and what of it. */
export type GroupPath =
  | { kind: "group"; id: string }
  | { kind: "apps"; id: string }
  | { kind: "versions"; id: string }
  | { kind: "version"; id: string; version: string };

export function parseGroupPath(rest: string): GroupPath {
  const parts = rest.split("/").filter(Boolean).map(decodeURIComponent);
  const last = parts.at(-1);
  if (last === "apps") return { kind: "apps", id: groupIdOf(parts.slice(0, -1).join("/"), "id") };
  if (last === "versions") return { kind: "versions", id: groupIdOf(parts.slice(0, -1).join("/"), "id") };
  if (parts.at(-2) === "versions" && last !== undefined)
    return { kind: "version", id: groupIdOf(parts.slice(0, -2).join("/"), "id"), version: last };
  return { kind: "group", id: groupIdOf(parts.join("/"), "id") };
}

/** The version of a group: its newest app's version (the epoch for an empty group). */
export function groupVersion(apps: readonly AppRecord[]): string {
  let v = "";
  for (const a of apps) {
    const mine = appVersionOf(a).version;
    if (mine > v) v = mine;
  }
  return v || new Date(0).toISOString();
}

/** Marathon's GroupInfo of `id` from the apps below it (sub-groups from their ids). */
export function groupInfoJson(
  id: string,
  apps: readonly AppRecord[],
  embed: GroupEmbed,
  ctx: ViewContext,
): JsonObject {
  const below = apps.filter((a) => a.spec.id !== id && isUnder(a.spec.id, id));
  const direct = below.filter((a) => parentOf(a.spec.id) === id);
  const subs = new Set<string>();
  for (const a of below) {
    if (parentOf(a.spec.id) === id) continue;
    const head = a.spec.id.slice(id === "/" ? 1 : id.length + 1).split("/")[0];
    subs.add(id === "/" ? `/${head}` : `${id}/${head}`);
  }
  const out: JsonObject = { id };
  if (embed.apps) out.apps = direct.map((a) => appInfoJson(a, embed.app, ctx));
  if (embed.groups)
    out.groups = [...subs].sort().map((g) =>
      groupInfoJson(
        g,
        below.filter((a) => isUnder(a.spec.id, g)),
        embed,
        ctx,
      ),
    );
  if (embed.pods) out.pods = [];
  out.dependencies = [];
  out.version = groupVersion(below);
  return out;
}

/** GroupInfo of `id` as of `version`: the apps' definitions of then (no tasks, counts or deployments). */
export function groupAtJson(
  id: string,
  entries: readonly AppVersionEntry[],
  version: string,
  embed: GroupEmbed,
): JsonObject {
  const below = entries.filter((e) => e.spec.id !== id && isUnder(e.spec.id, id));
  const subs = new Set<string>();
  for (const e of below) {
    if (parentOf(e.spec.id) === id) continue;
    const head = e.spec.id.slice(id === "/" ? 1 : id.length + 1).split("/")[0];
    subs.add(id === "/" ? `/${head}` : `${id}/${head}`);
  }
  const out: JsonObject = { id };
  if (embed.apps)
    out.apps = below.filter((e) => parentOf(e.spec.id) === id).map((e) => toMarathonJson(e.spec, e));
  if (embed.groups)
    out.groups = [...subs].sort().map((g) =>
      groupAtJson(
        g,
        below.filter((e) => isUnder(e.spec.id, g)),
        version,
        embed,
      ),
    );
  if (embed.pods) out.pods = [];
  out.dependencies = [];
  out.version = version;
  return out;
}

/** Marathon's dry-run answer: `{"steps":[{"actions":[{"action":…,"app":…}]}]}`. */
export function planJson(steps: readonly DeploymentPlanStep[]): JsonObject {
  return {
    steps: steps.map((s) => ({ actions: s.actions.map((a) => ({ action: a.action, app: a.appId })) })),
  };
}

export function registerGroupRoutes(
  app: FastifyInstance,
  deps: HttpServerDeps,
  context: () => Promise<ViewContext>,
): void {
  const svc: AppService = deps.service;
  const missing = (id: string) =>
    new NotFoundError(`group ${id}`, { message: `Group '${id}' does not exist` });

  const appsBelow = async (id: string): Promise<AppRecord[]> =>
    (await svc.list()).map((a) => a.record).filter((r) => isUnder(r.spec.id, id));

  /** A body that must be a JSON object (a GroupUpdate). */
  const groupBody = (body: unknown): JsonObject => {
    if (typeof body !== "object" || body === null || Array.isArray(body))
      throw new InvalidArgumentError([{ path: "", message: "must be a JSON object (a group definition)" }]);
    return body as JsonObject;
  };

  /** Runs a group request; the DeploymentResult (or the plan of a dry run). */
  const apply = async (req: Partial<GroupRequest> & Pick<GroupRequest, "mode">, reply: FastifyReply) => {
    const out = await svc.applyGroup({
      groupJson: "",
      groupId: "",
      scaleBy: 0,
      force: false,
      dryRun: false,
      ...req,
    });
    if (req.dryRun) return planJson(out.steps);
    const version = new Date().toISOString();
    if (out.deploymentId) void reply.header("Marathon-Deployment-Id", out.deploymentId);
    return deploymentResultJson(out.deploymentId, version);
  };

  /** The body's id resolved against the path's group (`POST /v2/groups/shop {"id": "db"}` is /shop/db). */
  const withId = (body: JsonObject, pathId: string): JsonObject => {
    const raw = body.id;
    if (raw === undefined) return { ...body, id: pathId };
    if (typeof raw !== "string")
      throw new InvalidArgumentError([{ path: "id", message: "must be a string" }]);
    return { ...body, id: raw.startsWith("/") ? raw : pathId === "/" ? `/${raw}` : `${pathId}/${raw}` };
  };

  const get = async (req: FastifyRequest, rest: string) => {
    const q = req.query as Query;
    const p = parseGroupPath(rest);
    const apps = await appsBelow(p.id);
    if (p.id !== "/" && apps.length === 0) throw missing(p.id);
    switch (p.kind) {
      case "group":
        return groupInfoJson(p.id, apps, groupEmbeds(q), await context());
      case "apps": {
        const ctx = await context();
        const embed = new Set<AppEmbed>(["counts", "deployments"]);
        return { apps: apps.map((a) => appInfoJson(a, embed, ctx)) };
      }
      case "versions":
        return svc.groupVersions(p.id);
      case "version": {
        // The apps as they were then (definitions only: no tasks or counts of then are kept).
        const at = await svc.groupAt(p.id, p.version);
        const then = [...at.apps.values()].flatMap((e) => (e ? [e] : []));
        return groupAtJson(p.id, then, at.version, groupEmbeds(q));
      }
    }
  };

  const post = async (req: FastifyRequest, reply: FastifyReply, rest: string) => {
    const q = req.query as Query;
    const body = withId(groupBody(req.body), parseGroupPath(rest).id);
    const out = await apply(
      { mode: "create", groupJson: JSON.stringify(body), force: bool(q, "force", false) },
      reply,
    );
    const id = groupIdOf(String(body.id), "id");
    void reply.code(201).header("Location", `/v2/groups${id === "/" ? "" : id}`);
    return out;
  };

  const put = async (req: FastifyRequest, reply: FastifyReply, rest: string) => {
    const q = req.query as Query;
    const path = parseGroupPath(rest);
    const id = path.id;
    if (path.kind === "apps" || path.kind === "versions")
      throw new NotFoundError(`PUT ${rest}`, { message: `PUT is not served on /v2/groups/${rest}` });
    // PUT /v2/groups/{id}/versions/{version} (python3-marathon's rollback_group): no body.
    const body = path.kind === "version" ? { version: path.version } : groupBody(req.body);
    const force = bool(q, "force", false);
    const dryRun = bool(q, "dryRun", false);
    if (body.version !== undefined) {
      // Marathon: a version wins over scaleBy; the rest of the body is ignored.
      if (typeof body.version !== "string")
        throw new InvalidArgumentError([{ path: "version", message: "must be an ISO-8601 time" }]);
      const out = await svc.rollbackGroup(id, body.version, { force, dryRun });
      if (dryRun) return planJson(out.steps);
      if (out.deploymentId) void reply.header("Marathon-Deployment-Id", out.deploymentId);
      return deploymentResultJson(out.deploymentId, new Date().toISOString());
    }
    if (body.scaleBy !== undefined) {
      if (typeof body.scaleBy !== "number")
        throw new InvalidArgumentError([{ path: "scaleBy", message: "must be a number" }]);
      return apply({ mode: "scale", groupId: id, scaleBy: body.scaleBy, force, dryRun }, reply);
    }
    const full = withId(body, id);
    if (groupIdOf(String(full.id), "id") !== id)
      throw new InvalidArgumentError([{ path: "id", message: `must be ${id} (the group of the path)` }]);
    return apply({ mode: "update", groupId: id, groupJson: JSON.stringify(full), force, dryRun }, reply);
  };

  const del = async (req: FastifyRequest, reply: FastifyReply, rest: string) => {
    const q = req.query as Query;
    const id = parseGroupPath(rest).id;
    return apply({ mode: "remove", groupId: id, force: bool(q, "force", false) }, reply);
  };

  const restOf = (req: FastifyRequest) => (req.params as { "*"?: string })["*"] ?? "";
  app.get("/v2/groups", (req) => get(req, ""));
  app.get("/v2/groups/*", (req) => get(req, restOf(req)));
  app.post("/v2/groups", (req, reply) => post(req, reply, ""));
  app.post("/v2/groups/*", (req, reply) => post(req, reply, restOf(req)));
  app.put("/v2/groups", (req, reply) => put(req, reply, ""));
  app.put("/v2/groups/*", (req, reply) => put(req, reply, restOf(req)));
  app.delete("/v2/groups", (req, reply) => del(req, reply, ""));
  app.delete("/v2/groups/*", (req, reply) => del(req, reply, restOf(req)));
}
