/**
 * The agent registry: the session of each connected agent (its connection and when it was last
 * heard from) and, for each known agent without a session, since when it has been gone. Its
 * timer checks liveness every second with the pure agentLiveness: silent sessions are closed;
 * agents not heard from for the heartbeat timeout have their tasks marked TASK_UNREACHABLE (back
 * to RUNNING when the agent re-registers reporting them); agents gone for
 * `agentRemoveTimeoutSeconds` have their tasks marked TASK_LOST and are removed (AgentRemoved),
 * so a later failover never waits for them. When it marks an agent's tasks unreachable it records
 * since when the agent is gone (AgentUnreachable): a new leader counts the removal timeout from
 * there, not from its own start (a failover does not restart the clock of agents long gone).
 */
import { errorMessage } from "@drover/common";
import { type AgentRecord, agentLiveness, awaitingReregistration } from "@drover/core";
import type { AgentCommand } from "@drover/proto";
import type { MasterContext } from "./context.js";

export interface AgentConn {
  send(cmd: AgentCommand): void;
  close(reason: string): void;
}

interface Session {
  conn: AgentConn;
  lastSeenMs: number;
}

export interface AgentHooks {
  /** The agent's session ended or began anew: its outstanding offers must go. */
  offersVoid(agentId: string): void;
  /** The agent has not been heard from for `silentMs`: its tasks are unreachable. Resolves when they are marked. */
  unreachable(agentId: string, silentMs: number): Promise<void>;
  /** The agent has been gone too long: its tasks are lost. Resolves when they are marked. */
  lost(agentId: string, awayMs: number): Promise<void>;
}

export class AgentRegistry {
  private readonly sessions = new Map<string, Session>();
  private readonly goneSince = new Map<string, number>();
  /** Agents without a session: when they were last heard from, and when their tasks become unreachable. */
  private readonly away = new Map<string, { lastHeardMs: number; unreachableAtMs: number }>();
  /** Agents whose tasks are marked unreachable (not marked again until they come back). */
  private readonly unreachableMarked = new Set<string>();
  /** Agents whose tasks are marked lost (not marked again until they come back). */
  private readonly lostMarked = new Set<string>();
  private startedAtMs = 0;
  private timer: { cancel(): void } | undefined;
  private checking = false;

  constructor(
    private readonly ctx: MasterContext,
    private readonly hooks: AgentHooks,
  ) {}

  /**
   * Every known agent counts as gone from now until it re-registers; its tasks become unreachable
   * only if it is not back within the re-registration window (or the heartbeat timeout if longer).
   */
  start(): void {
    this.startedAtMs = this.ctx.clock.now();
    const wait = Math.max(this.heartbeatTimeoutMs(), this.ctx.config.agentReregisterTimeoutSeconds * 1000);
    const removeAfterMs = this.ctx.config.agentRemoveTimeoutSeconds * 1000;
    for (const [id, e] of this.ctx.state.agents)
      if (e.state) {
        // Gone since what an earlier leader recorded, but never removed before the re-registration
        // window of this start has passed (a live agent has that long to come back).
        const recorded = e.state.goneSinceMs;
        const since =
          recorded === undefined
            ? this.startedAtMs
            : Math.min(this.startedAtMs, Math.max(recorded, this.startedAtMs + wait - removeAfterMs));
        this.goneSince.set(id, since);
        this.away.set(id, { lastHeardMs: since, unreachableAtMs: this.startedAtMs + wait });
      }
    this.timer = this.ctx.clock.setInterval(() => void this.check(), 1000);
  }

  /** A session silent this long is closed and its agent's tasks are unreachable. */
  heartbeatTimeoutMs(): number {
    const c = this.ctx.config;
    return c.agentHeartbeatTimeoutSeconds !== undefined
      ? c.agentHeartbeatTimeoutSeconds * 1000
      : Math.max(5 * c.heartbeatIntervalMs, 10_000);
  }

  stop(reason: string): void {
    this.timer?.cancel();
    for (const s of this.sessions.values()) s.conn.close(reason);
    this.sessions.clear();
  }

  /** A session for `agentId` begins on `conn` (a previous one is closed). */
  attach(agentId: string, conn: AgentConn): void {
    const previous = this.sessions.get(agentId);
    if (previous && previous.conn !== conn) previous.conn.close("replaced by a new session");
    // Its resources may have changed (a resized VM, a restart): offers of the old ones are void.
    this.hooks.offersVoid(agentId);
    this.sessions.set(agentId, { conn, lastSeenMs: this.ctx.clock.now() });
    this.goneSince.delete(agentId);
    this.away.delete(agentId);
    this.unreachableMarked.delete(agentId);
    this.lostMarked.delete(agentId);
  }

  heartbeat(agentId: string, conn: AgentConn): void {
    const s = this.sessions.get(agentId);
    if (s && s.conn === conn) s.lastSeenMs = this.ctx.clock.now();
  }

  /** The session on `conn` ended; false if it was not the agent's current one. */
  detach(agentId: string, conn: AgentConn): boolean {
    const s = this.sessions.get(agentId);
    if (!s || s.conn !== conn) return false;
    this.sessions.delete(agentId);
    this.goneSince.set(agentId, this.ctx.clock.now());
    // A session that ended (an agent restarting, a dropped connection) has the rest of a heartbeat
    // timeout to come back before its tasks are unreachable; a silent one has had it already.
    this.away.set(agentId, {
      lastHeardMs: s.lastSeenMs,
      unreachableAtMs: s.lastSeenMs + this.heartbeatTimeoutMs(),
    });
    this.hooks.offersVoid(agentId);
    this.ctx.log.warn("agent disconnected", { agentId });
    return true;
  }

  send(agentId: string, cmd: AgentCommand): void {
    this.sessions.get(agentId)?.conn.send(cmd);
  }

  isConnected(agentId: string): boolean {
    return this.sessions.has(agentId);
  }

  lastSeen(agentId: string): number {
    return this.sessions.get(agentId)?.lastSeenMs ?? 0;
  }

  /** The registered records of the connected agents. */
  *connected(): Iterable<AgentRecord> {
    for (const id of this.sessions.keys()) {
      const a = this.ctx.state.agent(id);
      if (a) yield a;
    }
  }

  get connectedCount(): number {
    return this.sessions.size;
  }

  /** After a failover: no offers until every known agent is back or the timeout has passed. */
  awaitingReregistration(): boolean {
    let known = 0;
    let back = 0;
    for (const [id, e] of this.ctx.state.agents) {
      if (!e.state) continue;
      known += 1;
      if (this.sessions.has(id)) back += 1;
    }
    return awaitingReregistration(
      this.startedAtMs,
      this.ctx.clock.now(),
      this.ctx.config.agentReregisterTimeoutSeconds * 1000,
      known,
      back,
    );
  }

  /** One liveness round (the timer's; exposed for tests). Never overlaps itself. */
  async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      await this.checkOnce();
    } catch (err) {
      this.ctx.log.error("agent check failed", { err: errorMessage(err) });
    } finally {
      this.checking = false;
    }
  }

  /** Records since when `agentId` is gone (AgentUnreachable), unless it is back or already recorded. */
  private async recordGone(agentId: string, now: number): Promise<void> {
    const since = this.goneSince.get(agentId);
    const record = this.ctx.state.agent(agentId);
    if (since === undefined || !record || record.goneSinceMs === since) return;
    await this.ctx.state.commit(
      [{ kind: "agent", id: agentId, events: [{ type: "AgentUnreachable", goneSinceMs: since }] }],
      now,
      () => !this.sessions.has(agentId) && this.ctx.state.agent(agentId) !== undefined,
    );
  }

  private async checkOnce(): Promise<void> {
    const c = this.ctx.config;
    const now = this.ctx.clock.now();
    const heartbeatTimeoutMs = this.heartbeatTimeoutMs();
    const plan = agentLiveness({
      sessions: [...this.sessions].map(([agentId, s]) => ({ agentId, lastSeenMs: s.lastSeenMs })),
      gone: [...this.goneSince].map(([agentId, sinceMs]) => ({
        agentId,
        sinceMs,
        unreachableAtMs: this.away.get(agentId)?.unreachableAtMs ?? sinceMs + heartbeatTimeoutMs,
      })),
      nowMs: now,
      heartbeatTimeoutMs,
      removeAfterMs: c.agentRemoveTimeoutSeconds * 1000,
    });
    for (const agentId of plan.timedOut) {
      const s = this.sessions.get(agentId);
      if (!s) continue;
      s.conn.close("heartbeat timeout");
      this.detach(agentId, s.conn);
    }
    for (const agentId of plan.unreachable) {
      if (this.unreachableMarked.has(agentId) || this.sessions.has(agentId)) continue;
      const heard = this.away.get(agentId)?.lastHeardMs ?? now;
      await this.hooks.unreachable(agentId, now - heard);
      // Back meanwhile: its next absence is marked again.
      if (this.sessions.has(agentId)) continue;
      this.unreachableMarked.add(agentId);
      await this.recordGone(agentId, now);
    }
    for (const agentId of plan.remove) {
      if (this.lostMarked.has(agentId) || this.sessions.has(agentId)) continue;
      const since = this.goneSince.get(agentId);
      await this.hooks.lost(agentId, now - (since ?? now));
      if (!this.sessions.has(agentId)) this.lostMarked.add(agentId);
    }
    for (const agentId of plan.remove) {
      const since = this.goneSince.get(agentId);
      if (since === undefined || this.sessions.has(agentId)) continue;
      const removed = await this.ctx.state.commit(
        [
          {
            kind: "agent",
            id: agentId,
            events: [{ type: "AgentRemoved", reason: `gone for ${Math.round((now - since) / 1000)} s` }],
          },
        ],
        now,
        () => !this.sessions.has(agentId) && this.ctx.state.agent(agentId) !== undefined,
      );
      // A removed agent that comes back registers as new.
      if (this.goneSince.get(agentId) === since) {
        this.goneSince.delete(agentId);
        this.away.delete(agentId);
      }
      this.unreachableMarked.delete(agentId);
      this.lostMarked.delete(agentId);
      if (removed) this.ctx.log.warn("agent removed", { agentId, goneForMs: now - since });
    }
  }
}
