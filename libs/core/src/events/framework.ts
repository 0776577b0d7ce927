import { z } from "zod";
import type { AggregateDef } from "./aggregate.js";

export const FrameworkEventSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("FrameworkSubscribed"),
    name: z.string(),
    role: z.string(),
    failoverTimeoutSeconds: z.number().min(0),
  }),
  z.strictObject({ type: z.literal("FrameworkRemoved"), reason: z.string() }),
]);
export type FrameworkEvent = z.infer<typeof FrameworkEventSchema>;

export const FrameworkRecordSchema = z.strictObject({
  frameworkId: z.string(),
  name: z.string(),
  role: z.string(),
  failoverTimeoutSeconds: z.number(),
  subscribedAtMs: z.number(),
  registeredAtMs: z.number(),
});
export type FrameworkRecord = z.infer<typeof FrameworkRecordSchema>;

export const FrameworkAggregate: AggregateDef<FrameworkRecord, FrameworkEvent> = {
  name: "framework",
  eventSchema: FrameworkEventSchema,
  stateSchema: FrameworkRecordSchema,
  apply(state, event, { id, atMs }) {
    switch (event.type) {
      case "FrameworkSubscribed":
        return {
          frameworkId: id,
          name: event.name,
          role: event.role,
          failoverTimeoutSeconds: event.failoverTimeoutSeconds,
          subscribedAtMs: atMs,
          registeredAtMs: state?.registeredAtMs ?? atMs,
        };
      case "FrameworkRemoved":
        return undefined;
    }
  },
};
