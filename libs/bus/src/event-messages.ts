/**
 * The events stream read message by message, each with its JetStream stream sequence: for readers
 * that must resume exactly where they stopped (the scheduler's /v2/events, `Last-Event-ID`).
 *
 * A message carries one committed event or a batch of one transaction's events (the relay's
 * eventMessages); `unpackEventMessage` (events.ts) is the one place that knows the packing, and
 * this reader uses it, so it follows any change there (readers receive `events` in commit order).
 */
import type { Logger } from "@drover/common";
import { DeliverPolicy, JSONCodec } from "nats";
import { type Bus, EVENTS_STREAM, EVENTS_SUBJECT_PREFIX } from "./bus.js";
import { type PublishedEvent, PublishedEventSchema, unpackEventMessage } from "./events.js";

const jc = JSONCodec();

/** One message of the events stream: its stream sequence and the committed events it carries. */
export interface EventMessage {
  seq: number;
  subject: string;
  events: PublishedEvent[];
}

/**
 * The committed events one message carries, in commit order, and what could not be read (an event
 * that fails PublishedEventSchema is left out and described in `invalid`; nothing throws).
 * The packing is unpackEventMessage's.
 */
export function decodeEventMessage(data: Uint8Array): { events: PublishedEvent[]; invalid: string[] } {
  let decoded: unknown;
  try {
    decoded = jc.decode(data);
  } catch {
    return { events: [], invalid: ["undecodable JSON"] };
  }
  const parts = unpackEventMessage(decoded).events;
  const events: PublishedEvent[] = [];
  const invalid: string[] = [];
  for (const p of parts) {
    const parsed = PublishedEventSchema.safeParse(p);
    if (parsed.success) events.push(parsed.data);
    else invalid.push(parsed.error.message);
  }
  return { events, invalid };
}

/** The first and last stream sequence of the events stream (0, 0 when it is empty). */
export async function eventStreamBounds(bus: Bus): Promise<{ firstSeq: number; lastSeq: number }> {
  const info = await bus.jsm.streams.info(EVENTS_STREAM);
  if (info.state.messages === 0) return { firstSeq: info.state.last_seq + 1, lastSeq: info.state.last_seq };
  return { firstSeq: info.state.first_seq, lastSeq: info.state.last_seq };
}

/**
 * Follows the events stream with an ordered (ephemeral) consumer from stream sequence `startSeq`
 * (default: the next message published) and calls `handler` with each message in stream order,
 * awaiting it. A message whose events are all invalid is still delivered (with no events) so that
 * the reader's position moves on. Returns the sequence it started at and a stop function.
 */
export async function followEventMessages(
  bus: Bus,
  log: Logger,
  handler: (m: EventMessage) => void | Promise<void>,
  opts: { startSeq?: number; filter?: string } = {},
): Promise<{ startSeq: number; stop: () => Promise<void> }> {
  const { firstSeq, lastSeq } = await eventStreamBounds(bus);
  const startSeq = Math.max(1, firstSeq, opts.startSeq ?? lastSeq + 1);
  const consumer = await bus.js.consumers.get(EVENTS_STREAM, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: startSeq,
    filterSubjects: opts.filter ?? `${EVENTS_SUBJECT_PREFIX}.>`,
  });
  const messages = await consumer.consume();
  const done = (async () => {
    for await (const m of messages) {
      const { events, invalid } = decodeEventMessage(m.data);
      for (const error of invalid)
        log.warn("skipping invalid event", { subject: m.subject, seq: m.seq, error });
      try {
        await handler({ seq: m.seq, subject: m.subject, events });
      } catch (err) {
        log.error("event message handler failed", { err, subject: m.subject, seq: m.seq });
      }
    }
  })();
  return {
    startSeq,
    stop: async () => {
      await messages.close();
      await done;
    },
  };
}
