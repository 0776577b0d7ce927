/**
 * Groups and dependencies (Marathon's /v2/groups and `dependencies`), pure.
 *
 * A group definition `{id, apps, groups, dependencies}` is flattened into its apps: ids relative
 * to the enclosing group are resolved as Marathon's `PathId.canonicalPath` (in `/shop`, `db` is
 * `/shop/db` and `../db` is `/db`), an app must be a child of its group, and a group's
 * dependencies are inherited by every app below it (Marathon: a group dependency applies to all
 * its transitive members). The graph is over apps: a dependency naming an app is an edge to it; a
 * dependency naming a group is an edge to every app below it; a dependency naming nothing known is
 * ignored (as Marathon's deployment plan does). A cycle is refused naming it; otherwise apps start
 * and upgrade level by level (`dependencyLevels`) and stop in the reverse order.
 */
import { z } from "zod";
import { canonicalId, checkAppId, checkPathId } from "../marathon/path-id.js";
import { type FieldIssue, formatPath, parseJson, type Validated, validate } from "../validation.js";

/** The deepest nesting of groups accepted (Marathon has none; Drover bounds recursion). */
export const MAX_GROUP_DEPTH = 16;

/** A group definition as Marathon's GroupUpdate takes it (pods are not supported by Drover). */
export interface GroupInput {
  id?: string | undefined;
  apps?: Record<string, unknown>[] | undefined;
  groups?: GroupInput[] | undefined;
  dependencies?: string[] | undefined;
  version?: string | undefined;
  enforceRole?: boolean | undefined;
  pods?: unknown[] | undefined;
}

export const GroupInputSchema: z.ZodType<GroupInput> = z.lazy(() =>
  z
    .object({
      id: z.string().min(1).optional(),
      apps: z.array(z.record(z.string(), z.unknown())).max(1000).optional(),
      groups: z.array(GroupInputSchema).max(1000).optional(),
      dependencies: z.array(z.string().min(1)).max(128).optional(),
      version: z.string().optional(),
      enforceRole: z.boolean().optional(),
      pods: z.array(z.unknown()).max(0, "pods are not supported by Drover").optional(),
    })
    .strict(),
);

/** One app of a flattened group: its raw definition with `id` and `dependencies` made absolute. */
export interface GroupApp {
  id: string;
  dependencies: string[];
  /** Where it was in the group definition (`groups[0].apps[1]`), for error paths. */
  path: string;
  definition: Record<string, unknown>;
}

export interface FlatGroup {
  id: string;
  apps: GroupApp[];
  /** Every group below (and including) `id`. */
  groups: string[];
}

/**
 * Flattens a group definition rooted at `base` (the group id of the URL, or `/`): ids resolved,
 * every app a child of its group, dependencies made absolute and inherited. Issues name the field
 * (`groups[0].apps[1].id: …`).
 */
export function flattenGroup(input: unknown, base = "/"): Validated<FlatGroup> {
  const v = validate(GroupInputSchema, input);
  if (!v.ok) return v;
  const issues: FieldIssue[] = [];
  const apps: GroupApp[] = [];
  const groups: string[] = [];
  const seen = new Map<string, string>();
  const rootId = resolveGroupId(v.value.id, base, [], issues);
  walk(v.value, rootId, [], [], 0);
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, value: { id: rootId, apps, groups } };

  function walk(
    g: GroupInput,
    id: string,
    path: (string | number)[],
    inherited: string[],
    depth: number,
  ): void {
    if (depth > MAX_GROUP_DEPTH) {
      issues.push({ path: formatPath(path), message: `groups nest at most ${MAX_GROUP_DEPTH} deep` });
      return;
    }
    groups.push(id);
    if (g.enforceRole === true)
      issues.push({
        path: formatPath([...path, "enforceRole"]),
        message: "not supported: Drover has no group roles (every app runs in the scheduler's role)",
      });
    const deps = [...inherited];
    (g.dependencies ?? []).forEach((d, i) => {
      const c = checkPathId(d, id);
      if (!c.ok) issues.push({ path: formatPath([...path, "dependencies", i]), message: c.message });
      else if (!deps.includes(c.id)) deps.push(c.id);
    });
    (g.apps ?? []).forEach((app, i) => {
      const at = [...path, "apps", i];
      const rawId = app.id;
      if (typeof rawId !== "string" || rawId === "") {
        issues.push({ path: formatPath([...at, "id"]), message: "required: a string" });
        return;
      }
      const c = checkAppId(rawId, id);
      if (!c.ok) {
        issues.push({ path: formatPath([...at, "id"]), message: c.message });
        return;
      }
      if (parentOf(c.id) !== id) {
        issues.push({ path: formatPath([...at, "id"]), message: `identifier ${c.id} is not child of ${id}` });
        return;
      }
      const twice = seen.get(c.id);
      if (twice !== undefined) {
        issues.push({ path: formatPath([...at, "id"]), message: `${c.id} is also defined at ${twice}` });
        return;
      }
      seen.set(c.id, formatPath(at));
      const own: string[] = [];
      const rawDeps = app.dependencies ?? [];
      if (!Array.isArray(rawDeps)) {
        issues.push({ path: formatPath([...at, "dependencies"]), message: "must be an array of ids" });
        return;
      }
      rawDeps.forEach((d: unknown, j) => {
        const dc =
          typeof d === "string" ? checkPathId(d, id) : { ok: false as const, message: "must be a string" };
        if (!dc.ok) issues.push({ path: formatPath([...at, "dependencies", j]), message: dc.message });
        else if (!own.includes(dc.id)) own.push(dc.id);
      });
      const all = [...own, ...deps.filter((d) => !own.includes(d))];
      apps.push({
        id: c.id,
        dependencies: all,
        path: formatPath(at),
        definition: { ...app, id: c.id, dependencies: all },
      });
    });
    (g.groups ?? []).forEach((sub, i) => {
      const at = [...path, "groups", i];
      const subId = resolveGroupId(sub.id, id, at, issues);
      if (subId === id || parentOf(subId) !== id) {
        issues.push({
          path: formatPath([...at, "id"]),
          message: `identifier ${subId} is not child of ${id}`,
        });
        return;
      }
      if (groups.includes(subId)) {
        issues.push({ path: formatPath([...at, "id"]), message: `group ${subId} is defined twice` });
        return;
      }
      walk(sub, subId, at, deps, depth + 1);
    });
  }
}

/** Parses and flattens a group definition's JSON text (`base`: the group id it is put at). */
export function parseGroupJson(text: string, base = "/"): Validated<FlatGroup> {
  const parsed = parseJson(text.startsWith("\uFEFF") ? text.slice(1) : text);
  return parsed.ok ? flattenGroup(parsed.value, base) : parsed;
}

function resolveGroupId(
  raw: string | undefined,
  base: string,
  path: (string | number)[],
  issues: FieldIssue[],
): string {
  if (raw === undefined || raw === "/" || raw === "") return raw === "/" ? "/" : base;
  const c = checkPathId(raw, base);
  if (!c.ok) {
    issues.push({ path: formatPath([...path, "id"]), message: c.message });
    return canonicalId(raw, base);
  }
  return c.id;
}

/** The group an id is in: `/shop/db` → `/shop`, `/db` → `/`. */
export function parentOf(id: string): string {
  const i = id.lastIndexOf("/");
  return i <= 0 ? "/" : id.slice(0, i);
}

/** Whether `id` is `group` or below it. */
export function isUnder(id: string, group: string): boolean {
  return group === "/" || id === group || id.startsWith(`${group}/`);
}

/** An app and what it depends on (absolute ids of apps or groups). */
export interface DependencyNode {
  id: string;
  dependencies: readonly string[];
}

/**
 * The graph over `apps`: for each app, the apps it depends on (a group dependency expanded to
 * every app below the group, except the app itself when the group encloses it; unknown ids
 * dropped). Sorted, deterministic.
 */
export function dependencyGraph(apps: readonly DependencyNode[]): Map<string, string[]> {
  const ids = [...new Set(apps.map((a) => a.id))].sort();
  const graph = new Map<string, string[]>();
  for (const a of apps) {
    const out = new Set<string>(graph.get(a.id) ?? []);
    for (const d of a.dependencies) {
      if (ids.includes(d)) out.add(d);
      else for (const id of ids) if (id !== a.id && isUnder(id, d)) out.add(id);
    }
    graph.set(a.id, [...out].sort());
  }
  return graph;
}

/** A cycle of the graph (`[/a, /b, /a]`), or undefined when there is none. */
export function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 1 | 2>(); // 1: on the stack, 2: done
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    state.set(id, 1);
    stack.push(id);
    for (const d of graph.get(id) ?? []) {
      if (!graph.has(d)) continue;
      const s = state.get(d);
      if (s === 1) return [...stack.slice(stack.indexOf(d)), d];
      if (s === undefined) {
        const c = visit(d);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(id, 2);
    return undefined;
  };
  for (const id of [...graph.keys()].sort()) {
    if (state.has(id)) continue;
    const c = visit(id);
    if (c) return c;
  }
  return undefined;
}

/** `dependencies: cycle /a → /b → /a`. */
export function cycleIssue(cycle: readonly string[]): FieldIssue {
  return { path: "dependencies", message: `cycle ${cycle.join(" → ")}` };
}

/**
 * The apps in levels: every app's dependencies are in earlier levels (start and upgrade level by
 * level; stop in the reverse order). A cycle is refused naming it.
 */
export function dependencyLevels(
  apps: readonly DependencyNode[],
): { ok: true; levels: string[][] } | { ok: false; cycle: string[]; issues: FieldIssue[] } {
  const graph = dependencyGraph(apps);
  const cycle = findCycle(graph);
  if (cycle) return { ok: false, cycle, issues: [cycleIssue(cycle)] };
  const level = new Map<string, number>();
  const depth = (id: string): number => {
    const known = level.get(id);
    if (known !== undefined) return known;
    let l = 0;
    for (const d of graph.get(id) ?? []) l = Math.max(l, depth(d) + 1);
    level.set(id, l);
    return l;
  };
  const levels: string[][] = [];
  for (const id of [...graph.keys()].sort()) {
    const l = depth(id);
    while (levels.length <= l) levels.push([]);
    levels[l]?.push(id);
  }
  return { ok: true, levels };
}

/** Every app `appId` depends on in `graph` (direct; group dependencies already expanded). */
export function dependenciesOf(appId: string, apps: readonly DependencyNode[]): string[] {
  return dependencyGraph(apps).get(appId) ?? [];
}
