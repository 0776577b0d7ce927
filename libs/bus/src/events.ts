/** Publishing and following Drover's events on NATS. */
import type { Logger } from "@drover/common";
import type { EventEnvelope } from "@drover/core";
import { DeliverPolicy, JSONCodec } from "nats";
import { z } from "zod";
import { type Bus, EVENTS_STREAM, EVENTS_SUBJECT_PREFIX, headers, REVISION_HEADER } from "./bus.js";

const jc = JSONCodec();

export const PublishedEventSchema = z.object({
  aggregate: z.string(),
  id: z.string(),
  version: z.number().int(),
  atMs: z.number(),
  revision: z.string(),
  event: z.object({ type: z.string() }).passthrough(),
});
export type PublishedEvent = z.infer<typeof PublishedEventSchema>;

export function eventSubject(aggregate: string, type: string): string {
  return `${EVENTS_SUBJECT_PREFIX}.${aggregate}.${type}`;
}

/** Publishes one committed event; the message id makes a republish a no-op within the window. */
export async function publishEvent(
  bus: Bus,
  env: EventEnvelope,
  revision: string,
  logKey: string,
): Promise<void> {
  const type = (env.event as { type?: string }).type ?? "Unknown";
  const h = headers();
  h.set(REVISION_HEADER, revision);
  await bus.js.publish(eventSubject(env.aggregate, type), jc.encode({ ...env, revision }), {
    msgID: eventMessageId(revision, logKey),
    headers: h,
  });
}

/**
 * Where a relay resumes: the revision of the oldest of the last `n` events in the stream (0 if
 * none), and the message ids of those `n` events. Events are published in batches, and a failed
 * batch is published again, so the last event stored does not prove that every earlier one was:
 * the relay resumes `n` back and skips what these ids show was stored.
 */
export async function resumePoint(bus: Bus, n: number): Promise<{ fromRevision: bigint; ids: Set<string> }> {
  const info = await bus.jsm.streams.info(EVENTS_STREAM);
  const ids = new Set<string>();
  if (info.state.messages === 0 || info.state.last_seq === 0) return { fromRevision: 0n, ids };
  const first = Math.max(info.state.first_seq, info.state.last_seq - n + 1);
  let fromRevision = 0n;
  const seqs = Array.from({ length: info.state.last_seq - first + 1 }, (_, i) => first + i);
  const msgs = await Promise.all(
    seqs.map((seq) => bus.jsm.streams.getMessage(EVENTS_STREAM, { seq }).catch(() => undefined)),
  );
  for (const msg of msgs) {
    const rev = msg?.header?.get(REVISION_HEADER);
    const id = msg?.header?.get("Nats-Msg-Id");
    if (id) ids.add(id);
    if (rev && (fromRevision === 0n || BigInt(rev) < fromRevision)) fromRevision = BigInt(rev);
  }
  return { fromRevision, ids };
}

/** The message id of an event: a republish within the duplicate window is a no-op. */
export function eventMessageId(revision: string, logKey: string): string {
  return `${revision}:${logKey}`;
}

/** The etcd revision of the last event in the stream (0 if none). */
export async function lastPublishedRevision(bus: Bus): Promise<bigint> {
  const info = await bus.jsm.streams.info(EVENTS_STREAM);
  if (info.state.messages === 0 || info.state.last_seq === 0) return 0n;
  const msg = await bus.jsm.streams.getMessage(EVENTS_STREAM, { seq: info.state.last_seq });
  const rev = msg.header?.get(REVISION_HEADER);
  return rev ? BigInt(rev) : 0n;
}

/**
 * Follows the event stream with an ordered consumer and calls `handler` for each valid
 * event (invalid ones are logged and skipped). `fromStart` replays the retained stream.
 * Returns a stop function.
 */
export async function followEvents(
  bus: Bus,
  log: Logger,
  handler: (e: PublishedEvent) => void | Promise<void>,
  opts: { fromStart?: boolean; filter?: string } = {},
): Promise<() => Promise<void>> {
  // nats-server 2.9 rejects an ordered consumer with deliver policy All/New (the client also sets
  // a start sequence), so both cases are expressed as a start sequence.
  const info = await bus.jsm.streams.info(EVENTS_STREAM);
  const consumer = await bus.js.consumers.get(EVENTS_STREAM, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: opts.fromStart ? Math.max(1, info.state.first_seq) : info.state.last_seq + 1,
    filterSubjects: opts.filter ?? `${EVENTS_SUBJECT_PREFIX}.>`,
  });
  const messages = await consumer.consume();
  const done = (async () => {
    for await (const m of messages) {
      let decoded: unknown;
      try {
        decoded = jc.decode(m.data);
      } catch {
        log.warn("skipping undecodable event", { subject: m.subject });
        continue;
      }
      const parsed = PublishedEventSchema.safeParse(decoded);
      if (!parsed.success) {
        log.warn("skipping invalid event", { subject: m.subject, error: parsed.error.message });
        continue;
      }
      try {
        await handler(parsed.data);
      } catch (err) {
        log.error("event handler failed", { err, subject: m.subject });
      }
    }
  })();
  return async () => {
    await messages.close();
    await done;
  };
}
