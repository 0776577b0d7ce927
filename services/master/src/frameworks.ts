/**
 * The framework registry: each subscribed framework's stream (and the stream id its calls must
 * carry), the frameworks gone and since when, and which ones suppress offers. Its timers send
 * heartbeats and, with the pure expiredFrameworks, end the frameworks gone for longer than
 * their failover timeout (their tasks are killed, then FrameworkRemoved).
 */
import { randomUUID } from "node:crypto";
import {
  errorMessage,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  quote,
  STREAM_ID_METADATA_KEY,
} from "@drover/common";
import { expiredFrameworks } from "@drover/core";
import type { FrameworkEvent } from "@drover/proto";
import type { MasterContext } from "./context.js";
import { parseRequest, SubscribeSchema } from "./requests.js";

export interface FrameworkConn {
  send(ev: FrameworkEvent): void;
  close(reason: string): void;
  /** The stream's buffer is full: the framework reads slower than it is written to (optional). */
  full?(): boolean;
  /** Calls `fn` once when the buffer has emptied (with `full`). */
  onDrain?(fn: () => void): void;
}

interface Session {
  conn: FrameworkConn;
  /** Handed to the framework in `subscribed`; its calls must carry it (drover-stream-id). */
  streamId: string;
  /**
   * Status updates held while the stream is full, the latest per task (sendUpdate): a framework
   * that reads slower than its tasks change costs one entry per task, not a queue of every update.
   */
  held: Map<string, FrameworkEvent>;
  waitingForDrain: boolean;
}

export interface FrameworkHooks {
  /** The framework's stream ended or it suppressed offers: its offers must go. */
  offersVoid(frameworkId: string): void;
  /** The framework is gone for good: kill its tasks (resolves when the kills are committed). */
  expired(frameworkId: string): Promise<void>;
  /** Something changed that the allocator should see. */
  changed(): void;
}

export class FrameworkRegistry {
  private readonly sessions = new Map<string, Session>();
  private readonly goneSince = new Map<string, number>();
  private readonly suppressed = new Set<string>();
  private readonly timers: { cancel(): void }[] = [];
  private checking = false;

  constructor(
    private readonly ctx: MasterContext,
    private readonly hooks: FrameworkHooks,
  ) {}

  start(): void {
    const now = this.ctx.clock.now();
    for (const [id, e] of this.ctx.state.frameworks) if (e.state) this.goneSince.set(id, now);
    this.timers.push(
      this.ctx.clock.setInterval(() => void this.check(), 1000),
      this.ctx.clock.setInterval(() => this.heartbeat(), this.ctx.config.heartbeatIntervalMs),
    );
  }

  stop(reason: string): void {
    for (const t of this.timers) t.cancel();
    for (const s of this.sessions.values()) s.conn.close(reason);
    this.sessions.clear();
  }

  /** Subscribes (or re-subscribes) a framework on `conn`; returns its id. */
  async subscribe(
    req: { frameworkId: string; name: string; role: string; failoverTimeoutSeconds: number },
    conn: FrameworkConn,
  ): Promise<string> {
    req = parseRequest(SubscribeSchema, req);
    const frameworkId = req.frameworkId || `fw-${randomUUID()}`;
    await this.ctx.state.commit(
      [
        {
          kind: "framework",
          id: frameworkId,
          events: [
            {
              type: "FrameworkSubscribed",
              name: req.name,
              role: req.role || "*",
              failoverTimeoutSeconds: req.failoverTimeoutSeconds,
            },
          ],
        },
      ],
      this.ctx.clock.now(),
    );
    const prev = this.sessions.get(frameworkId);
    if (prev && prev.conn !== conn) {
      prev.conn.close("framework re-subscribed on a new connection");
      this.hooks.offersVoid(frameworkId);
    }
    const streamId = randomUUID();
    this.sessions.set(frameworkId, { conn, streamId, held: new Map(), waitingForDrain: false });
    this.goneSince.delete(frameworkId);
    this.suppressed.delete(frameworkId);
    conn.send({
      event: {
        $case: "subscribed",
        value: { frameworkId, heartbeatIntervalMs: this.ctx.config.heartbeatIntervalMs, streamId },
      },
    });
    this.ctx.log.info("framework subscribed", { frameworkId, name: req.name });
    this.hooks.changed();
    return frameworkId;
  }

  disconnected(frameworkId: string, conn: FrameworkConn): void {
    const s = this.sessions.get(frameworkId);
    if (!s || s.conn !== conn) return;
    this.sessions.delete(frameworkId);
    this.goneSince.set(frameworkId, this.ctx.clock.now());
    this.hooks.offersVoid(frameworkId);
    this.ctx.log.warn("framework disconnected", { frameworkId });
    this.hooks.changed();
  }

  /**
   * A framework call is allowed only from the connection that holds the framework's
   * subscription: the caller proves it with the subscription's stream id. Unknown framework →
   * NOT_FOUND; known but not subscribed → FAILED_PRECONDITION; another caller → PERMISSION_DENIED.
   */
  authorize(frameworkId: string, streamId: string | undefined): void {
    this.requireSubscribed(frameworkId);
    if (!streamId || this.sessions.get(frameworkId)?.streamId !== streamId)
      throw new PermissionDeniedError(
        `framework ${frameworkId} is subscribed on another connection: the call's ${STREAM_ID_METADATA_KEY} is ${streamId ? "not the subscription's" : "missing"}`,
      );
  }

  requireSubscribed(frameworkId: string): void {
    if (frameworkId === "")
      throw new InvalidArgumentError([{ path: "frameworkId", message: "must not be empty" }]);
    if (this.sessions.has(frameworkId)) return;
    if (!this.ctx.state.framework(frameworkId)) throw new NotFoundError(`framework ${quote(frameworkId)}`);
    throw new FailedPreconditionError(`framework ${quote(frameworkId)} is not subscribed`);
  }

  send(frameworkId: string, ev: FrameworkEvent): void {
    this.sessions.get(frameworkId)?.conn.send(ev);
  }

  /**
   * Sends a status update of `taskId`; while the stream is full it is held instead, replacing the
   * task's update held before (the latest is what counts: an unacknowledged update is resent
   * anyway), and the held ones go out, in the order their tasks were first held, when it drains.
   */
  sendUpdate(frameworkId: string, taskId: string, ev: FrameworkEvent): void {
    const s = this.sessions.get(frameworkId);
    if (!s) return;
    if (s.held.size === 0 && s.conn.full?.() !== true) {
      s.conn.send(ev);
      return;
    }
    s.held.set(taskId, ev);
    this.whenDrained(s);
  }

  /** Updates held for a full stream (metrics, tests). */
  heldUpdates(frameworkId: string): number {
    return this.sessions.get(frameworkId)?.held.size ?? 0;
  }

  private whenDrained(s: Session): void {
    if (s.waitingForDrain || !s.conn.onDrain) return;
    s.waitingForDrain = true;
    s.conn.onDrain(() => {
      s.waitingForDrain = false;
      for (const [taskId, ev] of s.held) {
        if (s.conn.full?.() === true) break;
        s.held.delete(taskId);
        s.conn.send(ev);
      }
      if (s.held.size > 0) this.whenDrained(s);
    });
  }

  isConnected(frameworkId: string): boolean {
    return this.sessions.has(frameworkId);
  }

  connected(): Iterable<string> {
    return this.sessions.keys();
  }

  suppress(frameworkId: string): void {
    this.suppressed.add(frameworkId);
    this.hooks.offersVoid(frameworkId);
    this.hooks.changed();
  }

  revive(frameworkId: string): void {
    this.suppressed.delete(frameworkId);
    this.hooks.changed();
  }

  isSuppressed(frameworkId: string): boolean {
    return this.suppressed.has(frameworkId);
  }

  private heartbeat(): void {
    const timestampMs = this.ctx.clock.now();
    for (const s of this.sessions.values())
      s.conn.send({ event: { $case: "heartbeat", value: { timestampMs } } });
  }

  /** One failover-timeout round (the timer's; exposed for tests). Never overlaps itself. */
  async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const now = this.ctx.clock.now();
      const gone = [];
      for (const [frameworkId, sinceMs] of this.goneSince) {
        const fw = this.ctx.state.framework(frameworkId);
        if (!fw) this.goneSince.delete(frameworkId);
        else gone.push({ frameworkId, sinceMs, failoverTimeoutSeconds: fw.failoverTimeoutSeconds });
      }
      for (const frameworkId of expiredFrameworks(gone, now)) {
        const since = this.goneSince.get(frameworkId);
        this.ctx.log.warn("framework failover timeout: killing its tasks", { frameworkId });
        await this.hooks.expired(frameworkId);
        await this.ctx.state.commit(
          [
            {
              kind: "framework",
              id: frameworkId,
              events: [{ type: "FrameworkRemoved", reason: "failover timeout" }],
            },
          ],
          now,
          () => !this.sessions.has(frameworkId),
        );
        // Only once done: a failed commit is retried by the next check.
        if (this.goneSince.get(frameworkId) === since) this.goneSince.delete(frameworkId);
      }
    } catch (err) {
      this.ctx.log.error("framework check failed", { err: errorMessage(err) });
    } finally {
      this.checking = false;
    }
  }
}
