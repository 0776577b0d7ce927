/**
 * Errors on the Marathon HTTP API: the status comes from the one table of every transport
 * (ERROR_STATUS in libs/common errors.ts, next to the gRPC codes); this module only gives each
 * error Marathon's body: 422 `{"message":"Object is not valid","details":[{"path","errors"}]}`,
 * 409 with the blocking `deployments`, 400 "Invalid JSON", `{"message"}` for the rest.
 */
import {
  DroverError,
  ERROR_STATUS,
  errorMessage,
  type FieldIssue,
  InvalidArgumentError,
} from "@drover/common";
import { AppLockedError } from "../app-service.js";

/** A body that is not JSON (Marathon's 400 "Invalid JSON"). */
export class BadJsonError extends Error {
  readonly statusCode = 400;
  constructor(readonly detail: string) {
    super(`Invalid JSON: ${detail}`);
  }
}

/** A request the HTTP API refuses before the domain sees it (a bad query parameter, an id that is no task id). */
export class BadRequestError extends Error {
  readonly statusCode = 400;
}

/** Something Drover does not do (pods): 501 with why. */
export class NotImplementedError extends Error {
  readonly statusCode = 501;
}

export interface HttpError {
  status: number;
  body: Record<string, unknown>;
}

/** Drover's field path (`container.docker.image`, `portDefinitions[0].port`) as Marathon's (`/container/docker/image`, `/portDefinitions(0)/port`). */
export function marathonPath(path: string): string {
  if (path === "") return "/";
  const p = path.replace(/\[(\d+)\]/g, "($1)").replace(/\./g, "/");
  return p.startsWith("/") ? p : `/${p}`;
}

/** Issues grouped by path, in Marathon's `details` shape. */
export function marathonDetails(issues: readonly FieldIssue[]): { path: string; errors: string[] }[] {
  const byPath = new Map<string, string[]>();
  for (const i of issues) {
    const p = marathonPath(i.path);
    byPath.set(p, [...(byPath.get(p) ?? []), i.message]);
  }
  return [...byPath].map(([path, errors]) => ({ path, errors }));
}

/** The status and Marathon body of any error a handler throws. Never throws. */
export function httpErrorOf(err: unknown): HttpError {
  if (err instanceof AppLockedError) {
    const first = err.deploymentIds[0] ?? "";
    return {
      status: ERROR_STATUS[err.code].http,
      body: {
        message: `App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/${first}'.`,
        deployments: err.deploymentIds.map((id) => ({ id })),
      },
    };
  }
  if (err instanceof InvalidArgumentError)
    return {
      status: ERROR_STATUS[err.code].http,
      body: { message: "Object is not valid", details: marathonDetails(err.issues) },
    };
  if (err instanceof DroverError)
    return { status: ERROR_STATUS[err.code].http, body: { message: err.message } };
  if (err instanceof BadJsonError)
    return { status: 400, body: { message: "Invalid JSON", details: [{ path: "/", errors: [err.detail] }] } };
  // Fastify's own (a body too large, an unsupported media type, a bad URL): their status, below 500 only.
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === "number" && status >= 400 && status < 600)
    return { status, body: { message: errorMessage(err) } };
  return { status: 500, body: { message: `internal error: ${errorMessage(err)}` } };
}
