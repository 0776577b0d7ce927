/**
 * From a structurally valid input (schema.ts) to the canonical definition (types.ts), as Marathon's
 * `POST /v2/apps` does it (mesosphere/marathon @ 90619da70d79, `api/v2/AppHelpers.appNormalization`):
 *
 *   1. ids made absolute (`AppNormalization.withCanonizedIds`, against `/`);
 *   2. the rules on deprecated fields (`AppValidation.validateOldAppAPI`);
 *   3. deprecated → canonical (`AppNormalization.forDeprecated`): `uris` → `fetch`, `ports` →
 *      `portDefinitions`, `ipAddress` / `container.docker.network` → `networks`,
 *      `container.docker.portMappings` / `ipAddress.discovery.ports` → `container.portMappings`,
 *      default port definitions / mappings, health check port indices, readiness status codes;
 *   4. the canonical rules (`AppValidation.validateCanonicalAppAPI`, `AppDefinition.validAppDefinition`);
 *   5. the remaining defaults (`AppNormalization.forPostValidation`, `AppConversion.appRamlReader`).
 *
 * Every problem is collected (not only the first).
 * Drover's own refusals are not here (refusals.ts).
 */
import { READINESS_CHECK_DEFAULTS } from "../health.js";
import { type FieldIssue, formatPath } from "../validation.js";
import { parseConstraint } from "./constraint.js";
import { canonicalId, checkAppId, checkPathId } from "./path-id.js";
import type {
  ContainerInput,
  HealthCheckInput,
  MarathonAppInput,
  PortDefinitionInput,
  PortMappingInput,
  VolumeInput,
} from "./schema.js";
import type {
  AppContainer,
  AppDefinition,
  AppVolume,
  Artifact,
  DockerContainer,
  EnvValue,
  HealthCheck,
  Network,
  PortDefinition,
  PortMapping,
  ReadinessCheck,
  UnreachableStrategy,
  UpgradeStrategy,
} from "./types.js";

export type Path = ReadonlyArray<string | number>;

/** Collects problems with their paths; `fieldIssues()` gives them in core's format (`a.b[0].c`). */
export class Issues {
  readonly raw: { path: Path; message: string }[] = [];
  add(path: Path, message: string): void {
    this.raw.push({ path, message });
  }
  get empty(): boolean {
    return this.raw.length === 0;
  }
  fieldIssues(): FieldIssue[] {
    return this.raw.map((i) => ({ path: formatPath(i.path), message: i.message }));
  }
}

/** Marathon's defaults (app.raml, `raml/Apps.scala`, `state/*.scala`). */
export const MARATHON_DEFAULTS = {
  cpus: 1,
  mem: 128,
  disk: 0,
  gpus: 0,
  instances: 1,
  backoffSeconds: 1,
  backoffFactor: 1.15,
  maxLaunchDelaySeconds: 300,
  executor: "",
  killSelection: "YOUNGEST_FIRST",
  requirePorts: false,
  upgradeStrategy: { maximumOverCapacity: 1, minimumHealthCapacity: 1 },
  residentUpgradeStrategy: { maximumOverCapacity: 0, minimumHealthCapacity: 0.5 },
  unreachableStrategy: { inactiveAfterSeconds: 0, expungeAfterSeconds: 0 },
  residentUnreachableStrategy: "disabled",
  residency: { relaunchEscalationTimeoutSeconds: 3600, taskLostBehavior: "WAIT_FOREVER" },
  networks: [{ mode: "host" }],
  /** `Apps.DefaultPortDefinitions`, host networking, when neither `ports` nor `portDefinitions` is given. */
  portDefinitions: [{ port: 0, name: "default", protocol: "tcp" }],
  /** `Apps.DefaultPortMappings`, other networking, when no port mapping is given (+ hostPort 0 for bridge). */
  portMappings: [{ containerPort: 0, name: "default", protocol: "tcp", servicePort: 0 }],
  healthCheck: {
    protocol: "HTTP",
    gracePeriodSeconds: 300,
    intervalSeconds: 60,
    timeoutSeconds: 20,
    maxConsecutiveFailures: 3,
    delaySeconds: 15,
    ipProtocol: "IPv4",
    ignoreHttp1xx: false,
  },
  readinessCheck: READINESS_CHECK_DEFAULTS,
  artifact: { extract: true, executable: false, cache: false },
  /** Marathon's `--mesos_bridge_name` default: an `ipAddress.networkName` of this name means bridge. */
  mesosBridgeName: "mesos-bridge",
} as const;

/** File types `uris` are extracted for (`state/FetchUri.scala` `supportedFileTypes`). */
const EXTRACT_TYPES = [".tar", ".tar.gz", ".tar.bz2", ".tar.xz", ".gz", ".tgz", ".tbz2", ".txz", ".zip"];
/** Characters java.net.URI accepts (escapes included); anything else is "URI has invalid syntax.". */
const URI_CHARS = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/;
const SINGLE_INSTANCE_LABEL = "MARATHON_SINGLE_INSTANCE_APP";
const MIGRATION_API_VERSION = "DCOS_MIGRATION_API_VERSION";
const EXECUTOR_PATTERN = /^(?:\/\/cmd|\/?[^/]+(?:\/[^/]+)*|)$/;

function uriPath(uri: string): string {
  const beforeQuery = uri.split(/[?#]/)[0] ?? "";
  return beforeQuery.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/, "");
}

/** Whether Marathon extracts a `uris` entry (by its path's extension). */
export function isExtract(uri: string): boolean {
  const path = uriPath(uri);
  return EXTRACT_TYPES.some((t) => path.endsWith(t));
}

/** The role-name rules of `state/ResourceRole.validResourceRole`, or undefined when valid. */
function roleProblem(role: string): string | undefined {
  if (role === "" || role === "." || role === "..") return `A role name must not be ${JSON.stringify(role)}.`;
  if (role.startsWith("-")) return "A role name must not start with a '-'.";
  if (/[\t\n\v\f\r /\x7f]/.test(role))
    return "A role name must not include a whitespace, '/' or backspace character.";
  return undefined;
}

function uniqueBy<T>(items: readonly T[], key: (t: T) => string): T[] {
  const seen = new Set<string>();
  return items.filter((t) => {
    const k = key(t);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** The indices of repeated names (`undefined` names ignored). */
function duplicateNames(names: readonly (string | undefined)[]): number[] {
  const seen = new Set<string>();
  const out: number[] = [];
  names.forEach((n, i) => {
    if (n === undefined) return;
    if (seen.has(n)) out.push(i);
    seen.add(n);
  });
  return out;
}

type NetInput = {
  name?: string | undefined;
  mode: Network["mode"];
  labels?: Record<string, string> | undefined;
};

/** `AppNormalization.NetworkTranslation`: deprecated `ipAddress` / `container.docker.network` → networks. */
function translateNetworks(input: MarathonAppInput, issues: Issues): { networks: NetInput[]; path: Path } {
  const ip = input.ipAddress;
  const dockerNet = input.container?.docker?.network;
  const given = input.networks !== undefined && input.networks.length > 0 ? input.networks : undefined;
  if (given !== undefined) {
    // Mixing with deprecated fields is reported by the old-API rules.
    return {
      networks: given.map((n) => ({ name: n.name, mode: n.mode ?? "container", labels: n.labels })),
      path: ["networks"],
    };
  }
  if (dockerNet === "NONE") {
    issues.add(["container", "docker", "network"], "unsupported docker network type NONE");
    return { networks: [], path: ["container", "docker", "network"] };
  }
  if (ip !== undefined) {
    const path = dockerNet !== undefined ? ["container", "docker", "network"] : ["ipAddress"];
    if (dockerNet === "HOST") return { networks: [{ mode: "host" }], path };
    if (dockerNet === "BRIDGE") return { networks: [{ mode: "container/bridge", labels: ip.labels }], path };
    if (dockerNet === undefined && ip.networkName === MARATHON_DEFAULTS.mesosBridgeName)
      return { networks: [{ mode: "container/bridge", labels: ip.labels }], path };
    return { networks: [{ mode: "container", name: ip.networkName, labels: ip.labels }], path };
  }
  const path = ["container", "docker", "network"];
  if (dockerNet === "HOST") return { networks: [{ mode: "host" }], path };
  if (dockerNet === "BRIDGE") return { networks: [{ mode: "container/bridge" }], path };
  if (dockerNet === "USER") return { networks: [{ mode: "container" }], path };
  return { networks: [], path: ["networks"] };
}

/** `NetworkValidation.ramlNetworksValidator` and the Docker engine's one-container-network rule. */
function checkNetworks(nets: readonly NetInput[], path: Path, dockerEngine: boolean, issues: Issues): void {
  const host = nets.filter((n) => n.mode === "host");
  const bridge = nets.filter((n) => n.mode === "container/bridge");
  const container = nets.filter((n) => n.mode === "container");
  if (host.some((n) => n.name !== undefined || Object.keys(n.labels ?? {}).length > 0))
    issues.add(path, "Host networks may not have names or labels");
  if (bridge.some((n) => n.name !== undefined)) issues.add(path, "Bridge networks may not have names");
  const unnamed = container.filter((n) => n.name === undefined).length;
  if (unnamed > 1 || duplicateNames(nets.map((n) => n.name)).length > 0)
    issues.add(path, "Duplicate networks are not allowed");
  const shapeOk =
    (host.length <= 1 && bridge.length === 0 && container.length === 0) ||
    (host.length === 0 && bridge.length <= 1 && container.length === 0) ||
    (host.length === 0 && bridge.length === 0 && container.length > 0);
  if (!shapeOk)
    issues.add(
      path,
      "May specify a single host network, single bridge network, or else 1-to-n container networks",
    );
  if (dockerEngine && container.length > 1)
    issues.add(path, "may only specify a single container network when using the Docker container engine");
  if (unnamed > 0)
    issues.add(
      path,
      "Network name must be specified when container network is selected (Drover has no default network name)",
    );
}

/** `validateOldAppAPI`: the rules on deprecated fields and their mix with canonical ones. */
function checkOldApi(input: MarathonAppInput, issues: Issues): void {
  const c = input.container;
  const docker = c?.docker;
  if (docker?.credential !== undefined)
    issues.add(
      ["container", "docker", "credential"],
      "docker credentials are not supported any more (since Marathon 1.5): use pullConfig",
    );
  if (docker !== undefined && c?.type === "MESOS") {
    if (docker.network !== undefined)
      issues.add(["container", "docker", "network"], "must be empty for container type MESOS");
    if ((docker.parameters ?? []).length > 0)
      issues.add(["container", "docker", "parameters"], "must be empty for container type MESOS");
    if (docker.portMappings !== undefined)
      issues.add(["container", "docker", "portMappings"], "must be empty for container type MESOS");
  }
  const ip = input.ipAddress;
  if (ip?.discovery !== undefined && c !== undefined && (c.type ?? "DOCKER") === "DOCKER")
    issues.add(["ipAddress", "discovery"], "ipAddress/discovery is not allowed for Docker containers");
  const uris = input.uris ?? [];
  uris.forEach((u, i) => {
    if (!URI_CHARS.test(u)) issues.add(["uris", i], "URI has invalid syntax.");
  });
  if (uris.length > 0 && (input.fetch ?? []).length > 0)
    issues.add(["uris"], "may not be set in conjunction with fetch");
  const networksGiven = (input.networks ?? []).length > 0;
  if (docker?.network !== undefined && networksGiven)
    issues.add(
      ["container", "docker", "network"],
      "must not specify both container.docker.network and networks",
    );
  if (ip !== undefined && networksGiven)
    issues.add(["ipAddress"], "must not specify both networks and ipAddress");
  const fixed = (input.ports ?? []).filter((p) => p !== 0);
  if (new Set(fixed).size !== fixed.length) issues.add(["ports"], "ports must be unique");
  if (ip !== undefined && ((input.ports ?? []).length > 0 || (input.portDefinitions ?? []).length > 0))
    issues.add(["ipAddress"], "cannot specify both an IP address and port");
  if (input.ports !== undefined && input.portDefinitions !== undefined) {
    const same =
      input.ports.length === input.portDefinitions.length &&
      input.portDefinitions.every((d, i) => (d.port ?? 0) === input.ports?.[i]);
    if (!same) issues.add(["ports"], "cannot specify both ports and port definitions");
  }
}

function canonicalPortMapping(pm: PortMappingInput, bridge: boolean): PortMapping {
  const hostPort = pm.hostPort ?? (bridge ? 0 : undefined);
  return {
    containerPort: pm.containerPort ?? 0,
    ...(hostPort !== undefined ? { hostPort } : {}),
    labels: pm.labels ?? {},
    ...(pm.name !== undefined ? { name: pm.name } : {}),
    protocol: pm.protocol ?? "tcp",
    servicePort: pm.servicePort ?? 0,
    networkNames: pm.networkNames ?? [],
  };
}

function checkVolume(
  v: VolumeInput,
  path: Path,
  secrets: Record<string, unknown>,
  issues: Issues,
): AppVolume {
  if ("hostPath" in v) return { containerPath: v.containerPath, hostPath: v.hostPath, mode: v.mode };
  if ("persistent" in v) {
    const p = v.persistent;
    const type = p.type ?? (p.profileName !== undefined ? "mount" : "root");
    if (v.containerPath === "." || v.containerPath === "..")
      issues.add([...path, "containerPath"], 'must not be "." or ".."');
    if (v.containerPath.includes("/")) issues.add([...path, "containerPath"], 'value must not contain "/"');
    if (v.mode !== "RW") issues.add([...path, "mode"], "must be RW for a persistent volume");
    if (p.size <= 0) issues.add([...path, "persistent", "size"], "must be > 0");
    if (p.maxSize !== undefined && type !== "mount")
      issues.add([...path, "persistent", "maxSize"], "Only mount volumes can have maxSize");
    if (p.maxSize !== undefined && p.maxSize <= p.size)
      issues.add([...path, "persistent", "maxSize"], "Max size must be larger than size");
    const constraints = p.constraints ?? [];
    if (type === "root" && constraints.length > 0)
      issues.add([...path, "persistent", "constraints"], "Constraints on root volumes are not supported");
    constraints.forEach((c, i) => {
      const [field, op, value] = c;
      const cPath = [...path, "persistent", "constraints", i];
      if (field !== "path" || value === undefined) issues.add(cPath, `Unsupported constraint ${c.join(",")}`);
      else if (op !== "LIKE" && op !== "UNLIKE") issues.add(cPath, "Operator must be one of LIKE, UNLIKE");
      else if (parseConstraint(["f", op, value]).ok === false)
        issues.add(cPath, "Invalid regular expression");
    });
    return {
      containerPath: v.containerPath,
      mode: v.mode,
      persistent: {
        type,
        size: p.size,
        ...(p.maxSize !== undefined ? { maxSize: p.maxSize } : {}),
        ...(p.profileName !== undefined ? { profileName: p.profileName } : {}),
        constraints: uniqueBy(constraints, (c) => JSON.stringify(c)),
      },
    };
  }
  if ("external" in v) return { containerPath: v.containerPath, external: v.external, mode: v.mode };
  if (!Object.hasOwn(secrets, v.secret))
    issues.add([...path, "secret"], "volume.secret must refer to an existing secret");
  return { containerPath: v.containerPath, secret: v.secret };
}

const MARATHON_LEVEL = new Set(["HTTP", "HTTPS", "TCP"]);
const MESOS_WITH_PORT = new Set(["MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"]);

function canonicalHealthCheck(
  hc: HealthCheckInput,
  path: Path,
  portCount: number,
  dockerEngine: boolean,
  issues: Issues,
): HealthCheck {
  const d = MARATHON_DEFAULTS.healthCheck;
  const protocol = hc.protocol ?? d.protocol;
  const common = {
    gracePeriodSeconds: hc.gracePeriodSeconds ?? d.gracePeriodSeconds,
    intervalSeconds: hc.intervalSeconds ?? d.intervalSeconds,
    maxConsecutiveFailures: hc.maxConsecutiveFailures ?? d.maxConsecutiveFailures,
  };
  const ipProtocol = hc.ipProtocol ?? d.ipProtocol;
  if (ipProtocol === "IPv6" && !(MESOS_WITH_PORT.has(protocol) && dockerEngine))
    issues.add(
      [...path, "ipProtocol"],
      "IPv6 can only be used for container type DOCKER and Mesos http/https/tcp health checks",
    );
  const timeoutSeconds = hc.timeoutSeconds ?? d.timeoutSeconds;
  const delaySeconds = hc.delaySeconds ?? d.delaySeconds;
  if (protocol === "COMMAND" || hc.command !== undefined) {
    if (protocol !== "COMMAND")
      issues.add(
        [...path, "protocol"],
        `must be COMMAND for a health check with a command (got ${protocol})`,
      );
    if (hc.command === undefined) issues.add([...path, "command"], "required for protocol COMMAND");
    if (hc.path !== undefined || hc.port !== undefined)
      issues.add(path, "a COMMAND health check takes no path or port");
    return {
      command: { value: hc.command?.value ?? "" },
      ...common,
      protocol: "COMMAND",
      ipProtocol: "IPv4",
      timeoutSeconds,
      delaySeconds,
    };
  }
  // Marathon re-adds portIndex 0 when neither is given (AppNormalization.normalizeHealthChecks;
  // a check stored without either reads back as portIndex 0, HealthCheck.PortReference.fromProto).
  const portIndex = hc.portIndex ?? (hc.port === undefined ? 0 : undefined);
  if (portIndex !== undefined && portIndex >= portCount)
    issues.add(
      [...path, hc.portIndex !== undefined ? "portIndex" : "port"],
      "Health check port indices must address an element of the ports array or container port mappings.",
    );
  const ports = {
    ...(hc.port !== undefined ? { port: hc.port } : {}),
    ...(portIndex !== undefined ? { portIndex } : {}),
  };
  if (MARATHON_LEVEL.has(protocol)) {
    const http = protocol !== "TCP";
    return {
      gracePeriodSeconds: common.gracePeriodSeconds,
      ...(http ? { ignoreHttp1xx: hc.ignoreHttp1xx ?? d.ignoreHttp1xx } : {}),
      intervalSeconds: common.intervalSeconds,
      maxConsecutiveFailures: common.maxConsecutiveFailures,
      ...(http && hc.path !== undefined ? { path: hc.path } : {}),
      ...ports,
      protocol,
      // Marathon-level checks keep neither (MarathonHttpHealthCheck, MarathonTcpHealthCheck).
      ipProtocol: "IPv4",
      timeoutSeconds,
      delaySeconds: d.delaySeconds,
    };
  }
  return {
    ...common,
    ...(protocol !== "MESOS_TCP" && hc.path !== undefined ? { path: hc.path } : {}),
    ...ports,
    protocol,
    ipProtocol,
    timeoutSeconds,
    delaySeconds,
  };
}

function canonicalContainerDocker(
  c: ContainerInput,
  type: "DOCKER" | "MESOS",
  issues: Issues,
): DockerContainer | undefined {
  const d = c.docker;
  if (d === undefined) {
    if (type === "DOCKER")
      issues.add(["container", "docker"], "required for container type DOCKER (docker.image)");
    return undefined;
  }
  if (type === "DOCKER") {
    if (d.pullConfig !== undefined)
      issues.add(
        ["container", "docker", "pullConfig"],
        "pullConfig is not supported with Docker containerizer",
      );
    return {
      forcePullImage: d.forcePullImage ?? false,
      image: d.image,
      parameters: d.parameters ?? [],
      privileged: d.privileged ?? false,
    };
  }
  return {
    ...(d.credential !== undefined ? { credential: d.credential } : {}),
    ...(d.pullConfig !== undefined ? { pullConfig: d.pullConfig } : {}),
    forcePullImage: d.forcePullImage ?? false,
    image: d.image,
    parameters: [],
    privileged: false,
  };
}

/**
 * The canonical definition of a structurally valid input, and its problems added to `issues`. The
 * definition is returned even when there are problems (best effort, so that Drover's refusals can
 * be checked on it too); it is valid only when `issues` stayed empty. Pure.
 */
export function normalizeInput(input: MarathonAppInput, issues: Issues, defaultRole = "*"): AppDefinition {
  // 1. ids
  const idCheck = checkAppId(input.id);
  if (!idCheck.ok) issues.add(["id"], idCheck.message);
  const dependencies: string[] = [];
  (input.dependencies ?? []).forEach((dep, i) => {
    const c = checkPathId(dep);
    if (!c.ok) issues.add(["dependencies", i], c.message);
    else if (!dependencies.includes(c.id)) dependencies.push(c.id);
  });

  // 2. deprecated fields
  checkOldApi(input, issues);

  // 3. deprecated → canonical
  const uris = input.uris ?? [];
  const fetch: Artifact[] =
    uris.length > 0 && (input.fetch ?? []).length === 0
      ? uris.map((uri) => ({ uri, extract: isExtract(uri), executable: false, cache: false }))
      : (input.fetch ?? []).map((a) => ({
          uri: a.uri,
          extract: a.extract ?? MARATHON_DEFAULTS.artifact.extract,
          executable: a.executable ?? MARATHON_DEFAULTS.artifact.executable,
          cache: a.cache ?? MARATHON_DEFAULTS.artifact.cache,
          ...(a.destPath !== undefined ? { destPath: a.destPath } : {}),
        }));
  (input.fetch ?? []).forEach((a, i) => {
    if (!URI_CHARS.test(a.uri)) issues.add(["fetch", i, "uri"], "URI has invalid syntax.");
  });

  const translated = translateNetworks(input, issues);
  const nonHost = translated.networks.some((n) => n.mode !== "host");
  const bridge = translated.networks.some((n) => n.mode === "container/bridge");

  const fromPorts = input.portDefinitions === undefined && input.ports !== undefined;
  const migratedDefinitions: PortDefinitionInput[] | undefined =
    input.portDefinitions ?? input.ports?.map((port) => ({ port }));
  const portsPath: Path = fromPorts ? ["ports"] : ["portDefinitions"];

  // The container, with its port mappings migrated (docker.portMappings, ipAddress.discovery.ports).
  const givenContainer: ContainerInput | undefined =
    input.container ?? (input.ipAddress !== undefined ? { type: "MESOS" } : undefined);
  const type = givenContainer?.type ?? "DOCKER";
  let mappings: PortMappingInput[] | undefined = givenContainer?.portMappings;
  let mappingsPath: Path = ["container", "portMappings"];
  const dockerMappings = givenContainer?.docker?.portMappings;
  if (dockerMappings !== undefined && type === "DOCKER") {
    if (mappings !== undefined && dockerMappings.length > 0)
      issues.add(
        ["container", "docker", "portMappings"],
        "cannot specify both portMappings and docker.portMappings",
      );
    else if (mappings === undefined) {
      mappings = dockerMappings;
      mappingsPath = ["container", "docker", "portMappings"];
    }
  }
  const discoveryPorts = input.ipAddress?.discovery?.ports ?? [];
  if (type === "MESOS" && discoveryPorts.length > 0) {
    if (mappings !== undefined)
      issues.add(
        ["ipAddress", "discovery", "ports"],
        "container.portMappings and ipAddress.discovery.ports must not both be set",
      );
    else {
      mappings = discoveryPorts.map((p) => ({
        containerPort: p.number ?? 0,
        name: p.name,
        protocol: p.protocol,
        labels: p.labels,
      }));
      mappingsPath = ["ipAddress", "discovery", "ports"];
    }
  }
  if (!nonHost) mappings = undefined;
  else if (givenContainer === undefined) mappings = MARATHON_DEFAULTS.portMappings.map((m) => ({ ...m }));
  else {
    // applyDefaultPortMappings, then maybeAddPortMappings: one mapping per port definition at least.
    if (mappings === undefined) mappings = MARATHON_DEFAULTS.portMappings.map((m) => ({ ...m }));
    const missing = (migratedDefinitions?.length ?? 0) - mappings.length;
    if (missing > 0) mappings = [...mappings, ...Array.from({ length: missing }, () => ({}))];
  }

  // 4. canonical rules
  const dockerEngine = givenContainer !== undefined && type === "DOCKER";
  checkNetworks(translated.networks, translated.path, dockerEngine, issues);
  const networks: Network[] =
    translated.networks.length > 0
      ? translated.networks.map((n) => ({
          ...(n.name !== undefined ? { name: n.name } : {}),
          mode: n.mode,
          labels: n.labels ?? {},
        }))
      : MARATHON_DEFAULTS.networks.map((n) => ({ ...n, labels: {} }));

  let portDefinitions: PortDefinition[] | undefined;
  if (!nonHost) {
    const given: readonly PortDefinitionInput[] = migratedDefinitions ?? MARATHON_DEFAULTS.portDefinitions;
    portDefinitions = given.map((d) => ({
      port: d.port ?? 0,
      labels: d.labels ?? {},
      ...(d.name !== undefined ? { name: d.name } : {}),
      protocol: d.protocol ?? "tcp",
    }));
    for (const i of duplicateNames(portDefinitions.map((d) => d.name)))
      issues.add([...portsPath, i, "name"], "Port names must be unique.");
    const fixed = portDefinitions.map((d) => (d.port === 0 ? undefined : String(d.port)));
    // Old `ports` were checked by the old-API rules ("ports must be unique").
    if (!fromPorts)
      for (const i of duplicateNames(fixed)) issues.add([...portsPath, i], "Ports must be unique.");
  }
  // Drover: old Drover `ports` listed fixed host ports. Without an explicit requirePorts, `ports` with
  // a non-zero entry keeps that meaning (requirePorts true); Marathon would take them as service ports.
  const droverPorts =
    fromPorts && input.requirePorts === undefined && (input.ports ?? []).some((p) => p !== 0);
  const requirePorts = nonHost ? false : (input.requirePorts ?? droverPorts);

  let portMappings: PortMapping[] | undefined;
  if (mappings !== undefined) {
    portMappings = mappings.map((m) => canonicalPortMapping(m, bridge));
    for (const i of duplicateNames(portMappings.map((m) => m.name)))
      issues.add([...mappingsPath, i, "name"], "Port names must be unique.");
    const names = networks.flatMap((n) => (n.name !== undefined ? [n.name] : []));
    const containerNets = networks.filter((n) => n.mode === "container").length;
    mappings.forEach((m, i) => {
      if (containerNets > 1 && m.hostPort !== undefined && (m.networkNames ?? []).length !== 1)
        issues.add(
          [...mappingsPath, i, "networkNames"],
          "networkNames must be a single item list when hostPort is specified and more than 1 container network is defined",
        );
      (m.networkNames ?? []).forEach((n, j) => {
        if (!names.includes(n))
          issues.add([...mappingsPath, i, "networkNames", j], `is not one of (${names.join(",")})`);
      });
    });
  }

  const secrets = input.secrets ?? {};
  let container: AppContainer | undefined;
  if (givenContainer !== undefined) {
    const volumes = (givenContainer.volumes ?? []).map((v, i) =>
      checkVolume(v, ["container", "volumes", i], secrets, issues),
    );
    const docker = canonicalContainerDocker(givenContainer, type, issues);
    if (
      type === "MESOS" &&
      docker?.pullConfig !== undefined &&
      !Object.hasOwn(secrets, docker.pullConfig.secret)
    )
      issues.add(["container", "docker", "pullConfig"], "pullConfig.secret must refer to an existing secret");
    container = {
      type,
      ...(docker !== undefined ? { docker } : {}),
      ...(givenContainer.linuxInfo !== undefined ? { linuxInfo: givenContainer.linuxInfo } : {}),
      volumes,
      ...(portMappings !== undefined ? { portMappings } : {}),
      ...(givenContainer.appc !== undefined ? { appc: givenContainer.appc } : {}),
    };
  } else if (nonHost) {
    // Non-host networking without a container: an empty MESOS container (NetworkedContainer).
    container = { type: "MESOS", volumes: [], ...(portMappings !== undefined ? { portMappings } : {}) };
  }
  const volumes = container?.volumes ?? [];
  const resident = volumes.some((v) => "persistent" in v);
  const external = volumes.some((v) => "external" in v);

  // cmd / args / container
  const hasCmd = input.cmd !== undefined;
  const args = input.args ?? [];
  const hasArgs = args.length > 0;
  const runnable =
    givenContainer !== undefined && (givenContainer.docker !== undefined ? true : type === "MESOS");
  if (!(hasCmd !== hasArgs || (!(hasCmd && hasArgs) && runnable)))
    issues.add(
      [hasCmd ? "args" : "cmd"],
      "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.",
    );
  else if (!hasCmd && !hasArgs && container !== undefined && container.docker === undefined)
    issues.add(
      ["cmd"],
      "a MESOS container without docker.image needs cmd or args (it would have nothing to run)",
    );
  if (input.cmd !== undefined && input.cmd.length <= 1)
    issues.add(["cmd"], "must be at least 2 characters (Marathon refuses a 1-character cmd)");

  // health and readiness
  const portCount =
    portMappings !== undefined && portMappings.length > 0
      ? portMappings.length
      : (portDefinitions?.length ?? 0);
  const healthChecks = uniqueBy(
    (input.healthChecks ?? []).map((hc, i) =>
      canonicalHealthCheck(hc, ["healthChecks", i], portCount, container?.type === "DOCKER", issues),
    ),
    (hc) => JSON.stringify(hc),
  );
  if (healthChecks.filter((hc) => MESOS_WITH_PORT.has(hc.protocol)).length > 1)
    issues.add(["healthChecks"], "AppDefinition can contain at most one Mesos health check");

  const portNames = (
    portMappings !== undefined && portMappings.length > 0 ? portMappings : (portDefinitions ?? [])
  ).flatMap((p) => (p.name !== undefined ? [p.name] : []));
  const rd = MARATHON_DEFAULTS.readinessCheck;
  const readinessChecks: ReadinessCheck[] = (input.readinessChecks ?? []).map((r, i) => {
    const check: ReadinessCheck = {
      name: r.name ?? rd.name,
      protocol: r.protocol ?? rd.protocol,
      path: r.path ?? rd.path,
      portName: r.portName ?? rd.portName,
      intervalSeconds: r.intervalSeconds ?? rd.intervalSeconds,
      timeoutSeconds: r.timeoutSeconds ?? rd.timeoutSeconds,
      httpStatusCodesForReady: [...new Set(r.httpStatusCodesForReady ?? rd.httpStatusCodesForReady)],
      preserveLastResponse: r.preserveLastResponse ?? rd.preserveLastResponse,
    };
    if (!portNames.includes(check.portName))
      issues.add(
        ["readinessChecks", i, "portName"],
        `No port definition reference for portName ${check.portName}`,
      );
    if (check.timeoutSeconds >= check.intervalSeconds)
      issues.add(
        ["readinessChecks", i, "timeoutSeconds"],
        `must be less than intervalSeconds (${check.intervalSeconds})`,
      );
    return check;
  });
  if (readinessChecks.length > 1) issues.add(["readinessChecks"], "at most one readiness check is allowed");

  // constraints
  const constraints: string[][] = [];
  (input.constraints ?? []).forEach((raw, i) => {
    const c = parseConstraint(raw);
    if (!c.ok) issues.add(["constraints", i], c.message);
    else if (!constraints.some((x) => JSON.stringify(x) === JSON.stringify(c.value)))
      constraints.push(c.value);
  });

  // env and secrets
  const env: Record<string, EnvValue> = input.env ?? {};
  for (const [name, value] of Object.entries(env))
    if (typeof value !== "string" && !Object.hasOwn(secrets, value.secret))
      issues.add(["env", name, "secret"], "references an undefined secret");

  // labels
  const labels = input.labels ?? {};
  if ((labels[MIGRATION_API_VERSION] ?? "") !== "") {
    const ok =
      labels[MIGRATION_API_VERSION] === "v1" &&
      (labels.DCOS_PACKAGE_FRAMEWORK_NAME ?? "") !== "" &&
      (labels.DCOS_MIGRATION_API_PATH ?? "") !== "";
    if (!ok)
      issues.add(
        ["labels"],
        "DCOS_PACKAGE_FRAMEWORK_NAME and DCOS_MIGRATION_API_PATH must be defined when using DCOS_MIGRATION_API_VERSION",
      );
  }
  const singleInstance = labels[SINGLE_INSTANCE_LABEL] === "true";
  const instances = input.instances ?? MARATHON_DEFAULTS.instances;
  if (singleInstance && instances > 1)
    issues.add(["instances"], "Single instance app may only have one instance");

  // upgrade and unreachable strategies
  const residencyRules = resident || input.residency !== undefined;
  const upgradeStrategy: UpgradeStrategy = input.upgradeStrategy
    ? {
        maximumOverCapacity: input.upgradeStrategy.maximumOverCapacity ?? 1,
        minimumHealthCapacity: input.upgradeStrategy.minimumHealthCapacity ?? 1,
      }
    : {
        ...(resident || external
          ? MARATHON_DEFAULTS.residentUpgradeStrategy
          : MARATHON_DEFAULTS.upgradeStrategy),
      };
  if (
    residencyRules &&
    (input.upgradeStrategy !== undefined || resident) &&
    upgradeStrategy.maximumOverCapacity !== 0
  )
    issues.add(
      ["upgradeStrategy", "maximumOverCapacity"],
      "must be 0 for resident apps (persistent volumes)",
    );
  if (
    singleInstance &&
    (upgradeStrategy.maximumOverCapacity !== 0 || upgradeStrategy.minimumHealthCapacity !== 0)
  )
    issues.add(
      ["upgradeStrategy"],
      `a single instance app (label ${SINGLE_INSTANCE_LABEL}) needs minimumHealthCapacity 0 and maximumOverCapacity 0`,
    );
  let unreachableStrategy: UnreachableStrategy;
  const u = input.unreachableStrategy;
  if (u === undefined)
    unreachableStrategy = resident ? "disabled" : { ...MARATHON_DEFAULTS.unreachableStrategy };
  else if (u === "disabled") unreachableStrategy = "disabled";
  else {
    unreachableStrategy = {
      inactiveAfterSeconds: u.inactiveAfterSeconds ?? 0,
      expungeAfterSeconds: u.expungeAfterSeconds ?? 0,
    };
    if (unreachableStrategy.inactiveAfterSeconds > unreachableStrategy.expungeAfterSeconds)
      issues.add(
        ["unreachableStrategy", "inactiveAfterSeconds"],
        `inactiveAfterSeconds (${unreachableStrategy.inactiveAfterSeconds}) must be less or equal to expungeAfterSeconds, which is ${unreachableStrategy.expungeAfterSeconds}`,
      );
  }
  if (residencyRules && unreachableStrategy !== "disabled" && u !== undefined)
    issues.add(["unreachableStrategy"], "unreachableStrategy must be disabled for resident tasks");

  // roles
  const roles = input.acceptedResourceRoles;
  if (roles !== undefined) {
    if (roles.length === 0) issues.add(["acceptedResourceRoles"], "must not be empty");
    roles.forEach((r, i) => {
      const p = roleProblem(r);
      if (p !== undefined) issues.add(["acceptedResourceRoles", i], p);
    });
    // ResourceRole.validForRole: a subset of {*, the app's role}; the role defaults to the scheduler's.
    const role = input.role ?? defaultRole;
    if (!roles.every((r) => r === "*" || r === role))
      issues.add(
        ["acceptedResourceRoles"],
        `acceptedResourceRoles can only contain ${role === "*" ? "*" : `* and ${role}`}`,
      );
    if (resident && !(roles.length > 0 && roles.every((r) => r === "*")))
      issues.add(["acceptedResourceRoles"], 'A resident app must have `acceptedResourceRoles = ["*"]`.');
  }
  if (input.role !== undefined) {
    const p = roleProblem(input.role);
    // RoleSettings.forService (without enforceRole): the default role, or the top-level group's name.
    const segments = (idCheck.ok ? idCheck.id : "").split("/").filter((x) => x !== "");
    const valid = [defaultRole, ...(segments.length > 1 && segments[0] !== defaultRole ? [segments[0]] : [])];
    if (p !== undefined) issues.add(["role"], p);
    else if (!valid.includes(input.role))
      issues.add(["role"], `must be one of: ${valid.map((r) => JSON.stringify(r)).join(", ")}`);
  }

  // the rest
  const cpus = input.cpus ?? MARATHON_DEFAULTS.cpus;
  const mem = input.mem ?? MARATHON_DEFAULTS.mem;
  const gpus = input.gpus ?? MARATHON_DEFAULTS.gpus;
  if (gpus > 0 && container?.type === "DOCKER")
    issues.add(["gpus"], "GPU resources only work with the Mesos containerizer");
  const limits = input.resourceLimits;
  for (const [key, request] of [
    ["cpus", cpus],
    ["mem", mem],
  ] as const) {
    const limit = limits?.[key];
    if (typeof limit === "number" && limit < request)
      issues.add(
        ["resourceLimits", key],
        `resource limit must be greater than or equal to requested resource (${request})`,
      );
  }
  const executor = input.executor ?? MARATHON_DEFAULTS.executor;
  if (!EXECUTOR_PATTERN.test(executor))
    issues.add(["executor"], "must fully match regular expression '^(//cmd)|(/?[^/]+(/[^/]+)*)|$'");
  if (input.check !== undefined && container?.type === "DOCKER")
    issues.add(["check"], "AppDefinition must not use 'checks' if using docker");

  const res = MARATHON_DEFAULTS.residency;
  return {
    id: idCheck.ok ? idCheck.id : canonicalId(input.id),
    ...(roles !== undefined ? { acceptedResourceRoles: [...new Set(roles)] } : {}),
    ...(hasArgs ? { args } : {}),
    backoffFactor: input.backoffFactor ?? MARATHON_DEFAULTS.backoffFactor,
    backoffSeconds: input.backoffSeconds ?? MARATHON_DEFAULTS.backoffSeconds,
    ...(input.cmd !== undefined ? { cmd: input.cmd } : {}),
    constraints,
    ...(container !== undefined ? { container } : {}),
    cpus,
    dependencies,
    disk: input.disk ?? MARATHON_DEFAULTS.disk,
    env,
    executor,
    ...(input.executorResources !== undefined
      ? {
          executorResources: {
            cpus: input.executorResources.cpus ?? 0.1,
            mem: input.executorResources.mem ?? 32,
            disk: input.executorResources.disk ?? 10,
          },
        }
      : {}),
    fetch,
    healthChecks,
    ...(input.check !== undefined ? { check: input.check } : {}),
    instances,
    labels,
    maxLaunchDelaySeconds: input.maxLaunchDelaySeconds ?? MARATHON_DEFAULTS.maxLaunchDelaySeconds,
    mem,
    gpus,
    networks,
    ...(portDefinitions !== undefined ? { portDefinitions } : {}),
    readinessChecks,
    ...(resident
      ? {
          residency: {
            relaunchEscalationTimeoutSeconds: res.relaunchEscalationTimeoutSeconds,
            taskLostBehavior: res.taskLostBehavior,
          },
        }
      : {}),
    ...(limits !== undefined
      ? {
          resourceLimits: {
            ...(limits.cpus !== undefined ? { cpus: limits.cpus } : {}),
            ...(limits.mem !== undefined ? { mem: limits.mem } : {}),
          },
        }
      : {}),
    requirePorts,
    secrets,
    ...(input.taskKillGracePeriodSeconds !== undefined
      ? { taskKillGracePeriodSeconds: input.taskKillGracePeriodSeconds }
      : {}),
    upgradeStrategy,
    ...(input.user !== undefined ? { user: input.user } : {}),
    killSelection: input.killSelection ?? MARATHON_DEFAULTS.killSelection,
    unreachableStrategy,
    ...(input.tty !== undefined ? { tty: input.tty } : {}),
    ...(input.role !== undefined ? { role: input.role } : {}),
  };
}
