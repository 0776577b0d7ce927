/**
 * Marathon's JSON shapes of Drover's state: AppInfo, Task, Deployment, QueueItem, DeploymentResult
 * (../shared/marathon/API.md). Pure functions over the leader's in-memory views (the app records,
 * the framework's task view, the deployment records): the one place where the HTTP API's JSON is
 * made. The field sets are Marathon's own: clients such as python3-marathon build objects from them
 * and refuse fields they do not know.
 */
import {
  type AppRecord,
  type AppSpec,
  appVersionOf,
  currentStep,
  type DeclinedFunnel,
  type DeploymentRecord,
  isActive,
  type JsonObject,
  marathonIpAddresses,
  stepsOf,
  toMarathonJson,
  type UnplacedReason,
  type Verdict,
} from "@drover/core";
import type { QueueEntry, TaskEntry, TaskFailure, UnusedOffer } from "../framework.js";
import type { PromMetricJson } from "./server.js";

/** What an AppInfo may embed (Marathon's `embed=apps.<x>` / `app.<x>`). */
export type AppEmbed = "tasks" | "counts" | "deployments" | "readiness" | "lastTaskFailure" | "taskStats";

/** What the views read besides the app: the leader's task view and the like. */
export interface ViewContext {
  nowMs: number;
  tasksOf(appId: string): Iterable<TaskEntry>;
  /** The app's running deployment id, if any. */
  deploymentOf(appId: string): string | undefined;
  lastFailure(appId: string): TaskFailure | undefined;
  /** An agent's hostname (undefined: not known to this leader yet). */
  hostOf(agentId: string): string | undefined;
}

export const iso = (ms: number): string => new Date(ms).toISOString();

/** The service ports of an app (Marathon's `servicePorts` of its tasks). */
export function servicePortsOf(spec: AppSpec): number[] {
  if (!spec.networks.some((n) => n.mode !== "host")) return (spec.portDefinitions ?? []).map((p) => p.port);
  return (spec.container?.portMappings ?? []).map((m) => m.servicePort);
}

/** One task as Marathon prints it (GET /v2/tasks, /v2/apps/{id}/tasks, embed=apps.tasks). */
export function taskJson(t: TaskEntry, spec: AppSpec | undefined, ctx: ViewContext): JsonObject {
  const version = t.appVersion;
  const out: JsonObject = {
    id: t.taskId,
    appId: t.appId,
    host: ctx.hostOf(t.agentId) ?? t.agentId,
    ports: t.ports ? [...t.ports] : [],
    servicePorts: spec ? servicePortsOf(spec) : [],
    ipAddresses: marathonIpAddresses(t.ipAddresses),
    slaveId: t.agentId,
    state: t.state,
    stagedAt: iso(t.createdAtMs),
  };
  if (t.runningSinceMs !== undefined) out.startedAt = iso(t.runningSinceMs);
  if (version !== undefined) out.version = version;
  if (t.health)
    out.healthCheckResults = [
      {
        alive: t.health.healthy,
        consecutiveFailures: t.health.consecutiveFailures,
        firstSuccess: null,
        lastFailure: t.health.lastFailureMs !== undefined ? iso(t.health.lastFailureMs) : null,
        lastSuccess: t.health.lastSuccessMs !== undefined ? iso(t.health.lastSuccessMs) : null,
        lastFailureCause: t.health.lastFailureCause ?? null,
        instanceId: t.taskId,
        taskId: t.taskId,
      },
    ];
  out.localVolumes = [];
  return out;
}

/** Marathon's counts of an app's tasks (tasksStaged, tasksRunning, tasksHealthy, tasksUnhealthy). */
export function countsOf(spec: AppSpec, tasks: Iterable<TaskEntry>): Record<string, number> {
  let staged = 0;
  let running = 0;
  let healthy = 0;
  let unhealthy = 0;
  const checked = spec.healthChecks.length > 0;
  for (const t of tasks) {
    if (!isActive(t.state)) continue;
    if (t.state === "TASK_RUNNING") running++;
    else if (t.state === "TASK_STAGING" || t.state === "TASK_STARTING") staged++;
    if (checked && t.health) {
      if (t.health.healthy) healthy++;
      else unhealthy++;
    }
  }
  return { tasksStaged: staged, tasksRunning: running, tasksHealthy: healthy, tasksUnhealthy: unhealthy };
}

/** Marathon's taskStats: counts and lifetimes of the tasks started after the last scaling, with the latest config, with an older one, and all. */
export function taskStatsOf(rec: AppRecord, tasks: TaskEntry[], nowMs: number): JsonObject {
  const v = appVersionOf(rec);
  const stats = (subset: TaskEntry[]): JsonObject | undefined => {
    if (subset.length === 0) return undefined;
    const c = countsOf(rec.spec, subset);
    const lives = subset
      .filter((t) => t.runningSinceMs !== undefined)
      .map((t) => (nowMs - (t.runningSinceMs ?? nowMs)) / 1000)
      .sort((a, b) => a - b);
    const lifeTime =
      lives.length > 0
        ? {
            averageSeconds: lives.reduce((a, b) => a + b, 0) / lives.length,
            medianSeconds: lives[Math.floor(lives.length / 2)] ?? 0,
          }
        : undefined;
    return {
      stats: {
        counts: {
          staged: c.tasksStaged,
          running: c.tasksRunning,
          healthy: c.tasksHealthy,
          unhealthy: c.tasksUnhealthy,
        },
        ...(lifeTime ? { lifeTime } : {}),
      },
    };
  };
  const scaledAt = Date.parse(v.versionInfo.lastScalingAt);
  const latest = v.versionInfo.lastConfigChangeAt;
  const out: JsonObject = {};
  const add = (key: string, s: JsonObject | undefined) => {
    if (s) out[key] = s;
  };
  add("startedAfterLastScaling", stats(tasks.filter((t) => t.createdAtMs >= scaledAt)));
  add("withLatestConfig", stats(tasks.filter((t) => t.appVersion !== undefined && t.appVersion >= latest)));
  add("withOutdatedConfig", stats(tasks.filter((t) => t.appVersion === undefined || t.appVersion < latest)));
  add("totalSummary", stats(tasks));
  return out;
}

/** Marathon's lastTaskFailure of an app. */
export function taskFailureJson(appId: string, f: TaskFailure, ctx: ViewContext): JsonObject {
  return {
    appId,
    host: ctx.hostOf(f.agentId) ?? f.agentId,
    message: f.message,
    state: f.state,
    taskId: f.taskId,
    slaveId: f.agentId,
    timestamp: iso(f.timestampMs),
    ...(f.appVersion ? { version: f.appVersion } : {}),
  };
}

/**
 * An AppInfo: the definition as toMarathonJson prints it, then what `embed` asks for (counts and
 * deployments Marathon always adds to a listing; GET /v2/apps/{id} adds tasks and lastTaskFailure).
 */
export function appInfoJson(rec: AppRecord, embed: ReadonlySet<AppEmbed>, ctx: ViewContext): JsonObject {
  const spec = rec.spec;
  const out = toMarathonJson(spec, appVersionOf(rec));
  const tasks =
    embed.has("tasks") || embed.has("counts") || embed.has("taskStats") || embed.has("readiness")
      ? [...ctx.tasksOf(spec.id)].filter((t) => isActive(t.state))
      : [];
  if (embed.has("counts")) Object.assign(out, countsOf(spec, tasks));
  if (embed.has("deployments")) {
    const d = ctx.deploymentOf(spec.id);
    out.deployments = d ? [{ id: d }] : [];
  }
  if (embed.has("readiness"))
    out.readinessCheckResults = tasks.flatMap((t) =>
      (t.readiness ?? []).map((r) => ({
        name: r.name,
        taskId: t.taskId,
        ready: r.ready,
        lastResponse: r.lastResponse ?? null,
      })),
    );
  if (embed.has("tasks")) out.tasks = tasks.map((t) => taskJson(t, spec, ctx));
  if (embed.has("lastTaskFailure")) {
    const f = ctx.lastFailure(spec.id);
    if (f) out.lastTaskFailure = taskFailureJson(spec.id, f, ctx);
  }
  if (embed.has("taskStats")) out.taskStats = taskStatsOf(rec, tasks, ctx.nowMs);
  return out;
}

/** Marathon's DeploymentResult of a deployable call. */
export function deploymentResultJson(deploymentId: string, version: string): JsonObject {
  return { version, deploymentId };
}

/**
 * A deployment as GET /v2/deployments prints it: its plan's steps (stepsOf: the record's steps, or one
 * step of RestartApplication for a record without them), `currentStep` 1-based while it runs, the
 * current step's actions. The one mapping from a deployment record to Marathon's plan.
 */
export function deploymentJson(d: DeploymentRecord): JsonObject {
  const steps = stepsOf(d).map((s) => ({
    actions: s.actions.map((a) => ({ action: a.action, app: a.appId })),
  }));
  const running = d.state === "running";
  const index = running ? Math.min(currentStep(d), Math.max(0, steps.length - 1)) : steps.length - 1;
  const affected = [
    ...new Set([...d.apps.map((a) => a.appId), ...steps.flatMap((s) => s.actions.map((a) => a.app))]),
  ];
  return {
    id: d.id,
    version: iso(d.createdAtMs),
    affectedApps: affected.sort(),
    affectedPods: [],
    steps,
    currentActions: running
      ? (steps[index]?.actions ?? []).map((a) => ({ ...a, readinessCheckResults: [] }))
      : [],
    currentStep: index + 1,
    totalSteps: steps.length,
  };
}

/** Marathon's name of a reason an offer was not used (NoOfferMatchReason). */
export function marathonReason(r: UnplacedReason | Verdict): string | undefined {
  switch (r.kind) {
    case "insufficient":
      return {
        cpus: "InsufficientCpus",
        mem: "InsufficientMemory",
        disk: "InsufficientDisk",
        ports: "InsufficientPorts",
      }[r.resource];
    case "port_taken":
      return "InsufficientPorts";
    case "constraint":
      return "UnfulfilledConstraint";
    default:
      return undefined;
  }
}

/** Marathon's reasons, in its order (rejectSummaryLastOffers lists every one, declined 0 when none). */
const MARATHON_REASONS = [
  "UnfulfilledRole",
  "UnfulfilledConstraint",
  "NoCorrespondingReservationFound",
  "AgentMaintenance",
  "InsufficientCpus",
  "InsufficientMemory",
  "InsufficientDisk",
  "InsufficientGpus",
  "InsufficientPorts",
  "DeclinedScarceResources",
];

/** Marathon's funnel reason of each step of Drover's (DeclinedFunnel). */
const FUNNEL_REASON: Record<keyof DeclinedFunnel, string> = {
  constraint: "UnfulfilledConstraint",
  cpus: "InsufficientCpus",
  mem: "InsufficientMemory",
  disk: "InsufficientDisk",
  ports: "InsufficientPorts",
};

/**
 * Marathon's reject summary of `offers` offers: per reason in its funnel order, the offers that
 * reached that check (`processed`) and those declined there (`declined`, each offer at its first
 * reason), so `processed` of one reason is the one before less what that one declined.
 */
export function rejectSummary(offers: number, declined: DeclinedFunnel | undefined): JsonObject[] {
  const byReason = new Map<string, number>();
  for (const [step, reason] of Object.entries(FUNNEL_REASON))
    byReason.set(reason, declined?.[step as keyof DeclinedFunnel] ?? 0);
  let processed = offers;
  return MARATHON_REASONS.map((reason) => {
    const d = Math.min(byReason.get(reason) ?? 0, processed);
    const row = { reason, declined: d, processed };
    processed -= d;
    return row;
  });
}

/** An offer as Marathon's lastUnusedOffers prints it (its RAML Offer), with the reasons it was not used. */
export function unusedOfferJson(u: UnusedOffer): JsonObject {
  const { offer } = u;
  const r = offer.resources;
  const reasons = [...new Set(u.verdicts.map(marathonReason).filter((x): x is string => x !== undefined))];
  return {
    offer: {
      id: offer.offerId,
      agentId: offer.agentId,
      hostname: offer.hostname,
      resources: [
        { name: "cpus", role: "*", scalar: r.cpus },
        { name: "mem", role: "*", scalar: r.mem },
        { name: "disk", role: "*", scalar: r.disk },
        ...(r.ports.length > 0
          ? [{ name: "ports", role: "*", ranges: r.ports.map((p) => ({ begin: p.begin, end: p.end })) }]
          : []),
      ],
      attributes: Object.entries(offer.attributes)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([name, text]) => ({ name, text })),
    },
    timestamp: iso(u.atMs),
    reason: reasons.sort((a, b) => MARATHON_REASONS.indexOf(a) - MARATHON_REASONS.indexOf(b)),
  };
}

/**
 * One queue entry as GET /v2/queue prints it; `app` is the AppInfo of the waiting app.
 * `rejectSummaryLastOffers` is the funnel of the last offers, `rejectSummaryLaunchAttempt` that of
 * every offer since the app began to wait, as `processedOffersCount` and `unusedOffersCount` are;
 * `lastUnusedOffers` (embed) lists the last offers it could not use with their reasons.
 */
export function queueItemJson(
  q: QueueEntry,
  app: JsonObject,
  nowMs: number,
  unused?: readonly UnusedOffer[],
): JsonObject {
  const timeLeft = q.backoffUntilMs > nowMs ? (q.backoffUntilMs - nowMs) / 1000 : 0;
  const a = q.attempt;
  return {
    app,
    count: q.waiting,
    role: "*",
    delay: { timeLeftSeconds: Math.ceil(timeLeft), overdue: timeLeft === 0 },
    since: iso(a?.startedMs ?? nowMs),
    processedOffersSummary: {
      processedOffersCount: a?.processed ?? 0,
      unusedOffersCount: a?.unused ?? 0,
      ...(a && a.unused > 0 ? { lastUnusedOfferAt: iso(q.sinceMs) } : {}),
      ...(a && a.lastUsedMs > 0 ? { lastUsedOfferAt: iso(a.lastUsedMs) } : {}),
      rejectSummaryLastOffers: rejectSummary(q.offersSeen, q.declined),
      rejectSummaryLaunchAttempt: rejectSummary(a?.processed ?? 0, a?.declined),
    },
    ...(unused ? { lastUnusedOffers: unused.map(unusedOfferJson) } : {}),
  };
}

/**
 * Marathon's GET /metrics (its Dropwizard JSON: `version`, `gauges`, `counters`, `histograms`,
 * `meters`, `timers`) from prom-client's metrics: a counter is `{count}`, a gauge `{value}`, a
 * histogram or summary `{count, sum, mean}` (no quantiles: Prometheus keeps buckets). A labelled
 * metric is keyed `name{label="value",…}`, the registry's default label (`service`, the same on every
 * metric) left out. Meters and timers: none.
 */
export function marathonMetricsJson(
  metrics: readonly PromMetricJson[],
  omitLabels: readonly string[] = ["service"],
): JsonObject {
  const key = (name: string, labels: Partial<Record<string, string | number>>) => {
    const l = Object.entries(labels)
      .filter(([k, v]) => v !== undefined && !omitLabels.includes(k))
      .map(([k, v]) => `${k}="${v}"`)
      .join(",");
    return l ? `${name}{${l}}` : name;
  };
  const gauges: JsonObject = {};
  const counters: JsonObject = {};
  const histograms: JsonObject = {};
  for (const m of metrics) {
    const type = String(m.type);
    if (type === "counter") for (const v of m.values) counters[key(m.name, v.labels)] = { count: v.value };
    else if (type === "gauge") for (const v of m.values) gauges[key(m.name, v.labels)] = { value: v.value };
    else if (type === "histogram" || type === "summary") {
      const byLabels = new Map<string, { count: number; sum: number }>();
      for (const v of m.values) {
        const { le: _le, quantile: _q, ...labels } = v.labels;
        const k = key(m.name, labels);
        const h = byLabels.get(k) ?? { count: 0, sum: 0 };
        if (v.metricName?.endsWith("_count")) h.count = v.value;
        else if (v.metricName?.endsWith("_sum")) h.sum = v.value;
        byLabels.set(k, h);
      }
      for (const [k, h] of byLabels)
        histograms[k] = { count: h.count, sum: h.sum, mean: h.count > 0 ? h.sum / h.count : 0 };
    }
  }
  return { version: "4.0.0", gauges, counters, histograms, meters: {}, timers: {} };
}
