/**
 * A framework of the Drover master in a few lines: subscribe, receive offers, launch tasks,
 * receive status updates (acknowledged automatically after the handler), and keep going
 * across master failovers (the subscription follows the new leader with the same framework id).
 */
import { errorMessage, LeaderClient, leaderHint, STREAM_ID_METADATA_KEY, sleep } from "@drover/common";
import type { TaskState } from "@drover/core";
import {
  type FrameworkEvent,
  fromWireHealth,
  fromWireReadiness,
  fromWireResources,
  fromWireState,
  MasterClient,
  type Task,
  type TaskInfo,
  toWireResources,
  toWireRun,
} from "@drover/proto";
import type {
  FrameworkHandlers,
  FrameworkOffer,
  FrameworkOptions,
  FrameworkTask,
  TaskSpec,
  TaskUpdate,
} from "./types.js";

/** Tasks per ListTasks page the SDK asks for. */
const TASK_PAGE = 5000;

export class Framework {
  private readonly masters: LeaderClient<MasterClient>;
  private id: string | undefined;
  private streamId = "";
  private stopped = false;
  private cancel: (() => void) | undefined;
  private readonly offers = new Map<string, FrameworkOffer>();
  private readonly acks: AckBatcher;

  constructor(
    private readonly options: FrameworkOptions,
    private readonly handlers: FrameworkHandlers,
  ) {
    this.masters = new LeaderClient(MasterClient, options.masters);
    this.id = options.frameworkId;
    this.acks = new AckBatcher((frameworkId, acks) =>
      this.masters
        .call(
          (c) => c.acknowledge.bind(c),
          { frameworkId, taskId: "", uuid: "", acks },
          // Short: an acknowledgement that does not arrive is harmless (the master sends the
          // update again, later each time), and long retries pile up during a master failover.
          2000,
          this.streamHeaders(),
        )
        .then(() => undefined),
    );
  }

  get frameworkId(): string | undefined {
    return this.id;
  }

  /** Subscribes and handles events until stop(); reconnects to the leader whenever the stream drops. */
  async run(): Promise<void> {
    while (!this.stopped) {
      const err = await this.subscribeOnce();
      if (this.stopped) break;
      this.offers.clear();
      this.handlers.disconnected?.(errorMessage(err));
      const hint = leaderHint(err);
      if (hint) this.masters.follow(hint);
      else this.masters.rotate();
      await sleep(hint ? 100 : 500);
    }
  }

  stop(): void {
    this.stopped = true;
    this.acks.stop();
    this.cancel?.();
    this.masters.close();
  }

  /** Launches tasks on the agent of `offer`; the offer's unused resources return to the master. */
  async launch(offer: FrameworkOffer, tasks: TaskSpec[], refuseSeconds = 0): Promise<string[]> {
    const frameworkId = this.requireId();
    const infos: TaskInfo[] = tasks.map((t) => ({
      taskId: t.taskId,
      name: t.name ?? t.taskId,
      agentId: offer.agentId,
      frameworkId,
      appId: t.appId ?? "",
      container: { image: t.image, cmd: t.cmd ?? "", args: [...(t.args ?? [])] },
      resources: toWireResources({
        cpus: t.cpus,
        mem: t.mem,
        disk: t.disk ?? 0,
        ports: (t.ports ?? []).map((p) => ({ begin: p, end: p })),
      }),
      env: t.env ?? {},
      labels: t.labels ?? {},
      run: t.run ? toWireRun(t.run) : undefined,
    }));
    this.offers.delete(offer.offerId);
    const res = await this.masters.call(
      (c) => c.accept.bind(c),
      {
        frameworkId,
        offerIds: [offer.offerId],
        operations: [{ operation: { $case: "launch", value: { tasks: infos } } }],
        filters: { refuseSeconds },
      },
      15_000,
      this.streamHeaders(),
    );
    return res.launchedTaskIds;
  }

  async decline(offerIds: string[], refuseSeconds = 5): Promise<void> {
    for (const id of offerIds) this.offers.delete(id);
    await this.masters.call(
      (c) => c.decline.bind(c),
      { frameworkId: this.requireId(), offerIds, filters: { refuseSeconds } },
      15_000,
      this.streamHeaders(),
    );
  }

  async revive(): Promise<void> {
    await this.masters.call(
      (c) => c.revive.bind(c),
      { frameworkId: this.requireId() },
      15_000,
      this.streamHeaders(),
    );
  }

  async suppress(): Promise<void> {
    await this.masters.call(
      (c) => c.suppress.bind(c),
      { frameworkId: this.requireId() },
      15_000,
      this.streamHeaders(),
    );
  }

  /**
   * Kills a task: SIGTERM, then SIGKILL after `gracePeriodSeconds` (absent: the task's own kill
   * grace, else the agent's default of 5 s). A task whose agent is unreachable is TASK_GONE at once.
   */
  async kill(taskId: string, gracePeriodSeconds?: number): Promise<void> {
    await this.masters.call(
      (c) => c.kill.bind(c),
      {
        frameworkId: this.requireId(),
        taskId,
        ...(gracePeriodSeconds !== undefined ? { gracePeriodSeconds } : {}),
      },
      15_000,
      this.streamHeaders(),
    );
  }

  /**
   * Asks for the latest status of these tasks (all of the framework's when empty). The statuses
   * are returned and also arrive as updates; a task the master does not know is TASK_GONE.
   */
  async reconcile(taskIds: string[] = []): Promise<{ taskId: string; state: TaskState | undefined }[]> {
    const res = await this.masters.call(
      (c) => c.reconcile.bind(c),
      { frameworkId: this.requireId(), taskIds },
      15_000,
      this.streamHeaders(),
    );
    return res.statuses.map((s) => ({ taskId: s.taskId, state: fromWireState(s.state) }));
  }

  /** This framework's tasks as the master knows them (active ones unless includeTerminal). */
  async listTasks(opts: { appId?: string; includeTerminal?: boolean } = {}): Promise<FrameworkTask[]> {
    const tasks = await this.listWireTasks(opts);
    return tasks.flatMap((t) => {
      const state = t.status ? fromWireState(t.status.state) : undefined;
      if (!t.info || !state) return [];
      return [
        {
          taskId: t.info.taskId,
          appId: t.info.appId,
          agentId: t.info.agentId,
          state,
          message: t.status?.message ?? "",
          createdAtMs: t.createdAtMs,
          updatedAtMs: t.updatedAtMs,
          labels: { ...t.info.labels },
          ports: (t.info.resources?.ports ?? []).flatMap((r) =>
            Array.from({ length: Math.max(0, r.end - r.begin + 1) }, (_, i) => r.begin + i),
          ),
          ...(t.info.run?.appVersion ? { appVersion: t.info.run.appVersion } : {}),
          ...(t.status?.health ? { health: fromWireHealth(t.status.health) } : {}),
          ...(t.status?.readiness.length ? { readiness: fromWireReadiness(t.status.readiness) } : {}),
          ...(t.status?.ipAddresses.length ? { ipAddresses: [...t.status.ipAddresses] } : {}),
        },
      ];
    });
  }

  /**
   * The wire form of this framework's tasks, for callers that pass them on (operator APIs): read
   * a page at a time (any number of tasks; one answer of all of them can exceed the message limit).
   */
  async listWireTasks(opts: { appId?: string; includeTerminal?: boolean } = {}): Promise<Task[]> {
    const out: Task[] = [];
    let pageToken = "";
    do {
      const res = await this.masters.call((c) => c.listTasks.bind(c), {
        frameworkId: this.requireId(),
        appId: opts.appId ?? "",
        includeTerminal: opts.includeTerminal ?? false,
        pageSize: TASK_PAGE,
        pageToken,
      });
      for (const t of res.tasks) out.push(t);
      pageToken = res.nextPageToken;
    } while (pageToken !== "");
    return out;
  }

  /** One page of this framework's tasks (a caller that pages itself, e.g. an operator API). */
  async listWireTaskPage(opts: {
    appId?: string;
    includeTerminal?: boolean;
    pageSize: number;
    pageToken: string;
  }): Promise<{ tasks: Task[]; nextPageToken: string }> {
    const res = await this.masters.call((c) => c.listTasks.bind(c), {
      frameworkId: this.requireId(),
      appId: opts.appId ?? "",
      includeTerminal: opts.includeTerminal ?? false,
      pageSize: opts.pageSize,
      pageToken: opts.pageToken,
    });
    return { tasks: res.tasks, nextPageToken: res.nextPageToken };
  }

  /** The master address in use (the leader, once found). */
  get master(): string {
    return this.masters.address;
  }

  /** Offers received and not yet launched on, declined or rescinded. */
  outstandingOffers(): FrameworkOffer[] {
    return [...this.offers.values()];
  }

  /** The metadata that proves a call comes from this framework's subscription. */
  private streamHeaders(): Record<string, string> {
    return { [STREAM_ID_METADATA_KEY]: this.streamId };
  }

  private requireId(): string {
    if (!this.id) throw new Error("the framework is not subscribed yet");
    return this.id;
  }

  private subscribeOnce(): Promise<unknown> {
    return new Promise((resolve) => {
      const stream = this.masters.client().subscribe({
        frameworkId: this.id ?? "",
        name: this.options.name,
        role: this.options.role ?? "*",
        failoverTimeoutSeconds: this.options.failoverTimeoutSeconds ?? 60,
      });
      let done = false;
      let last = Date.now();
      const watchdog = setInterval(() => {
        if (Date.now() - last > 15_000) finish(new Error("no event from the master for 15 s"));
      }, 1000);
      const finish = (err: unknown) => {
        if (done) return;
        done = true;
        clearInterval(watchdog);
        stream.cancel();
        resolve(err);
      };
      this.cancel = () => finish(new Error("stopped"));
      // Events are handled one at a time, in order.
      let chain: Promise<void> = Promise.resolve();
      stream.on("data", (ev: FrameworkEvent) => {
        last = Date.now();
        chain = chain
          .then(() => this.handle(ev))
          .catch((err: unknown) => {
            process.emitWarning(`framework handler failed: ${errorMessage(err)}`);
          });
      });
      stream.on("error", finish);
      stream.on("end", () => finish(new Error("stream ended")));
    });
  }

  private async handle(ev: FrameworkEvent): Promise<void> {
    const e = ev.event;
    if (!e) return;
    switch (e.$case) {
      case "subscribed":
        this.id = e.value.frameworkId;
        this.streamId = e.value.streamId;
        await this.handlers.subscribed?.(e.value.frameworkId);
        return;
      case "offers": {
        const offers = e.value.offers.map((o) => ({
          offerId: o.offerId,
          agentId: o.agentId,
          hostname: o.hostname,
          resources: fromWireResources(o.resources),
          attributes: Object.fromEntries(o.attributes.map((a) => [a.key, a.value])),
        }));
        for (const o of offers) this.offers.set(o.offerId, o);
        if (this.handlers.offers) await this.handlers.offers(offers);
        else await this.decline(offers.map((o) => o.offerId));
        return;
      }
      case "rescind":
        this.offers.delete(e.value.offerId);
        await this.handlers.rescind?.(e.value.offerId);
        return;
      case "update": {
        const s = e.value.status;
        const state = s ? fromWireState(s.state) : undefined;
        if (!s || !state) return;
        const update: TaskUpdate = {
          taskId: s.taskId,
          agentId: s.agentId,
          appId: e.value.appId,
          uuid: s.uuid,
          state,
          message: s.message,
          ...(s.exitCode !== undefined ? { exitCode: s.exitCode } : {}),
          timestampMs: s.timestampMs,
        };
        if (s.health) update.health = fromWireHealth(s.health);
        if (s.reason) update.reason = s.reason;
        if (s.readiness.length) update.readiness = fromWireReadiness(s.readiness);
        if (s.ipAddresses.length) update.ipAddresses = [...s.ipAddresses];
        await this.handlers.update?.(update);
        // Acknowledged once handled, in batches and off the event path: at scale one round trip
        // per update, awaited in order, holds every later event (offers expire in the queue).
        if (this.id && s.uuid) this.acks.add(this.id, s.taskId, s.uuid);
        return;
      }
      case "heartbeat":
      case "error":
        return;
    }
  }
}

/** Acknowledgements per call, and the wait that lets a burst of updates share one call. */
const ACK_BATCH = 2000;
const ACK_DELAY_MS = 20;

/**
 * Collects acknowledgements and sends them in batches, one call at a time: the next batch
 * waits for the answer to the previous one. A batch that fails is dropped; the master sends
 * those updates again and they are acknowledged then.
 */
export class AckBatcher {
  private pending: { frameworkId: string; taskId: string; uuid: string }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sending = false;
  private stopped = false;

  constructor(
    private readonly send: (frameworkId: string, acks: { taskId: string; uuid: string }[]) => Promise<void>,
    private readonly delayMs = ACK_DELAY_MS,
  ) {}

  add(frameworkId: string, taskId: string, uuid: string): void {
    if (this.stopped) return;
    this.pending.push({ frameworkId, taskId, uuid });
    if (this.pending.length >= ACK_BATCH) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.delayMs);
  }

  stop(): void {
    this.stopped = true;
    this.pending = [];
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Sends what is pending (resolves when nothing is left or the batcher stopped). */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.pending.length > 0 && !this.stopped) {
        const first = this.pending[0];
        if (!first) break;
        // One framework id per call (it changes only when the framework is re-registered).
        let n = 0;
        while (n < this.pending.length && n < ACK_BATCH && this.pending[n]?.frameworkId === first.frameworkId)
          n++;
        const batch = this.pending.splice(0, n);
        await this.send(
          first.frameworkId,
          batch.map(({ taskId, uuid }) => ({ taskId, uuid })),
        ).catch(() => undefined);
      }
    } finally {
      this.sending = false;
    }
  }
}
