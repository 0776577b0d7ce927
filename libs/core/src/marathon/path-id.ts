/**
 * Marathon path ids (`/product/service/frontend`) and the flat keys Drover stores them under.
 *
 * Upstream (mesosphere/marathon @ 90619da70d79): `state/PathId.scala` (parsing, `canonicalPath`,
 * `safePath`, the segment pattern and the reserved last segments) and `types/stringTypes.raml`
 * (`PathId`, checked on the raw JSON string before anything else).
 */
import { LIMITS } from "../limits.js";

/** One DNS-like label of a segment: lowercase letters and digits, '-' inside. */
const LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** Last segments Marathon refuses: they would clash with REST sub-resources. */
export const RESERVED_ID_SEGMENTS: readonly string[] = ["restart", "tasks", "versions"];

/** A raw id longer than this is refused before it is parsed (ids with `..` may be longer than their key). */
const MAX_RAW_ID_CHARS = 512;

/**
 * True for one segment as the RAML `PathId` pattern accepts it: labels joined by '.', each label
 * lowercase letters, digits and '-' (not first or last), or `..` (the parent). A lone `.` does not
 * match the RAML pattern (`PathId.scala` would drop it, but the JSON reader refuses it first).
 */
function validSegment(segment: string): boolean {
  if (segment === "..") return true;
  return segment.split(".").every((label) => LABEL.test(label));
}

export type IdCheck = { ok: true; id: string } | { ok: false; message: string };

/**
 * Resolves a Marathon id against `base` (default the root): leading, trailing and repeated '/'
 * are dropped, `..` goes one segment up (never above the root). `"web"` → `"/web"`,
 * `"/a/b/../c"` → `"/a/c"`, `"../db"` against `/product/service` → `"/product/db"`.
 * Does not validate: see `checkAppId`.
 */
export function canonicalId(raw: string, base = "/"): string {
  const absolute = raw.startsWith("/");
  const own = raw.split("/").filter((s) => s !== "");
  const start = absolute ? [] : base.split("/").filter((s) => s !== "");
  const out: string[] = [];
  for (const seg of [...start, ...own]) {
    if (seg === "..") out.pop();
    else if (seg !== ".") out.push(seg);
  }
  return `/${out.join("/")}`;
}

/**
 * Validates a raw path id (an app's, a dependency's) as Marathon does and returns it absolute and
 * canonical. Refused: a segment that is not lowercase labels or `..`, the root, and a last segment
 * `restart`, `tasks` or `versions`.
 */
export function checkPathId(raw: string, base = "/"): IdCheck {
  if (raw === "") return { ok: false, message: "must not be empty" };
  if (raw.length > MAX_RAW_ID_CHARS)
    return { ok: false, message: `must be at most ${MAX_RAW_ID_CHARS} characters` };
  const bad = raw.split("/").find((s) => s !== "" && !validSegment(s));
  if (bad !== undefined)
    return {
      ok: false,
      message: `path segment ${JSON.stringify(bad.slice(0, 64))} is invalid: each segment must be lowercase letters, digits and '-' (not first or last), in labels joined by '.', or '..'`,
    };
  const id = canonicalId(raw, base);
  if (id === "/")
    return { ok: false, message: "must not be the root group: an id needs at least one segment" };
  const last = id.slice(id.lastIndexOf("/") + 1);
  if (RESERVED_ID_SEGMENTS.includes(last))
    return {
      ok: false,
      message: `must not end with any of the following reserved keywords: ${RESERVED_ID_SEGMENTS.join(", ")}`,
    };
  return { ok: true, id };
}

/**
 * `checkPathId`, and (Drover) an app id whose key (`appIdToKey`) is at most LIMITS.appIdChars
 * characters, so that it fits where Drover's flat app ids went (etcd keys, task ids, labels).
 */
export function checkAppId(raw: string, base = "/"): IdCheck {
  const checked = checkPathId(raw, base);
  if (checked.ok && checked.id.length - 1 > LIMITS.appIdChars)
    return {
      ok: false,
      message: `must be at most ${LIMITS.appIdChars} characters without the leading '/' (got ${checked.id.length - 1})`,
    };
  return checked;
}

/**
 * The flat key of an absolute app id, as etcd aggregate ids and container labels hold it:
 * `/product/service/frontend` → `product_service_frontend` (Marathon's `PathId.safePath`). Reversible
 * by `keyToAppId`, since '_' is not allowed in ids. An old Drover id (`web`) keeps its key (`web`).
 */
export function appIdToKey(id: string): string {
  return id
    .split("/")
    .filter((s) => s !== "")
    .join("_");
}

/** The app id of a key: `product_service_frontend` → `/product/service/frontend` (`PathId.fromSafePath`). */
export function keyToAppId(key: string): string {
  return `/${key
    .split("_")
    .filter((s) => s !== "")
    .join("/")}`;
}

/**
 * What every task id of the app starts with: its key and a '.', as Marathon's task ids
 * (`product_service_frontend.<uuid>`). A task id is `taskIdPrefix(id) + uuid`; its app is found by
 * `taskIdToAppId` (the uuid part has no '.', the key may: `/a.b/c` → `a.b_c.`).
 */
export function taskIdPrefix(id: string): string {
  return `${appIdToKey(id)}.`;
}

/** The app id a task id was made for (`taskIdPrefix` + a part without '.'), or undefined when it has none. */
export function taskIdToAppId(taskId: string): string | undefined {
  const dot = taskId.lastIndexOf(".");
  if (dot <= 0 || dot === taskId.length - 1) return undefined;
  return keyToAppId(taskId.slice(0, dot));
}
