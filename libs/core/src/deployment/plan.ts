/**
 * A deployment's plan: steps of actions, as Marathon's DeploymentPlan builds them
 * (`core/deployment/DeploymentPlan.scala`, ../shared/marathon/SEMANTICS.md section 1). Pure.
 *
 * From the changes of one request (a group created or updated, an app changed or restarted):
 * 1. StopApplication for every removed app, in the reverse of the original dependency order (an
 *    app is stopped before what it depends on: one step per level, dependents first). Marathon
 *    stops them all in one step; Drover keeps the reverse order its dependency rule asks for.
 * 2. StartApplication for every new app, in one step (the app exists with no instance yet).
 * 3. One step per dependency level of the target: ScaleApplication for a new app or a scale-only
 *    change, RestartApplication for any other change (a config change, a restart).
 * Empty steps are left out; an unchanged app has no action. A step starts when every action of
 * the steps before it is done, so a dependent app is scaled or restarted only after what it
 * depends on.
 */
import { z } from "zod";
import { type DependencyNode, dependencyLevels } from "./order.js";

export const DeploymentActionKindSchema = z.enum([
  "StartApplication",
  "ScaleApplication",
  "RestartApplication",
  "StopApplication",
]);
export type DeploymentActionKind = z.infer<typeof DeploymentActionKindSchema>;

export const DeploymentActionSchema = z.strictObject({
  action: DeploymentActionKindSchema,
  appId: z.string().min(1),
});
export type DeploymentAction = z.infer<typeof DeploymentActionSchema>;

export const DeploymentStepSchema = z.strictObject({
  actions: z.array(DeploymentActionSchema).min(1),
});
export type DeploymentPlanStep = z.infer<typeof DeploymentStepSchema>;

/** What one request does to one app. */
export type AppChangeKind = "create" | "remove" | "scale" | "config";

export interface PlannedChange {
  appId: string;
  change: AppChangeKind;
}

/**
 * The steps of a deployment: `changes` (one per app at most), `original` the apps before (their
 * dependencies order the stops), `target` the apps after (they order the starts and upgrades).
 * A cycle cannot reach here (a change that makes one is refused before); if one does, its apps
 * fall back to one level, so the plan still holds every change.
 */
export function planSteps(
  changes: readonly PlannedChange[],
  original: readonly DependencyNode[],
  target: readonly DependencyNode[],
): DeploymentPlanStep[] {
  const kind = new Map(changes.map((c) => [c.appId, c.change]));
  const steps: DeploymentPlanStep[] = [];
  const removed = changes.filter((c) => c.change === "remove").map((c) => c.appId);
  for (const level of [...levelsOf(original, removed)].reverse())
    steps.push({ actions: level.map((appId) => ({ action: "StopApplication", appId })) });
  steps.push({
    actions: changes
      .filter((c) => c.change === "create")
      .map((c) => ({ action: "StartApplication" as const, appId: c.appId }))
      .sort(byApp),
  });
  const moving = changes.filter((c) => c.change !== "remove").map((c) => c.appId);
  for (const level of levelsOf(target, moving))
    steps.push({
      actions: level.map((appId) => ({
        action: kind.get(appId) === "config" ? "RestartApplication" : "ScaleApplication",
        appId,
      })),
    });
  return steps.filter((s) => s.actions.length > 0);
}

/** `ids` in dependency levels over `nodes` (ids without a node form level 0), each level sorted. */
function levelsOf(nodes: readonly DependencyNode[], ids: readonly string[]): string[][] {
  if (ids.length === 0) return [];
  const wanted = new Set(ids);
  const known = new Set(nodes.map((n) => n.id));
  const r = dependencyLevels(nodes);
  const levels = r.ok ? r.levels.map((l) => l.filter((id) => wanted.has(id))) : [];
  const placed = new Set(levels.flat());
  const rest = ids.filter((id) => !placed.has(id) || !known.has(id));
  if (rest.length > 0) levels.unshift([...new Set(rest)].filter((id) => !placed.has(id)));
  return levels.filter((l) => l.length > 0).map((l) => [...l].sort());
}

function byApp(a: DeploymentAction, b: DeploymentAction): number {
  return a.appId < b.appId ? -1 : a.appId > b.appId ? 1 : 0;
}

/** Whether an action is done by its start alone (StartApplication: the app exists with no instance). */
export function doneAtStart(a: DeploymentAction): boolean {
  return a.action === "StartApplication";
}

/**
 * The index of the step being carried out: the first with an action not done (`done`: the apps whose
 * action finished), or `steps.length` when all are.
 */
export function currentStepOf(steps: readonly DeploymentPlanStep[], done: ReadonlySet<string>): number {
  const i = steps.findIndex((s) => s.actions.some((a) => !doneAtStart(a) && !done.has(a.appId)));
  return i === -1 ? steps.length : i;
}

/** The step index of `appId`'s action that moves it (not its StartApplication), or undefined. */
export function stepOfApp(steps: readonly DeploymentPlanStep[], appId: string): number | undefined {
  const i = steps.findIndex((s) => s.actions.some((a) => a.appId === appId && !doneAtStart(a)));
  return i === -1 ? undefined : i;
}
