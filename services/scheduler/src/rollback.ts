/**
 * Rolling a deployment's apps back to the definition each had before it, as one new deployment
 * per app (kind "rollback") that supersedes it in the app change's transaction: a cancel without
 * force (CancelDeployment) and a passed progress deadline (DROVER_PROGRESS_DEADLINE_SECONDS) both
 * end here, the first as cancelled, the second as failed, each naming the rollback.
 *
 * Only that deployment's apps move (COMPLAINTS.md 10). The instances that still run the previous
 * definition stay: the rollback counts them as its new ones (DeploymentApp.sameConfig), so it kills
 * only the instances the cancelled deployment started (a canary's canaries, a stuck version's
 * tasks) and starts what is missing under the app's upgradeStrategy.
 *
 * A group's deployment (several apps, one transaction) is rolled back the same way, as one
 * deployment of all its apps (AppStore.applyAll): each changed app goes back to its previous
 * definition, an app it created is removed, in the dependency order of core's planSteps. An app it
 * removed cannot come back: its definitions went with it (it stays removed).
 */
import type { AppSpec, DependencyNode, DeploymentEvent, DeploymentRecord } from "@drover/core";
import type { AppStore } from "./apps.js";
import type { DeploymentStore } from "./deployments.js";

/**
 * Rolls `d` back (call within deployments.serial); `end` is how `d` ends when a rollback starts.
 * Returns the last rollback deployment's id, "" when there was nothing to roll back to (a new app, a
 * restart: the same definition) and `d` is still running (the caller ends it).
 */
export async function rollBack(
  apps: AppStore,
  deployments: DeploymentStore,
  d: DeploymentRecord,
  end: (rollbackId: string) => DeploymentEvent,
): Promise<string> {
  if (d.kind === "group") return rollBackGroup(apps, deployments, d, end);
  let rollbackId = "";
  for (const a of d.apps) {
    const app = apps.record(a.appId);
    if (!app || a.fromVersion === undefined) continue;
    const previous = await apps.version(a.appId, a.fromVersion);
    const hook = deployments.startHook(a.appId, "rollback", true, {
      sameConfig: { from: previous.versionInfo.lastConfigChangeAt, until: a.toVersion },
      supersede: end,
    });
    let started = false;
    await apps.update(a.appId, previous.spec, {
      ...hook,
      committed: (rev) => {
        started = true;
        hook.committed(rev);
      },
    });
    if (started) rollbackId = hook.id;
  }
  return rollbackId;
}

async function rollBackGroup(
  apps: AppStore,
  deployments: DeploymentStore,
  d: DeploymentRecord,
  end: (rollbackId: string) => DeploymentEvent,
): Promise<string> {
  const target = new Map<string, AppSpec | undefined>();
  const sameConfig = new Map<string, { from: string; until: string }>();
  for (const a of d.apps) {
    if (!apps.record(a.appId)) continue;
    if (a.fromVersion === undefined) {
      target.set(a.appId, undefined);
      continue;
    }
    const previous = await apps.version(a.appId, a.fromVersion);
    target.set(a.appId, previous.spec);
    sameConfig.set(a.appId, { from: previous.versionInfo.lastConfigChangeAt, until: a.toVersion });
  }
  if (target.size === 0) return "";
  const original: DependencyNode[] = [...apps.records().values()].map((r) => r.spec);
  const after = new Map<string, DependencyNode>(original.map((n) => [n.id, n]));
  for (const [id, spec] of target) {
    if (spec) after.set(id, spec);
    else after.delete(id);
  }
  const hook = deployments.groupHook(d.groupId ?? "", true, original, [...after.values()], {
    kind: "rollback",
    supersedes: d.id,
    end,
    sameConfig,
  });
  let started = false;
  await apps.applyAll(target, {
    ...hook,
    committed: (rev) => {
      started = true;
      hook.committed(rev);
    },
  });
  return started ? hook.id : "";
}
