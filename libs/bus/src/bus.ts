/**
 * The NATS side of Drover. Two JetStream streams:
 *   DROVER_EVENTS  `drover.events.<aggregate>.<type>`: every event committed to etcd, published
 *                  once by the master leader's relay, de-duplicated by `<revision>:<log key>`.
 *   DROVER_STATUS  `drover.status.<agentId>`: task status updates from agents, held durably
 *                  (work queue) until the master has persisted and acknowledged them.
 */
import { type Logger, sleep } from "@drover/common";
import {
  AckPolicy,
  connect,
  DeliverPolicy,
  headers,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  nanos,
  RetentionPolicy,
  StorageType,
} from "nats";

export const EVENTS_STREAM = "DROVER_EVENTS";
export const STATUS_STREAM = "DROVER_STATUS";
export const EVENTS_SUBJECT_PREFIX = "drover.events";
export const STATUS_SUBJECT_PREFIX = "drover.status";
export const REVISION_HEADER = "Drover-Revision";

export interface Bus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  close(): Promise<void>;
}

export async function connectBus(servers: string[], name: string, log: Logger): Promise<Bus> {
  const nc = await connect({
    servers,
    name,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: true,
    // No stack trace captured per request: at load (a JetStream publish or pull per event) it
    // cost 7% of the master's CPU; a failed request still says what failed.
    noAsyncTraces: true,
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect")
        log.info(`nats ${s.type}`, { data: String(s.data) });
    }
  })();
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  return {
    nc,
    js,
    jsm,
    close: async () => {
      await nc.drain().catch(() => nc.close());
    },
  };
}

/** Creates the streams and the master's durable status consumer if they are missing. Idempotent. */
export async function ensureStreams(bus: Bus): Promise<void> {
  const want = [
    {
      name: EVENTS_STREAM,
      subjects: [`${EVENTS_SUBJECT_PREFIX}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(7 * 24 * 3600 * 1000),
      duplicate_window: nanos(10 * 60 * 1000),
    },
    {
      name: STATUS_STREAM,
      subjects: [`${STATUS_SUBJECT_PREFIX}.>`],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: nanos(2 * 60 * 1000),
    },
  ];
  for (const cfg of want) {
    for (let attempt = 0; ; attempt++) {
      try {
        await bus.jsm.streams.info(cfg.name);
        break;
      } catch {
        try {
          await bus.jsm.streams.add(cfg);
          break;
        } catch (err) {
          if (attempt > 20) throw err;
          await sleep(250);
        }
      }
    }
  }
  try {
    await bus.jsm.consumers.info(STATUS_STREAM, "master");
  } catch {
    await bus.jsm.consumers.add(STATUS_STREAM, {
      durable_name: "master",
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(10_000),
      max_deliver: -1,
      deliver_policy: DeliverPolicy.All,
    });
  }
}

export { headers };
