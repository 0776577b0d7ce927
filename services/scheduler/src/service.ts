/** gRPC surface of the scheduler. Followers answer UNAVAILABLE with the leader's address. */

import { InvalidArgumentError, type Logger, NotLeaderError, requestIdOf, unaryHandler } from "@drover/common";
import {
  type AppRecord,
  appVersionOf,
  checkAppId,
  formatReason,
  hostPortsWanted,
  toMarathonJson,
  type UnplacedReason,
} from "@drover/core";
import type { App, SchedulerServer, WaitingReason } from "@drover/proto";
import { AppStore } from "./apps.js";
import type { FrameworkDriver } from "./framework.js";

export interface SchedulerLeader {
  apps: AppStore;
  framework: FrameworkDriver;
  changed(): void;
}

export interface SchedulerRef {
  current(): SchedulerLeader | undefined;
  leaderAddress(): Promise<string | undefined>;
  /** This replica's advertised address. */
  self: string;
}

function toApp(l: SchedulerLeader, r: AppRecord, version: number): App {
  const s = r.spec;
  const c = l.framework.counts(s.id);
  const versioned = appVersionOf(r);
  return {
    id: s.id,
    image: s.container?.docker?.image ?? "",
    cmd: s.cmd ?? (s.args ?? []).join(" "),
    instances: s.instances,
    cpus: s.cpus,
    mem: s.mem,
    env: Object.fromEntries(
      Object.entries(s.env).filter((e): e is [string, string] => typeof e[1] === "string"),
    ),
    labels: { ...s.labels },
    version,
    tasksRunning: c.running,
    tasksStaged: c.staged,
    backoffUntilMs: l.framework.backoffUntil(s.id),
    // The definition in Marathon's shape, every default filled in, with its version (`app show --json`).
    definitionJson: JSON.stringify(toMarathonJson(s, versioned)),
    ports: hostPortsWanted(s).map((p) => p ?? 0),
    appVersion: versioned.version,
    lastScalingAt: versioned.versionInfo.lastScalingAt,
    lastConfigChangeAt: versioned.versionInfo.lastConfigChangeAt,
  };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** Tasks per ListTasks page at most (as the master's). */
const MAX_TASK_PAGE = 10_000;

/** A reason as the API and the CLI show it ("insufficient mem on 12 agents", "port 80 taken on 3 agents"). */
export function reasonToWire(r: UnplacedReason): WaitingReason {
  switch (r.kind) {
    case "insufficient":
      return {
        kind: `insufficient_${r.resource}`,
        agents: r.agents,
        port: 0,
        text: `insufficient ${r.resource} on ${plural(r.agents, "agent")}`,
      };
    case "port_taken":
      return {
        kind: "port_taken",
        agents: r.agents,
        port: r.port,
        text: `port ${r.port} taken on ${plural(r.agents, "agent")}`,
      };
    case "no_offers":
      return { kind: "no_offers", agents: 0, port: 0, text: "no offers received yet" };
    case "constraint":
      return { kind: "constraint", agents: r.agents, port: 0, text: formatReason(r) };
    default:
      return { kind: "unknown", agents: 0, port: 0, text: JSON.stringify(r) };
  }
}

export function schedulerService(ref: SchedulerRef, log: Logger): SchedulerServer {
  const leader = async (): Promise<SchedulerLeader> => {
    const l = ref.current();
    if (l) return l;
    // Elected but still starting: no hint to itself (callers back off instead of retrying at once).
    const address = await ref.leaderAddress();
    throw new NotLeaderError(address === ref.self ? undefined : address);
  };
  /**
   * An app id in a request, made absolute (`web` is `/web`): refused by its field before any lookup
   * (NOT_FOUND is for valid ids).
   */
  const requireId = (id: string, path = "id"): string => {
    if (!id) throw new InvalidArgumentError([{ path, message: "required" }]);
    const v = checkAppId(id);
    if (!v.ok) throw new InvalidArgumentError([{ path, message: v.message }]);
    return v.id;
  };
  return {
    createApp: unaryHandler(log, "CreateApp", async (req, call) => {
      const spec = AppStore.parse(req.appJson);
      const l = await leader();
      const rec = await l.apps.create(spec, requestIdOf(call));
      l.changed();
      const { version } = l.apps.get(spec.id);
      return { app: rec ? toApp(l, rec, version) : undefined };
    }),
    getApp: unaryHandler(log, "GetApp", async (req) => {
      const id = requireId(req.id);
      const l = await leader();
      const { state, version } = l.apps.get(id);
      return { app: toApp(l, state, version) };
    }),
    listApps: unaryHandler(log, "ListApps", async () => {
      const l = await leader();
      return {
        apps: [...l.apps.records().entries()]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([id, r]) => toApp(l, r, l.apps.get(id).version)),
      };
    }),
    updateApp: unaryHandler(log, "UpdateApp", async (req) => {
      const id = requireId(req.id);
      const spec = AppStore.parse(req.appJson);
      const l = await leader();
      const rec = await l.apps.update(id, spec);
      l.changed();
      return { app: rec ? toApp(l, rec, l.apps.get(id).version) : undefined };
    }),
    scaleApp: unaryHandler(log, "ScaleApp", async (req) => {
      const id = requireId(req.id);
      const l = await leader();
      const rec = await l.apps.scale(id, req.instances);
      l.changed();
      return { app: rec ? toApp(l, rec, l.apps.get(id).version) : undefined };
    }),
    deleteApp: unaryHandler(log, "DeleteApp", async (req) => {
      const id = requireId(req.id);
      const l = await leader();
      await l.apps.remove(id);
      l.changed();
      return {};
    }),
    listAppVersions: unaryHandler(log, "ListAppVersions", async (req) => {
      const id = requireId(req.appId, "appId");
      const l = await leader();
      return { versions: await l.apps.versions(id) };
    }),
    getAppVersion: unaryHandler(log, "GetAppVersion", async (req) => {
      const id = requireId(req.appId, "appId");
      if (!req.version) throw new InvalidArgumentError([{ path: "version", message: "required" }]);
      const l = await leader();
      const entry = await l.apps.version(id, req.version);
      return { definitionJson: JSON.stringify(toMarathonJson(entry.spec, entry)) };
    }),
    getQueue: unaryHandler(log, "GetQueue", async (req) => {
      const appId = req.appId ? requireId(req.appId, "appId") : "";
      const l = await leader();
      if (appId) l.apps.get(appId);
      const apps = l.framework
        .queue()
        .filter((q) => !appId || q.appId === appId)
        .map((q) => ({
          appId: q.appId,
          waiting: q.waiting,
          reasons: [
            ...(q.backoffUntilMs > 0
              ? [
                  {
                    kind: "backoff",
                    agents: 0,
                    port: 0,
                    text: `crash-loop backoff until ${new Date(q.backoffUntilMs).toISOString()}`,
                  },
                ]
              : []),
            ...(q.launchFailure
              ? [
                  {
                    kind: "launch_failed",
                    agents: 0,
                    port: 0,
                    text: `the master failed the last launch (${q.launchFailure.attempts} in a row): ${q.launchFailure.message}; next try at ${new Date(q.launchFailure.retryAtMs).toISOString()}`,
                  },
                ]
              : []),
            ...q.reasons.map(reasonToWire),
          ],
          sinceMs: q.sinceMs,
          backoffUntilMs: q.backoffUntilMs,
          offersSeen: q.offersSeen,
        }));
      return { apps };
    }),
    listTasks: unaryHandler(log, "ListTasks", async (req) => {
      const appId = req.appId ? requireId(req.appId, "appId") : "";
      const l = await leader();
      if (req.pageSize > MAX_TASK_PAGE)
        throw new InvalidArgumentError([{ path: "pageSize", message: `at most ${MAX_TASK_PAGE}` }]);
      return l.framework.listTasks(appId, req.includeTerminal, {
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
    }),
  };
}
