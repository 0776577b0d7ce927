/**
 * `drover deployment list|show|cancel` and following a deployment live (what `app update` and
 * `app restart` do unless --detach): one plain line per change when stdout is not a terminal, a
 * single line rewritten in place on a terminal. The exit status says how it ended: 0 succeeded,
 * 1 cancelled or failed.
 */
import { errorMessage, type LeaderClient, printable } from "@drover/common";
import type { Deployment, SchedulerClient } from "@drover/proto";
import { ago, table } from "./table.js";

/** How often a followed deployment is read. */
const POLL_MS = 300;
/** Reads that fail in a row (a scheduler failover) before following gives up. */
const GIVE_UP_MS = 120_000;

export function deploymentJson(d: Deployment) {
  return {
    id: d.id,
    kind: d.kind,
    state: d.state,
    waitingFor: d.waitingFor,
    reason: d.reason || undefined,
    rollbackId: d.rollbackId || undefined,
    canaryInstances: d.canaryInstances || undefined,
    createdAtMs: d.createdAtMs,
    updatedAtMs: d.updatedAtMs,
    groupId: d.groupId || undefined,
    currentStep: d.currentStep,
    steps: d.steps.map((s) => s.actions.map((a) => ({ action: a.action, appId: a.appId, done: a.done }))),
    apps: d.apps.map((a) => ({
      appId: a.appId,
      fromVersion: a.fromVersion || undefined,
      toVersion: a.toVersion,
      old: a.old,
      new: a.new,
      newHealthy: a.newHealthy,
      healthy: a.healthy,
      minHealthy: a.minHealthy,
      maxInstances: a.maxInstances,
      instances: a.instances,
    })),
  };
}

/** `deployment <id>: /web old 4 new 2 healthy 5/4 — waiting for …` (healthy: now / the minimum). */
export function progressLine(d: Deployment): string {
  const apps = d.apps
    .map((a) => `${a.appId} old ${a.old} new ${a.new} healthy ${a.healthy}/${a.minHealthy}`)
    .join(", ");
  const tail =
    d.state === "running"
      ? stripApp(d.waitingFor, d.apps.length === 1 ? d.apps[0]?.appId : undefined) || "starting"
      : `${d.state}${d.reason ? `: ${d.reason}` : ""}${d.rollbackId ? ` (rollback ${d.rollbackId})` : ""}`;
  return printable(`deployment ${d.id}: ${apps} — ${tail}`);
}

function stripApp(text: string, appId: string | undefined): string {
  return appId && text.startsWith(`${appId}: `) ? text.slice(appId.length + 2) : text;
}

export function deploymentTable(ds: Deployment[]): string {
  return table(
    ["ID", "KIND", "STATE", "APPS", "OLD", "NEW", "HEALTHY", "STARTED", "WAITING FOR"],
    ds.map((d) => [
      d.id,
      d.kind,
      d.state,
      d.apps.map((a) => a.appId).join(","),
      d.apps.map((a) => a.old).join(","),
      d.apps.map((a) => a.new).join(","),
      d.apps.map((a) => `${a.healthy}/${a.minHealthy}`).join(","),
      ago(d.createdAtMs),
      printable(d.waitingFor || d.reason || "-").slice(0, 120),
    ]),
  );
}

export function deploymentText(d: Deployment): string {
  const lines = [
    `deployment ${d.id} (${d.kind}${d.groupId ? ` of group ${d.groupId}` : ""}${d.canaryInstances ? `, canary of ${d.canaryInstances}: promote or cancel` : ""}): ${d.state}`,
    `  started   ${new Date(d.createdAtMs).toISOString()}`,
  ];
  for (const [i, st] of d.steps.entries()) {
    const mark = i < d.currentStep ? "done" : i === d.currentStep && d.state === "running" ? "now" : "";
    lines.push(
      `  step ${i + 1}${mark ? ` (${mark})` : ""}: ${st.actions.map((a) => `${a.action} ${a.appId}${a.done && mark === "now" ? " (done)" : ""}`).join(", ")}`,
    );
  }
  for (const a of d.apps)
    lines.push(
      `  app ${a.appId}: ${a.fromVersion || "(new)"} → ${a.toVersion}; old ${a.old}, new ${a.new} (${a.newHealthy} healthy and ready), healthy ${a.healthy} (at least ${a.minHealthy}), at most ${a.maxInstances} of ${a.instances}`,
    );
  if (d.waitingFor) lines.push(`  waiting for: ${d.waitingFor}`);
  if (d.reason) lines.push(`  reason: ${d.reason}`);
  if (d.rollbackId) lines.push(`  rolled back by: ${d.rollbackId}`);
  return lines.map((l) => printable(l)).join("\n");
}

/**
 * Follows a deployment until it ends; returns it. Lines go to `stream` (stderr when the caller
 * prints JSON on stdout).
 */
export async function follow(
  s: LeaderClient<SchedulerClient>,
  id: string,
  stream: NodeJS.WriteStream,
): Promise<Deployment> {
  const tty = stream.isTTY === true;
  let last = "";
  let failingSince: number | undefined;
  for (;;) {
    let d: Deployment | undefined;
    try {
      d = (await s.call((c) => c.getDeployment.bind(c), { id })).deployment;
      failingSince = undefined;
    } catch (err) {
      failingSince ??= Date.now();
      if (Date.now() - failingSince > GIVE_UP_MS) throw err;
      if (!tty)
        stream.write(`deployment ${id}: cannot read it (${printable(errorMessage(err))}); retrying\n`);
    }
    if (d) {
      const line = progressLine(d);
      if (line !== last) {
        if (tty) {
          const width = stream.columns ?? 120;
          stream.write(`\r\x1b[2K${line.slice(0, Math.max(20, width - 1))}`);
        } else stream.write(`${line}\n`);
        last = line;
      }
      if (d.state !== "running") {
        if (tty) stream.write("\n");
        return d;
      }
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
