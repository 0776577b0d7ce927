import { hostname } from "node:os";
import { connectBus, ensureStreams } from "@drover/bus";
import {
  bindGrpc,
  createLogger,
  grpcServerOptions,
  hardenService,
  installProcessGuards,
  startupFailed,
} from "@drover/common";
import { loadMasterConfig, loadOrExit } from "@drover/config";
import { MasterMetrics, serveMetrics } from "@drover/observability";
import { MasterService } from "@drover/proto";
import { connectEtcd, EventStore, LeaderElection } from "@drover/store";
import { Server } from "@grpc/grpc-js";
import { type MasterHooks, MasterLeader } from "./leader.js";
import { masterService } from "./service.js";

export async function runService(): Promise<void> {
  const config = loadOrExit("master", () => loadMasterConfig());
  const log = createLogger("master", config.logLevel, { node: config.advertise, host: hostname() });
  const etcd = connectEtcd(config.etcdEndpoints, { timeoutMs: config.storeTimeoutMs });
  const bus = await connectBus(config.natsServers, `master-${config.advertise}`, log);
  await ensureStreams(bus);
  const store = new EventStore(etcd);
  const election = new LeaderElection(etcd, "master", config.leaderTtlSeconds, log);
  let current: MasterLeader | undefined;
  const server = new Server(grpcServerOptions());
  server.addService(
    hardenService(MasterService),
    masterService(
      {
        current: () => current,
        self: config.advertise,
        leaderAddress: () => election.leader().catch(() => undefined),
      },
      log,
    ),
  );
  const port = await bindGrpc(server, config.listen).catch((err: unknown) =>
    startupFailed(log, `listen on ${config.listen}`, err),
  );
  log.info("master listening", { listen: config.listen, port, advertise: config.advertise });
  const metrics = new MasterMetrics();
  metrics.source = () => current;
  const metricsServer = await serveMetrics(metrics.registry, config.metricsListen, log);
  installProcessGuards(log);

  const abort = new AbortController();
  const shutdown = async (signal: string) => {
    // A stop that hangs (a store or a bus that does not answer) must not keep the process: 10 s at most.
    setTimeout(() => {
      log.error("shutdown did not finish within 10 s; exiting");
      process.exit(1);
    }, 10_000).unref();
    log.info("shutting down", { signal });
    abort.abort();
    const l = current;
    current = undefined;
    await l?.stop();
    await l?.leadership.resign().catch(() => undefined);
    server.forceShutdown();
    await metricsServer.close();
    await bus.close().catch(() => undefined);
    etcd.close();
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));

  await election.serve(config.advertise, abort.signal, async (leadership) => {
    const l = new MasterLeader(store, bus, leadership, config, log, undefined, metricHooks(metrics));
    try {
      await l.start();
      current = l;
      metrics.leader.set(1);
      log.info("leading", { advertise: config.advertise });
      await leadership.lost;
    } finally {
      current = undefined;
      metrics.leader.set(0);
      await l.stop();
      log.warn("stepped down");
    }
  });
}

/** The leader's events as metrics. */
function metricHooks(m: MasterMetrics): MasterHooks {
  return {
    onTransaction: (r) => {
      m.transactions.inc({ result: r.ok ? "ok" : "failed" });
      m.transactionOps.observe(r.ops);
      m.commitLatency.observe(r.ms / 1000);
      if (r.ok) {
        m.changesCommitted.inc(r.changes);
        m.etcdOps.inc(r.ops);
      }
    },
    onAllocation: (r) => {
      m.allocationCycle.observe(r.ms / 1000);
      m.offers.inc(r.offers);
    },
    onRetention: (r) => m.logEventsRemoved.inc(r.events),
    onAccept: (launched, err) => {
      m.accepts.inc({ result: err === undefined ? "ok" : "refused" });
      m.launches.inc(launched);
    },
    onStatus: () => m.statusUpdates.inc(),
  };
}
