/**
 * Reading dockerode's errors by their structured fields (statusCode, json.message), never by
 * matching message text.
 */

/** The HTTP status Docker answered with, if the error came from the Engine API. */
export function dockerStatusCode(err: unknown): number | undefined {
  if (typeof err === "object" && err !== null && "statusCode" in err) {
    const code = (err as { statusCode: unknown }).statusCode;
    if (typeof code === "number") return code;
  }
  return undefined;
}

/**
 * Docker's own reason: the API's `message` when present, else the error's message without
 * dockerode's "(HTTP code N) reason - " prefix (stream endpoints carry no parsed JSON body).
 */
export function dockerErrorMessage(err: unknown): string {
  if (typeof err === "object" && err !== null) {
    const json = "json" in err ? (err as { json: unknown }).json : undefined;
    if (typeof json === "object" && json !== null && "message" in json) {
      const m = (json as { message: unknown }).message;
      if (typeof m === "string" && m !== "") return m;
    }
    if (err instanceof Error) {
      return err.message.replace(/^\(HTTP code \d+\) [^-]*- /, "").trim() || err.message;
    }
  }
  return String(err);
}

export const isNotFound = (err: unknown): boolean => dockerStatusCode(err) === 404;
export const isConflict = (err: unknown): boolean => dockerStatusCode(err) === 409;
/** 304 from stop/kill: the container was not running. */
export const isNotModified = (err: unknown): boolean => dockerStatusCode(err) === 304;
