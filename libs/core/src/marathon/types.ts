/**
 * The canonical Marathon app definition: what `normalizeApp` returns, in Marathon's own shape
 * (RAML `types/app.raml` and the types it uses, mesosphere/marathon @ 90619da70d79) with every
 * default filled in and no deprecated field left (`ports`, `uris`, `ipAddress`,
 * `container.docker.network`, `container.docker.portMappings`).
 *
 * Conventions: maps and lists Marathon prints even when empty, or omits when empty, are always
 * present here (possibly empty); `toMarathonJson` applies Marathon's omission rules. Optional
 * properties are absent (never `undefined`) when not set.
 */

export type NetworkProtocol = "tcp" | "udp" | "udp,tcp";
export type NetworkMode = "host" | "container/bridge" | "container";
export type ReadMode = "RO" | "RW";

export interface Network {
  /** Container networks only: the name of the network to join. */
  name?: string;
  mode: NetworkMode;
  labels: Record<string, string>;
}

export interface PortDefinition {
  /** With requirePorts: the host port (0: any). Without: a service port (0: assigned), the host port is any. */
  port: number;
  labels: Record<string, string>;
  name?: string;
  protocol: NetworkProtocol;
}

export interface PortMapping {
  /** 0: the same as the host port assigned. */
  containerPort: number;
  /** 0: any free host port; absent (container networks only): no host port. */
  hostPort?: number;
  labels: Record<string, string>;
  name?: string;
  protocol: NetworkProtocol;
  servicePort: number;
  /** Container networks this mapping applies to (empty: all). */
  networkNames: string[];
}

export interface DockerParameter {
  key: string;
  value: string;
}

export interface DockerContainer {
  /** Deprecated; Marathon refuses it. Kept only so that a refusal can name it. */
  credential?: { principal: string; secret?: string };
  pullConfig?: { secret: string };
  forcePullImage: boolean;
  image: string;
  /** DOCKER containers only (MESOS: always empty). */
  parameters: DockerParameter[];
  /** DOCKER containers only (MESOS: always false). */
  privileged: boolean;
}

export interface PersistentVolumeInfo {
  type: "root" | "path" | "mount";
  size: number;
  maxSize?: number;
  profileName?: string;
  constraints: string[][];
}

export type AppVolume =
  | { containerPath: string; hostPath: string; mode: ReadMode }
  | { containerPath: string; mode: ReadMode; persistent: PersistentVolumeInfo }
  | { containerPath: string; external: Record<string, unknown>; mode: ReadMode }
  | { containerPath: string; secret: string };

export interface AppContainer {
  type: "DOCKER" | "MESOS";
  /** Required for DOCKER; for MESOS the image to run (absent: a command-only app in a MESOS container). */
  docker?: DockerContainer;
  /** Mesos containerizer settings (seccomp, IPC), kept as given. */
  linuxInfo?: Record<string, unknown>;
  volumes: AppVolume[];
  /** Present exactly when the app's networking is not `host`. */
  portMappings?: PortMapping[];
  /** Not Marathon 1.11: an AppC image (Marathon ≤ 1.4), kept as given so that its refusal can name it. */
  appc?: Record<string, unknown>;
}

export type HealthCheckProtocol =
  | "HTTP"
  | "HTTPS"
  | "TCP"
  | "COMMAND"
  | "MESOS_HTTP"
  | "MESOS_HTTPS"
  | "MESOS_TCP";

/**
 * One health check, with the fields Marathon keeps for its protocol (`raml/HealthCheckConversion.scala`):
 * HTTP/HTTPS keep `ignoreHttp1xx` and `path`; TCP and MESOS_TCP drop `path`; COMMAND keeps only
 * `command`; Marathon-level checks (HTTP, HTTPS, TCP) always have `delaySeconds` 15 and `ipProtocol`
 * IPv4. `portIndex` is 0 when neither `port` nor `portIndex` was given. An HTTP check without
 * `path` probes `/` (Marathon keeps the path absent).
 */
export interface HealthCheck {
  command?: { value: string };
  gracePeriodSeconds: number;
  ignoreHttp1xx?: boolean;
  intervalSeconds: number;
  maxConsecutiveFailures: number;
  path?: string;
  port?: number;
  portIndex?: number;
  protocol: HealthCheckProtocol;
  ipProtocol: "IPv4" | "IPv6";
  timeoutSeconds: number;
  delaySeconds: number;
}

export interface ReadinessCheck {
  name: string;
  protocol: "HTTP" | "HTTPS";
  path: string;
  portName: string;
  intervalSeconds: number;
  timeoutSeconds: number;
  httpStatusCodesForReady: number[];
  preserveLastResponse: boolean;
}

export interface Artifact {
  uri: string;
  extract: boolean;
  executable: boolean;
  cache: boolean;
  destPath?: string;
}

export type EnvValue = string | { secret: string };

export interface UpgradeStrategy {
  maximumOverCapacity: number;
  minimumHealthCapacity: number;
}

export type UnreachableStrategy = "disabled" | { inactiveAfterSeconds: number; expungeAfterSeconds: number };

export type ResourceLimit = number | "unlimited";

/** The canonical app definition (Marathon's `App`), every default filled in, the id absolute. */
export interface AppDefinition {
  id: string;
  acceptedResourceRoles?: string[];
  /** Absent when none (an empty list means none). */
  args?: string[];
  backoffFactor: number;
  backoffSeconds: number;
  cmd?: string;
  /** `[field, OPERATOR]` or `[field, OPERATOR, value]`, operator upper-case, no duplicates. */
  constraints: string[][];
  container?: AppContainer;
  cpus: number;
  /** Absolute ids, no duplicates. */
  dependencies: string[];
  disk: number;
  env: Record<string, EnvValue>;
  /** "" or "//cmd": the command executor. */
  executor: string;
  executorResources?: { cpus: number; mem: number; disk: number };
  fetch: Artifact[];
  healthChecks: HealthCheck[];
  /** Mesos checks (not health checks), kept as given. */
  check?: Record<string, unknown>;
  instances: number;
  labels: Record<string, string>;
  maxLaunchDelaySeconds: number;
  mem: number;
  gpus: number;
  networks: Network[];
  /** Present exactly when the app's networking is `host`. */
  portDefinitions?: PortDefinition[];
  readinessChecks: ReadinessCheck[];
  /** Present exactly for resident apps (with persistent volumes); it has no effect (deprecated upstream). */
  residency?: {
    relaunchEscalationTimeoutSeconds: number;
    taskLostBehavior: "WAIT_FOREVER" | "RELAUNCH_AFTER_TIMEOUT";
  };
  resourceLimits?: { cpus?: ResourceLimit; mem?: ResourceLimit };
  requirePorts: boolean;
  secrets: Record<string, { source: string }>;
  taskKillGracePeriodSeconds?: number;
  upgradeStrategy: UpgradeStrategy;
  user?: string;
  killSelection: "YOUNGEST_FIRST" | "OLDEST_FIRST";
  unreachableStrategy: UnreachableStrategy;
  tty?: boolean;
  role?: string;
}
