/**
 * `drover group add|update|show|remove|scale`: Marathon's groups (/v2/groups) over the scheduler's
 * app API. A group is not stored: it is the set of apps whose ids are below its id (`/shop` holds
 * `/shop/db` and `/shop/jobs/mail`), and a group's dependencies are folded into its apps'
 * (core's flattenGroup), so the scheduler keeps nothing but apps. The definition is checked whole
 * before anything changes (every app's fields, with their path in the group, and dependency cycles
 * against the apps already there); then its apps are created or updated in dependency order (the
 * scheduler holds a dependent's launches until its dependencies are healthy) and removed in the
 * reverse order, waiting for a level's tasks to be gone before removing what they depend on.
 * Not atomic: one app change per call (a failure midway leaves the apps changed so far).
 */
import { readFileSync } from "node:fs";
import { errorMessage, InvalidArgumentError, type LeaderClient, NotFoundError } from "@drover/common";
import {
  type DependencyNode,
  dependencyLevels,
  type FieldIssue,
  type FlatGroup,
  flattenGroup,
  isUnder,
  parentOf,
  parseAppSpecJson,
  parseJson,
} from "@drover/core";
import type { App, SchedulerClient } from "@drover/proto";
import { table } from "./table.js";

type Schedulers = LeaderClient<SchedulerClient>;

/** How long `group remove` waits for one level's tasks to be gone. */
const STOP_WAIT_MS = 180_000;

export const GROUP_USAGE = `  group add FILE.json         create a group of apps (Marathon's /v2/groups body), in dependency order
  group update ID FILE.json [--force]
                             replace a group's apps: create, update, and remove those left out
  group show ID              a group's apps and groups (--json: Marathon's GroupInfo shape)
  group remove ID            remove every app below the group, dependents first
  group scale ID --by F      multiply every app's instances by F (rounded up)`;

export interface GroupIo {
  out(value: unknown, text: () => string): void;
  usage(message: string): Error;
}

function readGroupFile(file: string | undefined, io: GroupIo): string {
  if (!file) throw io.usage("missing FILE.json");
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`cannot read ${file}: ${errorMessage(err)}`);
  }
}

function definitionOf(a: App): Record<string, unknown> {
  return JSON.parse(a.definitionJson || "{}") as Record<string, unknown>;
}

function nodeOf(a: App): DependencyNode {
  const deps = definitionOf(a).dependencies;
  return { id: a.id, dependencies: Array.isArray(deps) ? deps.filter((d) => typeof d === "string") : [] };
}

function normalizeGroupId(raw: string): string {
  const id = `/${raw.split("/").filter(Boolean).join("/")}`;
  return id;
}

/** The group definition in FILE, flattened at `base`, every app checked (issues with their path). */
function parseGroup(text: string, base: string): FlatGroup {
  const json = parseJson(text);
  if (!json.ok) throw new InvalidArgumentError(json.issues);
  const g = flattenGroup(json.value, base);
  if (!g.ok) throw new InvalidArgumentError(g.issues);
  const issues: FieldIssue[] = [];
  for (const a of g.value.apps) {
    const v = parseAppSpecJson(JSON.stringify(a.definition));
    if (!v.ok) for (const i of v.issues) issues.push({ path: `${a.path}.${i.path}`, message: i.message });
  }
  if (issues.length > 0) throw new InvalidArgumentError(issues);
  return g.value;
}

/** Start order over `apps` (the others only as dependencies); a cycle with any app is refused. */
function startOrder(group: FlatGroup, others: readonly DependencyNode[]): string[][] {
  const r = dependencyLevels([...others, ...group.apps]);
  if (!r.ok) throw new InvalidArgumentError(r.issues);
  const mine = new Set(group.apps.map((a) => a.id));
  return r.levels.map((l) => l.filter((id) => mine.has(id))).filter((l) => l.length > 0);
}

async function allApps(s: Schedulers): Promise<App[]> {
  return (await s.call((c) => c.listApps.bind(c), {})).apps;
}

async function activeTasks(s: Schedulers, appId: string): Promise<number> {
  const res = await s.call((c) => c.listTasks.bind(c), {
    appId,
    includeTerminal: false,
    pageSize: 5000,
    pageToken: "",
  });
  return res.tasks.length;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The group tree below `id` from the apps' ids, in Marathon's GroupInfo shape. */
function groupInfo(id: string, apps: readonly App[]): Record<string, unknown> {
  const direct = apps.filter((a) => parentOf(a.id) === id);
  const subIds = new Set<string>();
  for (const a of apps)
    if (a.id !== id && isUnder(a.id, id) && parentOf(a.id) !== id) {
      const rest = a.id.slice(id === "/" ? 1 : id.length + 1).split("/")[0];
      subIds.add(id === "/" ? `/${rest}` : `${id}/${rest}`);
    }
  return {
    id,
    apps: direct.map(definitionOf),
    groups: [...subIds].sort().map((g) =>
      groupInfo(
        g,
        apps.filter((a) => isUnder(a.id, g)),
      ),
    ),
    pods: [],
    dependencies: [],
  };
}

export async function groupCommand(
  s: Schedulers,
  cmd: string | undefined,
  rest: string[],
  io: GroupIo,
): Promise<void> {
  switch (cmd) {
    case "add": {
      const g = parseGroup(readGroupFile(rest[0], io), "/");
      const existing = await allApps(s);
      const taken = existing.filter((a) => g.apps.some((n) => n.id === a.id) || isUnder(a.id, g.id));
      if (g.id !== "/" && taken.length > 0)
        throw new Error(`group ${g.id} is already created (it holds ${taken[0]?.id}): use group update`);
      const order = startOrder(g, existing.map(nodeOf));
      for (const level of order)
        for (const id of level) {
          const def = g.apps.find((a) => a.id === id)?.definition;
          await s.call((c) => c.createApp.bind(c), { appJson: JSON.stringify(def) });
        }
      io.out({ id: g.id, apps: g.apps.map((a) => a.id), order }, () =>
        [`group ${g.id} created: ${g.apps.length} app(s)`, `start order: ${levelsText(order)}`].join("\n"),
      );
      return;
    }
    case "update": {
      const force = takeFlag(rest, "--force");
      const id = rest[0] ? normalizeGroupId(rest[0]) : undefined;
      if (!id) throw io.usage("usage: drover group update ID FILE.json [--force]");
      const text = readGroupFile(rest[1], io);
      const g = parseGroup(text, id);
      if (g.id !== id)
        throw new InvalidArgumentError([{ path: "id", message: `must be ${id} (the group being updated)` }]);
      const existing = await allApps(s);
      const inside = existing.filter((a) => isUnder(a.id, id));
      const others = existing.filter((a) => !isUnder(a.id, id)).map(nodeOf);
      const order = startOrder(g, others);
      const deployments: string[] = [];
      for (const level of order)
        for (const appId of level) {
          const appJson = JSON.stringify(g.apps.find((a) => a.id === appId)?.definition);
          if (inside.some((a) => a.id === appId)) {
            const res = await s.call((c) => c.updateApp.bind(c), {
              id: appId,
              appJson,
              force,
              canaryInstances: 0,
            });
            if (res.deploymentId) deployments.push(res.deploymentId);
          } else await s.call((c) => c.createApp.bind(c), { appJson });
        }
      const gone = inside.filter((a) => !g.apps.some((n) => n.id === a.id));
      await removeInOrder(s, gone);
      io.out({ id, apps: g.apps.map((a) => a.id), removed: gone.map((a) => a.id), order, deployments }, () =>
        [
          `group ${id} updated: ${g.apps.length} app(s)${gone.length > 0 ? `, removed ${gone.map((a) => a.id).join(", ")}` : ""}`,
          `start order: ${levelsText(order)}`,
          ...(deployments.length > 0 ? [`deployments: ${deployments.join(", ")}`] : []),
        ].join("\n"),
      );
      return;
    }
    case "show": {
      const id = rest[0] ? normalizeGroupId(rest[0]) : undefined;
      if (!id) throw io.usage("usage: drover group show ID");
      const apps = (await allApps(s))
        .filter((a) => isUnder(a.id, id))
        .sort((a, b) => a.id.localeCompare(b.id));
      if (apps.length === 0 && id !== "/") throw new NotFoundError(`group ${id}`);
      const order = dependencyLevels(apps.map(nodeOf));
      io.out(groupInfo(id, apps), () =>
        [
          `group ${id}`,
          table(
            ["APP", "RUNNING", "DEPENDENCIES"],
            apps.map((a) => [
              a.id,
              `${a.tasksRunning}/${a.instances}`,
              nodeOf(a).dependencies.join(", ") || "-",
            ]),
          ),
          ...(order.ok ? [`start order: ${levelsText(order.levels)}`] : []),
        ].join("\n"),
      );
      return;
    }
    case "remove": {
      const id = rest[0] ? normalizeGroupId(rest[0]) : undefined;
      if (!id) throw io.usage("usage: drover group remove ID");
      const apps = (await allApps(s)).filter((a) => isUnder(a.id, id));
      if (apps.length === 0) throw new NotFoundError(`group ${id}`);
      const order = await removeInOrder(s, apps);
      io.out({ id, removed: apps.map((a) => a.id), order }, () =>
        [`group ${id} removed: ${apps.length} app(s)`, `stop order: ${levelsText(order)}`].join("\n"),
      );
      return;
    }
    case "scale": {
      const by = takeOption(rest, "--by", io);
      const id = rest[0] ? normalizeGroupId(rest[0]) : undefined;
      if (!id || by === undefined) throw io.usage("usage: drover group scale ID --by F");
      const factor = Number(by);
      if (!Number.isFinite(factor) || factor < 0 || by.trim() === "")
        throw new InvalidArgumentError([{ path: "scaleBy", message: `must be a number >= 0, got "${by}"` }]);
      const apps = (await allApps(s)).filter((a) => isUnder(a.id, id));
      if (apps.length === 0) throw new NotFoundError(`group ${id}`);
      const scaled: { id: string; from: number; to: number }[] = [];
      for (const a of apps) {
        // Marathon: every transitive app's instances times scaleBy, rounded up.
        const to = Math.ceil(a.instances * factor);
        await s.call((c) => c.scaleApp.bind(c), { id: a.id, instances: to });
        scaled.push({ id: a.id, from: a.instances, to });
      }
      io.out({ id, scaleBy: factor, apps: scaled }, () =>
        [`group ${id} scaled by ${factor}`, ...scaled.map((x) => `  ${x.id}: ${x.from} → ${x.to}`)].join(
          "\n",
        ),
      );
      return;
    }
    default:
      throw io.usage(`unknown group command ${cmd ?? ""}`);
  }
}

function levelsText(levels: readonly string[][]): string {
  return levels.map((l) => l.join(", ")).join(" → ") || "-";
}

/**
 * Removes `apps` dependents first: a level is removed, and its tasks are waited for until they
 * are gone, before the apps it depends on. Returns the stop order.
 */
async function removeInOrder(s: Schedulers, apps: readonly App[]): Promise<string[][]> {
  if (apps.length === 0) return [];
  const r = dependencyLevels(apps.map(nodeOf));
  // A cycle cannot be stored (the scheduler refuses it); all at once if one was anyway.
  const order = r.ok ? [...r.levels].reverse() : [apps.map((a) => a.id)];
  for (const [i, level] of order.entries()) {
    for (const id of level) await s.call((c) => c.deleteApp.bind(c), { id });
    if (i === order.length - 1) break;
    const until = Date.now() + STOP_WAIT_MS;
    for (;;) {
      let left = 0;
      for (const id of level) left += await activeTasks(s, id);
      if (left === 0) break;
      if (Date.now() > until)
        throw new Error(
          `group remove: ${left} task(s) of ${level.join(", ")} still running after ${STOP_WAIT_MS / 1000} s; their dependencies are kept`,
        );
      await sleep(500);
    }
  }
  return order;
}

function takeFlag(args: string[], name: string): boolean {
  const i = args.indexOf(name);
  if (i < 0) return false;
  args.splice(i, 1);
  return true;
}

function takeOption(args: string[], name: string, io: GroupIo): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined) throw io.usage(`${name} needs a value`);
  args.splice(i, 2);
  return v;
}
