import { z } from "zod";
import { ResourcesSchema } from "../resources.js";
import type { AggregateDef } from "./aggregate.js";

export const AgentEventSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("AgentRegistered"),
    hostname: z.string(),
    resources: ResourcesSchema,
    attributes: z.record(z.string(), z.string()),
  }),
  z.strictObject({ type: z.literal("AgentRemoved"), reason: z.string() }),
  /**
   * The master marked the agent's tasks unreachable: it has been gone since `goneSinceMs` (when its
   * session ended, or when a new leader started without it). A later leader counts its removal
   * timeout from here, not from its own start; the agent's next registration clears it.
   */
  z.strictObject({ type: z.literal("AgentUnreachable"), goneSinceMs: z.number().int().nonnegative() }),
]);
export type AgentEvent = z.infer<typeof AgentEventSchema>;

export const AgentRecordSchema = z.strictObject({
  agentId: z.string(),
  hostname: z.string(),
  resources: ResourcesSchema,
  attributes: z.record(z.string(), z.string()),
  registeredAtMs: z.number(),
  firstRegisteredAtMs: z.number(),
  /** Gone since (AgentUnreachable), until it registers again. */
  goneSinceMs: z.number().optional(),
});
export type AgentRecord = z.infer<typeof AgentRecordSchema>;

export const AgentAggregate: AggregateDef<AgentRecord, AgentEvent> = {
  name: "agent",
  eventSchema: AgentEventSchema,
  stateSchema: AgentRecordSchema,
  apply(state, event, { id, atMs }) {
    switch (event.type) {
      case "AgentRegistered":
        return {
          agentId: id,
          hostname: event.hostname,
          resources: event.resources,
          attributes: event.attributes,
          registeredAtMs: atMs,
          firstRegisteredAtMs: state?.firstRegisteredAtMs ?? atMs,
        };
      case "AgentUnreachable":
        return state ? { ...state, goneSinceMs: event.goneSinceMs } : undefined;
      case "AgentRemoved":
        return undefined;
    }
  },
};
