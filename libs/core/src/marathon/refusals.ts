/**
 * What Drover refuses in a definition Marathon would run: each refusal is an issue on the field's
 * path with the message `not supported: <why>`, never a silent drop. The table is in app.ts's
 * module comment and in libs/core/README.md ("Marathon app definitions"); `REFUSED_FIELDS` lists
 * the same fields for tests and docs.
 *
 * The rule: a field is refused when honouring it needs something Drover does not have and is not
 * building as part of the app model (a secret store, resource reservations, external storage, GPUs,
 * custom executors, Mesos-only isolation), or when Docker could do it only by giving a task the
 * agent's namespaces, devices or Drover's own control of the container. What the roadmap covers
 * (health and readiness checks, fetch, networks, host volumes, constraints, deployments) is accepted.
 */
import { APP_LIMITS, RESERVED_LABEL_PREFIX } from "../limits.js";
import type { Issues, Path } from "./normalize.js";
import type { MarathonAppInput } from "./schema.js";
import type { AppDefinition } from "./types.js";

/**
 * Docker parameters (`container.docker.parameters[].key`, passed by Marathon as `docker run
 * --<key>=<value>`) that Drover maps to the container's configuration. Every other key is refused.
 */
export const ALLOWED_DOCKER_PARAMETERS: readonly string[] = [
  "add-host",
  "cap-add",
  "cap-drop",
  "dns",
  "dns-option",
  "dns-search",
  "env",
  "group-add",
  "hostname",
  "init",
  "label",
  "log-driver",
  "log-opt",
  "memory-swap",
  "memory-swappiness",
  "pids-limit",
  "read-only",
  "shm-size",
  "stop-signal",
  "sysctl",
  "tmpfs",
  "ulimit",
  "user",
  "workdir",
];

/** Why a well-known refused docker parameter is refused (others: it is not in the allow-list). */
const DOCKER_PARAMETER_REASONS: ReadonlyArray<[readonly string[], string]> = [
  [
    [
      "net",
      "network",
      "network-alias",
      "ip",
      "ip6",
      "mac-address",
      "link",
      "publish",
      "publish-all",
      "expose",
    ],
    "networking comes from networks and portMappings",
  ],
  [["volume", "volumes-from", "mount", "volume-driver"], "volumes come from container.volumes"],
  [["pid", "ipc", "uts", "userns", "cgroupns"], "it would share the agent's namespaces"],
  [["device", "device-cgroup-rule", "gpus", "privileged"], "host devices (use container.docker.privileged)"],
  [
    [
      "cpus",
      "cpu-shares",
      "cpu-quota",
      "cpu-period",
      "cpuset-cpus",
      "cpuset-mems",
      "memory",
      "memory-reservation",
      "kernel-memory",
      "blkio-weight",
    ],
    "resources come from cpus, mem and resourceLimits",
  ],
  [["name", "rm", "restart", "detach"], "Drover names, restarts and removes task containers itself"],
  [["entrypoint"], "use cmd, or args with the image's entrypoint"],
  [["stop-timeout"], "use taskKillGracePeriodSeconds"],
  [
    ["health-cmd", "health-interval", "health-retries", "health-timeout", "no-healthcheck"],
    "use healthChecks",
  ],
];

function dockerParameterReason(key: string): string {
  for (const [keys, why] of DOCKER_PARAMETER_REASONS)
    if (keys.includes(key)) return `docker parameter ${JSON.stringify(key)}: ${why}`;
  return `docker parameter ${JSON.stringify(key.slice(0, 64))}: Drover maps only ${ALLOWED_DOCKER_PARAMETERS.join(", ")}`;
}

/** The fields Drover refuses, with why (the README table). `[]` / `.x` name an element or a key. */
export const REFUSED_FIELDS: ReadonlyArray<{ field: string; when: string; why: string }> = [
  { field: "secrets", when: "not empty", why: "Drover has no secret store yet" },
  { field: "env.<NAME>", when: '{"secret": ...}', why: "secret references need a secret store" },
  { field: "container.docker.pullConfig", when: "given", why: "pull secrets need a secret store" },
  { field: "container.volumes[i].secret", when: "given", why: "secret volumes need a secret store" },
  {
    field: "container.volumes[i].external",
    when: "given",
    why: "Drover has no external volume provider (DVDI, CSI)",
  },
  {
    field: "container.volumes[i].persistent.type",
    when: "mount or path",
    why: "Drover's agents offer only their root disk (no Mesos mount or path disks)",
  },
  {
    field: "container.volumes[i].persistent.profileName",
    when: "given",
    why: "Drover has no storage profiles (CSI)",
  },
  {
    field: "container.volumes[i].hostPath",
    when: "relative, with a '..' segment",
    why: "a relative hostPath is a path in the task's sandbox and must stay inside it",
  },
  { field: "gpus", when: "> 0", why: "Drover agents offer no GPUs" },
  { field: "executor", when: 'not "" or "//cmd"', why: "Drover runs no custom executors" },
  { field: "executorResources", when: "given", why: "Drover runs no executor per task" },
  {
    field: "container.appc",
    when: "given",
    why: "AppC images (gone since Marathon 1.5); use container.docker",
  },
  { field: "container.linuxInfo", when: "given", why: "Mesos containerizer settings (seccomp, IPC)" },
  {
    field: "container.docker.parameters[i].key",
    when: "not in ALLOWED_DOCKER_PARAMETERS",
    why: "it would give the task the agent's namespaces, devices or volumes, or take a setting Drover owns",
  },
  {
    field: "container.docker.parameters[i].value",
    when: 'env without "=", label in "drover."',
    why: "a bare env name copies the agent's variable; drover.* labels are Drover's",
  },
  { field: "container.docker.privileged", when: "true with type MESOS", why: "Marathon ignores it there" },
  { field: "healthChecks[i].ipProtocol", when: "IPv6", why: "Drover's task networking is IPv4" },
  { field: "check", when: "given", why: "Mesos checks (not health checks): use healthChecks" },
  { field: "cpus", when: "< 0.01", why: "Docker's floor (a CFS quota of 1 ms per 100 ms)" },
  { field: "mem", when: "< 6", why: "Docker refuses memory limits below 6 MiB" },
  {
    field: "acceptedResourceRoles",
    when: 'without "*"',
    why: "Drover has no reserved resources: every offer is role *",
  },
  {
    field: "role",
    when: "a group role (valid for Marathon) that is not the scheduler's",
    why: "Drover's scheduler takes offers for one role (normalizeApp's option `role`, default *)",
  },
];

export interface RefusalOptions {
  /** The role Drover's scheduler registers with (default "*"). */
  role?: string | undefined;
}

/**
 * Adds an issue `not supported: <why>` for each field of `def` (the canonical definition of
 * `input`) that Drover cannot honour. Pure.
 */
export function addRefusals(
  def: AppDefinition,
  input: MarathonAppInput,
  issues: Issues,
  options: RefusalOptions = {},
): void {
  const refuse = (path: Path, why: string) => issues.add(path, `not supported: ${why}`);
  if (Object.keys(def.secrets).length > 0) refuse(["secrets"], "secrets: Drover has no secret store yet");
  for (const [name, value] of Object.entries(def.env))
    if (typeof value !== "string")
      refuse(["env", name], "environment variables from secrets: Drover has no secret store yet");
  const c = def.container;
  if (c?.docker?.pullConfig !== undefined)
    refuse(["container", "docker", "pullConfig"], "pull secrets: Drover has no secret store yet");
  if (c?.appc !== undefined)
    refuse(["container", "appc"], "AppC images (removed in Marathon 1.5): use container.docker");
  if (c?.linuxInfo !== undefined)
    refuse(["container", "linuxInfo"], "Mesos containerizer settings (seccomp, IPC)");
  c?.volumes.forEach((v, i) => {
    const path = ["container", "volumes", i];
    if ("secret" in v) refuse([...path, "secret"], "secret volumes: Drover has no secret store yet");
    else if ("external" in v)
      refuse([...path, "external"], "external volumes: Drover has no volume provider (DVDI, CSI)");
    else if ("persistent" in v) {
      const p = v.persistent;
      const at = [...path, "persistent"];
      if (p.type !== "root")
        refuse([...at, "type"], `${p.type} disks: Drover's agents offer only their root disk`);
      if (p.profileName !== undefined) refuse([...at, "profileName"], "storage profiles: Drover has no CSI");
    } else if (!v.hostPath.startsWith("/") && v.hostPath.split("/").includes(".."))
      refuse([...path, "hostPath"], "a relative hostPath with '..': it must stay inside the task's sandbox");
  });
  if (c?.type === "DOCKER") {
    c.docker?.parameters.forEach((p, i) => {
      const path = ["container", "docker", "parameters", i];
      if (!ALLOWED_DOCKER_PARAMETERS.includes(p.key)) refuse([...path, "key"], dockerParameterReason(p.key));
      else if (p.key === "env" && !p.value.includes("="))
        refuse(
          [...path, "value"],
          "an env parameter without '=' would copy the agent's variable of that name",
        );
      else if (p.key === "label" && p.value.startsWith(RESERVED_LABEL_PREFIX))
        refuse([...path, "value"], `labels in "${RESERVED_LABEL_PREFIX}" are Drover's own`);
    });
  }
  if (c?.type === "MESOS" && input.container?.docker?.privileged === true)
    refuse(
      ["container", "docker", "privileged"],
      "privileged applies to DOCKER containers only (Marathon ignores it for MESOS)",
    );
  if (def.gpus > 0) refuse(["gpus"], "GPUs: Drover agents offer none");
  if (def.executor !== "" && def.executor !== "//cmd")
    refuse(["executor"], "custom executors: Drover runs tasks in containers itself");
  if (def.executorResources !== undefined) refuse(["executorResources"], "Drover runs no executor per task");
  def.healthChecks.forEach((hc, i) => {
    if (hc.ipProtocol === "IPv6")
      refuse(["healthChecks", i, "ipProtocol"], "IPv6: Drover's task networking is IPv4");
  });
  if (def.check !== undefined) refuse(["check"], "Mesos checks: use healthChecks");
  if (def.cpus < APP_LIMITS.minCpus)
    refuse(["cpus"], `cpus below ${APP_LIMITS.minCpus} (Docker's floor: a CFS quota of 1 ms per 100 ms)`);
  if (def.mem < APP_LIMITS.minMem) refuse(["mem"], `mem below ${APP_LIMITS.minMem} MiB (Docker's floor)`);
  const role = options.role ?? "*";
  const roles = def.acceptedResourceRoles;
  // Only when Marathon's own rule (a subset of {*, role}) holds, so that one problem is named once.
  if (roles !== undefined && !roles.includes("*") && roles.every((r) => r === (def.role ?? role)))
    refuse(
      ["acceptedResourceRoles"],
      'accepted roles without "*": Drover has no reserved resources, every offer is role *',
    );
  // A role Marathon itself refuses is named by normalize.ts; here only a valid one that is not ours.
  const marathonValid =
    def.id.split("/").filter((x) => x !== "")[0] === def.role && def.id.split("/").length > 2;
  if (def.role !== undefined && def.role !== role && marathonValid)
    refuse(
      ["role"],
      `role ${JSON.stringify(def.role)}: Drover's scheduler takes offers for one role, ${JSON.stringify(role)}`,
    );
}
