/** drover agent: detects its resources, re-attaches to its containers and serves the master. */
import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { cpus, hostname, totalmem } from "node:os";
import { join } from "node:path";
import { connectBus, ensureStreams } from "@drover/bus";
import { createLogger, installProcessGuards } from "@drover/common";
import { loadAgentConfig, loadOrExit } from "@drover/config";
import { AgentMetrics, serveMetrics } from "@drover/observability";
import { DockerExecutor, DockerTaskContainers } from "@drover/runtime";
import Dockerode from "dockerode";
import { Agent } from "./agent.js";
import { FileHealthCheckStore } from "./health-store.js";

const config = loadOrExit("agent", () => loadAgentConfig());

function agentId(): string {
  if (config.agentId) return config.agentId;
  mkdirSync(config.workDir, { recursive: true });
  const file = join(config.workDir, "agent-id");
  try {
    const id = readFileSync(file, "utf8").trim();
    if (/^[a-zA-Z0-9._-]{1,64}$/.test(id)) return id;
  } catch {
    // first start
  }
  const id = `agent-${randomUUID().slice(0, 8)}`;
  writeFileSync(file, `${id}\n`);
  return id;
}

const id = agentId();
const log = createLogger("agent", config.logLevel, { agentId: id });
const ports = config.ports.map((r) => {
  const [b, e] = r.split("-").map(Number);
  return { begin: b ?? 0, end: e ?? 0 };
});
const identity = {
  agentId: id,
  hostname: config.hostname ?? hostname(),
  resources: {
    cpus: config.cpus ?? cpus().length,
    mem: config.mem ?? Math.floor(totalmem() / (1024 * 1024)),
    disk: config.disk,
    ports,
  },
  attributes: config.attributes,
};
const bus = await connectBus(config.natsServers, `agent-${id}`, log);
await ensureStreams(bus);
const docker = new Dockerode({ socketPath: config.dockerSocket });
const executor = new DockerExecutor({
  agentId: id,
  docker,
  extraLabels: config.extraLabels,
  // Task sandboxes and the fetch cache live in the agent's work dir.
  workDir: config.workDir,
  keepSandboxes: config.keepSandboxes,
  fetch: {
    timeoutMs: config.fetchTimeoutSeconds * 1000,
    maxBytes: config.fetchMaxMib * 1024 * 1024,
    cacheMaxBytes: config.fetchCacheMib * 1024 * 1024,
  },
  // Host-networked tasks report the agent's address when its hostname is an IP address (none otherwise).
  ...(isIP(identity.hostname) ? { hostIp: identity.hostname } : {}),
});
const metrics = new AgentMetrics();
const agent = new Agent(identity, config, executor, bus, log, {
  onLaunch: () => metrics.launches.inc(),
  onStatusPublished: () => metrics.statusUpdates.inc(),
  // Health checks next to the tasks: COMMAND checks by docker exec, container IPs by inspect.
  health: {
    containers: new DockerTaskContainers(docker),
    store: new FileHealthCheckStore(join(config.workDir, "health"), log),
  },
});
metrics.source = () => ({ connected: agent.registered, tasksByState: () => agent.tasksByState() });
const metricsServer = await serveMetrics(metrics.registry, config.metricsListen, log);
log.info("agent starting", {
  resources: identity.resources,
  attributes: identity.attributes,
  masters: config.masters,
});

const shutdown = async (signal: string) => {
  // A stop that hangs (a store or a bus that does not answer) must not keep the process: 10 s at most.
  setTimeout(() => {
    log.error("shutdown did not finish within 10 s; exiting");
    process.exit(1);
  }, 10_000).unref();
  log.info("shutting down (containers keep running)", { signal });
  await agent.stop();
  await executor.close().catch(() => undefined);
  await bus.close().catch(() => undefined);
  await metricsServer.close();
  process.exit(0);
};
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));
installProcessGuards(log);
await agent.run();
