/**
 * Marathon's query parameters, checked: booleans (`force`, `scale`, `wipe`, `partialUpdate`; any case,
 * as Jersey reads them), `embed`, the `label` selector of GET /v2/apps and the task `status` filter.
 * A value Drover cannot read is refused naming the parameter (400), never ignored.
 */
import type { TaskState } from "@drover/core";
import { z } from "zod";
import { BadRequestError } from "./errors.js";
import type { AppEmbed } from "./views.js";

export type Query = Record<string, string | string[] | undefined>;

/** All values of a parameter (a repeated one is an array; `name[]` counts as `name`). */
export function values(q: Query, name: string): string[] {
  const out: string[] = [];
  for (const key of [name, `${name}[]`]) {
    const v = q[key];
    if (v === undefined) continue;
    out.push(...(Array.isArray(v) ? v : [v]));
  }
  return out;
}

const BoolSchema = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(z.enum(["true", "false", ""]));

/** A boolean parameter: `true`/`false` in any case (`?force` alone is true); `dflt` when absent. */
export function bool(q: Query, name: string, dflt: boolean): boolean {
  const v = values(q, name);
  if (v.length === 0) return dflt;
  const last = v[v.length - 1] ?? "";
  const r = BoolSchema.safeParse(last);
  if (!r.success)
    throw new BadRequestError(`query parameter ${name}: must be true or false, not '${last.slice(0, 40)}'`);
  return r.data !== "false";
}

const EMBEDS: Record<string, AppEmbed> = {
  tasks: "tasks",
  counts: "counts",
  deployments: "deployments",
  readiness: "readiness",
  lastTaskFailure: "lastTaskFailure",
  failures: "lastTaskFailure",
  taskStats: "taskStats",
};

/** `embed` values (`apps.tasks`, `app.tasks`, comma lists too) as AppEmbeds; an unknown one is refused by name. */
export function embeds(q: Query): Set<AppEmbed> {
  const out = new Set<AppEmbed>();
  for (const raw of values(q, "embed"))
    for (const item of raw.split(",")) {
      const name = item.trim();
      if (name === "") continue;
      const m = /^apps?\.(\w+)$/.exec(name);
      const e = m?.[1] ? EMBEDS[m[1]] : undefined;
      if (!e)
        throw new BadRequestError(
          `query parameter embed: unknown '${name.slice(0, 60)}' (known: ${Object.keys(EMBEDS)
            .map((k) => `apps.${k}`)
            .join(", ")})`,
        );
      out.add(e);
    }
  return out;
}

/** GET /v2/queue's `embed`: true for `lastUnusedOffers` (its only one); anything else is refused by name. */
export function queueEmbed(q: Query): boolean {
  let offers = false;
  for (const raw of values(q, "embed"))
    for (const item of raw.split(",")) {
      const name = item.trim();
      if (name === "") continue;
      if (name !== "lastUnusedOffers")
        throw new BadRequestError(
          `query parameter embed: unknown '${name.slice(0, 60)}' (known: lastUnusedOffers)`,
        );
      offers = true;
    }
  return offers;
}

/** One term of a label selector. */
export type LabelTerm =
  | { key: string; op: "exists" }
  | { key: string; op: "=="; value: string }
  | { key: string; op: "!="; value: string }
  | { key: string; op: "in" | "notin"; values: string[] };

/** Splits on commas outside parentheses. */
function splitTerms(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const c of s) {
    if (c === "(") depth++;
    if (c === ")") depth--;
    if (c === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter((t) => t !== "");
}

/**
 * Marathon's label selector (`k`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`; a comma is AND).
 * `\` escapes a special character in a key or value, as in Marathon.
 */
export function parseLabelSelector(selector: string): LabelTerm[] {
  return splitTerms(selector).map((term): LabelTerm => {
    let m = /^(.+?)\s*(==|!=)\s*(.*)$/.exec(term);
    if (m?.[1] !== undefined && m[3] !== undefined)
      return m[2] === "==" ? { key: m[1], op: "==", value: m[3] } : { key: m[1], op: "!=", value: m[3] };
    m = /^(.+?)\s+(in|notin)\s*\((.*)\)$/.exec(term);
    if (m?.[1] !== undefined && m[3] !== undefined)
      return {
        key: m[1],
        op: m[2] === "in" ? "in" : "notin",
        values: m[3].split(",").map((v) => v.trim()),
      };
    if (/^[\w.\-/\\]+$/.test(term)) return { key: term, op: "exists" };
    throw new BadRequestError(
      `query parameter label: cannot read '${term.slice(0, 80)}' (k, k==v, k!=v, k in (a,b), k notin (a,b))`,
    );
  });
}

export function matchesLabels(
  labels: Readonly<Record<string, string>>,
  terms: readonly LabelTerm[],
): boolean {
  return terms.every((t) => {
    const v = Object.hasOwn(labels, t.key) ? labels[t.key] : undefined;
    switch (t.op) {
      case "exists":
        return v !== undefined;
      case "==":
        return v === t.value;
      case "!=":
        return v !== t.value;
      case "in":
        return v !== undefined && t.values.includes(v);
      case "notin":
        return v === undefined || !t.values.includes(v);
      default:
        return false;
    }
  });
}

const STATUS: Record<string, TaskState[]> = {
  staging: ["TASK_STAGING"],
  starting: ["TASK_STARTING"],
  running: ["TASK_RUNNING"],
  killing: ["TASK_KILLING"],
  unreachable: ["TASK_UNREACHABLE"],
};

/** GET /v2/tasks `status`: the task states asked for (undefined: all); an unknown status is refused by name. */
export function taskStatuses(q: Query): Set<TaskState> | undefined {
  const asked = values(q, "status")
    .flatMap((s) => s.split(","))
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  if (asked.length === 0) return undefined;
  const out = new Set<TaskState>();
  for (const s of asked) {
    const states = STATUS[s];
    if (!states)
      throw new BadRequestError(
        `query parameter status: '${s.slice(0, 40)}' is not one of ${Object.keys(STATUS).join(", ")} (only active tasks are kept in the view)`,
      );
    for (const st of states) out.add(st);
  }
  return out;
}
