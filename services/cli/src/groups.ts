/**
 * `drover group add|update|show|remove|scale`: Marathon's groups (/v2/groups). A group is the set of
 * apps whose ids are below its id (`/shop` holds `/shop/db` and `/shop/jobs/mail`); a group's
 * dependencies are folded into its apps' (core's flattenGroup). add, update, remove and scale are
 * one ApplyGroup call each: the scheduler commits every app change in one transaction with the one
 * deployment that carries it out (stops first, dependents before what they depend on; then new
 * apps; then scale and restart level by level in dependency order). The CLI checks the definition
 * first (every app's fields, with their path in the group), then follows the deployment live.
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

export const GROUP_USAGE = `  group add FILE.json         create a group of apps (Marathon's /v2/groups body) as one change
  group update ID FILE.json  replace a group's apps: create, update, and remove those left out
  group show ID              a group's apps and groups (--json: Marathon's GroupInfo shape)
  group remove ID            remove every app below the group, dependents first
  group scale ID --by F      multiply every app's instances by F (rounded up)
                             add, update, remove and scale are one change each, carried out by one
                             deployment whose steps follow the dependencies; they follow it live
                             (--detach: return at once; --dry-run: print the plan only; --force:
                             cancel the deployments of the apps it changes)`;

export interface GroupIo {
  out(value: unknown, text: () => string): void;
  usage(message: string): Error;
  /** Follows a deployment until it ends; whether it succeeded. */
  follow(deploymentId: string): Promise<boolean>;
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

async function allApps(s: Schedulers): Promise<App[]> {
  return (await s.call((c) => c.listApps.bind(c), {})).apps;
}

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
  const force = takeFlag(rest, "--force");
  const dryRun = takeFlag(rest, "--dry-run");
  const detach = takeFlag(rest, "--detach");
  const apply = async (req: {
    mode: "create" | "update" | "remove" | "scale";
    groupJson?: string;
    groupId?: string;
    scaleBy?: number;
  }) => {
    const res = await s.call((c) => c.applyGroup.bind(c), {
      groupJson: "",
      groupId: "",
      scaleBy: 0,
      ...req,
      force,
      dryRun,
    });
    const plan = res.steps.map((st) => st.actions.map((a) => `${a.action} ${a.appId}`));
    const summary = {
      id: req.groupId ?? "/",
      deploymentId: res.deploymentId || undefined,
      changes: res.changes,
      steps: res.steps.map((st) => st.actions.map((a) => ({ action: a.action, appId: a.appId }))),
    };
    const what = dryRun ? "would change" : "changed";
    io.out(summary, () =>
      [
        Object.keys(res.changes).length === 0
          ? "nothing to change"
          : `${what}: ${Object.entries(res.changes)
              .map(([id, c]) => `${id} (${c})`)
              .join(", ")}`,
        ...plan.map((st, i) => `  step ${i + 1}: ${st.join(", ")}`),
        ...(res.deploymentId ? [`deployment ${res.deploymentId}`] : []),
      ].join("\n"),
    );
    if (res.deploymentId && !dryRun && !detach && !(await io.follow(res.deploymentId))) process.exitCode = 1;
  };
  switch (cmd) {
    case "add": {
      const text = readGroupFile(rest[0], io);
      // Checked here first too, so a bad file is refused without a call (the scheduler checks again).
      const g = parseGroup(text, "/");
      await apply({ mode: "create", groupJson: text, groupId: g.id });
      return;
    }
    case "update": {
      const id = rest[0] ? normalizeGroupId(rest[0]) : undefined;
      if (!id) throw io.usage("usage: drover group update ID FILE.json [--force] [--dry-run] [--detach]");
      const text = readGroupFile(rest[1], io);
      parseGroup(text, id);
      await apply({ mode: "update", groupJson: text, groupId: id });
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
      if (!id) throw io.usage("usage: drover group remove ID [--force] [--detach]");
      await apply({ mode: "remove", groupId: id });
      return;
    }
    case "scale": {
      const by = takeOption(rest, "--by", io);
      const id = rest[0] ? normalizeGroupId(rest[0]) : undefined;
      if (!id || by === undefined) throw io.usage("usage: drover group scale ID --by F");
      const factor = Number(by);
      if (!Number.isFinite(factor) || factor < 0 || by.trim() === "")
        throw new InvalidArgumentError([{ path: "scaleBy", message: `must be a number >= 0, got "${by}"` }]);
      await apply({ mode: "scale", groupId: id, scaleBy: factor });
      return;
    }
    default:
      throw io.usage(`unknown group command ${cmd ?? ""}`);
  }
}

function levelsText(levels: readonly string[][]): string {
  return levels.map((l) => l.join(", ")).join(" → ") || "-";
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
