/**
 * What a task needs of its agent's runtime besides image, command and resources, built from the
 * canonical app definition for one placement: `TaskRun` (libs/core/src/events/task.ts). Pure.
 *
 * Ports are resolved here, once, by the scheduler that chose them: a port mapping's `hostPort` is
 * the host port of its index (`hostPortsByIndex`), its `containerPort` 0 becomes that host port
 * (Marathon). On host networking a health check that names a port index gets the host port of that
 * index as its `port` (the agent probes `127.0.0.1:<port>` without knowing the app's port layout).
 * On bridge and container networks it keeps its `portIndex`: the agent probes the mapping's host
 * port on loopback, or, without one, the container's address on the mapping's `containerPort`; a
 * check's own `port` there is a port of the container (IP per task, as Marathon).
 */

import type { z } from "zod";
import type { HealthCheckSchema, TaskRun, VolumeMount } from "../events/task.js";
import { isHostNetworking } from "./task.js";
import type { AppDefinition, HealthCheck } from "./types.js";

type RunHealthCheck = z.infer<typeof HealthCheckSchema>;

export interface TaskRunContext {
  /** The host port of each port index (`hostPortsByIndex`), undefined where the index has none. */
  hostPorts: readonly (number | undefined)[];
  /** The app version the task runs. */
  appVersion?: string;
  /** The Docker volume name of the persistent volume at `containerPath` for this task. */
  persistentVolumeName?: (containerPath: string) => string;
}

export function taskRunOf(def: AppDefinition, ctx: TaskRunContext): TaskRun {
  const run: TaskRun = {};
  if (ctx.appVersion !== undefined) run.appVersion = ctx.appVersion;
  if (!isHostNetworking(def)) {
    const n = def.networks[0];
    run.network =
      n?.mode === "container"
        ? { mode: "container", ...(n.name ? { name: n.name } : {}) }
        : { mode: "bridge" };
    const mappings = def.container?.portMappings ?? [];
    if (mappings.length > 0)
      run.portMappings = mappings.map((m, i) => {
        const hostPort = ctx.hostPorts[i] ?? 0;
        return {
          containerPort: m.containerPort !== 0 ? m.containerPort : hostPort,
          hostPort,
          protocol: m.protocol,
          ...(m.name !== undefined ? { name: m.name } : {}),
        };
      });
  }
  const volumes: VolumeMount[] = [];
  const persistentAt = new Map<string, number>();
  for (const v of def.container?.volumes ?? [])
    if ("persistent" in v) persistentAt.set(v.containerPath, v.persistent.size);
  for (const v of def.container?.volumes ?? []) {
    // A relative hostPath naming a persistent volume (its sandbox path) mounts that volume again
    // elsewhere, as Mesos does (`mysqldata` → /var/lib/mysql).
    const again = "hostPath" in v ? persistentAt.get(v.hostPath) : undefined;
    if ("hostPath" in v && again !== undefined && ctx.persistentVolumeName)
      volumes.push({
        containerPath: v.containerPath,
        mode: v.mode,
        persistent: { name: ctx.persistentVolumeName(v.hostPath), sizeMib: again },
      });
    else if ("hostPath" in v)
      volumes.push({ containerPath: v.containerPath, hostPath: v.hostPath, mode: v.mode });
    else if ("persistent" in v && ctx.persistentVolumeName)
      volumes.push({
        containerPath: v.containerPath,
        mode: v.mode,
        persistent: { name: ctx.persistentVolumeName(v.containerPath), sizeMib: v.persistent.size },
      });
  }
  if (volumes.length > 0) run.volumes = volumes;
  if (def.fetch.length > 0)
    run.fetch = def.fetch.map((a) => ({
      uri: a.uri,
      extract: a.extract,
      executable: a.executable,
      cache: a.cache,
      ...(a.destPath !== undefined ? { outputFile: a.destPath } : {}),
    }));
  const docker = def.container?.docker;
  if (docker?.privileged) run.privileged = true;
  if (docker && docker.parameters.length > 0)
    run.dockerParameters = docker.parameters.map((p) => ({ key: p.key, value: p.value }));
  if (docker?.forcePullImage) run.forcePullImage = true;
  if (def.user !== undefined) run.user = def.user;
  if (def.taskKillGracePeriodSeconds !== undefined)
    run.killGracePeriodSeconds = def.taskKillGracePeriodSeconds;
  if (def.tty) run.tty = true;
  const limits = def.resourceLimits;
  if (limits && (limits.cpus !== undefined || limits.mem !== undefined))
    run.limits = {
      ...(limits.cpus !== undefined ? { cpus: limits.cpus } : {}),
      ...(limits.mem !== undefined ? { mem: limits.mem } : {}),
    };
  if (def.healthChecks.length > 0)
    run.healthChecks = def.healthChecks.map((h) =>
      runHealthCheck(h, isHostNetworking(def) ? ctx.hostPorts : undefined),
    );
  if (def.readinessChecks.length > 0)
    run.readinessChecks = def.readinessChecks.map((c) => ({
      ...c,
      httpStatusCodesForReady: [...c.httpStatusCodesForReady],
    }));
  return run;
}

/**
 * `hostPorts` given (host networking): a port index becomes the host port of that index. Absent
 * (bridge, container networks): the index stays, the agent resolves it through the port mappings.
 */
function runHealthCheck(
  h: HealthCheck,
  hostPorts: readonly (number | undefined)[] | undefined,
): RunHealthCheck {
  const out: RunHealthCheck = {
    protocol: h.protocol,
    gracePeriodSeconds: h.gracePeriodSeconds,
    intervalSeconds: h.intervalSeconds,
    timeoutSeconds: h.timeoutSeconds,
    maxConsecutiveFailures: h.maxConsecutiveFailures,
    delaySeconds: h.delaySeconds,
  };
  if (h.path !== undefined) out.path = h.path;
  if (h.ignoreHttp1xx !== undefined) out.ignoreHttp1xx = h.ignoreHttp1xx;
  if (h.command !== undefined) out.command = { value: h.command.value };
  if (h.protocol === "COMMAND") return out;
  if (h.port !== undefined) out.port = h.port;
  else if (h.portIndex !== undefined) {
    const hostPort = hostPorts?.[h.portIndex];
    if (hostPort !== undefined) out.port = hostPort;
    else out.portIndex = h.portIndex;
  }
  return out;
}
