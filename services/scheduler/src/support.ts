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
 * constraints (all seven operators, on hostname and agent attributes), bridge networking with
 * portMappings and user-defined Docker networks by name, host-path volumes and local persistent
 * volumes (resident apps, residency.ts), fetch into the sandbox, privileged, docker parameters,
 * forcePullImage and user (the agent's Docker runtime, libs/runtime/src/docker), unreachableStrategy
 * (framework.ts, core's reconcileApp), taskKillGracePeriodSeconds (the grace of the scheduler's
 * kills and, through TaskInfo.run, of the agent's).
 * Health checks (every protocol) and readiness checks run on the agent, next to the task
 * (services/agent/src/health.ts); a task killed for failing them is replaced as a failed task.
 * upgradeStrategy: a config change or a restart is a deployment, carried out as a rolling upgrade
 * under it (deployments.ts, core's rollingStep).
 * dependencies: an app's launches wait until every app it depends on is healthy (framework.ts,
 * dependencyWait); a cycle is refused (apps.ts).
 */
import {
  type AppSpec,
  type FieldIssue,
  MAX_PROGRESS_DEADLINE_SECONDS,
  PROGRESS_DEADLINE_LABEL,
  progressDeadlineMs,
} from "@drover/core";

export function notYetHonoured(def: AppSpec): FieldIssue[] {
  const out: FieldIssue[] = [];
  // Drover's own label: a value it cannot read is refused, not ignored.
  const deadline = def.labels[PROGRESS_DEADLINE_LABEL];
  if (deadline !== undefined && progressDeadlineMs(def.labels) === undefined)
    out.push({
      path: `labels.${PROGRESS_DEADLINE_LABEL}`,
      message: `must be a number of seconds from 1 to ${MAX_PROGRESS_DEADLINE_SECONDS}`,
    });
  def.networks.forEach((n, i) => {
    if (n.mode === "container" && !n.name)
      out.push({
        path: `networks[${i}].name`,
        message: "not supported: a container network without a name (Drover has no default network name)",
      });
  });
  return out;
}
