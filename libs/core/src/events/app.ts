import { z } from "zod";
import { AppSpecSchema } from "../app.js";
import type { AggregateDef } from "./aggregate.js";

/**
 * An app version: Marathon's `version`, the time of the change as ISO-8601 in UTC with ms
 * (`2026-11-29T19:13:37.123Z`). Every change of an app is a new version, unique and increasing per
 * app (see nextAppVersion).
 */
export const AppVersionSchema = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, { error: "must be an ISO-8601 UTC time with ms" });

/** Marathon's `versionInfo`: a scale moves `lastScalingAt` only, a config change both. */
export const AppVersionInfoSchema = z.strictObject({
  lastScalingAt: AppVersionSchema,
  lastConfigChangeAt: AppVersionSchema,
});
export type AppVersionInfo = z.infer<typeof AppVersionInfoSchema>;

/*
 * `version` in AppCreated, AppUpdated and AppScaled: the version the change makes (chosen by the
 * writer, so that a replay rebuilds it exactly). Absent in events written before versions: such an
 * event leaves the record's version fields as they are.
 */
export const AppEventSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("AppCreated"),
    spec: AppSpecSchema,
    /** The request that created it: a retry of that request finds its app instead of ALREADY_EXISTS. */
    requestId: z.string().max(64).optional(),
    version: AppVersionSchema.optional(),
  }),
  z.strictObject({
    type: z.literal("AppUpdated"),
    spec: AppSpecSchema,
    version: AppVersionSchema.optional(),
  }),
  z.strictObject({
    type: z.literal("AppScaled"),
    instances: z.number().int().min(0),
    version: AppVersionSchema.optional(),
  }),
  z.strictObject({ type: z.literal("AppDeleted") }),
]);
export type AppEvent = z.infer<typeof AppEventSchema>;

export const AppRecordSchema = z.strictObject({
  spec: AppSpecSchema,
  /** The request id of the AppCreated (see there). */
  createdBy: z.string().optional(),
  createdAtMs: z.number(),
  updatedAtMs: z.number(),
  /** The current version; absent in records written before versions (see appVersionOf). */
  version: AppVersionSchema.optional(),
  versionInfo: AppVersionInfoSchema.optional(),
});
export type AppRecord = z.infer<typeof AppRecordSchema>;

/** An app's version and versionInfo as Marathon prints them. */
export interface AppVersioned {
  version: string;
  versionInfo: AppVersionInfo;
}

/** A time in ms as an app version (ISO-8601, UTC, ms). */
export function appVersionAt(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * The record's version and versionInfo. A record written before versions has neither: its
 * version is its last change (`updatedAtMs`), which counts as a config change too (a scale cannot
 * be told apart any more).
 */
export function appVersionOf(r: AppRecord): AppVersioned {
  if (r.version !== undefined && r.versionInfo !== undefined)
    return { version: r.version, versionInfo: r.versionInfo };
  const v = r.version ?? appVersionAt(r.updatedAtMs);
  return { version: v, versionInfo: r.versionInfo ?? { lastScalingAt: v, lastConfigChangeAt: v } };
}

/** A new config version `v` (create, update): all three move. */
const configChange = (v: string) => ({
  version: v,
  versionInfo: { lastScalingAt: v, lastConfigChangeAt: v },
});

export const AppAggregate: AggregateDef<AppRecord, AppEvent> = {
  name: "app",
  eventSchema: AppEventSchema,
  stateSchema: AppRecordSchema,
  apply(state, event, { atMs }) {
    switch (event.type) {
      case "AppCreated":
        return {
          spec: event.spec,
          ...(event.requestId ? { createdBy: event.requestId } : {}),
          createdAtMs: atMs,
          updatedAtMs: atMs,
          ...(event.version !== undefined ? configChange(event.version) : {}),
        };
      case "AppUpdated":
        if (!state) return state;
        return {
          ...state,
          spec: event.spec,
          updatedAtMs: atMs,
          ...(event.version !== undefined ? configChange(event.version) : {}),
        };
      case "AppScaled":
        if (!state) return state;
        return {
          ...state,
          spec: { ...state.spec, instances: event.instances },
          updatedAtMs: atMs,
          ...(event.version !== undefined
            ? {
                version: event.version,
                versionInfo: {
                  lastScalingAt: event.version,
                  lastConfigChangeAt: appVersionOf(state).versionInfo.lastConfigChangeAt,
                },
              }
            : {}),
        };
      case "AppDeleted":
        return undefined;
    }
  },
};
