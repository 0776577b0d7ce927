/**
 * App versions (Marathon's `version`, `versionInfo`, `GET /v2/apps/{id}/versions`): pure rules.
 *
 * - Every change of an app is a new, immutable version named by its time (ISO-8601, UTC, ms). A
 *   version is unique and increasing per app: a change within the same ms as the previous
 *   version, or from a clock behind it (another scheduler after a failover), takes the previous
 *   version + 1 ms.
 * - A change of `instances` alone is a scale (lastScalingAt moves, lastConfigChangeAt stays); any
 *   other change is a config change; an identical definition is no change (no version).
 * - Old versions are kept up to a cap (Marathon's `--max_versions`), the current one included;
 *   the oldest go first.
 */
import { z } from "zod";
import { type AppSpec, AppSpecSchema } from "../app.js";
import { type AppRecord, AppVersionInfoSchema, AppVersionSchema, appVersionAt, appVersionOf } from "./app.js";

/** One stored version of an app: its definition as of that version. */
export const AppVersionEntrySchema = z.strictObject({
  spec: AppSpecSchema,
  version: AppVersionSchema,
  versionInfo: AppVersionInfoSchema,
});
export type AppVersionEntry = z.infer<typeof AppVersionEntrySchema>;

/** The version of the app as `r` holds it, as a stored entry. */
export function appVersionEntry(r: AppRecord): AppVersionEntry {
  return { spec: r.spec, ...appVersionOf(r) };
}

/** The version a change at `nowMs` makes: `nowMs`, or 1 ms after the app's current version. */
export function nextAppVersion(current: AppRecord | undefined, nowMs: number): string {
  if (!current) return appVersionAt(nowMs);
  const last = Date.parse(appVersionOf(current).version);
  return appVersionAt(Number.isFinite(last) ? Math.max(nowMs, last + 1) : nowMs);
}

/**
 * A version as a client wrote it (any ISO-8601 date-time with a zone: `...Z`, `...+02:00`, with or
 * without fractions), as the canonical string versions are stored under; undefined if it is none.
 */
export function parseAppVersion(text: string): string | undefined {
  if (text.length > 64) return undefined;
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) return undefined;
  const ms = Date.parse(text);
  if (!Number.isFinite(ms)) return undefined;
  const v = appVersionAt(ms);
  return AppVersionSchema.safeParse(v).success ? v : undefined;
}

/** What a change from `before` to `after` is (Marathon: isUpgrade / isOnlyScaleChange). */
export function appChangeKind(before: AppSpec, after: AppSpec): "none" | "scale" | "config" {
  if (canonical(before) === canonical(after)) return "none";
  return canonical({ ...before, instances: 0 }) === canonical({ ...after, instances: 0 })
    ? "scale"
    : "config";
}

/**
 * JSON with the members of every object in key order and undefined members left out, as JSON
 * holds them: a parsed and a stored definition of the same app compare equal.
 */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * Which stored versions stay when the app's current version is `current` and at most `cap`
 * versions are kept, the current one included: the newest `cap - 1` others. `drop` are the
 * others, all older than every kept one. Versions compare as strings (ISO-8601 in UTC with ms
 * sorts as time).
 */
export function versionsToKeep(
  stored: readonly string[],
  current: string,
  cap: number,
): { keep: string[]; drop: string[] } {
  const others = [...new Set(stored)].filter((v) => v !== current).sort();
  const n = Math.max(0, Math.min(others.length, Math.floor(cap) - 1));
  return { keep: others.slice(others.length - n), drop: others.slice(0, others.length - n) };
}
