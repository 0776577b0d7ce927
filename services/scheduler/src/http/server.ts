/**
 * The Marathon-compatible HTTP API of the scheduler (fastify), on every replica. The leader answers
 * from its in-memory views through the application service (app-service.ts, the same the gRPC
 * surface calls); a follower forwards each request to the leader's advertised HTTP address, or
 * answers 503 when no leader is known. `/ping`, `/metrics`, `/v2/info`, `GET /v2/leader` and the
 * extra plugins' routes (the SSE stream `/v2/events`) are answered by the replica itself.
 *
 * Errors: http/errors.ts (statuses from the one table ERROR_STATUS). Views: http/views.ts.
 */
import { Readable } from "node:stream";
import type { Logger } from "@drover/common";
import { errorMessage } from "@drover/common";
import Fastify, {
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
} from "fastify";
import type { AppService } from "../app-service.js";
import { BadJsonError, httpErrorOf } from "./errors.js";
import { registerRoutes } from "./routes.js";

/** The header a forwarding follower sets: a replica that is not the leader either answers 503 instead of forwarding again. */
/**
 * One metric as prom-client's getMetricsAsJSON lists it (the fields Marathon's view reads; `type` is
 * "counter", "gauge", "histogram" or "summary" at run time, whatever its typings say).
 */
export interface PromMetricJson {
  name: string;
  type: unknown;
  values: { value: number; labels: Partial<Record<string, string | number>>; metricName?: string }[];
}

export const FORWARDED_HEADER = "x-drover-forwarded-by";

/** The largest request body read (an app definition is far below; PUT /v2/apps of many apps fits). */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

/** Answered by every replica itself, leader or not. */
const LOCAL_PATHS = new Set(["/ping", "/metrics", "/metrics/prometheus", "/v2/info"]);

export interface HttpServerDeps {
  service: AppService;
  log: Logger;
  /**
   * The replica's prom-client registry: GET /metrics/prometheus (its text) and GET /metrics (the
   * same in Marathon's JSON shape, when the registry can list its metrics).
   */
  registry: {
    metrics(): Promise<string>;
    contentType: string;
    getMetricsAsJSON?(): Promise<PromMetricJson[]>;
  };
  /** This replica's advertised HTTP address (host:port). */
  selfHttp: string;
  /** The leader's advertised HTTP address (host:port), undefined when none is known. */
  leaderHttp(): Promise<string | undefined>;
  /** What GET /v2/info tells of the configuration. */
  info: {
    frameworkName: string;
    frameworkId(): string | undefined;
    masters: string[];
    role: string;
    failoverTimeoutSeconds: number;
    httpPort: number;
  };
  /**
   * REGISTRATION POINT for routes served by any replica (not forwarded): the SSE stream
   * `/v2/events` (http/events.ts) registers here, with the path prefixes it serves.
   */
  plugins?: { plugin: FastifyPluginAsync; localPrefixes: string[] }[];
  /** How long a forwarded request may take (ms). */
  forwardTimeoutMs?: number;
}

/** The fastify instance with every route; call `listen` on it. */
export async function createHttpServer(deps: HttpServerDeps): Promise<FastifyInstance> {
  const app = Fastify({
    bodyLimit: MAX_BODY_BYTES,
    logger: false,
    return503OnClosing: true,
    // Open streams (SSE) and idle keep-alive connections do not hold a shutdown.
    forceCloseConnections: true,
  });
  const localPrefixes = (deps.plugins ?? []).flatMap((p) => p.localPrefixes);

  // Bodies are JSON whatever the content type says (curl -d sends form-urlencoded); bad JSON is Marathon's 400.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === "") {
      done(null, undefined);
      return;
    }
    try {
      done(null, JSON.parse(text) as unknown);
    } catch (err) {
      done(new BadJsonError(errorMessage(err).slice(0, 300)), undefined);
    }
  });

  app.setErrorHandler((err, req, reply) => {
    const { status, body } = httpErrorOf(err);
    if (status >= 500)
      deps.log.warn("http request failed", {
        method: req.method,
        url: req.url,
        status,
        err: errorMessage(err),
      });
    void reply.code(status).type("application/json").send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ message: `no such endpoint: ${req.method} ${req.url.split("?")[0]}` });
  });

  app.addHook("onRequest", async (req, reply) => {
    const path = req.url.split("?")[0] ?? "";
    if (LOCAL_PATHS.has(path) || (path === "/v2/leader" && req.method === "GET")) return;
    if (localPrefixes.some((p) => path === p || path.startsWith(`${p}/`) || path.startsWith(`${p}?`))) return;
    if (deps.service.leading()) return;
    return forward(deps, req, reply);
  });

  registerRoutes(app, deps);
  for (const p of deps.plugins ?? []) await app.register(p.plugin);
  return app;
}

/** Hop-by-hop headers, not forwarded (RFC 9110 7.6.1), and the host (the leader's own). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "host",
]);

/** Sends the request to the leader and its answer back; 503 when no leader is known or it does not answer. */
async function forward(
  deps: HttpServerDeps,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const unavailable = (message: string) => reply.code(503).type("application/json").send({ message });
  if (req.headers[FORWARDED_HEADER] !== undefined)
    return unavailable(
      `Could not determine the current leader (forwarded by ${String(req.headers[FORWARDED_HEADER])} to a replica that does not lead)`,
    );
  let leader: string | undefined;
  try {
    leader = await deps.leaderHttp();
  } catch (err) {
    return unavailable(`Could not determine the current leader: ${errorMessage(err)}`);
  }
  if (!leader || leader === deps.selfHttp) return unavailable("Could not determine the current leader");
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || HOP_BY_HOP.has(k)) continue;
    headers[k] = Array.isArray(v) ? v.join(", ") : v;
  }
  headers[FORWARDED_HEADER] = deps.selfHttp;
  headers["x-forwarded-for"] = req.ip;
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  let res: Response;
  try {
    res = await fetch(`http://${leader}${req.url}`, {
      method: req.method,
      headers,
      ...(hasBody ? { body: Readable.toWeb(req.raw) as ReadableStream, duplex: "half" } : {}),
      redirect: "manual",
      signal: AbortSignal.timeout(deps.forwardTimeoutMs ?? 30_000),
    } as RequestInit);
  } catch (err) {
    return unavailable(`the leader ${leader} did not answer: ${errorMessage(err)}`);
  }
  const body = Buffer.from(await res.arrayBuffer());
  reply.code(res.status);
  res.headers.forEach((value, key) => {
    if (!HOP_BY_HOP.has(key) && key !== "content-length" && key !== "content-encoding")
      reply.header(key, value);
  });
  reply.header("x-marathon-leader", `http://${leader}`);
  return reply.send(body);
}
