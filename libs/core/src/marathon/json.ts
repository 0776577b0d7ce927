/**
 * The canonical definition as Marathon prints it (`GET /v2/apps/{id}`, without the AppInfo counters,
 * which the service adds; with `version` and `versionInfo` when given): fields in the RAML's
 * property order (Marathon's JSON writer is generated from app.raml and writes properties in that
 * order), and Marathon's omissions: lists
 * and maps marked `omitEmpty` in the RAML (`args`, `constraints`, `dependencies`, `env`, `fetch`,
 * `healthChecks`, `readinessChecks`, `secrets`; labels of port definitions and networks, `networkNames`)
 * are left out when empty, optional values when absent. `labels` and `container.volumes` are always
 * printed. `portDefinitions` appear for host networking only, `container.portMappings` for other
 * networking only (`raml/AppConversion.appWriter`).
 */
import type {
  AppContainer,
  AppDefinition,
  AppVolume,
  Artifact,
  DockerContainer,
  HealthCheck,
  Network,
  PortDefinition,
  PortMapping,
  ReadinessCheck,
} from "./types.js";

export type JsonObject = { [key: string]: unknown };

/** Copies `entries` in order, leaving out undefined values. */
function ordered(entries: ReadonlyArray<readonly [string, unknown]>): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of entries) if (v !== undefined) out[k] = v;
  return out;
}

const nonEmpty = <T>(list: readonly T[]): readonly T[] | undefined => (list.length > 0 ? list : undefined);
const nonEmptyMap = (m: Record<string, unknown>): Record<string, unknown> | undefined =>
  Object.keys(m).length > 0 ? { ...m } : undefined;

function portDefinitionJson(p: PortDefinition): JsonObject {
  return ordered([
    ["port", p.port],
    ["labels", nonEmptyMap(p.labels)],
    ["name", p.name],
    ["protocol", p.protocol],
  ]);
}

function portMappingJson(p: PortMapping): JsonObject {
  return ordered([
    ["containerPort", p.containerPort],
    ["hostPort", p.hostPort],
    ["labels", { ...p.labels }],
    ["name", p.name],
    ["protocol", p.protocol],
    ["servicePort", p.servicePort],
    ["networkNames", nonEmpty(p.networkNames)?.slice()],
  ]);
}

function dockerJson(d: DockerContainer): JsonObject {
  return ordered([
    ["credential", d.credential === undefined ? undefined : { ...d.credential }],
    ["pullConfig", d.pullConfig === undefined ? undefined : { ...d.pullConfig }],
    ["forcePullImage", d.forcePullImage],
    ["image", d.image],
    ["parameters", d.parameters.map((p) => ({ key: p.key, value: p.value }))],
    ["privileged", d.privileged],
  ]);
}

function volumeJson(v: AppVolume): JsonObject {
  if ("hostPath" in v)
    return ordered([
      ["containerPath", v.containerPath],
      ["hostPath", v.hostPath],
      ["mode", v.mode],
    ]);
  if ("persistent" in v)
    return ordered([
      ["containerPath", v.containerPath],
      [
        "persistent",
        ordered([
          ["type", v.persistent.type],
          ["size", v.persistent.size],
          ["maxSize", v.persistent.maxSize],
          ["profileName", v.persistent.profileName],
          ["constraints", v.persistent.constraints.map((c) => [...c])],
        ]),
      ],
      ["mode", v.mode],
    ]);
  if ("external" in v)
    return ordered([
      ["containerPath", v.containerPath],
      ["external", structuredClone(v.external)],
      ["mode", v.mode],
    ]);
  return ordered([
    ["containerPath", v.containerPath],
    ["secret", v.secret],
  ]);
}

function containerJson(c: AppContainer, hostNetworking: boolean): JsonObject {
  return ordered([
    ["type", c.type],
    ["docker", c.docker === undefined ? undefined : dockerJson(c.docker)],
    ["linuxInfo", c.linuxInfo === undefined ? undefined : structuredClone(c.linuxInfo)],
    ["volumes", c.volumes.map(volumeJson)],
    ["portMappings", hostNetworking ? undefined : (c.portMappings ?? []).map(portMappingJson)],
    ["appc", c.appc === undefined ? undefined : structuredClone(c.appc)],
  ]);
}

function networkJson(n: Network): JsonObject {
  return ordered([
    ["name", n.name],
    ["mode", n.mode],
    ["labels", nonEmptyMap(n.labels)],
  ]);
}

function healthCheckJson(h: HealthCheck): JsonObject {
  return ordered([
    ["command", h.command === undefined ? undefined : { value: h.command.value }],
    ["gracePeriodSeconds", h.gracePeriodSeconds],
    ["ignoreHttp1xx", h.ignoreHttp1xx],
    ["intervalSeconds", h.intervalSeconds],
    ["maxConsecutiveFailures", h.maxConsecutiveFailures],
    ["path", h.path],
    ["port", h.port],
    ["portIndex", h.portIndex],
    ["protocol", h.protocol],
    ["ipProtocol", h.ipProtocol],
    ["timeoutSeconds", h.timeoutSeconds],
    ["delaySeconds", h.delaySeconds],
  ]);
}

function readinessCheckJson(r: ReadinessCheck): JsonObject {
  return ordered([
    ["name", r.name],
    ["protocol", r.protocol],
    ["path", r.path],
    ["portName", r.portName],
    ["intervalSeconds", r.intervalSeconds],
    ["timeoutSeconds", r.timeoutSeconds],
    ["httpStatusCodesForReady", [...r.httpStatusCodesForReady]],
    ["preserveLastResponse", r.preserveLastResponse],
  ]);
}

function artifactJson(a: Artifact): JsonObject {
  return ordered([
    ["uri", a.uri],
    ["extract", a.extract],
    ["executable", a.executable],
    ["cache", a.cache],
    ["destPath", a.destPath],
  ]);
}

/**
 * What `drover app show --json` and `GET /v2/apps/{id}` print for a definition: Marathon's JSON
 * shape and field order. `normalizeApp(toMarathonJson(def))` gives `def` back. Pure; the result
 * shares nothing with `def`.
 */
export function toMarathonJson(
  def: AppDefinition,
  /** The app's `version` and `versionInfo` (GET /v2/apps/{id} prints them after `user`). */
  versioned?: { version: string; versionInfo: { lastScalingAt: string; lastConfigChangeAt: string } },
): JsonObject {
  const host = !def.networks.some((n) => n.mode !== "host");
  return ordered([
    ["id", def.id],
    ["acceptedResourceRoles", def.acceptedResourceRoles?.slice()],
    ["args", def.args === undefined ? undefined : nonEmpty(def.args)?.slice()],
    ["backoffFactor", def.backoffFactor],
    ["backoffSeconds", def.backoffSeconds],
    ["cmd", def.cmd],
    ["constraints", nonEmpty(def.constraints)?.map((c) => [...c])],
    ["container", def.container === undefined ? undefined : containerJson(def.container, host)],
    ["cpus", def.cpus],
    ["dependencies", nonEmpty(def.dependencies)?.slice()],
    ["disk", def.disk],
    ["env", nonEmptyMap(structuredClone(def.env))],
    ["executor", def.executor],
    ["executorResources", def.executorResources === undefined ? undefined : { ...def.executorResources }],
    ["fetch", nonEmpty(def.fetch)?.map(artifactJson)],
    ["healthChecks", nonEmpty(def.healthChecks)?.map(healthCheckJson)],
    ["check", def.check === undefined ? undefined : structuredClone(def.check)],
    ["instances", def.instances],
    ["labels", { ...def.labels }],
    ["maxLaunchDelaySeconds", def.maxLaunchDelaySeconds],
    ["mem", def.mem],
    ["gpus", def.gpus],
    ["networks", def.networks.map(networkJson)],
    ["portDefinitions", host ? (def.portDefinitions ?? []).map(portDefinitionJson) : undefined],
    ["readinessChecks", nonEmpty(def.readinessChecks)?.map(readinessCheckJson)],
    ["residency", def.residency === undefined ? undefined : { ...def.residency }],
    ["resourceLimits", def.resourceLimits === undefined ? undefined : { ...def.resourceLimits }],
    ["requirePorts", def.requirePorts],
    ["secrets", nonEmptyMap(structuredClone(def.secrets))],
    ["taskKillGracePeriodSeconds", def.taskKillGracePeriodSeconds],
    [
      "upgradeStrategy",
      ordered([
        ["maximumOverCapacity", def.upgradeStrategy.maximumOverCapacity],
        ["minimumHealthCapacity", def.upgradeStrategy.minimumHealthCapacity],
      ]),
    ],
    ["user", def.user],
    ["version", versioned?.version],
    [
      "versionInfo",
      versioned &&
        ordered([
          ["lastScalingAt", versioned.versionInfo.lastScalingAt],
          ["lastConfigChangeAt", versioned.versionInfo.lastConfigChangeAt],
        ]),
    ],
    ["killSelection", def.killSelection],
    [
      "unreachableStrategy",
      def.unreachableStrategy === "disabled"
        ? "disabled"
        : ordered([
            ["inactiveAfterSeconds", def.unreachableStrategy.inactiveAfterSeconds],
            ["expungeAfterSeconds", def.unreachableStrategy.expungeAfterSeconds],
          ]),
    ],
    ["tty", def.tty],
    ["role", def.role],
  ]);
}
