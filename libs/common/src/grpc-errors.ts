/**
 * The one place where Drover errors become gRPC statuses and back (codes from ERROR_STATUS).
 * A follower's NOT_LEADER becomes UNAVAILABLE with the trailer `drover-leader: <address>`;
 * field issues travel as JSON in the trailer `drover-issues`.
 *
 * Whatever the error says, what goes on the wire is safe: the details are well-formed and at
 * most MAX_DETAILS_CHARS long, and every trailer is printable ASCII (gRPC metadata allows
 * nothing else: `Metadata.set` throws on anything else) and bounded in size, so no input can
 * make the answer itself fail.
 */
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { z } from "zod";
import {
  AlreadyExistsError,
  ConflictError,
  DroverError,
  ERROR_STATUS,
  FailedPreconditionError,
  type FieldIssue,
  InvalidArgumentError,
  NotFoundError,
  NotLeaderError,
  PermissionDeniedError,
  SessionClosedError,
  TooLargeError,
  UnavailableError,
} from "./errors.js";
import { asciiJson, asciiOnly, clip, MAX_DETAILS_CHARS, MAX_ISSUES_TRAILER_BYTES } from "./safe-text.js";

export const LEADER_METADATA_KEY = "drover-leader";
export const ISSUES_METADATA_KEY = "drover-issues";
/**
 * One logical call's id, the same on every retry of it: a server that carried out the first
 * attempt (whose answer was lost) answers the retry as the first one, not with ALREADY_EXISTS.
 */
export const REQUEST_ID_METADATA_KEY = "drover-request-id";
/** Set when the leader itself closed a session (heartbeat timeout, replaced): reconnect to it, not elsewhere. */
export const SESSION_CLOSED_METADATA_KEY = "drover-session-closed";
/** The framework calls' proof of the caller: the stream id of the framework's subscription. */
export const STREAM_ID_METADATA_KEY = "drover-stream-id";

export interface GrpcErrorPayload {
  code: status;
  details: string;
  metadata: Metadata;
}

/** The issues as an ASCII JSON trailer of at most MAX_ISSUES_TRAILER_BYTES (dropping issues from the end). */
export function issuesTrailer(issues: readonly FieldIssue[]): string {
  let kept = issues.length;
  for (;;) {
    const list: FieldIssue[] = issues.slice(0, kept);
    if (kept < issues.length)
      list.push({ path: "", message: `and ${issues.length - kept} more issues (truncated)` });
    const text = asciiJson(list);
    if (text.length <= MAX_ISSUES_TRAILER_BYTES || kept === 0) return text;
    kept = Math.floor(kept / 2);
  }
}

/** The gRPC status for `err`. Never throws, whatever `err` is. */
export function toGrpcError(err: unknown): GrpcErrorPayload {
  const metadata = new Metadata();
  if (err instanceof DroverError) {
    const details = clip(err.message, MAX_DETAILS_CHARS);
    if (err instanceof NotLeaderError && err.leader)
      metadata.set(LEADER_METADATA_KEY, asciiOnly(err.leader, 256));
    if (err instanceof InvalidArgumentError) metadata.set(ISSUES_METADATA_KEY, issuesTrailer(err.issues));
    if (err instanceof SessionClosedError)
      metadata.set(SESSION_CLOSED_METADATA_KEY, asciiOnly(err.reason, 200));
    return { code: ERROR_STATUS[err.code].grpc as status, details, metadata };
  }
  return {
    code: status.INTERNAL,
    details: clip(`internal error: ${safeMessage(err)}`, MAX_DETAILS_CHARS),
    metadata,
  };
}

function safeMessage(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return "unprintable error";
  }
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

/** Whether the leader itself closed the session (see SESSION_CLOSED_METADATA_KEY). */
export function closedByLeader(err: unknown): boolean {
  return (
    isServiceError(err) &&
    err.metadata instanceof Metadata &&
    err.metadata.get(SESSION_CLOSED_METADATA_KEY).length > 0
  );
}

const IssuesSchema = z.array(z.object({ path: z.string(), message: z.string() }));

/** Turns a gRPC client error back into a typed Drover error (the trailer is checked, not trusted). */
export function fromGrpcError(err: unknown): Error {
  if (!isServiceError(err)) return err instanceof Error ? err : new Error(String(err));
  const details = err.details || err.message;
  switch (err.code) {
    case status.INVALID_ARGUMENT: {
      const raw = err.metadata?.get(ISSUES_METADATA_KEY)[0];
      let issues: FieldIssue[] = [{ path: "", message: details }];
      if (typeof raw === "string") {
        try {
          const parsed = IssuesSchema.safeParse(JSON.parse(raw));
          if (parsed.success) issues = parsed.data;
        } catch {
          // keep the plain details
        }
      }
      return new InvalidArgumentError(issues, { cause: err });
    }
    case status.NOT_FOUND:
      return new NotFoundError("", { message: details });
    case status.ALREADY_EXISTS:
      return new AlreadyExistsError("", { message: details });
    case status.FAILED_PRECONDITION:
      return new FailedPreconditionError(details);
    case status.PERMISSION_DENIED:
      return new PermissionDeniedError(details);
    case status.RESOURCE_EXHAUSTED:
      return new TooLargeError(details);
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
