/**
 * The event relay: the master leader follows the etcd log with a watch and publishes every
 * committed event on NATS, in revision order. It resumes at the revision of the last event
 * in the stream (inclusive: JetStream de-duplicates by message id), so a leader change
 * neither skips nor doubles an event.
 */

import { type Bus, lastPublishedRevision, publishEvent } from "@drover/bus";
import { errorMessage, type Logger, sleep } from "@drover/common";
import type { EventEnvelope } from "@drover/core";
import { type Etcd3, LOG_PREFIX, parseEnvelope } from "@drover/store";

export class EventRelay {
  private stopped = false;
  private chain: Promise<void> = Promise.resolve();
  private cancel: (() => Promise<void>) | undefined;
  published = 0;

  constructor(
    private readonly etcd: Etcd3,
    private readonly bus: Bus,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const last = await lastPublishedRevision(this.bus);
    const from = last > 0n ? last : 1n;
    const watcher = await this.etcd.watch().prefix(LOG_PREFIX).startRevision(from.toString()).create();
    watcher.on("put", (kv) => {
      const revision = kv.mod_revision;
      const key = kv.key.toString();
      let env: EventEnvelope;
      try {
        env = parseEnvelope(key, kv.value.toString());
      } catch (err) {
        this.log.error("invalid event in the log is not published", { key, err: errorMessage(err) });
        return;
      }
      this.chain = this.chain.then(() => this.publish(env, revision, key));
    });
    watcher.on("error", (err) => this.log.warn("relay watch error", { err: errorMessage(err) }));
    this.cancel = () => watcher.cancel();
    this.log.info("event relay started", { fromRevision: from.toString() });
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
