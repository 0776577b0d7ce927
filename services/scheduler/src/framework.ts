/**
 * The scheduler as a framework of the master: it holds the subscription stream (following
 * the master leader across failovers), keeps the view of its tasks, and turns offers into
 * launches with the pure core (reconcileApp + placeInstances). Crash-looping apps back off.
 */
import { randomUUID } from "node:crypto";
import { errorMessage, LeaderClient, type Logger, leaderHint, sleep } from "@drover/common";
import type { SchedulerConfig } from "@drover/config";
import {
  type AppRecord,
  appPortDemand,
  appResources,
  type BackoffPolicy,
  type BackoffState,
  initialBackoff,
  isActive,
  isTerminal,
  type OfferView,
  type PlacementResult,
  placeInstances,
  reconcileApp,
  recordFailure,
  recordHealthy,
  type TaskState,
  type UnplacedReason,
} from "@drover/core";
import {
  type FrameworkEvent,
  fromWireResources,
  fromWireState,
  type ListTasksRequest,
  type ListTasksResponse,
  MasterClient,
  type Offer,
  type TaskInfo,
} from "@drover/proto";
import { Metadata } from "@grpc/grpc-js";

export interface TaskEntry {
  taskId: string;
  appId: string;
  agentId: string;
  state: TaskState;
  createdAtMs: number;
  runningSinceMs?: number;
  killRequested: boolean;
}

export interface QueueEntry {
  appId: string;
  waiting: number;
  reasons: UnplacedReason[];
  sinceMs: number;
  offersSeen: number;
  backoffUntilMs: number;
}

export interface FrameworkDeps {
  config: SchedulerConfig;
  log: Logger;
  apps(): Map<string, AppRecord>;
  loadFrameworkId(): Promise<string | undefined>;
  saveFrameworkId(id: string): Promise<void>;
}

export class FrameworkDriver {
  readonly masters: LeaderClient<MasterClient>;
  readonly tasks = new Map<string, TaskEntry>();
  readonly backoff = new Map<string, BackoffState>();
  /** Why each app's waiting instances were not placed, from the last offers seen. */
  private readonly waiting = new Map<
    string,
    { reasons: UnplacedReason[]; sinceMs: number; offersSeen: number }
  >();
  frameworkId: string | undefined;
  private ready = false;
  private stopped = false;
  private cancelStream: (() => void) | undefined;
  private readonly policy: BackoffPolicy;
  private reviveTimer: NodeJS.Timeout | undefined;
  private reviveAtMs = Number.POSITIVE_INFINITY;

  constructor(private readonly deps: FrameworkDeps) {
    this.masters = new LeaderClient(MasterClient, deps.config.masters);
    this.policy = {
      initialMs: deps.config.backoffInitialMs,
      factor: 2,
      maxMs: deps.config.backoffMaxMs,
      resetAfterMs: 30_000,
    };
  }

  /** Loads the persisted framework id; call before serving requests. */
  async init(): Promise<void> {
    this.frameworkId = await this.deps.loadFrameworkId();
  }

  /** Runs the subscription until stop(); reconnects (following the leader) whenever it drops. */
  async run(): Promise<void> {
    while (!this.stopped) {
      const err = await this.subscribeOnce();
      if (this.stopped) break;
      this.ready = false;
      const hint = leaderHint(err);
      if (hint) this.masters.follow(hint);
      else this.masters.rotate();
      this.deps.log.info("framework subscription ended; reconnecting", {
        err: errorMessage(err),
        next: this.masters.address,
      });
      await sleep(hint ? 100 : 500);
    }
  }

  stop(): void {
    this.stopped = true;
    this.ready = false;
    this.cancelStream?.();
    if (this.reviveTimer) clearTimeout(this.reviveTimer);
    this.masters.close();
  }

  private subscribeOnce(): Promise<unknown> {
    return new Promise((resolve) => {
      const c = this.deps.config;
      const stream = this.masters.client().subscribe({
        frameworkId: this.frameworkId ?? "",
        name: c.frameworkName,
        role: c.role,
        failoverTimeoutSeconds: c.failoverTimeoutSeconds,
      });
      let done = false;
      const finish = (err: unknown) => {
        if (done) return;
        done = true;
        clearInterval(watchdog);
        stream.cancel();
        resolve(err);
      };
      let lastEvent = Date.now();
      const watchdog = setInterval(() => {
        if (Date.now() - lastEvent > 15_000) finish(new Error("no event from the master for 15 s"));
      }, 1000);
      this.cancelStream = () => finish(new Error("stopped"));
      // Events are handled one at a time, in order: the task view must not change under a
      // handler between its awaits (an offers event must see the launches of the previous one).
      let chain: Promise<void> = Promise.resolve();
      stream.on("data", (ev: FrameworkEvent) => {
        lastEvent = Date.now();
        chain = chain
          .then(() => this.onEvent(ev))
          .catch((err: unknown) =>
            this.deps.log.error("framework event handling failed", { err: errorMessage(err) }),
          );
      });
      stream.on("error", (err) => finish(err));
      stream.on("end", () => finish(new Error("stream ended")));
    });
  }

  private async onEvent(ev: FrameworkEvent): Promise<void> {
    const e = ev.event;
    if (!e) return;
    switch (e.$case) {
      case "subscribed":
        await this.onSubscribed(e.value.frameworkId);
        return;
      case "offers":
        await this.onOffers(e.value.offers);
        return;
      case "update": {
        const s = e.value.status;
        if (s)
          await this.onUpdate(
            s.taskId,
            s.agentId,
            fromWireState(s.state),
            s.uuid,
            e.value.appId,
            s.timestampMs,
          );
        return;
      }
      case "rescind":
      case "heartbeat":
        return;
      case "error":
        this.deps.log.error("master reported an error", { message: e.value.message });
        return;
    }
  }

  private async onSubscribed(frameworkId: string): Promise<void> {
    if (this.frameworkId !== frameworkId) {
      await this.deps.saveFrameworkId(frameworkId);
      this.frameworkId = frameworkId;
    }
    // Rebuild the task view from the master before launching anything (no duplicates after a failover).
    const res = await this.masters.unary<ListTasksRequest, ListTasksResponse>(
      (c, req, deadline, cb) => c.listTasks(req, new Metadata(), { deadline }, cb),
      { frameworkId, appId: "", includeTerminal: false },
    );
    const seen = new Set<string>();
    for (const t of res.tasks) {
      const id = t.info?.taskId;
      const state = t.status ? fromWireState(t.status.state) : undefined;
      if (!id || !state) continue;
      seen.add(id);
      const prev = this.tasks.get(id);
      this.tasks.set(id, {
        taskId: id,
        appId: t.info?.appId ?? "",
        agentId: t.info?.agentId ?? "",
        state,
        createdAtMs: t.createdAtMs,
        ...(state === "TASK_RUNNING" ? { runningSinceMs: prev?.runningSinceMs ?? t.updatedAtMs } : {}),
        killRequested: prev?.killRequested ?? state === "TASK_KILLING",
      });
    }
    for (const id of [...this.tasks.keys()]) if (!seen.has(id)) this.tasks.delete(id);
    this.ready = true;
    this.deps.log.info("framework subscribed", {
      frameworkId,
      tasks: this.tasks.size,
      master: this.masters.address,
    });
    await this.converge();
  }

  private async onUpdate(
    taskId: string,
    agentId: string,
    state: TaskState | undefined,
    uuid: string,
    appId: string,
    timestampMs: number,
  ): Promise<void> {
    if (!state || !this.frameworkId) return;
    const now = Date.now();
    const entry = this.tasks.get(taskId);
    if (isTerminal(state)) {
      if (entry) {
        this.tasks.delete(taskId);
        const failed = state !== "TASK_FINISHED" && state !== "TASK_GONE" && !entry.killRequested;
        if (failed) {
          this.backoff.set(
            entry.appId,
            recordFailure(this.backoff.get(entry.appId) ?? initialBackoff(), now, this.policy),
          );
          this.deps.log.warn("task failed", { taskId, state, appId: entry.appId });
        }
      }
    } else if (entry) {
      entry.state = state;
      if (state === "TASK_RUNNING" && entry.runningSinceMs === undefined)
        entry.runningSinceMs = timestampMs || now;
    } else if (appId) {
      this.tasks.set(taskId, { taskId, appId, agentId, state, createdAtMs: now, killRequested: false });
    }
    await this.masters
      .unary(
        (c, req, deadline, cb) => c.acknowledge(req, new Metadata(), { deadline }, cb),
        { frameworkId: this.frameworkId, taskId, uuid },
        5000,
      )
      .catch((err: unknown) => this.deps.log.debug("acknowledge failed", { err: errorMessage(err) }));
    await this.converge();
  }

  /** Kills surplus and orphaned tasks; revives offers when tasks are missing. */
  async converge(): Promise<void> {
    if (!this.ready || !this.frameworkId) return;
    const now = Date.now();
    const apps = this.deps.apps();
    let reviveAt = Number.POSITIVE_INFINITY;
    const kills: string[] = [];
    for (const t of this.tasks.values()) {
      if (!apps.has(t.appId) && isActive(t.state) && !t.killRequested) kills.push(t.taskId);
    }
    for (const [appId, app] of apps) {
      const plan = this.plan(appId, app, now);
      if (plan.launch > 0) reviveAt = now;
      else if (plan.waitingForBackoffUntilMs !== undefined)
        reviveAt = Math.min(reviveAt, plan.waitingForBackoffUntilMs);
      kills.push(...plan.kill);
    }
    for (const id of kills) {
      const t = this.tasks.get(id);
      if (!t || t.killRequested) continue;
      t.killRequested = true;
      await this.masters
        .unary(
          (c, req, deadline, cb) => c.kill(req, new Metadata(), { deadline }, cb),
          { frameworkId: this.frameworkId, taskId: id },
          5000,
        )
        .catch((err: unknown) => {
          t.killRequested = false;
          this.deps.log.warn("kill failed", { taskId: id, err: errorMessage(err) });
        });
    }
    if (reviveAt < Number.POSITIVE_INFINITY) this.scheduleRevive(reviveAt);
  }

  /** Revives offers at `atMs` (now, or when a backoff ends); an earlier request wins. */
  private scheduleRevive(atMs: number): void {
    const now = Date.now();
    if (this.reviveTimer && this.reviveAtMs <= atMs) return;
    if (this.reviveTimer) clearTimeout(this.reviveTimer);
    this.reviveAtMs = atMs;
    this.reviveTimer = setTimeout(
      () => {
        this.reviveTimer = undefined;
        this.reviveAtMs = Number.POSITIVE_INFINITY;
        if (!this.frameworkId || !this.ready) return;
        this.masters
          .unary(
            (c, req, deadline, cb) => c.revive(req, new Metadata(), { deadline }, cb),
            { frameworkId: this.frameworkId },
            5000,
          )
          .catch((err: unknown) => this.deps.log.debug("revive failed", { err: errorMessage(err) }));
      },
      Math.max(0, atMs - now),
    );
  }

  private plan(appId: string, app: AppRecord, now: number) {
    const tasks = [...this.tasks.values()].filter((t) => t.appId === appId);
    let b = this.backoff.get(appId) ?? initialBackoff();
    for (const t of tasks)
      if (t.runningSinceMs !== undefined) b = recordHealthy(b, t.runningSinceMs, now, this.policy);
    this.backoff.set(appId, b);
    return reconcileApp({
      instances: app.spec.instances,
      tasks: tasks
        .filter((t) => !t.killRequested)
        .map((t) => ({ taskId: t.taskId, state: t.state, agentId: t.agentId, createdAtMs: t.createdAtMs })),
      backoff: b,
      nowMs: now,
    });
  }

  private async onOffers(offers: Offer[]): Promise<void> {
    const frameworkId = this.frameworkId;
    if (!frameworkId) return;
    if (!this.ready) {
      await this.decline(
        offers.map((o) => o.offerId),
        1,
      );
      return;
    }
    const now = Date.now();
    const apps = this.deps.apps();
    const demands = [];
    for (const [appId, app] of apps) {
      const plan = this.plan(appId, app, now);
      if (plan.launch > 0)
        demands.push({
          appId,
          count: plan.launch,
          resources: appResources(app.spec),
          ...appPortDemand(app.spec),
        });
    }
    const views: OfferView[] = offers.map((o) => ({
      offerId: o.offerId,
      agentId: o.agentId,
      hostname: o.hostname,
      resources: fromWireResources(o.resources),
      attributes: Object.fromEntries(o.attributes.map((a) => [a.key, a.value])),
    }));
    const existing = new Map<string, Map<string, number>>();
    for (const t of this.tasks.values()) {
      if (!isActive(t.state)) continue;
      const m = existing.get(t.appId) ?? new Map<string, number>();
      m.set(t.agentId, (m.get(t.agentId) ?? 0) + 1);
      existing.set(t.appId, m);
    }
    const result = placeInstances(views, demands, existing);
    this.recordWaiting(demands, result, offers.length, now);
    const byOffer = new Map<string, TaskInfo[]>();
    for (const p of result.placements) {
      const app = apps.get(p.appId);
      if (!app) continue;
      const taskId = `${p.appId}.${randomUUID()}`;
      const list = byOffer.get(p.offerId) ?? [];
      list.push({
        taskId,
        name: p.appId,
        agentId: p.agentId,
        frameworkId,
        appId: p.appId,
        container: { image: app.spec.container.docker.image, cmd: app.spec.cmd ?? "" },
        resources: {
          cpus: app.spec.cpus,
          mem: app.spec.mem,
          disk: app.spec.disk,
          ports: p.ports.map((port) => ({ begin: port, end: port })),
        },
        env: { ...app.spec.env, DROVER_TASK_ID: taskId, DROVER_APP_ID: p.appId },
        labels: { ...app.spec.labels },
      });
      byOffer.set(p.offerId, list);
    }
    const unused = offers.map((o) => o.offerId).filter((id) => !byOffer.has(id));
    // Every planned task enters the view before the first accept is sent.
    for (const tasks of byOffer.values())
      for (const t of tasks)
        this.tasks.set(t.taskId, {
          taskId: t.taskId,
          appId: t.appId,
          agentId: t.agentId,
          state: "TASK_STAGING",
          createdAtMs: now,
          killRequested: false,
        });
    for (const [offerId, tasks] of byOffer) {
      try {
        await this.masters.unary(
          (c, req, deadline, cb) => c.accept(req, new Metadata(), { deadline }, cb),
          {
            frameworkId,
            offerIds: [offerId],
            operations: [{ operation: { $case: "launch" as const, value: { tasks } } }],
            filters: { refuseSeconds: 1 },
          },
          5000,
        );
        this.deps.log.info("launched", { tasks: tasks.map((t) => t.taskId), agentId: tasks[0]?.agentId });
      } catch (err) {
        // Ambiguous: the master may have committed the launch before the answer was lost (a retry then
        // finds the offer gone). Ask the master what it knows of these tasks instead of guessing.
        this.deps.log.warn("accept failed; reconciling its tasks", { offerId, err: errorMessage(err) });
        await this.forgetUnknown(tasks.map((t) => t.taskId));
      }
    }
    if (unused.length > 0) await this.decline(unused, demands.length > 0 ? 1 : 30);
  }

  /** Explicit reconciliation: tasks the master does not know (TASK_GONE) leave the view. */
  private async forgetUnknown(taskIds: string[]): Promise<void> {
    if (!this.frameworkId) return;
    try {
      const res = await this.masters.call(
        (c) => c.reconcile.bind(c),
        { frameworkId: this.frameworkId, taskIds },
        10_000,
      );
      for (const s of res.statuses) {
        const state = fromWireState(s.state);
        if (state === "TASK_GONE") this.tasks.delete(s.taskId);
      }
    } catch (err) {
      // Could not ask: drop them; if they do run, the next re-subscription finds them again.
      for (const id of taskIds) this.tasks.delete(id);
      this.deps.log.warn("reconcile failed", { err: errorMessage(err) });
    }
  }

  private async decline(offerIds: string[], refuseSeconds: number): Promise<void> {
    if (!this.frameworkId || offerIds.length === 0) return;
    await this.masters
      .unary(
        (c, req, deadline, cb) => c.decline(req, new Metadata(), { deadline }, cb),
        { frameworkId: this.frameworkId, offerIds, filters: { refuseSeconds } },
        5000,
      )
      .catch((err: unknown) => this.deps.log.debug("decline failed", { err: errorMessage(err) }));
  }

  /** Keeps, per app, why its waiting instances were not placed on the offers just seen. */
  private recordWaiting(
    demands: { appId: string; count: number }[],
    result: PlacementResult,
    offersSeen: number,
    now: number,
  ): void {
    for (const d of demands) {
      const unplaced = result.unplaced.find((u) => u.appId === d.appId);
      if (!unplaced || unplaced.count === 0) this.waiting.delete(d.appId);
      else this.waiting.set(d.appId, { reasons: unplaced.reasons, sinceMs: now, offersSeen });
    }
  }

  /** Apps with instances waiting to be placed, with the reasons from the last offers seen. */
  queue(now = Date.now()): QueueEntry[] {
    const out: QueueEntry[] = [];
    for (const [appId, app] of this.deps.apps()) {
      const plan = this.plan(appId, app, now);
      const missing =
        plan.launch > 0
          ? plan.launch
          : plan.waitingForBackoffUntilMs !== undefined
            ? this.missing(appId, app)
            : 0;
      if (missing === 0) {
        this.waiting.delete(appId);
        continue;
      }
      const w = this.waiting.get(appId);
      out.push({
        appId,
        waiting: missing,
        reasons: w?.reasons ?? [{ kind: "no_offers" }],
        sinceMs: w?.sinceMs ?? 0,
        offersSeen: w?.offersSeen ?? 0,
        backoffUntilMs: plan.waitingForBackoffUntilMs ?? 0,
      });
    }
    return out.sort((a, b) => a.appId.localeCompare(b.appId));
  }

  private missing(appId: string, app: AppRecord): number {
    let active = 0;
    for (const t of this.tasks.values())
      if (t.appId === appId && isActive(t.state) && !t.killRequested) active++;
    return Math.max(0, app.spec.instances - active);
  }

  counts(appId: string): { running: number; staged: number } {
    let running = 0;
    let staged = 0;
    for (const t of this.tasks.values()) {
      if (t.appId !== appId || t.killRequested) continue;
      if (t.state === "TASK_RUNNING") running++;
      else if (isActive(t.state)) staged++;
    }
    return { running, staged };
  }

  backoffUntil(appId: string): number {
    const b = this.backoff.get(appId);
    return b && b.delayUntilMs > Date.now() ? b.delayUntilMs : 0;
  }
}
