/**
 * The event relay: the master leader follows the etcd log with a watch and publishes every
 * committed event on NATS, in revision order. The events of one transaction go out as few
 * messages (one per run of events of the same type, eventMessages in @drover/bus: a status batch
 * of 60 tasks is one message, not 60), up to 256 messages sent together. It resumes at the
 * oldest of the last 256 messages in the stream and skips the ones it finds stored there
 * (JetStream also de-duplicates by message id, and the same events always make the same
 * messages), so a leader change neither skips nor doubles an event, even when a batch was
 * stored only in part.
 *
 * It never stops silently: when the watch fails (etcd compacted the revisions it resumes from,
 * a connection dropped), the relay reads what it missed from the log itself (events are
 * removed from the log only once published, see retention) and watches again from there.
 */

import {
  type Bus,
  eventMessages,
  type LoggedEvent,
  publishEventMessage,
  type RelayMessage,
  resumePoint,
} from "@drover/bus";
import { errorMessage, type Logger, sleep } from "@drover/common";
import type { EventEnvelope } from "@drover/core";
import { type Etcd3, type EventStore, LOG_PREFIX, parseEnvelope } from "@drover/store";

/** Messages published together (and looked back on when the relay resumes). */
const PUBLISH_BATCH = 256;

export class EventRelay {
  private stopped = false;
  private chain: Promise<void> = Promise.resolve();
  private cancel: (() => Promise<void>) | undefined;
  /** The highest revision handed to the publisher. */
  private seen = 0n;
  private pending: LoggedEvent[] = [];
  private flushing = false;
  /** Message ids of the last events in the stream when the relay started (not published twice). */
  private skip = new Set<string>();
  private recovering = false;
  /** Events published, and the messages that carried them (metrics, tests). */
  published = 0;
  messages = 0;
  /** Times the watch failed and the relay caught up from the log (metrics, tests). */
  recoveries = 0;

  constructor(
    private readonly etcd: Etcd3,
    private readonly store: EventStore,
    private readonly bus: Bus,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const resume = await resumePoint(this.bus, PUBLISH_BATCH);
    this.skip = resume.ids;
    const from = resume.fromRevision > 0n ? resume.fromRevision : 1n;
    this.seen = from - 1n;
    await this.follow(from).catch((err: unknown) => this.recover(err));
    this.log.info("event relay started", { fromRevision: from.toString() });
  }

  /** The revision published last (the relay's checkpoint; retention removes nothing after it). */
  get publishedThrough(): bigint {
    return this.seen;
  }

  private async follow(from: bigint): Promise<void> {
    const watcher = await this.etcd.watch().prefix(LOG_PREFIX).startRevision(from.toString()).create();
    watcher.on("put", (kv) => this.enqueue(kv.key.toString(), kv.value.toString(), kv.mod_revision));
    watcher.on("error", (err) => {
      void watcher.cancel().catch(() => undefined);
      void this.recover(err);
    });
    this.cancel = () => watcher.cancel();
  }

  private enqueue(key: string, value: string, revision: string): void {
    const rev = BigInt(revision);
    if (rev > this.seen) this.seen = rev;
    let env: EventEnvelope;
    try {
      env = parseEnvelope(key, value);
    } catch (err) {
      this.log.error("invalid event in the log is not published", { key, err: errorMessage(err) });
      return;
    }
    // A transaction's events arrive together (one watch response, or one catch-up): a flush,
    // which runs after this synchronous delivery, always sees every event of a revision.
    this.pending.push({ env, revision, key, value });
    if (!this.flushing) {
      this.flushing = true;
      this.chain = this.chain.then(() => this.flush());
    }
  }

  /**
   * Publishes what is pending as messages (eventMessages), up to PUBLISH_BATCH at a time: a batch
   * goes out together (in order, on one connection) and is acknowledged together; one publish at
   * a time cost a round trip each. A batch with a failure is published again one by one, in order
   * (the ones already stored are de-duplicated by message id).
   */
  private async flush(): Promise<void> {
    try {
      while (this.pending.length > 0 && !this.stopped) {
        let messages = eventMessages(this.pending.splice(0));
        // Stored already before this relay started (looked up at start).
        if (this.skip.size > 0) messages = messages.filter((m) => !this.skip.delete(m.msgId));
        for (let i = 0; i < messages.length && !this.stopped; i += PUBLISH_BATCH) {
          const batch = messages.slice(i, i + PUBLISH_BATCH);
          const results = await Promise.allSettled(batch.map((m) => publishEventMessage(this.bus, m)));
          if (results.every((r) => r.status === "fulfilled")) {
            this.published += batch.reduce((n, m) => n + m.count, 0);
            this.messages += batch.length;
            continue;
          }
          for (const m of batch) await this.publish(m);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Reads the events after the last one seen from the log, publishes them, and watches again. */
  private async recover(cause: unknown): Promise<void> {
    if (this.recovering || this.stopped) return;
    this.recovering = true;
    this.recoveries += 1;
    this.log.warn("relay watch failed; catching up from the log", { err: errorMessage(cause) });
    try {
      for (let attempt = 0; !this.stopped; attempt++) {
        try {
          await this.chain;
          const from = this.seen + 1n;
          const revision = await this.store.revision();
          const missed: { key: string; value: string; revision: string }[] = [];
          for await (const page of this.store.scan(LOG_PREFIX, revision))
            for (const kv of page)
              if (BigInt(kv.mod_revision) >= from)
                missed.push({
                  key: kv.key.toString(),
                  value: kv.value.toString(),
                  revision: kv.mod_revision,
                });
          missed.sort((a, b) => {
            const d = BigInt(a.revision) - BigInt(b.revision);
            return d !== 0n ? (d < 0n ? -1 : 1) : a.key.localeCompare(b.key);
          });
          for (const m of missed) this.enqueue(m.key, m.value, m.revision);
          const next = BigInt(revision) + 1n;
          if (next - 1n > this.seen) this.seen = next - 1n;
          await this.follow(next);
          this.log.info("relay caught up", { events: missed.length, watchingFrom: next.toString() });
          return;
        } catch (err) {
          this.log.warn("relay catch-up failed; retrying", { attempt, err: errorMessage(err) });
          await sleep(Math.min(5000, 200 * 2 ** Math.min(attempt, 5)));
        }
      }
    } finally {
      this.recovering = false;
    }
  }

  private async publish(m: RelayMessage): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await publishEventMessage(this.bus, m);
        this.published += m.count;
        this.messages += 1;
        return;
      } catch (err) {
        this.log.warn("event publish failed; retrying", { id: m.msgId, attempt, err: errorMessage(err) });
        await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5)));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.cancel?.().catch(() => undefined);
  }
}
