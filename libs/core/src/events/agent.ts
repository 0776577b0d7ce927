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
]);
export type AgentEvent = z.infer<typeof AgentEventSchema>;

export const AgentRecordSchema = z.strictObject({
  agentId: z.string(),
  hostname: z.string(),
  resources: ResourcesSchema,
  attributes: z.record(z.string(), z.string()),
  registeredAtMs: z.number(),
  firstRegisteredAtMs: z.number(),
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
      case "AgentRemoved":
        return undefined;
    }
  },
};
