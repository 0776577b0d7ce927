/**
 * drover: the command line of Drover. Tables for people, --json for scripts; an error is
 * one line on stderr (naming the field when the input is wrong) and a non-zero exit.
 */
import { readFileSync } from "node:fs";
import { connectBus, eventStreamBounds, followEventMessages, followEvents } from "@drover/bus";
import { createLogger, errorMessage, InvalidArgumentError, LeaderClient, printable } from "@drover/common";
import { type CliConfig, loadCliConfig } from "@drover/config";
import { formatIssues, MarathonEventMapper, parseAppSpecJson } from "@drover/core";
import {
  type App,
  fromWireState,
  type ListAgentsRequest,
  type ListAgentsResponse,
  MasterClient,
  SchedulerClient,
  type Task,
  taskStateToJSON,
} from "@drover/proto";
import { connectEtcd, EventStore, verifyLog } from "@drover/store";
import { Metadata } from "@grpc/grpc-js";
import { deploymentJson, deploymentTable, deploymentText, follow } from "./deployments.js";
import { GROUP_USAGE, groupCommand } from "./groups.js";
import { healthColumn, healthCounts, taskHealthJson } from "./health.js";
import { JOB_USAGE, JobsApi, jobCommand } from "./jobs.js";
import { ago, table } from "./table.js";

class UsageError extends Error {}

const USAGE = `usage: drover <command> [--json]

  app add FILE.json          create an app from its JSON definition
  app update ID FILE.json [--force] [--detach] [--canary N]
                             replace an app's definition; a config change is deployed (a rolling
                             upgrade), followed live until it ends (exit 1 unless it succeeded);
                             --canary N (a Drover extension): N new instances next to the old ones
                             until deployment promote or cancel (returns at once)
  app restart ID [--force] [--detach]
                             replace every instance under the app's upgradeStrategy, followed live
  app list                   list apps
  app show ID [--version V]  show one app (as of version V)
  app versions ID            an app's versions, newest first
  app scale ID N             set the instance count
  app remove ID              delete an app (its tasks are killed)
  app why ID                 why an app's instances are waiting (from the last offers seen)
  app queue                  apps with instances waiting to be placed, and why
  deployment list [--all]    running deployments (--all: ended ones too)
  deployment show ID         a deployment: apps, state, counts, what it waits for
  deployment cancel ID [--force]
                             roll its apps back to their previous version (--force: just stop it)
  deployment promote ID [--detach]
                             a canary deployment goes on with the rolling upgrade, followed live
${GROUP_USAGE}
${JOB_USAGE}
  framework list             frameworks, their roles and dominant shares
  task list [--app ID] [--all]   list tasks (--all includes finished ones)
  agent list                 list agents
  events [--from-start] [--marathon]
                             follow the cluster's events live (--marathon: as Marathon's /v2/events
                             sends them, one JSON per line with --json)
  admin verify-log           replay the event log and compare with the stored projections

environment: DROVER_SCHEDULERS, DROVER_SCHEDULERS_HTTP, DROVER_MASTERS, DROVER_NATS_SERVERS, DROVER_ETCD_ENDPOINTS`;

function flag(args: string[], name: string): boolean {
  const i = args.indexOf(name);
  if (i < 0) return false;
  args.splice(i, 1);
  return true;
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined) throw new UsageError(`${name} needs a value`);
  args.splice(i, 2);
  return v;
}

function out(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write(`${json ? JSON.stringify(value, null, 2) : text()}\n`);
}

function readAppFile(file: string | undefined): string {
  if (!file) throw new UsageError("missing FILE.json");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`cannot read ${file}: ${errorMessage(err)}`);
  }
  const v = parseAppSpecJson(text);
  if (!v.ok) throw new InvalidArgumentError(v.issues);
  return text;
}

function appRow(a: App): string[] {
  return [
    a.id,
    a.image,
    `${a.tasksRunning}/${a.instances}`,
    String(a.tasksStaged),
    String(a.cpus),
    String(a.mem),
    a.backoffUntilMs ? `until ${new Date(a.backoffUntilMs).toISOString()}` : "-",
  ];
}

function taskJson(t: Task) {
  const s = t.status;
  return {
    taskId: t.info?.taskId,
    appId: t.info?.appId,
    agentId: t.info?.agentId,
    state: s ? taskStateToJSON(s.state) : "UNKNOWN",
    message: s?.message ?? "",
    exitCode: s?.exitCode,
    image: t.info?.container?.image,
    cpus: t.info?.resources?.cpus,
    ports: (t.info?.resources?.ports ?? []).flatMap((r) =>
      Array.from({ length: Math.max(0, r.end - r.begin + 1) }, (_, i) => r.begin + i),
    ),
    mem: t.info?.resources?.mem,
    appVersion: t.info?.run?.appVersion || undefined,
    createdAtMs: t.createdAtMs,
    updatedAtMs: t.updatedAtMs,
    ...taskHealthJson(t),
  };
}

async function main(argv: string[], config: CliConfig): Promise<void> {
  const args = [...argv];
  const json = flag(args, "--json");
  const [group, cmd, ...rest] = args;
  const schedulers = () => new LeaderClient(SchedulerClient, config.schedulers);
  const md = () => new Metadata();

  if (group === "app") {
    const s = schedulers();
    try {
      switch (cmd) {
        case "add": {
          const text = readAppFile(rest[0]);
          const res = await s.call((c) => c.createApp.bind(c), { appJson: text });
          out(json, res.app, () =>
            res.deploymentId
              ? `app ${res.app?.id} created; deployment ${res.deploymentId}`
              : `app ${res.app?.id} created`,
          );
          return;
        }
        case "update":
        case "restart": {
          const force = flag(rest, "--force");
          const canary = option(rest, "--canary");
          const canaryInstances = canary === undefined ? 0 : Number(canary);
          if (
            canary !== undefined &&
            (cmd !== "update" || !Number.isInteger(canaryInstances) || canaryInstances < 1)
          )
            throw new UsageError("--canary needs a whole number of instances from 1 (app update only)");
          // A canary waits for a person (promote or cancel): nothing to follow to its end.
          const detach = flag(rest, "--detach") || canaryInstances > 0;
          const id = rest[0];
          if (!id) throw new UsageError("missing ID");
          const res =
            cmd === "update"
              ? await s.call((c) => c.updateApp.bind(c), {
                  id,
                  appJson: readAppFile(rest[1]),
                  force,
                  canaryInstances,
                })
              : await s.call((c) => c.restartApp.bind(c), { id, force });
          const what = cmd === "update" ? "updated" : "restarted";
          if (!res.deploymentId || detach) {
            out(json, { ...res.app, deploymentId: res.deploymentId || undefined }, () =>
              res.deploymentId
                ? `app ${id} ${what}; deployment ${res.deploymentId}`
                : `app ${id} ${what} (nothing to deploy)`,
            );
            return;
          }
          if (!json) process.stdout.write(`app ${id} ${what}; deployment ${res.deploymentId}\n`);
          const d = await follow(s, res.deploymentId, json ? process.stderr : process.stdout);
          if (json) out(true, deploymentJson(d), () => "");
          if (d.state !== "succeeded") process.exitCode = 1;
          return;
        }
        case "list": {
          const res = await s.call((c) => c.listApps.bind(c), {});
          out(json, res.apps, () =>
            table(["ID", "IMAGE", "RUNNING", "STAGED", "CPUS", "MEM", "BACKOFF"], res.apps.map(appRow)),
          );
          return;
        }
        case "show": {
          const version = option(rest, "--version");
          const id = rest[0];
          if (!id) throw new UsageError("missing ID");
          if (version !== undefined) {
            // The definition as of that version, in Marathon's shape (GET /v2/apps/{id}/versions/{v}).
            const res = await s.call((c) => c.getAppVersion.bind(c), { appId: id, version });
            const shown = JSON.parse(res.definitionJson || "{}") as unknown;
            out(json, shown, () => JSON.stringify(shown, null, 2));
            return;
          }
          const res = await s.call((c) => c.getApp.bind(c), { id });
          // Marathon's shape (every default filled in) with the counts of Marathon's AppInfo.
          const a = res.app;
          const shown = a
            ? {
                ...(JSON.parse(a.definitionJson || "{}") as Record<string, unknown>),
                tasksRunning: a.tasksRunning,
                tasksStaged: a.tasksStaged,
                // Marathon's counts of tasks whose health checks pass / fail.
                ...(await healthCounts((pageToken) =>
                  s.call((c) => c.listTasks.bind(c), {
                    appId: id,
                    includeTerminal: false,
                    pageSize: 5000,
                    pageToken,
                  }),
                )),
              }
            : undefined;
          out(json, shown, () => JSON.stringify(shown, null, 2));
          return;
        }
        case "versions": {
          const id = rest[0];
          if (!id) throw new UsageError("missing ID");
          const res = await s.call((c) => c.listAppVersions.bind(c), { appId: id });
          out(json, res.versions, () =>
            table(
              ["VERSION"],
              res.versions.map((v, i) => [i === 0 ? `${v}  (current)` : v]),
            ),
          );
          return;
        }
        case "scale": {
          const [id, n] = rest;
          if (!id || n === undefined) throw new UsageError("usage: drover app scale ID N");
          if (!/^-?\d+$/.test(n))
            throw new InvalidArgumentError([
              { path: "instances", message: `must be an integer, got "${n}"` },
            ]);
          const res = await s.call((c) => c.scaleApp.bind(c), { id, instances: Number(n) });
          out(json, res.app, () => `app ${id} scaled to ${n}`);
          return;
        }
        case "why":
        case "queue": {
          const id = cmd === "why" ? rest[0] : "";
          if (cmd === "why" && !id) throw new UsageError("usage: drover app why ID");
          const res = await s.call((c) => c.getQueue.bind(c), { appId: id ?? "" });
          if (cmd === "why") {
            const q = res.apps[0];
            out(json, q ?? { appId: id, waiting: 0, reasons: [] }, () =>
              q
                ? [
                    `app ${id}: ${q.waiting} instance(s) waiting${q.sinceMs ? ` (offers seen: ${q.offersSeen}, ${ago(q.sinceMs)} ago)` : ""}`,
                    ...q.reasons.map((r) => `  - ${r.text}`),
                  ].join("\n")
                : `app ${id}: nothing is waiting`,
            );
          } else {
            out(json, res.apps, () =>
              table(
                ["APP", "WAITING", "SINCE", "WHY"],
                res.apps.map((q) => [
                  q.appId,
                  String(q.waiting),
                  ago(q.sinceMs),
                  q.reasons.map((r) => r.text).join("; "),
                ]),
              ),
            );
          }
          return;
        }
        case "remove": {
          const id = rest[0];
          if (!id) throw new UsageError("missing ID");
          await s.call((c) => c.deleteApp.bind(c), { id });
          out(json, { id, removed: true }, () => `app ${id} removed`);
          return;
        }
        default:
          throw new UsageError(`unknown app command ${cmd ?? ""}`);
      }
    } finally {
      s.close();
    }
  }

  if (group === "deployment") {
    const s = schedulers();
    try {
      switch (cmd) {
        case "list": {
          const all = flag(rest, "--all");
          const res = await s.call((c) => c.listDeployments.bind(c), { includeEnded: all });
          out(json, res.deployments.map(deploymentJson), () => deploymentTable(res.deployments));
          return;
        }
        case "show": {
          const id = rest[0];
          if (!id) throw new UsageError("missing ID");
          const res = await s.call((c) => c.getDeployment.bind(c), { id });
          const d = res.deployment;
          if (!d) throw new Error(`deployment ${id}: empty answer`);
          out(json, deploymentJson(d), () => deploymentText(d));
          return;
        }
        case "cancel": {
          const force = flag(rest, "--force");
          const id = rest[0];
          if (!id) throw new UsageError("missing ID");
          const res = await s.call((c) => c.cancelDeployment.bind(c), { id, force });
          out(
            json,
            {
              ...(res.deployment ? deploymentJson(res.deployment) : {}),
              rollbackId: res.rollbackId || undefined,
            },
            () =>
              res.rollbackId
                ? `deployment ${id} cancelled; rolling back with deployment ${res.rollbackId}`
                : `deployment ${id} cancelled${force ? " (forced: instances of both versions may stay)" : ""}`,
          );
          return;
        }
        case "promote": {
          const detach = flag(rest, "--detach");
          const id = rest[0];
          if (!id) throw new UsageError("missing ID");
          const res = await s.call((c) => c.promoteDeployment.bind(c), { id });
          if (detach || !res.deployment) {
            out(
              json,
              res.deployment ? deploymentJson(res.deployment) : {},
              () => `deployment ${id} promoted`,
            );
            return;
          }
          if (!json) process.stdout.write(`deployment ${id} promoted\n`);
          const d = await follow(s, id, json ? process.stderr : process.stdout);
          if (json) out(true, deploymentJson(d), () => "");
          if (d.state !== "succeeded") process.exitCode = 1;
          return;
        }
        default:
          throw new UsageError(`unknown deployment command ${cmd ?? ""}`);
      }
    } finally {
      s.close();
    }
  }

  if (group === "group") {
    const s = schedulers();
    try {
      await groupCommand(s, cmd, rest, {
        out: (value, text) => out(json, value, text),
        usage: (message) => new UsageError(message),
        follow: async (id) =>
          (await follow(s, id, json ? process.stderr : process.stdout)).state === "succeeded",
      });
    } finally {
      s.close();
    }
    return;
  }

  if (group === "job") {
    process.exitCode = await jobCommand(new JobsApi(config.schedulersHttp), cmd, rest, {
      out: (value, text) => out(json, value, text),
      usage: (message) => new UsageError(message),
      progress: (line) => (json ? process.stderr : process.stdout).write(`${line}\n`),
    });
    return;
  }

  if (group === "task" && cmd === "list") {
    const appId = option(rest, "--app") ?? "";
    const all = flag(rest, "--all");
    const s = schedulers();
    try {
      // A page at a time: one answer of every task can exceed the message limit at fleet size.
      const res = { tasks: [] as Task[] };
      let pageToken = "";
      do {
        const page = await s.call((c) => c.listTasks.bind(c), {
          appId,
          includeTerminal: all,
          pageSize: 5000,
          pageToken,
        });
        for (const t of page.tasks) res.tasks.push(t);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      const tasks = res.tasks.map(taskJson);
      out(json, tasks, () =>
        table(
          ["TASK", "APP", "VERSION", "AGENT", "STATE", "HEALTH", "EXIT", "AGE", "MESSAGE"],
          res.tasks.map((t) => [
            t.info?.taskId ?? "",
            t.info?.appId ?? "",
            t.info?.run?.appVersion || "-",
            t.info?.agentId ?? "",
            (t.status && fromWireState(t.status.state)) ?? "?",
            healthColumn(t),
            t.status?.exitCode === undefined ? "-" : String(t.status.exitCode),
            ago(t.createdAtMs),
            (t.status?.message ?? "").replace(/\s+/g, " "),
          ]),
        ),
      );
    } finally {
      s.close();
    }
    return;
  }

  if (group === "agent" && cmd === "list") {
    const m = new LeaderClient(MasterClient, config.masters);
    try {
      const res = await m.unary<ListAgentsRequest, ListAgentsResponse>(
        (c, r, deadline, cb) => c.listAgents(r, md(), { deadline }, cb),
        {},
      );
      out(json, res.agents, () =>
        table(
          ["AGENT", "HOSTNAME", "CONNECTED", "CPUS", "MEM", "USED CPUS", "USED MEM", "ATTRIBUTES"],
          res.agents.map((a) => [
            a.agentId,
            a.hostname,
            a.connected ? "yes" : "no",
            String(a.resources?.cpus ?? 0),
            String(a.resources?.mem ?? 0),
            String(Math.round((a.used?.cpus ?? 0) * 100) / 100),
            String(a.used?.mem ?? 0),
            a.attributes.map((x) => `${x.key}:${x.value}`).join(",") || "-",
          ]),
        ),
      );
    } finally {
      m.close();
    }
    return;
  }

  if (group === "framework" && cmd === "list") {
    const m = new LeaderClient(MasterClient, config.masters);
    try {
      const res = await m.call((c) => c.listFrameworks.bind(c), {});
      out(json, res.frameworks, () =>
        table(
          ["FRAMEWORK", "NAME", "ROLE", "CONNECTED", "TASKS", "CPUS", "MEM", "SHARE"],
          res.frameworks.map((f) => [
            f.frameworkId,
            f.name,
            f.role,
            f.connected ? (f.suppressed ? "yes (suppressed)" : "yes") : "no",
            String(f.activeTasks),
            String(Math.round((f.allocated?.cpus ?? 0) * 100) / 100),
            String(f.allocated?.mem ?? 0),
            `${(f.dominantShare * 100).toFixed(1)}%`,
          ]),
        ),
      );
    } finally {
      m.close();
    }
    return;
  }

  if (group === "events") {
    const fromStart = flag(args, "--from-start");
    const log = createLogger("cli", "warn");
    const bus = await connectBus(config.natsServers, "drover-cli", log);
    const stop = flag(args, "--marathon")
      ? await followMarathonEvents(bus, log, fromStart, json)
      : await followEvents(
          bus,
          log,
          (e) => {
            process.stdout.write(
              json
                ? `${JSON.stringify(e)}\n`
                : `${new Date(e.atMs).toISOString()}  rev ${e.revision}  ${e.aggregate}/${e.id} v${e.version}  ${e.event.type}\n`,
            );
          },
          { fromStart },
        );
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    await stop();
    await bus.close();
    return;
  }

  if (group === "admin" && cmd === "verify-log") {
    const etcd = connectEtcd(config.etcdEndpoints, { timeoutMs: config.storeTimeoutMs });
    try {
      const report = await verifyLog(new EventStore(etcd));
      out(json, report, () =>
        report.ok
          ? `log verified: ${report.events} events rebuild ${report.projections} projections of ${report.aggregates} aggregates exactly`
          : `log MISMATCH:\n${report.mismatches.map((m) => `  ${m.key}: ${m.problem}`).join("\n")}`,
      );
      if (!report.ok) process.exitCode = 1;
    } finally {
      etcd.close();
    }
    return;
  }

  throw new UsageError(
    group ? `unknown command: ${[group, cmd].filter(Boolean).join(" ")}` : "missing command",
  );
}

/**
 * Exits once stdout and stderr have been written out: `process.exit` right after a large write to
 * a pipe would drop what the reader has not taken yet (beyond 64 KiB).
 */
async function exit(code: number): Promise<never> {
  const flushed = (stream: NodeJS.WriteStream) =>
    new Promise<void>((resolve) => stream.write("", () => resolve()));
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

const config: CliConfig = await (async () => {
  try {
    return loadCliConfig({ argv: [] });
  } catch (err) {
    process.stderr.write(`drover: invalid configuration: ${printable(errorMessage(err))}\n`);
    return exit(2);
  }
})();
const argv = process.argv.slice(2);
if (argv.length === 0 || argv.includes("--help") || argv.includes("-h")) {
  process.stdout.write(`${USAGE}\n`);
  await exit(argv.length === 0 ? 2 : 0);
}
try {
  await main(argv, config);
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`drover: ${printable(err.message)}\n${USAGE}\n`);
    await exit(2);
  }
  const msg =
    err instanceof InvalidArgumentError ? `invalid input: ${formatIssues(err.issues)}` : errorMessage(err);
  // One line, whatever the input held: control and bidi characters are escaped.
  process.stderr.write(`drover: error: ${printable(msg)}\n`);
  await exit(1);
}
await exit(typeof process.exitCode === "number" ? process.exitCode : 0);

/**
 * `drover events --marathon`: the committed events as Marathon events (core's mapping, the same
 * /v2/events serves). The whole retained stream is read to know each task's app and host, and only
 * what is published from now on is printed (everything with --from-start).
 */
async function followMarathonEvents(
  bus: Awaited<ReturnType<typeof connectBus>>,
  log: ReturnType<typeof createLogger>,
  fromStart: boolean,
  json: boolean,
): Promise<() => Promise<void>> {
  const mapper = new MarathonEventMapper();
  const { lastSeq } = await eventStreamBounds(bus);
  const { stop } = await followEventMessages(
    bus,
    log,
    (m) => {
      const placed = mapper.map(m.seq, m.events);
      if (!fromStart && m.seq <= lastSeq) return;
      for (const p of placed)
        process.stdout.write(
          json
            ? `${JSON.stringify(p.event)}\n`
            : `${p.event.timestamp}  ${p.event.eventType}  ${JSON.stringify(p.event)}\n`,
        );
    },
    { startSeq: 1 },
  );
  return stop;
}
