/**
 * Typed errors shared by every Drover process. Code never matches on message text: it
 * checks the class (or `code`). Mapping to and from gRPC status happens in grpc-errors.ts only.
 */
export interface FieldIssue {
  path: string;
  message: string;
}

export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "CONFLICT"
  | "NOT_LEADER"
  | "FENCED"
  | "UNAVAILABLE"
  | "INTERNAL";

export class DroverError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad input: the issues name the fields (paths like `container.docker.image`). */
export class InvalidArgumentError extends DroverError {
  readonly issues: FieldIssue[];
  constructor(issues: FieldIssue[]) {
    super("INVALID_ARGUMENT", formatFieldIssues(issues));
    this.issues = issues;
  }
}

export class NotFoundError extends DroverError {
  constructor(what: string) {
    super("NOT_FOUND", `${what} not found`);
  }
}

export class AlreadyExistsError extends DroverError {
  constructor(what: string) {
    super("ALREADY_EXISTS", `${what} already exists`);
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
