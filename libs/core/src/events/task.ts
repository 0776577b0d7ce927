import { z } from "zod";
import { ResourcesSchema } from "../resources.js";
import { TaskStateSchema } from "../task-state.js";
import type { AggregateDef } from "./aggregate.js";

const port = z.number().int().min(0).max(65535);
const seconds = z
  .number()
  .int()
  .min(0)
  .max(86_400 * 365);

export const TaskPortMappingSchema = z.strictObject({
  containerPort: port,
  /** The host port, from the offer; 0: not published. */
  hostPort: port,
  protocol: z.enum(["tcp", "udp", "udp,tcp"]),
  name: z.string().optional(),
});
export type TaskPortMapping = z.infer<typeof TaskPortMappingSchema>;

export const VolumeMountSchema = z.strictObject({
  containerPath: z.string().min(1),
  /** A bind mount of this host path (absent for a persistent volume). */
  hostPath: z.string().min(1).optional(),
  mode: z.enum(["RO", "RW"]),
  /** A local persistent volume: a named volume on the agent, kept across task restarts. */
  persistent: z.strictObject({ name: z.string().min(1), sizeMib: z.number().min(0) }).optional(),
});
export type VolumeMount = z.infer<typeof VolumeMountSchema>;

export const FetchUriSchema = z.strictObject({
  uri: z.string().min(1),
  extract: z.boolean(),
  executable: z.boolean(),
  cache: z.boolean(),
  outputFile: z.string().min(1).optional(),
});
export type FetchUri = z.infer<typeof FetchUriSchema>;

export const HealthCheckSchema = z.strictObject({
  protocol: z.enum(["HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"]),
  portIndex: z.number().int().min(0).max(63).optional(),
  port: port.optional(),
  path: z.string().optional(),
  gracePeriodSeconds: seconds,
  intervalSeconds: seconds,
  timeoutSeconds: seconds,
  maxConsecutiveFailures: z.number().int().min(0),
  delaySeconds: seconds,
  ignoreHttp1xx: z.boolean().optional(),
  command: z.strictObject({ value: z.string().min(1) }).optional(),
});

export const ReadinessCheckSchema = z.strictObject({
  name: z.string().min(1),
  protocol: z.enum(["HTTP", "HTTPS"]),
  path: z.string(),
  portName: z.string(),
  intervalSeconds: seconds,
  timeoutSeconds: seconds,
  httpStatusCodesForReady: z.array(z.number().int().min(100).max(599)),
  preserveLastResponse: z.boolean(),
});

/** What a task needs of its agent's runtime besides image, command and resources (Marathon's app model). */
export const TaskRunSchema = z.strictObject({
  /** The app version (ISO-8601) the task runs. */
  appVersion: z.string().optional(),
  /** Absent: host networking. `container` names a user-defined network. */
  network: z
    .strictObject({ mode: z.enum(["host", "bridge", "container"]), name: z.string().min(1).optional() })
    .optional(),
  portMappings: z.array(TaskPortMappingSchema).max(64).optional(),
  volumes: z.array(VolumeMountSchema).max(64).optional(),
  fetch: z.array(FetchUriSchema).max(64).optional(),
  privileged: z.boolean().optional(),
  dockerParameters: z.array(z.strictObject({ key: z.string().min(1), value: z.string() })).optional(),
  forcePullImage: z.boolean().optional(),
  user: z.string().min(1).optional(),
  /** SIGTERM → SIGKILL wait of a kill that names none itself (a framework's Kill may); absent: 5 s. */
  killGracePeriodSeconds: seconds.optional(),
  healthChecks: z.array(HealthCheckSchema).max(16).optional(),
  readinessChecks: z.array(ReadinessCheckSchema).max(16).optional(),
  tty: z.boolean().optional(),
  /** Marathon's resourceLimits: the most the task may use above its request (absent: the request). */
  limits: z
    .strictObject({
      cpus: z.union([z.number().positive(), z.literal("unlimited")]).optional(),
      mem: z.union([z.number().positive(), z.literal("unlimited")]).optional(),
    })
    .optional(),
});
export type TaskRun = z.infer<typeof TaskRunSchema>;

export const TaskHealthSchema = z.strictObject({
  /** Every check's last counted result was a success. */
  healthy: z.boolean(),
  lastSuccessMs: z.number().optional(),
  lastFailureMs: z.number().optional(),
  consecutiveFailures: z.number().int().min(0),
  lastFailureCause: z.string().optional(),
});
export type TaskHealth = z.infer<typeof TaskHealthSchema>;

export const ReadinessResultSchema = z.strictObject({
  name: z.string(),
  ready: z.boolean(),
  checkedAtMs: z.number(),
  lastResponse: z.string().optional(),
});
export type ReadinessResult = z.infer<typeof ReadinessResultSchema>;

export const TaskInfoSchema = z.strictObject({
  taskId: z.string().min(1),
  name: z.string(),
  agentId: z.string().min(1),
  frameworkId: z.string().min(1),
  appId: z.string(),
  /** Empty: the agent's default task image (a command-only app). */
  image: z.string(),
  cmd: z.string().optional(),
  /** The container's command without a shell (Marathon's args); not with cmd. */
  args: z.array(z.string()).optional(),
  resources: ResourcesSchema,
  env: z.record(z.string(), z.string()),
  labels: z.record(z.string(), z.string()),
  run: TaskRunSchema.optional(),
});
export type TaskInfo = z.infer<typeof TaskInfoSchema>;

/** At most this many addresses on a task's status (one per container network, IPv4 and IPv6). */
export const MAX_TASK_IP_ADDRESSES = 8;
const ipv4 = z.ipv4();
const ipv6 = z.ipv6();
/** A task container's IP address, as text (IPv4 dotted quad or IPv6), at most 45 characters. */
export const TaskIpAddressSchema = z
  .string()
  .max(45)
  .refine((s) => ipv4.safeParse(s).success || ipv6.safeParse(s).success, "must be an IPv4 or IPv6 address");

export const TaskStatusSchema = z.strictObject({
  state: TaskStateSchema,
  message: z.string(),
  exitCode: z.number().int().optional(),
  timestampMs: z.number(),
  uuid: z.string(),
  containerId: z.string().optional(),
  source: z.enum(["agent", "master", "reconciliation"]),
  health: TaskHealthSchema.optional(),
  /** A machine-readable cause, e.g. REASON_TASK_UNHEALTHY_CHECK_STATUS. */
  reason: z.string().optional(),
  readiness: z.array(ReadinessResultSchema).optional(),
  /** The container's addresses as the runtime reported them at TASK_RUNNING (absent: none known). */
  ipAddresses: z.array(TaskIpAddressSchema).min(1).max(MAX_TASK_IP_ADDRESSES).optional(),
});
export type TaskStatus = z.infer<typeof TaskStatusSchema>;

export const TaskEventSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("TaskLaunched"), info: TaskInfoSchema, status: TaskStatusSchema }),
  z.strictObject({ type: z.literal("TaskStatusUpdated"), status: TaskStatusSchema }),
  z.strictObject({ type: z.literal("TaskExpunged") }),
]);
export type TaskEvent = z.infer<typeof TaskEventSchema>;

export const TaskRecordSchema = z.strictObject({
  info: TaskInfoSchema,
  status: TaskStatusSchema,
  createdAtMs: z.number(),
  updatedAtMs: z.number(),
});
export type TaskRecord = z.infer<typeof TaskRecordSchema>;

export const TaskAggregate: AggregateDef<TaskRecord, TaskEvent> = {
  name: "task",
  eventSchema: TaskEventSchema,
  stateSchema: TaskRecordSchema,
  apply(state, event, { atMs }) {
    switch (event.type) {
      case "TaskLaunched":
        return { info: event.info, status: event.status, createdAtMs: atMs, updatedAtMs: atMs };
      case "TaskStatusUpdated":
        if (!state) return state;
        return { ...state, status: event.status, updatedAtMs: atMs };
      case "TaskExpunged":
        return undefined;
    }
  },
};
