import { z } from "zod";
import type { AggregateDef } from "./aggregate.js";

/**
 * The reservations of a resident app (one with local persistent volumes): each is one instance's
 * place on one agent, where its volumes live. A task of the app runs on the agent of the
 * reservation it uses, and finds the volumes there again after a restart. Keyed like the app.
 */
export const ReservationSchema = z.strictObject({
  /** Short and unique within the app; part of the volumes' Docker names. */
  id: z.string().regex(/^[a-z0-9]{1,32}$/),
  agentId: z.string().min(1),
  hostname: z.string(),
  createdAtMs: z.number(),
});
export type Reservation = z.infer<typeof ReservationSchema>;

export const ResidencyEventSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("VolumesReserved"),
    appId: z.string().min(1),
    reservations: z.array(ReservationSchema).min(1),
  }),
  /** The app is gone: its reservations are released (the volumes stay on their agents, see the README). */
  z.strictObject({ type: z.literal("ReservationsReleased") }),
]);
export type ResidencyEvent = z.infer<typeof ResidencyEventSchema>;

export const ResidencyRecordSchema = z.strictObject({
  appId: z.string().min(1),
  reservations: z.array(ReservationSchema),
});
export type ResidencyRecord = z.infer<typeof ResidencyRecordSchema>;

export const ResidencyAggregate: AggregateDef<ResidencyRecord, ResidencyEvent> = {
  name: "residency",
  eventSchema: ResidencyEventSchema,
  stateSchema: ResidencyRecordSchema,
  apply(state, event) {
    switch (event.type) {
      case "VolumesReserved": {
        const known = new Set(state?.reservations.map((r) => r.id));
        return {
          appId: event.appId,
          reservations: [
            ...(state?.reservations ?? []),
            ...event.reservations.filter((r) => !known.has(r.id)),
          ],
        };
      }
      case "ReservationsReleased":
        return undefined;
    }
  },
};
