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

/** One event as the relay read it from the log: its key, its stored JSON, and that JSON checked. */
export interface LoggedEvent {
  key: string;
  /** The stored envelope, as etcd holds it (JSON of an EventEnvelope). */
  value: string;
  env: EventEnvelope;
  revision: string;
}

/** One message of the events stream, as the relay publishes it (see eventMessages). */
export interface RelayMessage {
  subject: string;
  /** `<revision>:<log key of its first event>`: the same events always make the same id. */
  msgId: string;
  revision: string;
  payload: Uint8Array;
  /** The events it carries. */
  count: number;
}

/** What one message of events holds at most (NATS refuses a payload above its max_payload, 1 MiB by default). */
export const MAX_EVENT_MESSAGE_BYTES = 256 * 1024;

const enc = new TextEncoder();

/**
 * The messages that carry `events` (in revision order): the events of one transaction (one
 * revision), taken in log key order (per aggregate, in version order), are cut into runs of
 * consecutive events of the same aggregate type and event type, each run one message on that
 * type's subject (`drover.events.<aggregate>.<type>`, so a filter on a subject sees only its
 * events) of at most `maxBytes`. A run of one event is the single-event message
 * (PublishedEvent); a longer one is a batch `{"revision":R,"events":[envelope, ...]}`. The cut
 * depends only on the events of the transaction, not on the order they were read in: a relay
 * that publishes them again (after a leader change, after catching up from the log) makes the
 * same messages with the same ids, which JetStream de-duplicates.
 */
export function eventMessages(events: LoggedEvent[], maxBytes = MAX_EVENT_MESSAGE_BYTES): RelayMessage[] {
  const out: RelayMessage[] = [];
  const sorted = [...events].sort((a, b) => {
    // Revisions are decimal integers without leading zeros: the shorter is the smaller.
    if (a.revision !== b.revision)
      return a.revision.length !== b.revision.length
        ? a.revision.length - b.revision.length
        : a.revision < b.revision
          ? -1
          : 1;
    return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
  });
  // An event's bytes in a batch: its JSON, its revision field and a comma.
  const sizeOf = (e: LoggedEvent) => e.value.length + e.revision.length + 16;
  let run: LoggedEvent[] = [];
  let runBytes = 0;
  let runSubject = "";
  const close = () => {
    const first = run[0];
    if (!first) return;
    const rev = JSON.stringify(first.revision);
    const payload =
      run.length === 1
        ? jc.encode({ ...first.env, revision: first.revision })
        : // Each event carries its revision too (a PublishedEvent as is): the stored JSON with
          // the field appended, without parsing and encoding it again.
          enc.encode(
            `{"revision":${rev},"events":[${run.map((e) => withRevision(e.value, rev)).join(",")}]}`,
          );
    out.push({
      subject: runSubject,
      msgId: eventMessageId(first.revision, first.key),
      revision: first.revision,
      payload,
      count: run.length,
    });
    run = [];
    runBytes = 0;
  };
  for (const e of sorted) {
    const subject = eventSubject(e.env.aggregate, (e.env.event as { type?: string }).type ?? "Unknown");
    const first = run[0];
    if (first && (first.revision !== e.revision || subject !== runSubject || runBytes + sizeOf(e) > maxBytes))
      close();
    if (run.length === 0) runSubject = subject;
    run.push(e);
    runBytes += sizeOf(e);
  }
  close();
  return out;
}

/** A stored envelope's JSON (an object) with `"revision":<rev>` added. */
function withRevision(value: string, rev: string): string {
  const end = value.lastIndexOf("}");
  return `${value.slice(0, end)},"revision":${rev}}`;
}

/** Publishes one message of eventMessages; its id makes a republish a no-op within the window. */
export async function publishEventMessage(bus: Bus, m: RelayMessage): Promise<void> {
  const h = headers();
  h.set(REVISION_HEADER, m.revision);
  await bus.js.publish(m.subject, m.payload, { msgID: m.msgId, headers: h });
}

/**
 * The events of one message of the stream: one event, or a batch (eventMessages; each of its
 * events carries its revision, and so does the batch).
 */
export function unpackEventMessage(decoded: unknown): { events: unknown[] } {
  if (
    decoded !== null &&
    typeof decoded === "object" &&
    Array.isArray((decoded as { events?: unknown }).events) &&
    !("aggregate" in decoded)
  )
    return { events: (decoded as { events: unknown[] }).events };
  return { events: [decoded] };
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
 * event, in order, a batch message unpacked (invalid ones are logged and skipped). `fromStart` replays the retained stream.
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
      // A message holds one event or a batch of one transaction's events (eventMessages).
      for (const one of unpackEventMessage(decoded).events) {
        const parsed = PublishedEventSchema.safeParse(one);
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
    }
  })();
  return async () => {
    await messages.close();
    await done;
  };
}
