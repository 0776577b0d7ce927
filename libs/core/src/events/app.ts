import { z } from "zod";
import { AppSpecSchema } from "../app.js";
import type { AggregateDef } from "./aggregate.js";

export const AppEventSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("AppCreated"),
    spec: AppSpecSchema,
    /** The request that created it: a retry of that request finds its app instead of ALREADY_EXISTS. */
    requestId: z.string().max(64).optional(),
  }),
  z.strictObject({ type: z.literal("AppUpdated"), spec: AppSpecSchema }),
  z.strictObject({ type: z.literal("AppScaled"), instances: z.number().int().min(0) }),
  z.strictObject({ type: z.literal("AppDeleted") }),
]);
export type AppEvent = z.infer<typeof AppEventSchema>;

export const AppRecordSchema = z.strictObject({
  spec: AppSpecSchema,
  /** The request id of the AppCreated (see there). */
  createdBy: z.string().optional(),
  createdAtMs: z.number(),
  updatedAtMs: z.number(),
});
export type AppRecord = z.infer<typeof AppRecordSchema>;

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
        };
      case "AppUpdated":
        if (!state) return state;
        return { ...state, spec: event.spec, updatedAtMs: atMs };
      case "AppScaled":
        if (!state) return state;
        return { ...state, spec: { ...state.spec, instances: event.instances }, updatedAtMs: atMs };
      case "AppDeleted":
        return undefined;
    }
  },
};
