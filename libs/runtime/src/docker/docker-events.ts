/**
 * A reconnecting subscription to Docker's event stream (GET /events). The stream is newline-
 * delimited JSON; chunks may split or join lines, and nothing in it is trusted before zod has
 * validated it. When the stream ends or fails, it reconnects with backoff and `since` = the last
 * event's time, so Docker replays what happened in between (duplicates are possible: consumers
 * must be idempotent).
 */
import type Dockerode from "dockerode";
import { z } from "zod";
import type { ExecutorLogger } from "../executor.js";

/** Splits a text stream into JSON values, one per line; malformed or oversized lines are dropped. */
export class JsonLineDecoder {
  private buf = "";
  /** Lines dropped because they were not JSON or exceeded maxLineChars. */
  dropped = 0;

  constructor(private readonly maxLineChars = 1 << 20) {}

  push(chunk: string): unknown[] {
    this.buf += chunk;
    const out: unknown[] = [];
    let nl = this.buf.indexOf("\n");
    while (nl >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line !== "") {
        try {
          out.push(JSON.parse(line));
        } catch {
          this.dropped++;
        }
      }
      nl = this.buf.indexOf("\n");
    }
    if (this.buf.length > this.maxLineChars) {
      this.buf = "";
      this.dropped++;
    }
    return out;
  }
}

const dockerEventSchema = z.object({
  Type: z.string().optional(),
  Action: z.string(),
  Actor: z.object({
    ID: z.string().min(1),
    Attributes: z.record(z.string(), z.string()).optional(),
  }),
  time: z.number().optional(),
});

export interface DockerEvent {
  type: string | undefined;
  action: string;
  actorId: string;
  attributes: Record<string, string>;
  /** Seconds since the epoch, as Docker reports it. */
  time: number | undefined;
}

/** A Docker event, or undefined when the value does not have an event's shape. */
export function parseDockerEvent(value: unknown): DockerEvent | undefined {
  const r = dockerEventSchema.safeParse(value);
  if (!r.success) return undefined;
  return {
    type: r.data.Type,
    action: r.data.Action,
    actorId: r.data.Actor.ID,
    attributes: r.data.Actor.Attributes ?? {},
    time: r.data.time,
  };
}

export interface DockerEventSubscriptionOptions {
  docker: Dockerode;
  filters: Record<string, string[]>;
  onEvent: (e: DockerEvent) => void;
  /** After every successful (re)connection: a chance to re-check what may have been missed. */
  onConnected?: () => void;
  logger: ExecutorLogger;
  /** Upper bound of the reconnect backoff (default 5000 ms). */
  maxRetryDelayMs?: number;
}

export class DockerEventSubscription {
  /** Settles after the first connection attempt, whether it succeeded or not; never rejects. */
  readonly ready: Promise<void>;
  private readonly resolveReady: () => void;
  private stream: NodeJS.ReadableStream | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private attempts = 0;
  private sinceSec: number | undefined;

  constructor(private readonly opts: DockerEventSubscriptionOptions) {
    let resolve: () => void = () => {};
    this.ready = new Promise<void>((r) => {
      resolve = r;
    });
    this.resolveReady = resolve;
  }

  start(): void {
    this.connect();
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.stream) destroyStream(this.stream);
    this.stream = undefined;
    this.resolveReady();
  }

  private connect(): void {
    if (this.closed) return;
    this.retryTimer = undefined;
    const connectedAtSec = Math.floor(Date.now() / 1000) - 1;
    const options: Dockerode.GetEventsOptions = { filters: this.opts.filters };
    if (this.sinceSec !== undefined) options.since = this.sinceSec;
    this.opts.docker.getEvents(options).then(
      (stream) => this.attach(stream, connectedAtSec),
      (err: unknown) => {
        this.opts.logger.warn("docker event stream: connect failed", { err: String(err) });
        this.resolveReady();
        this.scheduleReconnect();
      },
    );
  }

  private attach(stream: NodeJS.ReadableStream, connectedAtSec: number): void {
    if (this.closed) {
      destroyStream(stream);
      return;
    }
    this.stream = stream;
    this.attempts = 0;
    // Events that happen while disconnected are replayed from here on the next connection.
    this.sinceSec ??= connectedAtSec;
    const decoder = new JsonLineDecoder();
    let ended = false;
    const onEnd = () => {
      if (ended) return;
      ended = true;
      if (this.stream === stream) this.stream = undefined;
      if (decoder.dropped > 0) {
        this.opts.logger.warn("docker event stream: dropped malformed lines", { dropped: decoder.dropped });
      }
      this.scheduleReconnect();
    };
    stream.setEncoding("utf8");
    stream.on("data", (chunk: unknown) => {
      for (const value of decoder.push(String(chunk))) {
        const event = parseDockerEvent(value);
        if (event === undefined) continue;
        if (event.time !== undefined) this.sinceSec = event.time;
        try {
          this.opts.onEvent(event);
        } catch (err) {
          this.opts.logger.warn("docker event handler failed", { err: String(err) });
        }
      }
    });
    stream.on("end", onEnd);
    stream.on("close", onEnd);
    stream.on("error", (err: unknown) => {
      this.opts.logger.debug("docker event stream error", { err: String(err) });
      onEnd();
    });
    this.resolveReady();
    this.opts.onConnected?.();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    const max = this.opts.maxRetryDelayMs ?? 5000;
    const delay = Math.min(max, 100 * 2 ** Math.min(this.attempts, 10));
    this.attempts++;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}

export function destroyStream(stream: NodeJS.ReadableStream): void {
  if ("destroy" in stream && typeof stream.destroy === "function") stream.destroy();
}
