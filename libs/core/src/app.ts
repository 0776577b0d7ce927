import { z } from "zod";
import { LIMITS } from "./limits.js";
import type { Resources } from "./resources.js";

/** 1..63 chars of lowercase letters, digits and '-', starting and ending with a letter or digit. */
export const APP_ID_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Label keys with this prefix are reserved for Drover's own container labels. */
export const RESERVED_LABEL_PREFIX = "drover.";

/** The limits of an app definition, in the units of `Resources` (cores, MiB). */
export const APP_LIMITS = {
  maxInstances: 1000,
  /** Docker's floor: a CFS quota of 1 ms per 100 ms period. */
  minCpus: 0.01,
  maxCpus: 64,
  /** Docker refuses memory limits below 6 MiB. */
  minMem: 6,
  maxMem: 1_048_576,
} as const;

/** A record with at most `max` entries (reported on the record itself). */
function boundedRecord<K extends z.core.$ZodRecordKey, V extends z.ZodType>(
  key: K,
  value: V,
  max: number,
  what: string,
) {
  return z.record(key, value).superRefine((rec, ctx) => {
    const n = Object.keys(rec).length;
    if (n > max) ctx.addIssue({ code: "custom", message: `at most ${max} ${what} (got ${n})` });
  });
}

/** Environment variable names Docker can pass on: non-empty, without "=" or NUL, not a prototype key. */
const EnvSchema = boundedRecord(
  z
    .string()
    .max(LIMITS.envNameChars)
    .regex(/^[^=\0]+$/, { error: 'environment variable names must be non-empty, without "=" or NUL' })
    .refine((k) => k !== "__proto__", { error: "reserved name" }),
  z.string().max(LIMITS.envValueChars),
  LIMITS.envCount,
  "environment variables",
);

/** An app: a long-running service definition (Marathon's app), after defaults are applied. */
export type AppSpec = {
  id: string;
  container: { docker: { image: string } };
  cmd?: string | undefined;
  instances: number;
  cpus: number;
  mem: number;
  disk: number;
  env: Record<string, string>;
  labels: Record<string, string>;
  /** Host ports each instance needs: 0 asks for any free port of the agent, another number for that port. */
  ports?: number[] | undefined;
};

const PortsSchema = z
  .array(z.number().int().min(0).max(65535))
  .max(LIMITS.portsPerApp)
  .superRefine((ports, ctx) => {
    const seen = new Set<number>();
    for (const [i, p] of ports.entries()) {
      if (p !== 0 && seen.has(p))
        ctx.addIssue({ code: "custom", path: [i], message: `port ${p} is listed twice` });
      seen.add(p);
    }
  });

export const AppIdSchema = z
  .string()
  .min(1, { abort: true })
  .max(LIMITS.appIdChars, { abort: true })
  .regex(APP_ID_PATTERN, {
    error: "must be lowercase letters, digits and '-', starting and ending with a letter or digit",
  });

const ImageSchema = z
  .string()
  .min(1, { abort: true })
  .max(LIMITS.imageChars, { abort: true })
  .regex(/^\S+$/, { error: "must not contain whitespace" });

const LabelsSchema = boundedRecord(
  z.string().max(LIMITS.labelKeyChars),
  z.string().max(LIMITS.labelValueChars),
  LIMITS.labelCount,
  "labels",
).superRefine((labels, ctx) => {
  for (const key of Object.keys(labels)) {
    if (key.startsWith(RESERVED_LABEL_PREFIX)) {
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: `label keys must not start with "${RESERVED_LABEL_PREFIX}" (reserved)`,
      });
    }
  }
});

/**
 * The app definition as accepted at every boundary (REST, gRPC, etcd value). Strict: unknown keys
 * are rejected at every level. JSON shape:
 * `{ id, container: { docker: { image } }, cmd?, instances?=1, cpus?=0.1, mem?=32, disk?=0, env?={}, labels?={}, ports? }`.
 */
export const AppSpecSchema = z.strictObject({
  id: AppIdSchema,
  container: z.strictObject({
    docker: z.strictObject({ image: ImageSchema }),
  }),
  cmd: z.string().min(1).max(LIMITS.cmdChars).optional(),
  instances: z.number().int().min(0).max(APP_LIMITS.maxInstances).default(1),
  cpus: z.number().min(APP_LIMITS.minCpus).max(APP_LIMITS.maxCpus).default(0.1),
  mem: z.number().min(APP_LIMITS.minMem).max(APP_LIMITS.maxMem).default(32),
  disk: z.number().min(0).max(LIMITS.maxMiB).default(0),
  env: EnvSchema.default(() => ({})),
  labels: LabelsSchema.default(() => ({})),
  ports: PortsSchema.optional(),
}) satisfies z.ZodType<AppSpec>;

/** The resources one instance of the app needs (ports are chosen at placement: see appPortDemand). */
export function appResources(app: AppSpec): Resources {
  return { cpus: app.cpus, mem: app.mem, disk: app.disk, ports: [] };
}

/** How many "any" host ports and which specific host ports one instance of the app needs. */
export function appPortDemand(app: AppSpec): { ports: number; requestedPorts: number[] } {
  const list = app.ports ?? [];
  return { ports: list.filter((p) => p === 0).length, requestedPorts: list.filter((p) => p !== 0) };
}
