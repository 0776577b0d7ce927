/**
 * The event relay: the master leader follows the etcd log with a watch and publishes every
 * committed event on NATS, in revision order. It resumes at the revision of the last event in
 * the stream (inclusive: JetStream de-duplicates by message id), so a leader change neither
 * skips nor doubles an event.
 *
 * It never stops silently: when the watch fails (etcd compacted the revisions it resumes from,
 * a connection dropped), the relay reads what it missed from the log itself (events are
 * removed from the log only once published, see retention) and watches again from there.
 */

import { type Bus, lastPublishedRevision, publishEvent } from "@drover/bus";
import { errorMessage, type Logger, sleep } from "@drover/common";
import type { EventEnvelope } from "@drover/core";
import { type Etcd3, type EventStore, LOG_PREFIX, parseEnvelope } from "@drover/store";

export class EventRelay {
  private stopped = false;
  private chain: Promise<void> = Promise.resolve();
  private cancel: (() => Promise<void>) | undefined;
  /** The highest revision handed to the publisher. */
  private seen = 0n;
  private recovering = false;
  published = 0;
  /** Times the watch failed and the relay caught up from the log (metrics, tests). */
  recoveries = 0;

  constructor(
    private readonly etcd: Etcd3,
    private readonly store: EventStore,
    private readonly bus: Bus,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const last = await lastPublishedRevision(this.bus);
    const from = last > 0n ? last : 1n;
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
    this.chain = this.chain.then(() => this.publish(env, revision, key));
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

  private async publish(env: EventEnvelope, revision: string, key: string): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await publishEvent(this.bus, env, revision, key);
        this.published++;
        return;
      } catch (err) {
        this.log.warn("event publish failed; retrying", { key, attempt, err: errorMessage(err) });
        await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5)));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.cancel?.().catch(() => undefined);
  }
}
