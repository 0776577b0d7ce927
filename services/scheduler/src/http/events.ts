/**
 * Marathon's `GET /v2/events` (Server-Sent Events) as a fastify plugin. Any scheduler replica serves
 * it, leader or follower: it only reads the committed event log on NATS.
 *
 * Pipeline: one ordered JetStream consumer per process (MarathonEventHub) reads the events stream
 * from its first message, maps each committed event once to Marathon events (core's
 * MarathonEventMapper: the context, e.g. a task's host, comes from earlier events), frames them and
 * keeps the recent frames in a ring; each client gets the frames after its cursor (Last-Event-ID)
 * from the ring, then live ones, filtered by `event_type`. Nothing is announced that NATS has not
 * got from the master's relay, which publishes only what etcd committed.
 *
 * Flow control: a client is written only while its socket takes data (then it waits for the
 * drain); one whose socket stays full while more than `maxBufferedBytes` of events are published,
 * or that falls out of the ring, is disconnected with a final comment saying so (it can resume with
 * Last-Event-ID); a comment heartbeat every `heartbeatMs` keeps proxies and idle timeouts from
 * closing a quiet stream.
 */
import { type Bus, type EventMessage, eventStreamBounds, followEventMessages } from "@drover/bus";
import { errorMessage, type Logger } from "@drover/common";
import { MarathonEventMapper } from "@drover/core";
import type { FastifyPluginAsync } from "fastify";
import {
  acceptsEventStream,
  type Cursor,
  EventsQuerySchema,
  type Frame,
  FrameRing,
  frameOf,
  LastEventIdSchema,
  slowConsumerVerdict,
  sseComment,
  sseFrame,
  wanted,
} from "./events-sse.js";

/** Where the committed log comes from: NATS (natsEventLog), or a fake in unit tests. */
export interface EventLogSource {
  /** The first and last stream sequence now. */
  bounds(): Promise<{ firstSeq: number; lastSeq: number }>;
  /** Calls `handler` with every message from `startSeq` on, in order; resolves to a stop function. */
  follow(startSeq: number, handler: (m: EventMessage) => void): Promise<() => Promise<void>>;
}

/** The events stream on NATS JetStream, read with an ordered consumer (libs/bus followEventMessages). */
export function natsEventLog(bus: Bus, log: Logger): EventLogSource {
  return {
    bounds: () => eventStreamBounds(bus),
    follow: async (startSeq, handler) => (await followEventMessages(bus, log, handler, { startSeq })).stop,
  };
}

export interface EventsRoutesOptions {
  /** The NATS connection whose events stream is served (or give `source`). */
  bus?: Bus;
  /** Where the log comes from instead of `bus` (tests). */
  source?: EventLogSource;
  log: Logger;
  /** Comment heartbeat period (default 15 000 ms). */
  heartbeatMs?: number;
  /** Bytes of events that may be published while a client's socket stays full before it is disconnected (default 8 MiB). */
  maxBufferedBytes?: number;
  /** Recent frames kept for resuming clients (default 10 000 frames, 32 MiB). */
  keepFrames?: number;
  keepBytes?: number;
  /** How long a disconnected slow consumer gets to take its last bytes before the socket is destroyed (default 10 000 ms). */
  closeGraceMs?: number;
  /** How long a request waits for the hub's first catch-up before 503 (default 30 000 ms). */
  readyTimeoutMs?: number;
}

type Subscriber = (frames: readonly Frame[]) => void;

/**
 * Follows the whole events stream once per process and fans the framed Marathon events out.
 * `ready` resolves when it has read every message that existed when it started.
 */
export class MarathonEventHub {
  private readonly mapper = new MarathonEventMapper();
  private ring: FrameRing | undefined;
  private readonly subscribers = new Set<Subscriber>();
  private stopFollowing: (() => Promise<void>) | undefined;
  private position: Cursor = { seq: 0, ord: Number.POSITIVE_INFINITY };
  private resolveReady: () => void = () => undefined;
  readonly ready: Promise<void> = new Promise((resolve) => {
    this.resolveReady = resolve;
  });

  constructor(
    private readonly source: EventLogSource,
    private readonly keep: { frames: number; bytes: number },
  ) {}

  /** Where the hub is: the last stream sequence it has read. */
  get seq(): number {
    return this.position.seq;
  }

  async start(): Promise<void> {
    const { firstSeq, lastSeq: caughtUpAt } = await this.source.bounds();
    const startSeq = Math.max(1, firstSeq);
    this.ring = new FrameRing(this.keep.frames, this.keep.bytes, startSeq);
    this.position = { seq: startSeq - 1, ord: Number.POSITIVE_INFINITY };
    if (caughtUpAt < startSeq) this.resolveReady();
    this.stopFollowing = await this.source.follow(startSeq, (m) => this.onMessage(m, caughtUpAt));
  }

  private onMessage(m: EventMessage, caughtUpAt: number): void {
    const placed = this.mapper.map(m.seq, m.events);
    this.position = { seq: m.seq, ord: Number.POSITIVE_INFINITY };
    if (placed.length > 0) {
      const frames = placed.map(frameOf);
      for (const f of frames) this.ring?.push(f);
      for (const s of this.subscribers) s(frames);
    }
    if (m.seq >= caughtUpAt) this.resolveReady();
  }

  /** Calls `s` with the new frames of each message from now on (a nudge: clients read the ring). */
  subscribe(s: Subscriber): () => void {
    this.subscribers.add(s);
    return () => this.subscribers.delete(s);
  }

  /** At most `limit` kept frames after `c`. */
  after(c: Cursor, limit: number): Frame[] {
    return this.ring?.after(c, limit) ?? [];
  }

  /** Whether frames after `c` are no longer kept. */
  missed(c: Cursor): boolean {
    return this.ring?.missed(c) ?? false;
  }

  /** Where a new client without Last-Event-ID starts: after everything read so far. */
  now(): Cursor {
    return this.position;
  }

  async stop(): Promise<void> {
    this.subscribers.clear();
    await this.stopFollowing?.();
  }
}

/**
 * The `/v2/events` routes. Register with `app.register(eventsRoutes({bus, log}))`; the hub starts
 * with the plugin and stops on the server's close.
 */
export function eventsRoutes(opts: EventsRoutesOptions): FastifyPluginAsync {
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const maxBufferedBytes = opts.maxBufferedBytes ?? 8 * 1024 * 1024;
  const closeGraceMs = opts.closeGraceMs ?? 10_000;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  return async (app) => {
    const source = opts.source ?? (opts.bus ? natsEventLog(opts.bus, opts.log) : undefined);
    if (!source) throw new Error("eventsRoutes needs a bus or a source");
    const hub = new MarathonEventHub(source, {
      frames: opts.keepFrames ?? 10_000,
      bytes: opts.keepBytes ?? 32 * 1024 * 1024,
    });
    await hub.start();
    const open = new Set<(why: string) => void>();
    app.addHook("onClose", async () => {
      for (const close of [...open]) close("server shutting down; reconnect to another replica");
      await hub.stop();
    });

    app.get("/v2/events", async (req, reply) => {
      const query = EventsQuerySchema.safeParse(req.query);
      if (!query.success)
        return reply.code(400).send({
          message: "Invalid event_type",
          details: query.error.issues.map((i) => ({ path: `/${i.path.join("/")}`, errors: [i.message] })),
        });
      const header = req.headers["last-event-id"];
      const lastId = header === undefined ? undefined : LastEventIdSchema.safeParse(header);
      if (lastId && !lastId.success)
        return reply
          .code(400)
          .send({ message: `Invalid Last-Event-ID: ${lastId.error.issues[0]?.message ?? "unreadable"}` });
      if (!acceptsEventStream(req.headers.accept))
        return reply.code(406).send({ message: "GET /v2/events answers text/event-stream only" });
      const ready = await Promise.race([
        hub.ready.then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), readyTimeoutMs).unref()),
      ]);
      if (!ready) return reply.code(503).send({ message: "the event log is still being read; try again" });

      const types = query.data.eventTypes;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache, no-transform",
        Connection: "keep-alive",
        "X-Accel-Buffering": "no",
      });
      req.raw.socket.setNoDelay(true);
      req.raw.socket.setKeepAlive(true, 30_000);
      res.flushHeaders();

      // The client's place in the log: every frame at or before it was written or filtered out.
      let cursor: Cursor = lastId?.data ?? hub.now();
      let closed = false;
      /** The socket is full: nothing more is written until it drains. */
      let full = false;
      /** Bytes of frames published while the socket was full (reset on drain). */
      let pending = 0;
      const finish = (why: string | undefined) => {
        if (closed) return;
        closed = true;
        unsubscribe();
        clearInterval(heartbeat);
        open.delete(finish);
        if (why === undefined) return;
        res.end(sseComment(why));
        // A client that takes nothing more must not hold the socket: destroyed after a grace.
        setTimeout(() => res.destroy(), closeGraceMs).unref();
      };
      const write = (text: string) => {
        if (!res.write(text) && !full) {
          full = true;
          res.once("drain", () => {
            full = false;
            pending = 0;
            pump();
          });
        }
      };
      /** Writes the frames after the cursor until the socket is full or none is left. */
      const pump = () => {
        while (!closed && !full) {
          const frames = hub.after(cursor, 256);
          if (frames.length === 0) return;
          for (const f of frames) {
            cursor = f.cursor;
            if (wanted(types, f.eventType)) write(f.text);
            if (full) break;
          }
        }
      };
      const slow = (why: string) => {
        opts.log.warn("events: slow consumer disconnected", { remote: req.ip, why });
        finish(why);
      };
      const unsubscribe = hub.subscribe((frames) => {
        if (closed) return;
        if (!full) return pump();
        for (const f of frames) pending += f.text.length;
        const verdict = slowConsumerVerdict(pending, maxBufferedBytes, hub.missed(cursor));
        if (verdict) slow(verdict);
      });
      const heartbeat = setInterval(() => {
        if (!full) write(sseComment("heartbeat"));
      }, heartbeatMs);
      open.add(finish);
      res.on("close", () => finish(undefined));
      res.on("error", (err) => {
        opts.log.debug("events: client socket error", { err: errorMessage(err) });
        finish(undefined);
      });

      if (wanted(types, "event_stream_attached"))
        write(
          sseFrame({
            eventType: "event_stream_attached",
            timestamp: new Date().toISOString(),
            remoteAddress: req.ip,
          }),
        );
      if (lastId && hub.missed(cursor))
        write(
          sseComment(
            `resume point ${header ?? ""} is older than the events kept here: some events after it were missed; reload state from /v2/apps`,
          ),
        );
      pump();
    });
  };
}
