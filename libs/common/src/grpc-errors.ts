/**
 * The one place where Drover errors become gRPC statuses and back. A follower's NOT_LEADER
 * becomes UNAVAILABLE with the trailer `drover-leader: <address>`; field issues travel as
 * JSON in the trailer `drover-issues`.
 */
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import {
  AlreadyExistsError,
  ConflictError,
  DroverError,
  FencedError,
  type FieldIssue,
  InvalidArgumentError,
  NotFoundError,
  NotLeaderError,
  UnavailableError,
} from "./errors.js";

export const LEADER_METADATA_KEY = "drover-leader";
export const ISSUES_METADATA_KEY = "drover-issues";

export interface GrpcErrorPayload {
  code: status;
  details: string;
  metadata: Metadata;
}

export function toGrpcError(err: unknown): GrpcErrorPayload {
  const metadata = new Metadata();
  if (err instanceof NotLeaderError) {
    if (err.leader) metadata.set(LEADER_METADATA_KEY, err.leader);
    return { code: status.UNAVAILABLE, details: err.message, metadata };
  }
  if (err instanceof InvalidArgumentError) {
    metadata.set(ISSUES_METADATA_KEY, JSON.stringify(err.issues));
    return { code: status.INVALID_ARGUMENT, details: err.message, metadata };
  }
  if (err instanceof NotFoundError) return { code: status.NOT_FOUND, details: err.message, metadata };
  if (err instanceof AlreadyExistsError)
    return { code: status.ALREADY_EXISTS, details: err.message, metadata };
  if (err instanceof ConflictError) return { code: status.ABORTED, details: err.message, metadata };
  if (err instanceof FencedError || err instanceof UnavailableError)
    return { code: status.UNAVAILABLE, details: err.message, metadata };
  if (err instanceof DroverError) return { code: status.INTERNAL, details: err.message, metadata };
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: `internal error: ${message}`, metadata };
}

function isServiceError(err: unknown): err is ServiceError {
  return typeof err === "object" && err !== null && "code" in err && "metadata" in err;
}

/** Leader hint carried by a follower's answer, if any. */
export function leaderHint(err: unknown): string | undefined {
  if (!isServiceError(err) || !(err.metadata instanceof Metadata)) return undefined;
  const v = err.metadata.get(LEADER_METADATA_KEY)[0];
  return typeof v === "string" && v.length > 0 ? v : undefined;
}

/** Turns a gRPC client error back into a typed Drover error. */
export function fromGrpcError(err: unknown): Error {
  if (!isServiceError(err)) return err instanceof Error ? err : new Error(String(err));
  const details = err.details || err.message;
  switch (err.code) {
    case status.INVALID_ARGUMENT: {
      const raw = err.metadata?.get(ISSUES_METADATA_KEY)[0];
      let issues: FieldIssue[] = [{ path: "", message: details }];
      if (typeof raw === "string") {
        try {
          const parsed: unknown = JSON.parse(raw);
          if (Array.isArray(parsed)) issues = parsed as FieldIssue[];
        } catch {
          // keep the plain details
        }
      }
      return new InvalidArgumentError(issues);
    }
    case status.NOT_FOUND: {
      const e = new NotFoundError("x");
      e.message = details;
      return e;
    }
    case status.ALREADY_EXISTS: {
      const e = new AlreadyExistsError("x");
      e.message = details;
      return e;
    }
    case status.UNAVAILABLE: {
      const hint = leaderHint(err);
      if (hint !== undefined) return new NotLeaderError(hint);
      return new UnavailableError(details, { cause: err });
    }
    case status.ABORTED:
      return new ConflictError(details);
    default:
      return new DroverError("INTERNAL", details, { cause: err });
  }
}

export function isUnavailable(err: unknown): boolean {
  return isServiceError(err) && (err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED);
}
