/**
 * Dependencies between apps (Marathon's `dependencies`): an app's launches wait until every app
 * it depends on is healthy. A dependency names an app or a group (then every app below it); one
 * that names nothing known is ignored, as Marathon's deployment plan does. Cycles never get here
 * (apps.ts refuses them). Pure.
 *
 * Healthy, for a dependency: as many instances as it asks for are RUNNING, healthy (every health
 * check) and ready (every readiness check) and run its current configuration, and no deployment of
 * it is running. An app with 0 instances is healthy.
 */
import { type AppRecord, isActive, isUnder } from "@drover/core";
import { isHealthy, isNewTask, isReady } from "./deployment-step.js";
import type { TaskEntry } from "./framework.js";

export interface DependencyView {
  apps: ReadonlyMap<string, AppRecord>;
  tasksOf(appId: string): Iterable<TaskEntry>;
  deploying(appId: string): boolean;
}

/** The apps `app`'s dependencies name (a group: every app below it, the app itself excepted). */
export function dependencyApps(app: AppRecord, apps: ReadonlyMap<string, AppRecord>): string[] {
  const out = new Set<string>();
  for (const d of app.spec.dependencies) {
    if (apps.has(d)) out.add(d);
    else for (const id of apps.keys()) if (id !== app.spec.id && isUnder(id, d)) out.add(id);
  }
  return [...out].sort();
}

/**
 * What `app`'s launches wait for (`waiting for dependency /db: 1 of 2 instances healthy`), or
 * undefined when every dependency is healthy.
 */
export function dependencyWait(app: AppRecord, view: DependencyView): string | undefined {
  if (app.spec.dependencies.length === 0) return undefined;
  for (const id of dependencyApps(app, view.apps)) {
    const dep = view.apps.get(id);
    if (!dep) continue;
    let healthy = 0;
    for (const t of view.tasksOf(id))
      if (isActive(t.state) && !t.killRequested && isNewTask(dep, t) && isHealthy(dep, t) && isReady(dep, t))
        healthy++;
    const want = dep.spec.instances;
    if (healthy < want) return `waiting for dependency ${id}: ${healthy} of ${want} instances healthy`;
    if (view.deploying(id)) return `waiting for dependency ${id}: its deployment is running`;
  }
  return undefined;
}
