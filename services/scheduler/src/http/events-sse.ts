/**
 * The pure parts of `/v2/events`: the query and `Last-Event-ID` (zod), SSE framing, event ids and
 * where a reader resumes, the `event_type` filter, the ring of recent frames a reconnecting client
 * resumes from, and the slow-consumer rule. No I/O here (events.ts is the shell).
 *
 * Event ids: a Marathon event is placed by the stream sequence `seq` of the NATS message its
 * committed event came in and its ordinal `ord` within that message (core's PlacedMarathonEvent).
 * The last event a message yields has the id `<seq>`; an earlier one `<seq>.<ord>`. `Last-Event-ID:
 * <seq>` therefore resumes after the whole message, `<seq>.<ord>` after that event of it.
 */
import { type MarathonEvent, MarathonEventTypeNameSchema, type PlacedMarathonEvent } from "@drover/core";
import { z } from "zod";

/** Where a client is: every event placed at or before it has been sent (or filtered out). */
export interface Cursor {
  seq: number;
  /** Infinity: the whole message `seq`. */
  ord: number;
}

export const START: Cursor = { seq: 0, ord: Number.POSITIVE_INFINITY };

export function compareCursor(a: Cursor, b: Cursor): number {
  if (a.seq !== b.seq) return a.seq - b.seq;
  if (a.ord === b.ord) return 0;
  return a.ord < b.ord ? -1 : 1;
}

/** The id of a placed event (see above). */
export function eventIdOf(e: Pick<PlacedMarathonEvent, "seq" | "ord" | "lastOfMessage">): string {
  return e.lastOfMessage ? String(e.seq) : `${e.seq}.${e.ord}`;
}

/** The cursor an id stands for: `<seq>` is the whole message, `<seq>.<ord>` that event. */
export const LastEventIdSchema = z
  .string()
  .trim()
  .regex(/^\d{1,15}(\.\d{1,9})?$/, { error: "must be an event id of this stream: <seq> or <seq>.<n>" })
  .transform((s): Cursor => {
    const [seq, ord] = s.split(".");
    return { seq: Number(seq), ord: ord === undefined ? Number.POSITIVE_INFINITY : Number(ord) };
  });

const eventTypes = z.union([MarathonEventTypeNameSchema, z.array(MarathonEventTypeNameSchema).max(64)]);

/** GET /v2/events query: `event_type` (repeatable). Other parameters are ignored, as Marathon does. */
export const EventsQuerySchema = z.looseObject({ event_type: eventTypes.optional() }).transform((q) => ({
  eventTypes:
    q.event_type === undefined
      ? undefined
      : new Set<string>(Array.isArray(q.event_type) ? q.event_type : [q.event_type]),
}));
export type EventsQuery = z.infer<typeof EventsQuerySchema>;

/** True when a client that asked for `types` (undefined: all) wants an event of `eventType`. */
export function wanted(types: ReadonlySet<string> | undefined, eventType: string): boolean {
  return types === undefined || types.has(eventType);
}

/** One SSE frame. `data` is JSON on one line (JSON.stringify escapes every newline). */
export function sseFrame(event: MarathonEvent, id?: string): string {
  return `${id !== undefined ? `id: ${id}\n` : ""}event: ${event.eventType}\ndata: ${JSON.stringify(event)}\n\n`;
}

/** An SSE comment (ignored by clients; keeps proxies and idle timers from closing the stream). */
export function sseComment(text: string): string {
  return `${text
    .split(/\r?\n/)
    .map((l) => `: ${l}`)
    .join("\n")}\n\n`;
}

/** A framed event, kept by the ring and sent to every client that wants its type. */
export interface Frame {
  cursor: Cursor;
  eventType: string;
  text: string;
}

export function frameOf(e: PlacedMarathonEvent): Frame {
  return {
    cursor: { seq: e.seq, ord: e.ord },
    eventType: e.event.eventType,
    text: sseFrame(e.event, eventIdOf(e)),
  };
}

/**
 * The recent frames, at most `maxFrames` and `maxBytes` of text (the oldest go first), for clients
 * that resume with Last-Event-ID. `since(c)` says whether frames after `c` were dropped (a gap).
 */
export class FrameRing {
  private frames: Frame[] = [];
  private head = 0;
  private bytes = 0;
  /** Everything at or before this is gone (dropped from the ring, or never read: aged out of the stream). */
  private goneUpTo: Cursor;

  constructor(
    private readonly maxFrames: number,
    private readonly maxBytes: number,
    /** The stream sequence the reader started at: earlier messages were never read. */
    startSeq: number,
  ) {
    this.goneUpTo = { seq: startSeq - 1, ord: Number.POSITIVE_INFINITY };
  }

  get size(): number {
    return this.frames.length - this.head;
  }

  push(f: Frame): void {
    this.frames.push(f);
    this.bytes += f.text.length;
    while (this.size > this.maxFrames || (this.bytes > this.maxBytes && this.size > 1)) {
      const old = this.frames[this.head];
      if (!old) break;
      this.head++;
      this.bytes -= old.text.length;
      this.goneUpTo = old.cursor;
    }
    if (this.head > 1024 && this.head * 2 > this.frames.length) {
      this.frames = this.frames.slice(this.head);
      this.head = 0;
    }
  }

  /** Whether some frames after `c` are gone (a client at `c` missed them). */
  missed(c: Cursor): boolean {
    return compareCursor(c, this.goneUpTo) < 0;
  }

  /** At most `limit` kept frames after `c`, oldest first. */
  after(c: Cursor, limit = Number.POSITIVE_INFINITY): Frame[] {
    // Frames are in cursor order: binary search the first one after c.
    let lo = this.head;
    let hi = this.frames.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const f = this.frames[mid];
      if (f && compareCursor(f.cursor, c) <= 0) lo = mid + 1;
      else hi = mid;
    }
    const out: Frame[] = [];
    for (let i = lo; i < this.frames.length && out.length < limit; i++) {
      const f = this.frames[i];
      if (f) out.push(f);
    }
    return out;
  }

  /** The kept frames after `c`, and whether some after `c` are gone (the client missed them). */
  since(c: Cursor): { frames: Frame[]; gap: boolean } {
    return { frames: this.after(c), gap: this.missed(c) };
  }
}

/**
 * The slow-consumer rule. A client is sent frames from the ring as fast as its socket takes them
 * (a write that fills the socket waits for its drain), so a client that keeps up holds nothing.
 * One whose socket stays full while more than `maxPendingBytes` of new frames are published, or
 * that falls behind the frames the ring keeps, is disconnected, with this comment as its last line,
 * instead of being buffered without bound or starved silently (Marathon PR #6657's proposal).
 */
export function slowConsumerVerdict(
  pendingBytes: number,
  maxPendingBytes: number,
  fellOutOfRing = false,
): string | undefined {
  if (fellOutOfRing)
    return "disconnected: slow consumer: this client fell behind the events kept here; reconnect (events since were missed; reload state from /v2/apps)";
  if (pendingBytes <= maxPendingBytes) return undefined;
  return `disconnected: slow consumer: ${pendingBytes} bytes of events published while this client took none, above the bound of ${maxPendingBytes}; reconnect with Last-Event-ID to resume`;
}

/** True when the Accept header admits an event stream (absent, `text/event-stream`, `text/*` or `*\/*`). */
export function acceptsEventStream(accept: string | undefined): boolean {
  if (accept === undefined || accept.trim() === "") return true;
  return accept
    .split(",")
    .map((p) => p.split(";")[0]?.trim().toLowerCase())
    .some((t) => t === "text/event-stream" || t === "text/*" || t === "*/*");
}
