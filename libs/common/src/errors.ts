/**
 * Typed errors shared by every Drover process. Code never matches on message text: it
 * checks the class (or `code`). Mapping to and from gRPC status happens in grpc-errors.ts only,
 * through the table ERROR_STATUS (which the HTTP boundary reuses).
 */
import { clip, MAX_DETAILS_CHARS, MAX_ECHO_CHARS, MAX_ISSUES } from "./safe-text.js";

export interface FieldIssue {
  path: string;
  message: string;
}

export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "FAILED_PRECONDITION"
  | "PERMISSION_DENIED"
  | "TOO_LARGE"
  | "CONFLICT"
  | "NOT_LEADER"
  | "FENCED"
  | "UNAVAILABLE"
  | "INTERNAL";

/**
 * How each error code travels: the gRPC status code (numbers of grpc.status) and the HTTP
 * status. The one table for every transport.
 */
export const ERROR_STATUS: Record<ErrorCode, { grpc: number; http: number }> = {
  INVALID_ARGUMENT: { grpc: 3, http: 422 },
  NOT_FOUND: { grpc: 5, http: 404 },
  ALREADY_EXISTS: { grpc: 6, http: 409 },
  PERMISSION_DENIED: { grpc: 7, http: 403 },
  TOO_LARGE: { grpc: 8, http: 413 },
  FAILED_PRECONDITION: { grpc: 9, http: 409 },
  CONFLICT: { grpc: 10, http: 409 },
  INTERNAL: { grpc: 13, http: 500 },
  NOT_LEADER: { grpc: 14, http: 503 },
  FENCED: { grpc: 14, http: 503 },
  UNAVAILABLE: { grpc: 14, http: 503 },
};

export class DroverError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(clip(message, MAX_DETAILS_CHARS), options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * Bad input: the issues name the fields (paths like `container.docker.image`). The issues are
 * bounded on construction (at most MAX_ISSUES, each path and message cut to a few hundred
 * characters), so an error never carries a large piece of the input.
 */
export class InvalidArgumentError extends DroverError {
  readonly issues: FieldIssue[];
  constructor(issues: FieldIssue[], options?: { cause?: unknown }) {
    const bounded = boundIssues(issues);
    super("INVALID_ARGUMENT", formatFieldIssues(bounded), options);
    this.issues = bounded;
  }
}

/** At most MAX_ISSUES issues (then one that counts the rest), each path and message clipped. */
export function boundIssues(issues: readonly FieldIssue[]): FieldIssue[] {
  const out = issues.slice(0, MAX_ISSUES).map((i) => ({
    path: clip(String(i.path), MAX_ECHO_CHARS),
    message: clip(String(i.message), MAX_ECHO_CHARS * 2),
  }));
  if (issues.length > MAX_ISSUES)
    out.push({ path: "", message: `and ${issues.length - MAX_ISSUES} more issues` });
  return out;
}

/** The request is valid but the state does not allow it (e.g. a framework that is not subscribed). */
export class FailedPreconditionError extends DroverError {
  constructor(message: string) {
    super("FAILED_PRECONDITION", message);
  }
}

/** The caller may not do this (e.g. a framework call from a connection that is not the framework's). */
export class PermissionDeniedError extends DroverError {
  constructor(message: string) {
    super("PERMISSION_DENIED", message);
  }
}

/** A write larger than the store takes; refused before it is sent. */
export class TooLargeError extends DroverError {
  constructor(message: string) {
    super("TOO_LARGE", message);
  }
}

export class NotFoundError extends DroverError {
  /** `what` names the thing ("app web"); a message from elsewhere is taken as it is with `{ message }`. */
  constructor(what: string, options?: { message?: string }) {
    super("NOT_FOUND", options?.message ?? `${clip(what, MAX_ECHO_CHARS)} not found`);
  }
}

export class AlreadyExistsError extends DroverError {
  constructor(what: string, options?: { message?: string }) {
    super("ALREADY_EXISTS", options?.message ?? `${clip(what, MAX_ECHO_CHARS)} already exists`);
  }
}

/** Optimistic concurrency failed: the aggregate changed since it was read. Retry from a fresh read. */
export class ConflictError extends DroverError {
  constructor(what: string) {
    super("CONFLICT", `concurrent change of ${what}; retry`);
  }
}

/** This replica is not the leader; `leader` is the leader's address when known. */
export class NotLeaderError extends DroverError {
  readonly leader: string | undefined;
  constructor(leader: string | undefined) {
    super(
      "NOT_LEADER",
      leader ? `not the leader; the leader is ${leader}` : "not the leader; no leader elected",
    );
    this.leader = leader;
  }
}

/** A leader's fenced write was rejected: leadership was lost. The caller must step down. */
export class FencedError extends DroverError {
  constructor(message = "leadership lost: fenced write rejected") {
    super("FENCED", message);
  }
}

/**
 * The master closed a session (heartbeat timeout, replaced by a newer connection, leadership
 * lost): reconnect to the same address first; a follower's answer will redirect.
 */
export class SessionClosedError extends DroverError {
  constructor(readonly reason: string) {
    super("UNAVAILABLE", `session closed: ${reason}`);
  }
}

export class UnavailableError extends DroverError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("UNAVAILABLE", message, options);
  }
}

export function formatFieldIssues(issues: FieldIssue[]): string {
  if (issues.length === 0) return "invalid input";
  return issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; ");
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
