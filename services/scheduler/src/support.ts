/**
 * What the scheduler runs of a Marathon app definition today. The definition is Marathon's whole
 * model (libs/core/src/marathon): what Drover can never honour is refused there; what it will
 * honour but does not run yet is refused here, by field, so that nothing is silently dropped. A
 * field at its Marathon default passes (an app that does not use the feature is not refused).
 *
 * Honoured now: id, cmd, args, container DOCKER/MESOS with a docker image (or none: the agent's
 * default task image), cpus, mem, disk, instances, env, labels, host networking with
 * portDefinitions / requirePorts (PORT0.., PORT_<NAME>, PORTS, HOST), backoffSeconds,
 * backoffFactor, maxLaunchDelaySeconds, killSelection, role, acceptedResourceRoles with "*",
 * constraints (all seven operators, on hostname and agent attributes).
 */
import { type AppSpec, type FieldIssue, isResident } from "@drover/core";

const SOON = "not supported yet: Drover does not run";

export function notYetHonoured(def: AppSpec): FieldIssue[] {
  const out: FieldIssue[] = [];
  const refuse = (path: string, what: string) => out.push({ path, message: `${SOON} ${what}` });
  if (def.healthChecks.length > 0) refuse("healthChecks", "health checks");
  if (def.readinessChecks.length > 0) refuse("readinessChecks", "readiness checks");
  if (def.fetch.length > 0) refuse("fetch", "fetch (URIs downloaded into the sandbox)");
  if (def.dependencies.length > 0) refuse("dependencies", "app dependencies (deployments)");
  if (def.networks.some((n) => n.mode !== "host"))
    refuse("networks", "bridge or container networking (only host networking)");
  const c = def.container;
  if (c && c.volumes.length > 0) refuse("container.volumes", "volumes");
  if (c?.docker?.forcePullImage) refuse("container.docker.forcePullImage", "forced image pulls");
  if (c?.docker?.privileged) refuse("container.docker.privileged", "privileged containers");
  if (c?.docker && c.docker.parameters.length > 0) refuse("container.docker.parameters", "docker parameters");
  if (def.user !== undefined) refuse("user", "tasks as another user");
  if (def.tty) refuse("tty", "a TTY");
  if (def.resourceLimits !== undefined) refuse("resourceLimits", "resource limits above the request");
  if (def.taskKillGracePeriodSeconds !== undefined)
    refuse("taskKillGracePeriodSeconds", "a per-app kill grace period (5 s for every task)");
  const u = def.upgradeStrategy;
  // A resident app's default (0.5/0) is Marathon's for every resident app: not a choice to refuse.
  const residentDefault = isResident(def) && u.minimumHealthCapacity === 0.5 && u.maximumOverCapacity === 0;
  if ((u.minimumHealthCapacity !== 1 || u.maximumOverCapacity !== 1) && !residentDefault)
    refuse("upgradeStrategy", "rolling upgrades (a changed definition does not restart tasks yet)");
  const r = def.unreachableStrategy;
  if (r === "disabled" || r.inactiveAfterSeconds !== 0 || r.expungeAfterSeconds !== 0)
    refuse("unreachableStrategy", "an unreachable strategy other than replacing at once");
  return out;
}
