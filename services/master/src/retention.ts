/**
 * The log retention loop of the leader: every `logRetentionIntervalSeconds` it removes the
 * events older than `logRetentionSeconds` that the relay has already published (pruneLog in
 * @drover/store, which leaves a checkpoint per aggregate), so the log does not grow forever.
 */
import type { Bus } from "@drover/bus";
import { lastPublishedRevision } from "@drover/bus";
import { errorMessage } from "@drover/common";
import { type EventStore, type Leadership, pruneLog, type RetentionReport } from "@drover/store";
import type { MasterContext } from "./context.js";

export class RetentionLoop {
  private timer: { cancel(): void } | undefined;
  private running = false;

  constructor(
    private readonly ctx: MasterContext,
    private readonly store: EventStore,
    private readonly leadership: Leadership,
    private readonly bus: Bus,
    private readonly onRun?: (r: RetentionReport) => void,
  ) {}

  start(): void {
    this.timer = this.ctx.clock.setInterval(
      () => void this.run(),
      this.ctx.config.logRetentionIntervalSeconds * 1000,
    );
  }

  stop(): void {
    this.timer?.cancel();
  }

  /** One pass (the timer's; exposed for tests). Never overlaps itself; failures wait for the next. */
  async run(): Promise<RetentionReport | undefined> {
    if (this.running) return undefined;
    this.running = true;
    try {
      const published = await lastPublishedRevision(this.bus);
      const report = await pruneLog(this.store, this.leadership, {
        retentionMs: this.ctx.config.logRetentionSeconds * 1000,
        nowMs: this.ctx.clock.now(),
        publishedRevision: published,
      });
      if (report.events > 0) this.ctx.log.info("log retention removed old events", { ...report });
      this.onRun?.(report);
      return report;
    } catch (err) {
      this.ctx.log.warn("log retention failed; retried at the next interval", { err: errorMessage(err) });
      return undefined;
    } finally {
      this.running = false;
    }
  }
}
