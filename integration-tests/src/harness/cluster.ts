import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { type Infra, startInfra } from "./infra.js";
import { repoRoot } from "./paths.js";
import { freePort, type ServiceKind, type ServiceProcess, spawnService } from "./processes.js";
import { StopWaiting, waitFor } from "./wait.js";

export interface ClusterOptions {
  masters?: number;
  schedulers?: number;
  agents?: number;
  /** DROVER_LEADER_TTL_SECONDS for masters and schedulers (default 3). */
  leaderTtlSeconds?: number;
  /** DROVER_LOG_LEVEL of every service (default: $DROVER_LOG_LEVEL or "info"). */
  logLevel?: string;
  /** Extra environment for every service. */
  env?: Record<string, string>;
  /**
   * Extra environment of agent i (0-based), e.g. its hostname, attributes and a host port range
   * of its own (agents on one machine must not offer the same host ports).
   */
  agentEnv?: (i: number) => Record<string, string>;
  /** Wait until every agent shows up in `drover agent list --json` (default true). */
  waitReady?: boolean;
  /** How long startCluster waits for readiness (default 60 000 ms). */
  readyTimeoutMs?: number;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Extra environment for this invocation (undefined removes a variable). */
  env?: Record<string, string | undefined>;
  /** Kill the CLI and reject after this long (default 30 000 ms). */
  timeoutMs?: number;
  /** Written to the CLI's stdin. */
  input?: string;
}

export interface Cluster {
  /** Unique per cluster; agents label their task containers with drover.test.cluster=<id>. */
  readonly id: string;
  readonly infra: Infra;
  readonly masters: ServiceProcess[];
  readonly schedulers: ServiceProcess[];
  readonly agents: ServiceProcess[];
  /** DROVER_AGENT_WORK_DIR of agents[i]. */
  readonly agentWorkDirs: string[];
  /** The environment for the CLI: DROVER_MASTERS, DROVER_SCHEDULERS, DROVER_NATS_SERVERS, DROVER_ETCD_ENDPOINTS. */
  readonly env: Record<string, string>;
  /** Runs `node services/cli/bin/drover.js ...args` with `env`; rejects only on timeout. */
  cli(args: string[], opts?: CliOptions): Promise<CliResult>;
  /** Runs the CLI and parses its stdout as JSON; rejects if it exits non-zero or prints no JSON. */
  cliJson<T = unknown>(args: string[], opts?: CliOptions): Promise<T>;
  /** Stops `proc` if it still runs and starts it again with the same environment (ports, work dir). */
  restart(proc: ServiceProcess): Promise<ServiceProcess>;
  /** Starts one more agent with a fresh work dir. */
  addAgent(): Promise<ServiceProcess>;
  /** Ids the agents wrote to `<work dir>/agent-id` (those that have written one). */
  agentIds(): Promise<string[]>;
  /** Exit state and last lines of every process, for failure messages. */
  describe(lines?: number): string;
  /** Stops all processes, then etcd and NATS, then removes this cluster's task containers and work dirs. */
  stop(): Promise<void>;
}

const CLI = join(repoRoot, "services", "cli", "bin", "drover.js");

let docker: Docker | undefined;
function dockerClient(): Docker {
  docker ??= new Docker({ socketPath: "/var/run/docker.sock" });
  return docker;
}

function tail(text: string, lines: number): string {
  const all = text.trimEnd().split("\n");
  return all.slice(Math.max(0, all.length - lines)).join("\n");
}

export function runCli(args: string[], env: Record<string, string | undefined>, opts: CliOptions = {}) {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const merged: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries({ ...env, ...opts.env })) {
    if (value === undefined) delete merged[key];
    else merged[key] = value;
  }
  return new Promise<CliResult>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: repoRoot,
      env: merged,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`drover ${args.join(" ")}: ${err.message}`));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(
          new Error(
            `drover ${args.join(" ")} timed out after ${timeoutMs}ms; stdout: ${tail(stdout, 10)}; stderr: ${tail(stderr, 10)}`,
          ),
        );
      } else {
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      }
    });
    child.stdin.on("error", () => {
      // the CLI may exit without reading its input
    });
    child.stdin.end(opts.input ?? "");
  });
}

async function removeContainers(clusterId: string, agentIds: string[]): Promise<void> {
  const client = dockerClient();
  const filters = [`drover.test.cluster=${clusterId}`, ...agentIds.map((id) => `drover.agent_id=${id}`)];
  const ids = new Set<string>();
  for (const label of filters) {
    const found = await client.listContainers({ all: true, filters: { label: [label] } });
    for (const c of found) ids.add(c.Id);
  }
  await Promise.all(
    [...ids].map(async (id) => {
      try {
        await client.getContainer(id).remove({ force: true, v: true });
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        if (status !== 404 && status !== 409) throw err; // gone already, or removal already in progress
      }
    }),
  );
}

/**
 * Starts etcd and NATS in containers, then the requested masters, schedulers and agents as child processes,
 * every gRPC listener on its own free port of 127.0.0.1. Waits (unless `waitReady: false`) until the CLI
 * lists every agent. On failure everything started is stopped and the error carries the processes' logs.
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const id = `it-${randomBytes(4).toString("hex")}`;
  const counts = { master: opts.masters ?? 1, scheduler: opts.schedulers ?? 1, agent: opts.agents ?? 1 };
  const masterPorts = await Promise.all(Array.from({ length: counts.master }, () => freePort()));
  const schedulerPorts = await Promise.all(Array.from({ length: counts.scheduler }, () => freePort()));
  // Each master and scheduler serves GET /metrics on a port of its own (metricsUrlOf).
  const masterMetricsPorts = await Promise.all(Array.from({ length: counts.master }, () => freePort()));
  const schedulerMetricsPorts = await Promise.all(Array.from({ length: counts.scheduler }, () => freePort()));
  // Each scheduler serves the Marathon HTTP API on a port of its own (httpUrlOf).
  const schedulerHttpPorts = await Promise.all(Array.from({ length: counts.scheduler }, () => freePort()));
  const infra = await startInfra();
  const masterAddrs = masterPorts.map((p) => `127.0.0.1:${p}`);
  const schedulerAddrs = schedulerPorts.map((p) => `127.0.0.1:${p}`);

  const env: Record<string, string> = {
    DROVER_MASTERS: masterAddrs.join(","),
    DROVER_SCHEDULERS: schedulerAddrs.join(","),
    DROVER_NATS_SERVERS: infra.natsUrl,
    DROVER_ETCD_ENDPOINTS: infra.etcdEndpoint,
  };
  const common: Record<string, string> = {
    ...env,
    DROVER_LEADER_TTL_SECONDS: String(opts.leaderTtlSeconds ?? 3),
    DROVER_LOG_LEVEL: opts.logLevel ?? process.env.DROVER_LOG_LEVEL ?? "info",
    // Several services of a kind run on one machine: each takes any free metrics port.
    DROVER_MASTER_METRICS_LISTEN: "127.0.0.1:0",
    DROVER_SCHEDULER_METRICS_LISTEN: "127.0.0.1:0",
    DROVER_AGENT_METRICS_LISTEN: "127.0.0.1:0",
    ...opts.env,
  };

  const masters: ServiceProcess[] = [];
  const schedulers: ServiceProcess[] = [];
  const agents: ServiceProcess[] = [];
  const agentWorkDirs: string[] = [];
  const restarts = new Map<string, number>();
  const groups: Record<ServiceKind, ServiceProcess[]> = {
    master: masters,
    scheduler: schedulers,
    agent: agents,
  };

  const spawnAgent = async (): Promise<ServiceProcess> => {
    const workDir = await mkdtemp(join(tmpdir(), `drover-${id}-agent-`));
    agentWorkDirs.push(workDir);
    const proc = spawnService(
      "agent",
      {
        ...common,
        DROVER_AGENT_WORK_DIR: workDir,
        DROVER_AGENT_ID: undefined,
        DROVER_AGENT_EXTRA_LABELS: `drover.test.cluster=${id}`,
        ...opts.agentEnv?.(agents.length),
      },
      `${id}-agent-${agents.length}`,
    );
    agents.push(proc);
    return proc;
  };

  const readAgentIds = async (): Promise<string[]> => {
    const ids: string[] = [];
    for (const dir of agentWorkDirs) {
      try {
        const text = (await readFile(join(dir, "agent-id"), "utf8")).trim();
        if (text) ids.push(text);
      } catch {
        // not written (yet)
      }
    }
    return ids;
  };

  const describe = (lines = 30): string =>
    [...masters, ...schedulers, ...agents]
      .map((p) => {
        const state = p.running ? "running" : "exited";
        return `--- ${p.name} (pid ${p.pid}, ${state}, log ${p.logFile})\n${tail(p.logs(), lines)}`;
      })
      .join("\n");

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const problems: string[] = [];
      // reverse order of dependency: agents, then schedulers, then masters
      for (const group of [agents, schedulers, masters]) {
        await Promise.all(group.map((p) => p.stop()));
      }
      await infra.stop();
      try {
        await removeContainers(id, await readAgentIds());
      } catch (err) {
        problems.push(`removing task containers: ${(err as Error).message}`);
      }
      await Promise.all(agentWorkDirs.map((dir) => rm(dir, { recursive: true, force: true })));
      if (problems.length > 0) throw new Error(`cluster ${id} stop: ${problems.join("; ")}`);
    })();
    return stopping;
  };

  const cli = (args: string[], cliOpts?: CliOptions) => runCli(args, env, cliOpts);
  const cliJson = async <T>(args: string[], cliOpts?: CliOptions): Promise<T> => {
    const r = await cli(args, cliOpts);
    if (r.code !== 0) {
      throw new Error(`drover ${args.join(" ")} exited with ${r.code}: ${tail(r.stderr || r.stdout, 10)}`);
    }
    try {
      return JSON.parse(r.stdout) as T;
    } catch {
      throw new Error(`drover ${args.join(" ")} printed no JSON: ${tail(r.stdout, 10)}`);
    }
  };

  const cluster: Cluster = {
    id,
    infra,
    masters,
    schedulers,
    agents,
    agentWorkDirs,
    env,
    cli,
    cliJson,
    async restart(proc) {
      const group = groups[proc.kind];
      const index = group.indexOf(proc);
      if (index < 0) throw new Error(`${proc.name} does not belong to cluster ${id}`);
      await proc.stop();
      const base = proc.name.replace(/-r\d+$/, "");
      const n = (restarts.get(base) ?? 0) + 1;
      restarts.set(base, n);
      const next = spawnService(proc.kind, { ...proc.env }, `${base}-r${n}`);
      group[index] = next;
      return next;
    },
    addAgent: spawnAgent,
    agentIds: readAgentIds,
    describe,
    stop,
  };

  try {
    masterAddrs.forEach((addr, i) => {
      masters.push(
        spawnService(
          "master",
          {
            ...common,
            DROVER_MASTER_LISTEN: addr,
            DROVER_MASTER_ADVERTISE: addr,
            DROVER_MASTER_METRICS_LISTEN: `127.0.0.1:${masterMetricsPorts[i]}`,
          },
          `${id}-master-${i}`,
        ),
      );
    });
    schedulerAddrs.forEach((addr, i) => {
      schedulers.push(
        spawnService(
          "scheduler",
          {
            ...common,
            DROVER_SCHEDULER_LISTEN: addr,
            DROVER_SCHEDULER_ADVERTISE: addr,
            DROVER_SCHEDULER_METRICS_LISTEN: `127.0.0.1:${schedulerMetricsPorts[i]}`,
            DROVER_SCHEDULER_HTTP_LISTEN: `127.0.0.1:${schedulerHttpPorts[i]}`,
          },
          `${id}-scheduler-${i}`,
        ),
      );
    });
    for (let i = 0; i < counts.agent; i++) await spawnAgent();

    if (opts.waitReady ?? true) {
      await waitFor(
        `${counts.agent} agent(s) in 'drover agent list --json'`,
        async () => {
          const dead = [...masters, ...schedulers, ...agents].filter((p) => !p.running);
          if (dead.length > 0) {
            throw new StopWaiting(`${dead.map((p) => p.name).join(", ")} exited during startup`);
          }
          const list = await cliJson<unknown>(["agent", "list", "--json"], { timeoutMs: 10_000 });
          return Array.isArray(list) && list.length >= counts.agent;
        },
        { timeoutMs: opts.readyTimeoutMs ?? 60_000, intervalMs: 500 },
      );
    }
    return cluster;
  } catch (err) {
    const detail = describe(20);
    await stop().catch(() => undefined);
    throw new Error(`starting cluster ${id} failed: ${(err as Error).message}\n${detail}`);
  }
}

/** Runs a test body; a failure carries the cluster processes' last log lines. */
/** The Marathon HTTP API base URL (`http://127.0.0.1:<port>`) of a scheduler started by startCluster. */
export function httpUrlOf(p: ServiceProcess): string | undefined {
  const listen = p.env.DROVER_SCHEDULER_HTTP_LISTEN;
  return p.kind === "scheduler" && listen ? `http://${listen}` : undefined;
}

/** The `GET /metrics` URL of a master or scheduler started by startCluster (undefined otherwise). */
export function metricsUrlOf(p: ServiceProcess): string | undefined {
  const listen = p.env[`DROVER_${p.kind.toUpperCase()}_METRICS_LISTEN`];
  return listen && !listen.endsWith(":0") ? `http://${listen}/metrics` : undefined;
}

export async function withClusterLogs(cluster: Cluster | undefined, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof Error && cluster) {
      err.message = `${err.message}\n\n=== cluster ${cluster.id} ===\n${cluster.describe(40)}`;
    }
    throw err;
  }
}
