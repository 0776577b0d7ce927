/**
 * Connections that record what the master sends: `RecordingAgentConn` has the shape of the
 * master's AgentConn and `RecordingFrameworkConn` of its FrameworkConn (services/master leader.ts:
 * `send(msg)`, `close(reason)`). Tests read what was sent, or wait for a message without sleeping:
 *
 *   const conn = new RecordingAgentConn();
 *   leader.agentConnected(conn, anAgent().toWire());
 *   const launch = await conn.waitFor((c) => c.command?.$case === "launch");
 */
import type {
  AgentCommand,
  AgentRegistered,
  ErrorEvent,
  FrameworkEvent,
  KillTask,
  Offer,
  Subscribed,
  TaskInfo,
  UpdateEvent,
} from "@drover/proto";

export interface WaitOptions {
  /** Only messages recorded at or after this index count (see mark()); default 0: all of them. */
  since?: number;
  /** Rejects after this many real milliseconds (default: waits as long as the test runs). */
  timeoutMs?: number;
}

interface Waiter<T> {
  pred: (msg: T) => boolean;
  since: number;
  resolve: (msg: T) => void;
  reject: (err: Error) => void;
}

/** Everything `send` was given, in order, and how the connection was closed. */
export class Recording<T> {
  readonly sent: T[] = [];
  /** Messages sent after close() (a real stream would have dropped or refused them). */
  readonly sentAfterClose: T[] = [];
  private closeReason: string | undefined;
  private closeCount = 0;
  private waiters: Waiter<T>[] = [];
  private sendError: Error | undefined;

  send(msg: T): void {
    if (this.sendError) throw this.sendError;
    if (this.closeReason !== undefined) {
      this.sentAfterClose.push(msg);
      return;
    }
    this.sent.push(msg);
    const index = this.sent.length - 1;
    const ready = this.waiters.filter((w) => index >= w.since && w.pred(msg));
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve(msg);
  }

  close(reason: string): void {
    this.closeCount += 1;
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(new Error(`connection closed (${reason}) before the awaited message`));
  }

  /** The reason given to close(), or undefined while open. */
  closedWith(): string | undefined {
    return this.closeReason;
  }

  get closed(): boolean {
    return this.closeReason !== undefined;
  }

  /** How many times close() was called (more than once is usually a bug of the caller). */
  get closeCalls(): number {
    return this.closeCount;
  }

  /** From now on send() throws `err` (a broken stream), until healSends(). */
  failSends(err: Error = new Error("stream broken")): void {
    this.sendError = err;
  }

  healSends(): void {
    this.sendError = undefined;
  }

  /** The index the next message will have: pass it as `since` to wait only for newer messages. */
  mark(): number {
    return this.sent.length;
  }

  /** Messages recorded at or after `since` that satisfy `pred`. */
  where(pred: (msg: T) => boolean, since = 0): T[] {
    return this.sent.slice(since).filter(pred);
  }

  /** Forgets the recorded messages (waiters stay). */
  clear(): void {
    this.sent.length = 0;
    this.sentAfterClose.length = 0;
  }

  /**
   * Resolves with the first message (recorded at or after `since`) satisfying `pred`, at once if
   * one was already sent; rejects if the connection closes first, or after `timeoutMs`.
   */
  waitFor(pred: (msg: T) => boolean, options: WaitOptions = {}): Promise<T> {
    const since = options.since ?? 0;
    const found = this.sent.slice(since).find(pred);
    if (found !== undefined) return Promise.resolve(found);
    if (this.closeReason !== undefined)
      return Promise.reject(new Error(`connection closed (${this.closeReason}) before the awaited message`));
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const w: Waiter<T> = {
        pred,
        since,
        resolve: (m) => {
          if (timer) clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          if (timer) clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.push(w);
      if (options.timeoutMs !== undefined) {
        const ms = options.timeoutMs;
        timer = setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`no matching message within ${ms} ms (${this.sent.length} recorded)`));
        }, ms);
      }
    });
  }

  /** Resolves once `count` messages satisfying `pred` have been recorded (since `since`); with them. */
  async waitForCount(count: number, pred: (msg: T) => boolean, options: WaitOptions = {}): Promise<T[]> {
    const since = options.since ?? 0;
    for (;;) {
      const got = this.where(pred, since);
      if (got.length >= count) return got.slice(0, count);
      await this.waitFor(pred, { ...options, since: this.sent.length });
    }
  }
}

type Cmd<C extends NonNullable<AgentCommand["command"]>["$case"]> = Extract<
  NonNullable<AgentCommand["command"]>,
  { $case: C }
>["value"];

const isCmd =
  <C extends NonNullable<AgentCommand["command"]>["$case"]>(c: C) =>
  (m: AgentCommand): boolean =>
    m.command?.$case === c;

/** An AgentConn (services/master) that records the commands the master sends to an agent. */
export class RecordingAgentConn extends Recording<AgentCommand> {
  constructor(readonly agentId = "a1") {
    super();
  }

  private values<C extends NonNullable<AgentCommand["command"]>["$case"]>(c: C): Cmd<C>[] {
    return this.sent.filter(isCmd(c)).map((m) => m.command?.value as Cmd<C>);
  }

  /** The `registered` answers. */
  registrations(): AgentRegistered[] {
    return this.values("registered");
  }

  /** The tasks the master asked the agent to launch, in order. */
  launches(): TaskInfo[] {
    return this.values("launch").flatMap((l) => (l.task ? [l.task] : []));
  }

  /** The kills the master sent, in order. */
  kills(): KillTask[] {
    return this.values("kill");
  }

  killedTaskIds(): string[] {
    return this.kills().map((k) => k.taskId);
  }

  /** The next launch (of `taskId` if given). */
  async waitForLaunch(taskId?: string, options: WaitOptions = {}): Promise<TaskInfo> {
    const m = await this.waitFor(
      (c) =>
        c.command?.$case === "launch" && (taskId === undefined || c.command.value.task?.taskId === taskId),
      options,
    );
    return (m.command?.value as Cmd<"launch"> | undefined)?.task as TaskInfo;
  }

  /** The next kill (of `taskId` if given). */
  async waitForKill(taskId?: string, options: WaitOptions = {}): Promise<KillTask> {
    const m = await this.waitFor(
      (c) => c.command?.$case === "kill" && (taskId === undefined || c.command.value.taskId === taskId),
      options,
    );
    return m.command?.value as KillTask;
  }
}

type Ev<C extends NonNullable<FrameworkEvent["event"]>["$case"]> = Extract<
  NonNullable<FrameworkEvent["event"]>,
  { $case: C }
>["value"];

const isEv =
  <C extends NonNullable<FrameworkEvent["event"]>["$case"]>(c: C) =>
  (m: FrameworkEvent): boolean =>
    m.event?.$case === c;

/** A FrameworkConn (services/master) that records the events the master sends to a framework. */
export class RecordingFrameworkConn extends Recording<FrameworkEvent> {
  constructor(readonly frameworkId = "fw-1") {
    super();
  }

  private values<C extends NonNullable<FrameworkEvent["event"]>["$case"]>(c: C): Ev<C>[] {
    return this.sent.filter(isEv(c)).map((m) => m.event?.value as Ev<C>);
  }

  /** The `subscribed` event (the first), if sent. */
  subscribed(): Subscribed | undefined {
    return this.values("subscribed")[0];
  }

  /** Every offer sent, across offer events, in order. */
  offers(): Offer[] {
    return this.values("offers").flatMap((e) => e.offers);
  }

  /** The offers sent and not rescinded since. */
  outstandingOffers(): Offer[] {
    const rescinded = new Set(this.rescinds());
    return this.offers().filter((o) => !rescinded.has(o.offerId));
  }

  /** Ids of the rescinded offers, in order. */
  rescinds(): string[] {
    return this.values("rescind").map((r) => r.offerId);
  }

  /** Status updates, in order. */
  updates(): UpdateEvent[] {
    return this.values("update");
  }

  /** Updates of one task, in order. */
  updatesOf(taskId: string): UpdateEvent[] {
    return this.updates().filter((u) => u.status?.taskId === taskId);
  }

  errors(): ErrorEvent[] {
    return this.values("error");
  }

  heartbeats(): number {
    return this.values("heartbeat").length;
  }

  /** The next offers event (recorded at or after `since`): its offers. */
  async waitForOffers(options: WaitOptions = {}): Promise<Offer[]> {
    const m = await this.waitFor(isEv("offers"), options);
    return (m.event?.value as Ev<"offers"> | undefined)?.offers ?? [];
  }

  /** The next update matching `pred` (default: any). */
  async waitForUpdate(
    pred: (u: UpdateEvent) => boolean = () => true,
    options: WaitOptions = {},
  ): Promise<UpdateEvent> {
    const m = await this.waitFor((e) => e.event?.$case === "update" && pred(e.event.value), options);
    return m.event?.value as UpdateEvent;
  }
}
