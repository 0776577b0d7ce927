/**
 * An aggregate type of the event-sourced store: how its events are validated and folded
 * into its projection. `apply` must be pure and total over valid events: replaying the
 * log with it must rebuild the stored projection exactly (invariant 2).
 */
import type { z } from "zod";

export interface AggregateDef<S, E extends { type: string }> {
  /** Name used in etcd keys and NATS subjects (`/drover/state/<name>/<id>`). */
  readonly name: string;
  readonly eventSchema: z.ZodType<E>;
  readonly stateSchema: z.ZodType<S>;
  /** Folds one event into the state; `undefined` state means "does not exist". */
  apply(state: S | undefined, event: E, meta: EventMeta): S | undefined;
}

/** Facts about an event that are not part of its payload. */
export interface EventMeta {
  id: string;
  atMs: number;
}

/** An event as stored in the log (`/drover/log/<aggregate>/<id>/<version>`). */
export interface EventEnvelope<E = unknown> {
  aggregate: string;
  id: string;
  version: number;
  atMs: number;
  event: E;
}

export function fold<S, E extends { type: string }>(
  def: AggregateDef<S, E>,
  id: string,
  events: { event: E; atMs: number }[],
  initial?: S,
): S | undefined {
  let s = initial;
  for (const e of events) s = def.apply(s, e.event, { id, atMs: e.atMs });
  return s;
}
