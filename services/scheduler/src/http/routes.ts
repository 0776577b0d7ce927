/**
 * The Marathon /v2 endpoints (../shared/marathon/API.md) over the application service. Each
 * handler checks its input (query: http/query.ts; bodies: the app model's zod schemas through
 * AppStore.parse), calls the service and prints a view (http/views.ts). /v2/groups is in
 * http/groups.ts (registered from here, with this module's view context); /v2/events in
 * http/events.ts (registered through the server's plugins).
 */
import { randomUUID } from "node:crypto";
import {
  AlreadyExistsError,
  errorMessage,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
} from "@drover/common";
import {
  type AppRecord,
  type AppSpec,
  appVersionOf,
  checkAppId,
  checkPathId,
  isActive,
  type JsonObject,
  RESERVED_ID_SEGMENTS,
  taskIdToAppId,
  toMarathonJson,
} from "@drover/core";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { type AppService, DeploymentIdSchema, parseAppJson } from "../app-service.js";
import type { TaskEntry } from "../framework.js";
import { BadRequestError, NotImplementedError } from "./errors.js";
import { registerGroupRoutes } from "./groups.js";
import {
  bool,
  embeds,
  matchesLabels,
  parseLabelSelector,
  type Query,
  queueEmbed,
  taskStatuses,
  values,
} from "./query.js";
import type { HttpServerDeps } from "./server.js";
import { jsonListStream } from "./stream.js";
import {
  type AppEmbed,
  appInfoJson,
  deploymentJson,
  deploymentResultJson,
  iso,
  marathonMetricsJson,
  queueItemJson,
  servicePortsOf,
  taskJson,
  type ViewContext,
} from "./views.js";

/** Fields of a definition that only the server sets: dropped from a merge (PUT/PATCH with partialUpdate). */
const SERVER_FIELDS = [
  "version",
  "versionInfo",
  "tasks",
  "tasksStaged",
  "tasksRunning",
  "tasksHealthy",
  "tasksUnhealthy",
  "deployments",
  "lastTaskFailure",
  "taskStats",
  "readinessCheckResults",
];

const TaskIdsSchema = z.strictObject({ ids: z.array(z.string().min(1).max(512)).max(10_000) });

/** The parts of a path below /v2/apps/: the app id and what of it (`tasks`, `versions/{v}`, ...). */
export type AppPath =
  | { kind: "app"; id: string }
  | { kind: "group"; id: string }
  | { kind: "restart"; id: string }
  | { kind: "tasks"; id: string }
  | { kind: "task"; id: string; taskId: string }
  | { kind: "versions"; id: string }
  | { kind: "version"; id: string; version: string };

/** Splits `/v2/apps/<rest>`: app ids never hold the segments restart, tasks, versions (path-id.ts). */
export function parseAppPath(rest: string): AppPath {
  const segs = rest.split("/").filter((s) => s !== "");
  // GET /v2/apps/{group}/*: the apps below a group.
  if (segs[segs.length - 1] === "*") {
    const group = segs.slice(0, -1).join("/");
    if (group === "") return { kind: "group", id: "/" };
    const v = checkPathId(decodeURIComponent(group));
    if (!v.ok) throw new InvalidArgumentError([{ path: "id", message: v.message }]);
    return { kind: "group", id: v.id };
  }
  const i = segs.findIndex((s) => RESERVED_ID_SEGMENTS.includes(s));
  const id = appIdOf(segs.slice(0, i < 0 ? segs.length : i).join("/"));
  if (i < 0) return { kind: "app", id };
  const sub = segs[i];
  const tail = segs.slice(i + 1);
  if (sub === "restart" && tail.length === 0) return { kind: "restart", id };
  if (sub === "tasks" && tail.length === 0) return { kind: "tasks", id };
  if (sub === "tasks" && tail.length === 1 && tail[0])
    return { kind: "task", id, taskId: decodeURIComponent(tail[0]) };
  if (sub === "versions" && tail.length === 0) return { kind: "versions", id };
  if (sub === "versions" && tail.length === 1 && tail[0])
    return { kind: "version", id, version: decodeURIComponent(tail[0]) };
  throw new NotFoundError(`/v2/apps/${rest}`, {
    message: `no such endpoint: /v2/apps/${rest.slice(0, 200)}`,
  });
}

/** An app id from a URL, made absolute; 422 naming `/id` when it is no app id. */
function appIdOf(raw: string): string {
  const v = checkAppId(decodeURIComponent(raw));
  if (!v.ok) throw new InvalidArgumentError([{ path: "id", message: v.message }]);
  return v.id;
}

const appMissing = (id: string) => new NotFoundError(`app ${id}`, { message: `App '${id}' does not exist` });

export function registerRoutes(app: FastifyInstance, deps: HttpServerDeps): void {
  const svc: AppService = deps.service;

  /** The view context of the leader now (its task view, deployments, agents). */
  const context = async (): Promise<ViewContext> => {
    const l = await svc.leader();
    return {
      nowMs: Date.now(),
      tasksOf: (id) => l.framework.tasks.ofApp(id),
      deploymentOf: (id) => l.deployments.runningFor(id)?.id,
      lastFailure: (id) => l.framework.lastFailure(id),
      hostOf: (agentId) => l.framework.hostOf(agentId),
    };
  };

  /** The app, or Marathon's 404. */
  const existing = async (id: string): Promise<AppRecord> => {
    const a = await svc.current(id);
    if (!a) throw appMissing(id);
    return a.record;
  };

  /** A request body that must be a JSON object (422 naming the root otherwise). */
  const objectBody = (body: unknown): JsonObject => {
    if (typeof body !== "object" || body === null || Array.isArray(body))
      throw new InvalidArgumentError([{ path: "", message: "must be a JSON object (an app definition)" }]);
    return body as JsonObject;
  };

  /** The definition a PUT/PATCH asks for: the body merged onto the current one (partialUpdate), the path's id. */
  const targetSpec = (
    id: string,
    body: JsonObject,
    current: AppRecord | undefined,
    partial: boolean,
  ): AppSpec => {
    const base: JsonObject = current && partial ? toMarathonJson(current.spec) : {};
    const merged: JsonObject = { ...base, ...body, id };
    for (const f of SERVER_FIELDS) if (!(f in base) || f in body) delete merged[f];
    return parseAppJson(JSON.stringify(merged));
  };

  /**
   * A deployable change's answer: its deployment id and the app's version. A change that needs no
   * deployment (an identical definition; a scale adopted by a running deployment) names a fresh id
   * that is never listed: clients that wait for it to leave GET /v2/deployments see it done at once.
   */
  const result = (deploymentId: string, version: string | undefined, reply: FastifyReply) => {
    const id = deploymentId || randomUUID();
    void reply.header("Marathon-Deployment-Id", id);
    return deploymentResultJson(id, version ?? new Date().toISOString());
  };

  /** PUT (or PATCH) of one app: create when missing (PUT only), else update; 201 + Location when created. */
  const putApp = async (
    id: string,
    body: JsonObject,
    q: Query,
    reply: FastifyReply,
    opts: { patch: boolean },
  ): Promise<JsonObject> => {
    const force = bool(q, "force", false);
    const current = (await svc.current(id))?.record;
    // {"version": "..."} alone: back to that version (Marathon's rollback by PUT).
    const keys = Object.keys(body).filter((k) => k !== "id");
    if (current && keys.length === 1 && keys[0] === "version" && typeof body.version === "string") {
      const entry = await svc.version(id, body.version);
      const out = await svc.update(id, entry.spec, { force, lockAll: true });
      return result(out.deploymentId, out.app && appVersionOf(out.app.record).version, reply);
    }
    if (!current) {
      if (opts.patch) throw appMissing(id);
      const spec = targetSpec(id, body, undefined, false);
      const out = await svc.create(spec);
      void reply.code(201).header("Location", `/v2/apps${id}`);
      return result(out.deploymentId, out.app && appVersionOf(out.app.record).version, reply);
    }
    const partial = opts.patch || bool(q, "partialUpdate", true);
    const spec = targetSpec(id, body, current, partial);
    const out = await svc.update(id, spec, { force, lockAll: true });
    return result(out.deploymentId, out.app && appVersionOf(out.app.record).version, reply);
  };

  /** PUT/PATCH /v2/apps: every definition checked first, then each app changed in turn. */
  const putMany = async (req: FastifyRequest, reply: FastifyReply, patch: boolean) => {
    const q = req.query as Query;
    const force = bool(q, "force", false);
    if (!Array.isArray(req.body))
      throw new InvalidArgumentError([{ path: "", message: "must be a JSON array of app definitions" }]);
    const items = (req.body as unknown[]).map((b, i) => {
      const o = objectBody(b);
      const v = typeof o.id === "string" ? checkAppId(o.id) : undefined;
      if (!v?.ok)
        throw new InvalidArgumentError([{ path: `(${i}).id`, message: v ? v.message : "required" }]);
      return { id: v.id, body: o };
    });
    const ctx: { id: string; spec: AppSpec; create: boolean }[] = [];
    for (const [i, it] of items.entries()) {
      const current = (await svc.current(it.id))?.record;
      if (!current && patch) throw appMissing(it.id);
      try {
        ctx.push({
          id: it.id,
          spec: targetSpec(it.id, it.body, current, patch || bool(q, "partialUpdate", true)),
          create: !current,
        });
      } catch (err) {
        if (err instanceof InvalidArgumentError)
          throw new InvalidArgumentError(
            err.issues.map((x) => ({ path: `(${i})${x.path ? `.${x.path}` : ""}`, message: x.message })),
          );
        throw err;
      }
    }
    // Every app in one transaction with one deployment (a duplicate id is refused by the store).
    const ids = new Set<string>();
    for (const [i, c] of ctx.entries()) {
      if (ids.has(c.id))
        throw new InvalidArgumentError([{ path: `(${i}).id`, message: `${c.id} is given twice` }]);
      ids.add(c.id);
    }
    const out = await svc.applyMany(
      ctx.map((c) => c.spec),
      force,
    );
    let version: string | undefined;
    for (const c of ctx) {
      const a = await svc.current(c.id);
      const v = a && appVersionOf(a.record).version;
      if (v !== undefined && (version === undefined || v > version)) version = v;
    }
    return result(out.deploymentId, version, reply);
  };

  registerGroupRoutes(app, deps, context);

  // ------------------------------------------------------------------------------- /v2/apps

  app.get("/v2/apps", async (req, reply) => {
    const q = req.query as Query;
    const embed = new Set<AppEmbed>([...embeds(q), "counts", "deployments"]);
    const idFilter = values(q, "id")[0]?.toLowerCase();
    const cmdFilter = values(q, "cmd")[0];
    const labelRaw = values(q, "label")[0];
    const selector = labelRaw !== undefined ? parseLabelSelector(labelRaw) : undefined;
    const ctx = await context();
    const apps = (await svc.list())
      .filter(({ record: r }) => !idFilter || r.spec.id.toLowerCase().includes(idFilter))
      .filter(({ record: r }) => cmdFilter === undefined || (r.spec.cmd ?? "").includes(cmdFilter))
      .filter(({ record: r }) => !selector || matchesLabels(r.spec.labels, selector));
    // Streamed: each app's view is built as the client reads (with its tasks, the listing of a
    // large cluster is tens of MB).
    return reply
      .type("application/json; charset=utf-8")
      .send(jsonListStream("apps", apps, ({ record }) => appInfoJson(record, embed, ctx)));
  });

  app.post("/v2/apps", async (req, reply) => {
    const q = req.query as Query;
    bool(q, "force", false);
    const body = objectBody(req.body);
    const spec = parseAppJson(JSON.stringify(body));
    let deploymentId = "";
    try {
      deploymentId = (await svc.create(spec)).deploymentId;
    } catch (err) {
      if (err instanceof AlreadyExistsError)
        throw new AlreadyExistsError(`app ${spec.id}`, {
          message: `An app with id [${spec.id}] already exists.`,
        });
      throw err;
    }
    const ctx = await context();
    const created = await existing(spec.id);
    void reply
      .code(201)
      .header("Location", `/v2/apps${spec.id}`)
      .header("Marathon-Deployment-Id", deploymentId);
    return { ...appInfoJson(created, new Set(["counts"]), ctx), deployments: [{ id: deploymentId }] };
  });

  app.put("/v2/apps", async (req, reply) => putMany(req, reply, false));
  app.patch("/v2/apps", async (req, reply) => putMany(req, reply, true));

  const appRoute = async (req: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const rest = (req.params as { "*": string })["*"];
    const p = parseAppPath(rest);
    const q = req.query as Query;
    switch (p.kind) {
      case "group":
        if (req.method === "GET") {
          const embed = new Set<AppEmbed>([...embeds(q), "counts", "deployments"]);
          const ctx = await context();
          const prefix = p.id === "/" ? "/" : `${p.id}/`;
          return {
            "*": (await svc.list())
              .filter(({ record }) => record.spec.id.startsWith(prefix))
              .map(({ record }) => appInfoJson(record, embed, ctx)),
          };
        }
        break;
      case "app":
        switch (req.method) {
          case "GET": {
            const r = await existing(p.id);
            const embed = new Set<AppEmbed>([
              ...embeds(q),
              "tasks",
              "counts",
              "deployments",
              "lastTaskFailure",
            ]);
            return { app: appInfoJson(r, embed, await context()) };
          }
          case "PUT":
            return putApp(p.id, objectBody(req.body), q, reply, { patch: false });
          case "PATCH":
            return putApp(p.id, objectBody(req.body), q, reply, { patch: true });
          case "DELETE": {
            await existing(p.id);
            const out = await svc.remove(p.id, bool(q, "force", true));
            return result(out.deploymentId, undefined, reply);
          }
        }
        break;
      case "restart":
        if (req.method === "POST") {
          await existing(p.id);
          const out = await svc.restart(p.id, bool(q, "force", false));
          return result(out.deploymentId, out.app && appVersionOf(out.app.record).version, reply);
        }
        break;
      case "tasks":
        if (req.method === "GET") {
          const r = await existing(p.id);
          const ctx = await context();
          const tasks = (await svc.taskEntries(p.id)).filter((t) => isActive(t.state));
          if (wantsText(req)) return reply.type("text/plain").send(tasksText([{ spec: r.spec, tasks }], ctx));
          return { tasks: tasks.map((t) => taskJson(t, r.spec, ctx)) };
        }
        if (req.method === "DELETE") {
          await existing(p.id);
          const host = values(q, "host")[0];
          const ctx = await context();
          const ids = (await svc.taskEntries(p.id))
            .filter((t) => isActive(t.state) && !t.killRequested)
            .filter((t) => host === undefined || (ctx.hostOf(t.agentId) ?? t.agentId) === host)
            .map((t) => t.taskId);
          return killAnswer(ids, q, reply, "tasks");
        }
        break;
      case "task":
        if (req.method === "DELETE") {
          await existing(p.id);
          const t = (await svc.taskEntries(p.id)).find((x) => x.taskId === p.taskId);
          if (!t || !isActive(t.state))
            throw new NotFoundError(`task ${p.taskId}`, { message: `Task '${p.taskId}' does not exist` });
          return killAnswer([p.taskId], q, reply, "task");
        }
        break;
      case "versions":
        if (req.method === "GET") {
          await existing(p.id);
          return { versions: await svc.versions(p.id) };
        }
        break;
      case "version":
        if (req.method === "GET") {
          await existing(p.id);
          try {
            const entry = await svc.version(p.id, p.version);
            return toMarathonJson(entry.spec, entry);
          } catch (err) {
            if (err instanceof NotFoundError)
              throw new NotFoundError(`version ${p.version}`, {
                message: `App '${p.id}' does not exist in version ${p.version}`,
              });
            throw err;
          }
        }
        break;
    }
    return reply.code(405).send({ message: `${req.method} is not supported on ${req.url.split("?")[0]}` });
  };
  app.route({ method: ["GET", "PUT", "PATCH", "DELETE", "POST"], url: "/v2/apps/*", handler: appRoute });

  /** A kill's answer: the tasks killed ({"tasks"} or {"task"}), or a DeploymentResult with scale=true. */
  const killAnswer = async (ids: string[], q: Query, reply: FastifyReply, shape: "tasks" | "task") => {
    const scale = bool(q, "scale", false);
    const out = await svc.killTasks(ids, {
      scale,
      wipe: bool(q, "wipe", false),
      force: bool(q, "force", false),
    });
    if (scale) {
      const last = [...out.scaled.values()].pop();
      return result("", last && appVersionOf(last.record).version, reply);
    }
    const ctx = await context();
    const l = await svc.leader();
    const views = out.killed.map((t) => taskJson(t, l.apps.record(t.appId)?.spec, ctx));
    return shape === "task" ? { task: views[0] ?? null } : { tasks: views };
  };

  // ------------------------------------------------------------------------------ /v2/tasks

  app.get("/v2/tasks", async (req, reply) => {
    const q = req.query as Query;
    const statuses = taskStatuses(q);
    const ctx = await context();
    const l = await svc.leader();
    const tasks = (await svc.taskEntries()).filter(
      (t) => isActive(t.state) && (!statuses || statuses.has(t.state)),
    );
    if (wantsText(req)) {
      const byApp = new Map<string, TaskEntry[]>();
      for (const t of tasks) {
        const list = byApp.get(t.appId);
        if (list) list.push(t);
        else byApp.set(t.appId, [t]);
      }
      const groups = [...byApp]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .flatMap(([id, ts]) => {
          const spec = l.apps.record(id)?.spec;
          return spec ? [{ spec, tasks: ts }] : [];
        });
      return reply.type("text/plain").send(tasksText(groups, ctx));
    }
    return reply
      .type("application/json; charset=utf-8")
      .send(jsonListStream("tasks", tasks, (t) => taskJson(t, l.apps.record(t.appId)?.spec, ctx)));
  });

  app.post("/v2/tasks/delete", async (req, reply) => {
    const q = req.query as Query;
    const v = TaskIdsSchema.safeParse(req.body);
    if (!v.success)
      throw new InvalidArgumentError(
        v.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message })),
      );
    for (const id of v.data.ids)
      if (taskIdToAppId(id) === undefined) throw new BadRequestError(`Invalid task id ${id.slice(0, 200)}`);
    return killAnswer(v.data.ids, q, reply, "tasks");
  });

  // ------------------------------------------------------------------------ /v2/deployments

  app.get("/v2/deployments", async () => (await svc.listDeployments(false)).map(deploymentJson));

  app.delete("/v2/deployments/:id", async (req, reply) => {
    const { id } = req.params as { id: string };
    const q = req.query as Query;
    const force = bool(q, "force", false);
    const missing = () =>
      new NotFoundError(`deployment ${id}`, { message: `DeploymentPlan ${id} does not exist` });
    if (!DeploymentIdSchema.safeParse({ id }).success) throw missing();
    const running = (await svc.listDeployments(false)).find((d) => d.id === id);
    if (!running) throw missing();
    const out = await svc.cancelDeployment(id, force);
    if (force) return reply.code(202).send();
    return result(out.rollbackId, iso(Date.now()), reply);
  });

  // ------------------------------------------------------------------------------ /v2/queue

  // embed=lastUnusedOffers adds the last offers each app could not use, with why (explained on request).
  app.get("/v2/queue", async (req) => {
    const ctx = await context();
    const l = await svc.leader();
    const withOffers = queueEmbed(req.query as Query);
    const queue = (await svc.queue()).flatMap((item) => {
      const r = l.apps.record(item.appId);
      return r
        ? [
            queueItemJson(
              item,
              appInfoJson(r, new Set(["counts", "deployments"]), ctx),
              ctx.nowMs,
              withOffers ? l.framework.unusedOffers(item.appId) : undefined,
            ),
          ]
        : [];
    });
    return { queue };
  });

  app.delete("/v2/queue/*", async (req, reply) => {
    const rest = (req.params as { "*": string })["*"];
    const m = /^(.*)\/delay\/?$/.exec(rest);
    if (!m?.[1])
      throw new NotFoundError(rest, { message: `no such endpoint: DELETE /v2/queue/${rest.slice(0, 200)}` });
    const id = appIdOf(m[1]);
    if (!(await svc.current(id)))
      throw new NotFoundError(`app ${id}`, { message: `Application ${id} not found in tasks queue.` });
    await svc.resetDelay(id);
    return reply.code(204).send();
  });

  // -------------------------------------------------------------------- info, leader, ping

  app.get("/v2/info", async () => {
    const leader = await deps.leaderHttp().catch(() => undefined);
    const i = deps.info;
    return {
      name: "drover",
      version: "0.1.0",
      buildref: "drover",
      elected: svc.leading(),
      leader: leader ?? null,
      frameworkId: i.frameworkId() ?? null,
      marathon_config: {
        framework_name: i.frameworkName,
        failover_timeout: i.failoverTimeoutSeconds,
        ha: true,
        hostname: deps.selfHttp.slice(0, deps.selfHttp.lastIndexOf(":")),
        master: i.masters.join(","),
        mesos_role: i.role,
      },
      zookeeper_config: {},
      http_config: { http_port: i.httpPort },
    };
  });

  app.get("/v2/leader", async (_req, reply) => {
    const leader = await deps.leaderHttp().catch((err: unknown) => {
      throw new UnavailableError(`Could not determine the current leader: ${errorMessage(err)}`);
    });
    if (!leader) return reply.code(404).send({ message: "There is no leader" });
    return { leader };
  });

  app.delete("/v2/leader", async (req) => {
    const q = req.query as Query;
    for (const name of ["backup", "restore"])
      if (values(q, name).length > 0)
        throw new InvalidArgumentError([
          { path: name, message: "not supported by Drover (its state is in etcd: back etcd up instead)" },
        ]);
    await svc.abdicate();
    return { message: "Leadership abdicated" };
  });

  app.get("/ping", async (req, reply) => {
    const accept = String(req.headers.accept ?? "");
    if (accept.includes("application/json") && !accept.includes("text/plain")) return reply.send("pong");
    return reply.type("text/plain").send("pong");
  });

  // Marathon: /metrics is JSON, /metrics/prometheus the Prometheus text (the scheduler's metrics
  // port serves the text at /metrics too, for scrapers).
  app.get("/metrics/prometheus", async (_req, reply) =>
    reply.type(deps.registry.contentType).send(await deps.registry.metrics()),
  );
  app.get("/metrics", async (_req, reply) => {
    if (!deps.registry.getMetricsAsJSON)
      return reply.type(deps.registry.contentType).send(await deps.registry.metrics());
    return marathonMetricsJson(await deps.registry.getMetricsAsJSON());
  });

  // ------------------------------------------------------------------------------- refused

  const noPods = async () => {
    throw new NotImplementedError(
      "Pods are not supported by Drover: run each container as an app (/v2/apps); see the README's Marathon API section",
    );
  };
  app.route({ method: ["GET", "HEAD", "POST"], url: "/v2/pods", handler: noPods });
  app.route({ method: ["GET", "HEAD", "POST", "PUT", "DELETE"], url: "/v2/pods/*", handler: noPods });
}

/** Whether the client asks for text/plain (and not JSON) (GET .../tasks). */
function wantsText(req: FastifyRequest): boolean {
  const accept = String(req.headers.accept ?? "");
  return accept.includes("text/plain") && !accept.includes("application/json");
}

/**
 * Marathon's text listing of tasks: per app and service port, `<app id with _ for />\t<service
 * port>\t<host:port>\t...` (a line per port; an app without ports gets one line with the hosts).
 */
export function tasksText(apps: { spec: AppSpec; tasks: TaskEntry[] }[], ctx: ViewContext): string {
  const lines: string[] = [];
  for (const { spec, tasks } of apps) {
    const name = spec.id.replace(/^\//, "").replace(/\//g, "_");
    const service = servicePortsOf(spec);
    if (service.length === 0) {
      lines.push([name, " ", ...tasks.map((t) => ctx.hostOf(t.agentId) ?? t.agentId)].join("\t"));
      continue;
    }
    service.forEach((sp, i) => {
      const hosts = tasks.map((t) => `${ctx.hostOf(t.agentId) ?? t.agentId}:${t.ports?.[i] ?? 0}`);
      lines.push([name, String(sp), ...hosts].join("\t"));
    });
  }
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}
