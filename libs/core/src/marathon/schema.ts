/**
 * The structure of a Marathon app definition as it arrives (JSON), checked field by field: types,
 * enums, ranges and patterns of the RAML types (mesosphere/marathon @ 90619da70d79,
 * `docs/docs/rest-api/public/api/v2/types/*.raml`), plus Drover's size limits (LIMITS, APP_LIMITS).
 * Strict at every level: an unknown field is an issue naming it. A property whose value is `null`
 * counts as absent, as Marathon's JSON reader takes it (GET output of older versions has `"cmd": null`).
 *
 * Deprecated inputs are accepted here and converted in normalize.ts. Defaults are not applied here:
 * several depend on other fields (networking, persistent volumes).
 */
import { z } from "zod";
import { APP_LIMITS, LIMITS, RESERVED_LABEL_PREFIX } from "../limits.js";

/** Marathon's generated JSON reader takes `null` for an absent optional property. */
function dropNulls(value: unknown): unknown {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // defineProperty: an own "__proto__" key stays a key (and is then reported as unknown).
    if (v !== null)
      Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** A strict object whose `null` properties count as absent. */
function obj<T extends z.core.$ZodLooseShape>(shape: T) {
  return z.preprocess(dropNulls, z.strictObject(shape));
}

const INT32_MAX = 2_147_483_647;
const nonNegInt = z.number().int().min(0).max(INT32_MAX);
const nonNegInt64 = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** `numberTypes.AnyPort`. */
const anyPort = z.number().int().min(0).max(65535);

const NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const nameMessage = "must be lowercase letters, digits and '-', starting and ending with a letter or digit";
/** `stringTypes.Name`. */
const Name = z.string().min(1).max(63).regex(NAME_PATTERN, { error: nameMessage });
/** `stringTypes.LegacyName`: Name without Marathon's length limit (Drover: LIMITS.nameChars). */
const LegacyName = z.string().min(1).max(LIMITS.nameChars).regex(NAME_PATTERN, { error: nameMessage });
/** `stringTypes.NetworkName`. */
const NetworkName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$/, {
    error: "must be lowercase letters, digits, '-' and '_', starting and ending with a letter or digit",
  });
/** `stringTypes.Path` / `Uri`. */
const PathString = z.string().min(1).max(1024);
const NetworkProtocol = z.enum(["tcp", "udp", "udp,tcp"]);
const ReadMode = z.enum(["RO", "RW"]);

/** A record key that is not the prototype's name (it would not survive a copy). */
function recordKey(max: number) {
  return z
    .string()
    .max(max)
    .refine((k) => k !== "__proto__", { error: "reserved name" });
}

/** A record with at most `max` entries (reported on the record itself). */
function bounded<T extends z.ZodType<Record<string, unknown>>>(schema: T, max: number, what: string) {
  return schema.superRefine((rec, ctx) => {
    const n = Object.keys(rec).length;
    if (n > max) ctx.addIssue({ code: "custom", message: `at most ${max} ${what} (got ${n})` });
  });
}

/** `label.KVLabels`, within Drover's label limits. */
const KVLabels = bounded(
  z.record(recordKey(LIMITS.labelKeyChars), z.string().max(LIMITS.labelValueChars)),
  LIMITS.labelCount,
  "labels",
);

/** The app's own labels: KVLabels, and no key in Drover's reserved `drover.` namespace. */
const AppLabels = KVLabels.superRefine((labels, ctx) => {
  for (const key of Object.keys(labels))
    if (key.startsWith(RESERVED_LABEL_PREFIX))
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: `label keys must not start with "${RESERVED_LABEL_PREFIX}" (reserved)`,
      });
});

/** `environmentVariable.LegacyEnvVars`: any name Docker can pass on, a string or a secret reference. */
const Env = bounded(
  z.record(
    recordKey(LIMITS.envNameChars).regex(/^[^=\0]+$/, {
      error: 'environment variable names must be non-empty, without "=" or NUL',
    }),
    z.union([z.string().max(LIMITS.envValueChars), obj({ secret: z.string().min(1) })]),
  ),
  LIMITS.envCount,
  "environment variables",
);

const Secrets = z.record(recordKey(LIMITS.nameChars).min(1), obj({ source: z.string().min(1) }));

const PortDefinition = obj({
  port: anyPort.optional(),
  labels: KVLabels.optional(),
  name: LegacyName.optional(),
  protocol: NetworkProtocol.optional(),
});

const PortMapping = obj({
  containerPort: anyPort.optional(),
  hostPort: anyPort.optional(),
  labels: KVLabels.optional(),
  name: LegacyName.optional(),
  protocol: NetworkProtocol.optional(),
  servicePort: anyPort.optional(),
  networkNames: z.array(Name).max(LIMITS.portsPerApp).optional(),
});

const PortMappings = z.array(PortMapping).max(LIMITS.portsPerApp);

const Network = obj({
  name: NetworkName.optional(),
  mode: z.enum(["container", "container/bridge", "host"]).optional(),
  labels: KVLabels.optional(),
});

const IpAddress = obj({
  discovery: obj({
    ports: z
      .array(
        obj({
          number: anyPort.optional(),
          name: LegacyName,
          protocol: NetworkProtocol.optional(),
          labels: KVLabels.optional(),
        }),
      )
      .max(LIMITS.portsPerApp)
      .optional(),
  }).optional(),
  groups: z.array(z.string().max(LIMITS.nameChars)).max(LIMITS.labelCount).optional(),
  labels: KVLabels.optional(),
  networkName: z.string().min(1).max(LIMITS.nameChars).optional(),
});

const Image = z
  .string()
  .min(1)
  .max(LIMITS.imageChars)
  .regex(/^\S+$/, { error: "must not contain whitespace" });

const DockerParameters = z
  .array(obj({ key: z.string().min(1).max(LIMITS.nameChars), value: z.string().max(LIMITS.envValueChars) }))
  .max(LIMITS.envCount);

const DockerContainer = obj({
  credential: obj({ principal: z.string(), secret: z.string().optional() }).optional(),
  pullConfig: obj({ secret: z.string().min(1) }).optional(),
  forcePullImage: z.boolean().optional(),
  image: Image,
  network: z.enum(["BRIDGE", "HOST", "NONE", "USER"]).optional(),
  parameters: DockerParameters.optional(),
  portMappings: PortMappings.optional(),
  privileged: z.boolean().optional(),
});

/** Volume constraints: `["path", "LIKE", regex]` (checked in normalize.ts). */
const VolumeConstraint = z.array(z.string().max(LIMITS.attributeValueChars)).min(2).max(3);

const HostVolume = obj({ containerPath: PathString, hostPath: PathString, mode: ReadMode });
const PersistentVolume = obj({
  containerPath: PathString,
  persistent: obj({
    type: z.enum(["root", "path", "mount"]).optional(),
    size: nonNegInt64,
    maxSize: nonNegInt64.optional(),
    profileName: z.string().max(LIMITS.nameChars).optional(),
    constraints: z.array(VolumeConstraint).max(16).optional(),
  }),
  mode: ReadMode,
});
/** DVDI or CSI: not checked in depth (Drover refuses external volumes). */
const ExternalVolume = obj({
  containerPath: PathString,
  external: z.record(z.string(), z.unknown()),
  mode: ReadMode,
});
const SecretVolume = obj({ containerPath: PathString, secret: z.string().min(1) });

const Volume = z.union([HostVolume, PersistentVolume, ExternalVolume, SecretVolume]);

const Container = obj({
  type: z.enum(["DOCKER", "MESOS"]).optional(),
  docker: DockerContainer.optional(),
  /** Mesos containerizer settings (seccomp, IPC): refused, so only its shape as an object is checked. */
  linuxInfo: z.record(z.string(), z.unknown()).optional(),
  volumes: z.array(Volume).max(64).optional(),
  portMappings: PortMappings.optional(),
  /** Not in Marathon 1.11 (AppC images, Marathon ≤ 1.4): accepted here only to be refused by name. */
  appc: z.record(z.string(), z.unknown()).optional(),
});

const HealthCheck = obj({
  command: obj({ value: z.string().min(1).max(LIMITS.cmdChars) }).optional(),
  gracePeriodSeconds: nonNegInt.optional(),
  ignoreHttp1xx: z.boolean().optional(),
  intervalSeconds: nonNegInt.optional(),
  maxConsecutiveFailures: nonNegInt.optional(),
  path: z.string().max(1024).optional(),
  port: anyPort.optional(),
  portIndex: anyPort.optional(),
  protocol: z.enum(["HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_TCP", "MESOS_HTTP", "MESOS_HTTPS"]).optional(),
  ipProtocol: z.enum(["IPv4", "IPv6"]).optional(),
  timeoutSeconds: nonNegInt.optional(),
  delaySeconds: nonNegInt.optional(),
});

const ReadinessCheck = obj({
  name: z.string().min(1).max(LIMITS.nameChars).optional(),
  protocol: z.enum(["HTTP", "HTTPS"]).optional(),
  path: PathString.optional(),
  portName: LegacyName.optional(),
  intervalSeconds: nonNegInt.optional(),
  timeoutSeconds: z.number().int().min(1).max(INT32_MAX).optional(),
  httpStatusCodesForReady: z.array(z.number().int().min(100).max(999)).min(1).max(900).optional(),
  preserveLastResponse: z.boolean().optional(),
});

const Artifact = obj({
  uri: PathString,
  extract: z.boolean().optional(),
  executable: z.boolean().optional(),
  cache: z.boolean().optional(),
  destPath: PathString.optional(),
});

/**
 * Both values are required by the 1.11 RAML; a missing one is taken as 1 here, as Marathon ≤ 1.4
 * read it (`state/UpgradeStrategy.scala` defaults), so that older hand-written JSON still runs.
 */
const UpgradeStrategy = obj({
  maximumOverCapacity: z.number().min(0).max(1).optional(),
  minimumHealthCapacity: z.number().min(0).max(1).optional(),
});

const UnreachableStrategy = z.union([
  z.literal("disabled"),
  obj({ inactiveAfterSeconds: nonNegInt64.optional(), expungeAfterSeconds: nonNegInt64.optional() }),
]);

const ResourceLimit = z.union([z.number().min(0).max(LIMITS.maxMiB), z.literal("unlimited")]);

/** One constraint in either syntax; checked in normalize.ts (constraint.ts). */
const Constraint = z.union([z.array(z.string().max(LIMITS.attributeValueChars)), z.string().max(2048)]);

const PathIdString = z.string().max(512);

/**
 * Every field of Marathon's `App` (app.raml), the deprecated ones included, and the read-only ones
 * of what `GET /v2/apps/{id}` prints (`version`, `versionInfo` and the AppInfo counters), which are
 * accepted and ignored so that a definition read from Marathon can be sent back unchanged.
 */
export const MarathonAppInputSchema = obj({
  id: PathIdString,
  acceptedResourceRoles: z.array(z.string().max(LIMITS.nameChars)).max(16).optional(),
  args: z.array(z.string().max(LIMITS.cmdChars)).max(1024).optional(),
  backoffFactor: z.number().min(1).max(1_000_000).optional(),
  backoffSeconds: nonNegInt.optional(),
  cmd: z.string().min(1).max(LIMITS.cmdChars).optional(),
  constraints: z.array(Constraint).max(64).optional(),
  container: Container.optional(),
  cpus: z.number().min(0.001).max(APP_LIMITS.maxCpus).optional(),
  dependencies: z.array(PathIdString).max(128).optional(),
  disk: z.number().min(0).max(LIMITS.maxMiB).optional(),
  env: Env.optional(),
  executor: z.string().max(1024).optional(),
  executorResources: obj({
    cpus: z.number().min(0.1).max(APP_LIMITS.maxCpus).optional(),
    mem: z.number().min(32).max(APP_LIMITS.maxMem).optional(),
    disk: z.number().min(10).max(LIMITS.maxMiB).optional(),
  }).optional(),
  fetch: z.array(Artifact).max(64).optional(),
  healthChecks: z.array(HealthCheck).max(16).optional(),
  check: z.record(z.string(), z.unknown()).optional(),
  instances: z.number().int().min(0).max(APP_LIMITS.maxInstances).optional(),
  labels: AppLabels.optional(),
  maxLaunchDelaySeconds: nonNegInt.optional(),
  mem: z.number().min(0).max(APP_LIMITS.maxMem).optional(),
  gpus: nonNegInt.optional(),
  ipAddress: IpAddress.optional(),
  networks: z.array(Network).max(16).optional(),
  ports: z.array(anyPort).max(LIMITS.portsPerApp).optional(),
  portDefinitions: z.array(PortDefinition).max(LIMITS.portsPerApp).optional(),
  readinessChecks: z.array(ReadinessCheck).max(16).optional(),
  residency: obj({
    relaunchEscalationTimeoutSeconds: nonNegInt64.optional(),
    taskLostBehavior: z.enum(["WAIT_FOREVER", "RELAUNCH_AFTER_TIMEOUT"]).optional(),
  }).optional(),
  resourceLimits: obj({ cpus: ResourceLimit.optional(), mem: ResourceLimit.optional() }).optional(),
  requirePorts: z.boolean().optional(),
  secrets: Secrets.optional(),
  taskKillGracePeriodSeconds: nonNegInt.optional(),
  upgradeStrategy: UpgradeStrategy.optional(),
  uris: z.array(PathString).max(64).optional(),
  user: z.string().min(1).max(LIMITS.nameChars).optional(),
  version: z.string().max(64).optional(),
  versionInfo: obj({ lastScalingAt: z.string().max(64), lastConfigChangeAt: z.string().max(64) }).optional(),
  killSelection: z.enum(["YOUNGEST_FIRST", "OLDEST_FIRST"]).optional(),
  unreachableStrategy: UnreachableStrategy.optional(),
  tty: z.boolean().optional(),
  role: z.string().min(1).max(LIMITS.nameChars).optional(),
  // Read-only AppInfo fields of GET /v2/apps output: accepted, ignored.
  tasksStaged: z.unknown().optional(),
  tasksRunning: z.unknown().optional(),
  tasksHealthy: z.unknown().optional(),
  tasksUnhealthy: z.unknown().optional(),
  deployments: z.unknown().optional(),
  readinessCheckResults: z.unknown().optional(),
  tasks: z.unknown().optional(),
  lastTaskFailure: z.unknown().optional(),
  tasksStats: z.unknown().optional(),
});

export type MarathonAppInput = z.output<typeof MarathonAppInputSchema>;
export type ContainerInput = NonNullable<MarathonAppInput["container"]>;
export type PortMappingInput = z.output<typeof PortMapping>;
export type PortDefinitionInput = z.output<typeof PortDefinition>;
export type HealthCheckInput = z.output<typeof HealthCheck>;
export type VolumeInput = z.output<typeof Volume>;

/** The fields `MarathonAppInputSchema` ignores (read-only output of GET /v2/apps/{id}). */
export const READ_ONLY_FIELDS: readonly string[] = [
  "version",
  "versionInfo",
  "tasksStaged",
  "tasksRunning",
  "tasksHealthy",
  "tasksUnhealthy",
  "deployments",
  "readinessCheckResults",
  "tasks",
  "lastTaskFailure",
  "tasksStats",
];
