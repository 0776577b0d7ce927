/**
 * Configuration of every Drover process: embedded defaults, overridden by a JSON config
 * file (`--config FILE` or DROVER_CONFIG) and then by DROVER_* environment variables.
 * Validated with zod: a bad value fails at start with the field that is wrong.
 */
import { readFileSync, statSync } from "node:fs";

/** The largest config file read. */
const MAX_CONFIG_BYTES = 1024 * 1024;

import { InvalidArgumentError, printable } from "@drover/common";
import { z } from "zod";

const address = z.string().regex(/^[^\s:]+:\d{1,5}$/, "must be host:port");
const addressList = z.array(address).min(1);

const common = {
  etcdEndpoints: z.array(z.string().url()).min(1).default(["http://127.0.0.1:2379"]),
  natsServers: z.array(z.string().min(1)).min(1).default(["nats://127.0.0.1:4222"]),
  /** Leader lease TTL in seconds (etcd leases are whole seconds). */
  leaderTtlSeconds: z.number().int().min(1).max(60).default(3),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info"),
  /** Deadline of every etcd call (ms): a store that does not answer is UNAVAILABLE after this. */
  storeTimeoutMs: z.number().int().min(100).max(60_000).default(3000),
};

/** "begin-end", both within 1..65535 and begin <= end. */
const portRange = z
  .string()
  .regex(/^\d{1,5}-\d{1,5}$/, "must be begin-end, e.g. 31000-32000")
  .refine(
    (r) => {
      const [b, e] = r.split("-").map(Number);
      return b !== undefined && e !== undefined && b >= 1 && e <= 65535 && b <= e;
    },
    { message: "must be within 1-65535 with begin <= end" },
  );

export const MasterConfigSchema = z.strictObject({
  ...common,
  listen: address.default("0.0.0.0:5050"),
  metricsListen: address.default("0.0.0.0:9105"),
  advertise: address.default("127.0.0.1:5050"),
  /** After becoming leader, wait this long for agents to re-register before offering their resources. */
  agentReregisterTimeoutSeconds: z.number().min(0).max(600).default(10),
  /**
   * Deprecated, ignored (still accepted so that older configs load): the tasks of an agent away are
   * TASK_UNREACHABLE from the heartbeat timeout until agentRemoveTimeoutSeconds, then TASK_LOST.
   */
  agentLostTimeoutSeconds: z.number().min(1).max(3600).default(30),
  /**
   * An agent not heard from for this long has its session closed and its active tasks marked
   * TASK_UNREACHABLE (a session that ended is waited for this long after it was last heard from).
   * Absent: max(5 × heartbeatIntervalMs, 10 s).
   */
  agentHeartbeatTimeoutSeconds: z.number().min(0.5).max(3600).optional(),
  /**
   * An agent gone for this long is removed (AgentRemoved), its tasks TASK_LOST: a failover no longer
   * waits for it, and frameworks replace its tasks whatever their unreachable strategy.
   */
  agentRemoveTimeoutSeconds: z
    .number()
    .min(1)
    .max(30 * 24 * 3600)
    .default(600),
  offerTimeoutSeconds: z.number().min(1).max(3600).default(30),
  allocationIntervalMs: z.number().int().min(50).max(60_000).default(1000),
  heartbeatIntervalMs: z.number().int().min(100).max(60_000).default(2000),
  /** Events older than this (and already published on NATS) are removed from the etcd log. */
  logRetentionSeconds: z
    .number()
    .min(1)
    .default(24 * 3600),
  /** How often log retention runs. */
  logRetentionIntervalSeconds: z
    .number()
    .min(1)
    .max(24 * 3600)
    .default(300),
  /** Terminal tasks stay listed this long, then are expunged. */
  terminalTaskRetentionSeconds: z.number().min(0).default(600),
  /** Offers smaller than this (an agent's leftovers) are not made. */
  minAllocatableCpus: z.number().min(0).default(0.01),
  minAllocatableMem: z.number().min(0).default(4),
  /** Role weights and quotas for the DRF allocator; roles not listed have weight 1 and no quota. */
  roles: z
    .array(
      z.strictObject({
        role: z.string().min(1),
        weight: z.number().positive().default(1),
        guarantee: z.strictObject({ cpus: z.number().min(0), mem: z.number().min(0) }).optional(),
        limit: z.strictObject({ cpus: z.number().min(0), mem: z.number().min(0) }).optional(),
      }),
    )
    .default([]),
});
export type MasterConfig = z.infer<typeof MasterConfigSchema>;

export const SchedulerConfigSchema = z.strictObject({
  ...common,
  listen: address.default("0.0.0.0:5060"),
  metricsListen: address.default("0.0.0.0:9106"),
  advertise: address.default("127.0.0.1:5060"),
  /** The Marathon-compatible HTTP API (/v2/apps, ...): every replica listens; followers forward to the leader. */
  httpListen: address.default("0.0.0.0:8080"),
  /**
   * The HTTP address the other replicas forward to when this one leads. Absent: the host of
   * `advertise` with the port of `httpListen`.
   */
  httpAdvertise: address.optional(),
  masters: addressList.default(["127.0.0.1:5050"]),
  frameworkName: z.string().min(1).default("drover-scheduler"),
  role: z.string().min(1).default("*"),
  failoverTimeoutSeconds: z
    .number()
    .min(0)
    .default(7 * 24 * 3600),
  /** Versions kept per app, the current one included; the oldest go first (Marathon's `--max_versions`). */
  maxAppVersions: z.number().int().min(1).max(10_000).default(50),
  /** Ended deployments kept: the newest this many, ended within deploymentsKeptHours (the others are removed). */
  deploymentsKept: z.number().int().min(0).max(100_000).default(100),
  deploymentsKeptHours: z
    .number()
    .min(0)
    .max(24 * 365)
    .default(24),
  /** Finished job runs kept per job, of each kind (successful, failed): Metronome's history. */
  jobHistoryKept: z.number().int().min(0).max(1000).default(10),
});
export type SchedulerConfig = z.infer<typeof SchedulerConfigSchema>;

export const AgentConfigSchema = z.strictObject({
  natsServers: common.natsServers,
  logLevel: common.logLevel,
  masters: addressList.default(["127.0.0.1:5050"]),
  metricsListen: address.default("0.0.0.0:9107"),
  workDir: z.string().min(1).default("/var/lib/drover/agent"),
  /** The image of a task that names none (a Marathon command-only app); built locally like the others. */
  defaultImage: z
    .string()
    .min(1)
    .regex(/^\S+$/, { error: "must not contain whitespace" })
    .default("drover/busybox:1"),
  /** Fixed agent id; by default one is generated once and kept in workDir/agent-id. */
  agentId: z
    .string()
    .regex(/^[a-zA-Z0-9._-]{1,64}$/)
    .optional(),
  hostname: z.string().min(1).optional(),
  /** Overrides of the detected resources. */
  cpus: z.number().positive().optional(),
  mem: z.number().positive().optional(),
  disk: z.number().min(0).default(10_240),
  /** Host ports this agent offers, as "begin-end" ranges. */
  ports: z.array(portRange).default(["31000-32000"]),
  attributes: z
    .record(
      z
        .string()
        .regex(/^[a-zA-Z0-9_.-]+$/)
        .refine((k) => !["__proto__", "constructor", "prototype"].includes(k), { message: "reserved name" }),
      z.string(),
    )
    .default({}),
  extraLabels: z
    .record(
      z
        .string()
        .refine((k) => !["__proto__", "constructor", "prototype"].includes(k), { message: "reserved name" }),
      z.string(),
    )
    .default({}),
  dockerSocket: z.string().default("/var/run/docker.sock"),
  /** Keep a task's sandbox (`<workDir>/sandboxes/drover-<taskId>`) when its container is removed. */
  keepSandboxes: z.boolean().default(false),
  /** Upper bound of one fetch URI's download, and of unpacking it. */
  fetchTimeoutSeconds: z.number().min(1).max(86_400).default(300),
  /** The largest file a task may fetch, MiB. */
  fetchMaxMib: z.number().min(1).default(1024),
  /** The fetch cache (`<workDir>/fetch-cache`) keeps at most this much, MiB; least recently used go first. */
  fetchCacheMib: z.number().min(0).default(2048),
});
export type AgentConfig = z.infer<typeof AgentConfigSchema>;

export const CliConfigSchema = z.object({
  masters: addressList.default(["127.0.0.1:5050"]),
  schedulers: addressList.default(["127.0.0.1:5060"]),
  /** The schedulers' HTTP API (Metronome's /v1/jobs: `drover job ...`); any replica forwards to the leader. */
  schedulersHttp: addressList.default(["127.0.0.1:8080"]),
  natsServers: common.natsServers,
  etcdEndpoints: common.etcdEndpoints,
  storeTimeoutMs: common.storeTimeoutMs,
});
export type CliConfig = z.infer<typeof CliConfigSchema>;

/** Environment variable → config key, and how to parse it. */
const ENV: Record<string, { key: string; kind: "list" | "number" | "string" | "map" | "json" }> = {
  DROVER_MASTER_ROLES: { key: "roles", kind: "json" },
  DROVER_MASTER_OFFER_TIMEOUT_SECONDS: { key: "offerTimeoutSeconds", kind: "number" },
  DROVER_MASTER_AGENT_REREGISTER_TIMEOUT_SECONDS: { key: "agentReregisterTimeoutSeconds", kind: "number" },
  DROVER_MASTER_AGENT_LOST_TIMEOUT_SECONDS: { key: "agentLostTimeoutSeconds", kind: "number" },
  DROVER_MASTER_AGENT_REMOVE_TIMEOUT_SECONDS: { key: "agentRemoveTimeoutSeconds", kind: "number" },
  DROVER_MASTER_AGENT_HEARTBEAT_TIMEOUT_SECONDS: { key: "agentHeartbeatTimeoutSeconds", kind: "number" },
  DROVER_MASTER_HEARTBEAT_INTERVAL_MS: { key: "heartbeatIntervalMs", kind: "number" },
  DROVER_MASTER_ALLOCATION_INTERVAL_MS: { key: "allocationIntervalMs", kind: "number" },
  DROVER_MASTER_TERMINAL_TASK_RETENTION_SECONDS: { key: "terminalTaskRetentionSeconds", kind: "number" },
  DROVER_MASTER_LOG_RETENTION_SECONDS: { key: "logRetentionSeconds", kind: "number" },
  DROVER_MASTER_LOG_RETENTION_INTERVAL_SECONDS: { key: "logRetentionIntervalSeconds", kind: "number" },
  DROVER_MASTER_MIN_ALLOCATABLE_CPUS: { key: "minAllocatableCpus", kind: "number" },
  DROVER_MASTER_MIN_ALLOCATABLE_MEM: { key: "minAllocatableMem", kind: "number" },
  DROVER_SCHEDULER_MAX_APP_VERSIONS: { key: "maxAppVersions", kind: "number" },
  DROVER_SCHEDULER_DEPLOYMENTS_KEPT: { key: "deploymentsKept", kind: "number" },
  DROVER_SCHEDULER_DEPLOYMENTS_KEPT_HOURS: { key: "deploymentsKeptHours", kind: "number" },
  DROVER_SCHEDULER_JOB_HISTORY_KEPT: { key: "jobHistoryKept", kind: "number" },
  DROVER_SCHEDULERS_HTTP: { key: "schedulersHttp", kind: "list" },
  DROVER_SCHEDULER_HTTP_LISTEN: { key: "httpListen", kind: "string" },
  DROVER_SCHEDULER_HTTP_ADVERTISE: { key: "httpAdvertise", kind: "string" },
  DROVER_ETCD_ENDPOINTS: { key: "etcdEndpoints", kind: "list" },
  DROVER_NATS_SERVERS: { key: "natsServers", kind: "list" },
  DROVER_LEADER_TTL_SECONDS: { key: "leaderTtlSeconds", kind: "number" },
  DROVER_STORE_TIMEOUT_MS: { key: "storeTimeoutMs", kind: "number" },
  DROVER_LOG_LEVEL: { key: "logLevel", kind: "string" },
  DROVER_MASTERS: { key: "masters", kind: "list" },
  DROVER_SCHEDULERS: { key: "schedulers", kind: "list" },
  DROVER_AGENT_WORK_DIR: { key: "workDir", kind: "string" },
  DROVER_AGENT_DEFAULT_IMAGE: { key: "defaultImage", kind: "string" },
  DROVER_AGENT_ID: { key: "agentId", kind: "string" },
  DROVER_AGENT_HOSTNAME: { key: "hostname", kind: "string" },
  DROVER_AGENT_CPUS: { key: "cpus", kind: "number" },
  DROVER_AGENT_MEM: { key: "mem", kind: "number" },
  DROVER_AGENT_DISK: { key: "disk", kind: "number" },
  DROVER_AGENT_PORTS: { key: "ports", kind: "list" },
  DROVER_AGENT_ATTRIBUTES: { key: "attributes", kind: "map" },
  DROVER_AGENT_EXTRA_LABELS: { key: "extraLabels", kind: "map" },
  DROVER_AGENT_RESOURCES_CPUS: { key: "cpus", kind: "number" },
  DROVER_DOCKER_SOCKET: { key: "dockerSocket", kind: "string" },
  DROVER_AGENT_KEEP_SANDBOXES: { key: "keepSandboxes", kind: "json" },
  DROVER_AGENT_FETCH_TIMEOUT_SECONDS: { key: "fetchTimeoutSeconds", kind: "number" },
  DROVER_AGENT_FETCH_MAX_MIB: { key: "fetchMaxMib", kind: "number" },
  DROVER_AGENT_FETCH_CACHE_MIB: { key: "fetchCacheMib", kind: "number" },
};

function envFor(
  prefix: string,
): Record<string, { key: string; kind: "list" | "number" | "string" | "map" | "json" }> {
  const map = { ...ENV };
  map[`DROVER_${prefix}_LISTEN`] = { key: "listen", kind: "string" };
  map[`DROVER_${prefix}_ADVERTISE`] = { key: "advertise", kind: "string" };
  map[`DROVER_${prefix}_METRICS_LISTEN`] = { key: "metricsListen", kind: "string" };
  return map;
}

function parseEnvValue(kind: "list" | "number" | "string" | "map" | "json", raw: string): unknown {
  switch (kind) {
    case "json":
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        return raw; // the schema reports the wrong type with the field's name
      }
    case "list":
      return raw
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
    case "number":
      return raw.trim() === "" ? raw : Number(raw);
    case "map": {
      // Own properties only (a key "__proto__" is a key, which the schema then refuses by name).
      const entries: [string, string][] = [];
      for (const part of raw.split(",")) {
        const p = part.trim();
        if (!p) continue;
        const i = p.search(/[:=]/);
        entries.push(i <= 0 ? [p, ""] : [p.slice(0, i), p.slice(i + 1)]);
      }
      return Object.fromEntries(entries);
    }
    default:
      return raw;
  }
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  argv?: string[];
}

function configFile(opts: LoadOptions): Record<string, unknown> {
  const argv = opts.argv ?? process.argv.slice(2);
  const env = opts.env ?? process.env;
  const i = argv.indexOf("--config");
  const path = i >= 0 ? argv[i + 1] : env.DROVER_CONFIG;
  if (!path) return {};
  let text: string;
  try {
    // A config is a small regular file: a device (/dev/zero) or a huge file is refused, not read.
    const st = statSync(path);
    if (!st.isFile()) throw new Error("not a regular file");
    if (st.size > MAX_CONFIG_BYTES) throw new Error(`${st.size} bytes; at most ${MAX_CONFIG_BYTES}`);
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new InvalidArgumentError([{ path: "config", message: `cannot read ${path}: ${String(err)}` }]);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new Error("not a JSON object");
    return parsed as Record<string, unknown>;
  } catch (err) {
    throw new InvalidArgumentError([
      { path: "config", message: `${path} is not valid JSON: ${String(err)}` },
    ]);
  }
}

function load<S extends z.ZodType>(schema: S, prefix: string, opts: LoadOptions): z.infer<S> {
  const env = opts.env ?? process.env;
  const raw: Record<string, unknown> = { ...configFile(opts) };
  const known = schema instanceof z.ZodObject ? Object.keys(schema.shape as object) : [];
  for (const [name, spec] of Object.entries(envFor(prefix))) {
    const v = env[name];
    if (v === undefined || !known.includes(spec.key)) continue;
    raw[spec.key] = parseEnvValue(spec.kind, v);
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    throw new InvalidArgumentError(
      result.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message })),
    );
  }
  return result.data;
}

export const loadMasterConfig = (opts: LoadOptions = {}): MasterConfig =>
  load(MasterConfigSchema, "MASTER", opts);
/** The HTTP address a scheduler replica advertises: `httpAdvertise`, else advertise's host with httpListen's port. */
export function schedulerHttpAdvertise(
  c: Pick<SchedulerConfig, "advertise" | "httpListen" | "httpAdvertise">,
): string {
  if (c.httpAdvertise) return c.httpAdvertise;
  const host = c.advertise.slice(0, c.advertise.lastIndexOf(":"));
  return `${host}:${c.httpListen.slice(c.httpListen.lastIndexOf(":") + 1)}`;
}

export const loadSchedulerConfig = (opts: LoadOptions = {}): SchedulerConfig =>
  load(SchedulerConfigSchema, "SCHEDULER", opts);
export const loadAgentConfig = (opts: LoadOptions = {}): AgentConfig =>
  load(AgentConfigSchema, "AGENT", opts);
export const loadCliConfig = (opts: LoadOptions = {}): CliConfig => load(CliConfigSchema, "CLI", opts);

/** Loads a service's configuration, or exits with status 2 and the wrong field (a bad config never starts). */
export function loadOrExit<T>(service: string, load: () => T): T {
  try {
    return load();
  } catch (err) {
    process.stderr.write(
      `drover ${service}: invalid configuration: ${printable(err instanceof Error ? err.message : String(err))}\n`,
    );
    process.exit(2);
  }
}
