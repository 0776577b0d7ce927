/**
 * drover scheduler: campaigns for leadership; the leader owns the apps (event-sourced in
 * etcd), runs the framework subscription to the master and converges every app to its
 * instance count. It reacts to app events on NATS and to task updates from the master.
 */
import { hostname } from "node:os";
import { setTimeout as delay } from "node:timers/promises";
import { connectBus, ensureStreams, followEvents } from "@drover/bus";
import {
  bindGrpc,
  coalesce,
  createLogger,
  errorMessage,
  grpcServerOptions,
  hardenService,
  InvalidArgumentError,
  installProcessGuards,
  NotFoundError,
  startupFailed,
} from "@drover/common";
import { loadOrExit, loadSchedulerConfig, schedulerHttpAdvertise } from "@drover/config";
import { appVersionOf, runWorkloadId } from "@drover/core";
import { SchedulerMetrics, serveMetrics } from "@drover/observability";
import { SchedulerService } from "@drover/proto";
import { connectEtcd, EventStore, LeaderElection, type Leadership } from "@drover/store";
import { Server } from "@grpc/grpc-js";
import { z } from "zod";
import { AppService } from "./app-service.js";
import { AppStore } from "./apps.js";
import { PersistedBackoff } from "./backoff-store.js";
import { DeploymentStore } from "./deployments.js";
import { FrameworkDriver } from "./framework.js";
import { eventsRoutes } from "./http/events.js";
import { type JobsLeader, jobsRoutes } from "./http/jobs.js";
import { createHttpServer } from "./http/server.js";
import { JobRunner } from "./jobs/runner.js";
import { JobStore } from "./jobs/store.js";
import { ResidencyStore } from "./residency.js";
import { rollBack } from "./rollback.js";
import { type SchedulerLeader, schedulerService } from "./service.js";

const config = loadOrExit("scheduler", () => loadSchedulerConfig());
const log = createLogger("scheduler", config.logLevel, { node: config.advertise, host: hostname() });
const etcd = connectEtcd(config.etcdEndpoints, { timeoutMs: config.storeTimeoutMs });
const bus = await connectBus(config.natsServers, `scheduler-${config.advertise}`, log);
await ensureStreams(bus);
const store = new EventStore(etcd);
const election = new LeaderElection(etcd, "scheduler", config.leaderTtlSeconds, log);
let current: SchedulerLeader | undefined;
/** The leader's jobs (Metronome's /v1/jobs: http/jobs.ts), set and cleared with `current`. */
let currentJobs: JobsLeader | undefined;
/** Set by DELETE /v2/leader: the term ends and this replica waits a lease before campaigning again. */
let abdicated = false;

/** The HTTP address of this replica, and where the leader publishes its own (next to its gRPC address). */
const httpAdvertise = schedulerHttpAdvertise(config);
const LEADER_HTTP_META = "scheduler/leader-http";
const LeaderHttpSchema = z.object({ grpc: z.string(), http: z.string().regex(/^[^\s:/]+:\d{1,5}$/) });

/**
 * The leader's HTTP address: what it published when it started to lead, if that record is of the
 * leader elected now (its gRPC address is the election's value); otherwise none is known.
 */
async function leaderHttp(): Promise<string | undefined> {
  // A follower forwards every request: the answer is kept 500 ms (two etcd reads per request otherwise).
  const now = Date.now();
  if (leaderHttpCache && now - leaderHttpCache.atMs < 500) return leaderHttpCache.http;
  const http = await readLeaderHttp();
  leaderHttpCache = http === undefined ? undefined : { http, atMs: now };
  return http;
}
let leaderHttpCache: { http: string; atMs: number } | undefined;

async function readLeaderHttp(): Promise<string | undefined> {
  const grpc = await election.leader();
  if (grpc === undefined) return undefined;
  if (grpc === config.advertise) return current ? httpAdvertise : undefined;
  const raw = await store.getMeta(LEADER_HTTP_META);
  if (raw === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const v = LeaderHttpSchema.safeParse(json);
  return v.success && v.data.grpc === grpc ? v.data.http : undefined;
}

const ref = {
  current: () => current,
  self: config.advertise,
  leaderAddress: () => election.leader().catch(() => undefined),
  abdicate: async () => {
    abdicated = true;
    // After the answer is sent: the term ends (stopCurrent resigns), another replica may take it.
    setImmediate(() => void stopCurrent?.());
  },
};
const server = new Server(grpcServerOptions());
server.addService(hardenService(SchedulerService), schedulerService(ref, log));
await bindGrpc(server, config.listen).catch((err: unknown) =>
  startupFailed(log, `listen on ${config.listen}`, err),
);
log.info("scheduler listening", { listen: config.listen, advertise: config.advertise });
const metrics = new SchedulerMetrics();
const metricsServer = await serveMetrics(metrics.registry, config.metricsListen, log);
// The Marathon-compatible HTTP API (http/server.ts), on every replica.
const http = await createHttpServer({
  service: new AppService(ref),
  log,
  registry: metrics.registry,
  selfHttp: httpAdvertise,
  leaderHttp,
  info: {
    frameworkName: config.frameworkName,
    frameworkId: () => current?.framework.frameworkId,
    masters: config.masters,
    role: config.role,
    failoverTimeoutSeconds: config.failoverTimeoutSeconds,
    httpPort: Number(config.httpListen.slice(config.httpListen.lastIndexOf(":") + 1)),
  },
  // Plugins served by any replica without forwarding: the SSE event stream.
  plugins: [
    { plugin: eventsRoutes({ bus, log }), localPrefixes: ["/v2/events"] },
    { plugin: jobsRoutes({ leader: () => currentJobs }), localPrefixes: [] },
  ],
}).catch((err: unknown) => startupFailed(log, "start the HTTP API", err));
{
  const i = config.httpListen.lastIndexOf(":");
  await http
    .listen({ host: config.httpListen.slice(0, i), port: Number(config.httpListen.slice(i + 1)) })
    .catch((err: unknown) => startupFailed(log, `listen on ${config.httpListen} (HTTP)`, err));
}
log.info("marathon API listening", { listen: config.httpListen, url: `http://${httpAdvertise}/v2/apps` });
installProcessGuards(log);

const abort = new AbortController();
let stopCurrent: (() => Promise<void>) | undefined;
const shutdown = async (signal: string) => {
  // A stop that hangs (a store or a bus that does not answer) must not keep the process: 10 s at most.
  setTimeout(() => {
    log.error("shutdown did not finish within 10 s; exiting");
    process.exit(1);
  }, 10_000).unref();
  log.info("shutting down", { signal });
  abort.abort();
  await stopCurrent?.();
  server.forceShutdown();
  await http.close().catch(() => undefined);
  await metricsServer.close();
  await bus.close().catch(() => undefined);
  etcd.close();
  process.exit(0);
};
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));

await election.serve(config.advertise, abort.signal, lead);

async function lead(leadership: Leadership): Promise<void> {
  const apps = new AppStore(store, leadership, config.maxAppVersions);
  await apps.load();
  // The launch backoff of the previous leader, before the first converge.
  const backoff = new PersistedBackoff({
    store,
    leadership,
    log,
    configVersion: (id) => {
      const r = apps.record(id);
      return r && appVersionOf(r).versionInfo.lastConfigChangeAt;
    },
  });
  await backoff.load();
  const residency = new ResidencyStore(store, leadership);
  await residency.load();
  // Running deployments of the previous leader go on (the planner re-derives each step from the tasks).
  const deployments = new DeploymentStore(store, leadership, log);
  await deployments.load();
  // Jobs and their active runs (jobs/): the runs are a second workload of the framework driver.
  const jobStore = new JobStore({
    store,
    leadership,
    historyKept: config.jobHistoryKept,
    activeTasks: (jobId: string, runId: string): string[] =>
      [...framework.tasks.ofApp(runWorkloadId(jobId, runId))].map((t) => t.taskId),
  });
  await jobStore.load();
  const jobRunner = new JobRunner({ store: jobStore, log, changed: () => converge.trigger() });
  const framework = new FrameworkDriver({
    config,
    log,
    apps: () => apps.records(),
    backoff,
    residency,
    deployments,
    workload: jobRunner,
    leading: () => leadership.isLeader(),
    loadFrameworkId: () => store.getMeta("scheduler/framework-id"),
    saveFrameworkId: (id) => store.putMeta(leadership, "scheduler/framework-id", id),
    observer: {
      offers: (n) => metrics.offersReceived.inc(n),
      accept: (launched, ok) => {
        metrics.accepts.inc({ result: ok ? "ok" : "failed" });
        metrics.launches.inc(launched);
      },
      offerRound: (ms) => metrics.placement.observe(ms / 1000),
      converged: (planned) => {
        metrics.converges.inc();
        metrics.appsPlanned.inc(planned);
      },
    },
  });
  metrics.source = () => ({ apps: apps.records().size, tasksByState: () => framework.tasksByState() });
  await framework.init();
  const converge = coalesce(
    () => framework.converge(),
    50,
    (err) => log.error("converge failed", { err: errorMessage(err) }),
  );
  // A deployment past its progress deadline fails and is rolled back (rollback.ts); a rollback's own
  // deadline just fails it (no rollback of a rollback).
  deployments.watchDeadlines((id, reason) =>
    deployments.serial(async () => {
      const d = deployments.get(id);
      if (d.state !== "running") return;
      let failReason = reason;
      let rollbackId = "";
      if (d.kind !== "rollback")
        try {
          rollbackId = await rollBack(apps, deployments, d, (rid) => ({
            type: "DeploymentFailed",
            reason,
            rollbackId: rid,
          }));
        } catch (err) {
          // No way back (the previous version was pruned, or is refused now): fail it, once, saying so.
          if (!(err instanceof NotFoundError || err instanceof InvalidArgumentError)) throw err;
          failReason = `${reason}; cannot roll back: ${errorMessage(err)}`;
        }
      if (!rollbackId) await deployments.fail(id, failReason);
      log.info("deployment failed by its progress deadline", { id, rollbackId });
      converge.trigger();
    }),
  );
  // Ended deployments beyond the retention are removed (now and every 10 minutes).
  deployments.keepPruned(config.deploymentsKept, config.deploymentsKeptHours * 3_600_000);
  const leader: SchedulerLeader = {
    apps,
    deployments,
    framework,
    changed: () => {
      converge.trigger();
      backoff.prune();
    },
  };
  // React to app events (from any writer) as they are published.
  const stopEvents = await followEvents(bus, log, () => converge.trigger(), {
    filter: "drover.events.app.>",
  });
  const tick = setInterval(() => {
    // A deployment whose start had no known outcome is found again within a tick (then converged).
    void deployments
      .serial(() => deployments.resolveUnknown())
      .catch((err: unknown) => log.warn("reading deployments again failed", { err: errorMessage(err) }));
    converge.trigger();
  }, 5000);
  const running = framework.run();
  // Followers forward HTTP requests here: publish this replica's HTTP address with its gRPC one.
  await store
    .putMeta(leadership, LEADER_HTTP_META, JSON.stringify({ grpc: config.advertise, http: httpAdvertise }))
    .catch((err: unknown) =>
      log.warn("publishing the HTTP address failed; followers answer 503", { err: errorMessage(err) }),
    );
  current = leader;
  currentJobs = { store: jobStore, runner: jobRunner, tasks: framework.tasks };
  jobRunner.start();
  metrics.leader.set(1);
  stopCurrent = async () => {
    current = undefined;
    currentJobs = undefined;
    jobRunner.stopCron();
    clearInterval(tick);
    converge.cancel();
    framework.stop();
    backoff.stop();
    deployments.stop();
    await stopEvents().catch(() => undefined);
    await leadership.resign();
  };
  log.info("leading", { apps: apps.records().size, deployments: deployments.list(false).length });
  await leadership.lost;
  current = undefined;
  currentJobs = undefined;
  jobRunner.stopCron();
  clearInterval(tick);
  converge.cancel();
  framework.stop();
  backoff.stop();
  deployments.stop();
  await running.catch(() => undefined);
  await stopEvents().catch(() => undefined);
  metrics.leader.set(0);
  metrics.source = () => undefined;
  log.warn("stepped down");
  if (abdicated) {
    abdicated = false;
    // Abdicated (DELETE /v2/leader): give the other replicas a lease to take over first.
    await delay(config.leaderTtlSeconds * 1000, undefined, { signal: abort.signal }).catch(() => undefined);
  }
}
