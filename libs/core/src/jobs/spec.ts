/**
 * Metronome's job definition and schedule (`/v1/jobs`), accepted as Metronome's JSON. Pure.
 *
 * Upstream (dcos/metronome @ de4174db0bc6): `api/.../v1/schema/{jobspec,schedulespec}.schema.json`,
 * `jobs/.../model/{JobSpec,JobRunSpec,ScheduleSpec,RestartSpec,ConcurrencyPolicy,JobId}.scala`.
 * Defaults are Metronome's: cpus 1, mem 128, disk 0, maxLaunchDelay 3600 s, restart NEVER; a
 * schedule's timezone UTC, startingDeadlineSeconds 900, concurrencyPolicy ALLOW, enabled true.
 *
 * Fields Metronome has and Drover does not do are refused by name (`run.ucr: not supported: …`),
 * never silently dropped; any other unknown field is `unknown field`. REPLACE is accepted
 * (Metronome's early specs had it; Drover implements it: the active run is stopped first).
 */
import { z } from "zod";
import { type Constraint, parseConstraints } from "../constraints.js";
import { type FieldIssue, formatPath, type Validated, validate } from "../validation.js";
import { cronIssue } from "./cron.js";

/** Job ids: Metronome's (dots separate path segments: `dev.batch.job1`). */
export const JOB_ID_PATTERN =
  /^(([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])$/;
/** Schedule ids: Metronome's. */
export const SCHEDULE_ID_PATTERN = /^([a-z0-9][a-z0-9-]*[a-z0-9]+)$/;

const MAX_ID = 128;
const text = (max: number) => z.string().max(max);
const seconds = z
  .number()
  .int()
  .min(0)
  .max(365 * 24 * 3600);

export const JobIdSchema = z
  .string()
  .max(MAX_ID)
  .regex(JOB_ID_PATTERN, { error: "must be lowercase letters, digits and '-', segments separated by '.'" });

export const ScheduleIdSchema = z
  .string()
  .max(64)
  .regex(SCHEDULE_ID_PATTERN, { error: "must be lowercase letters, digits and '-' (at least 2 characters)" });

export const RestartPolicySchema = z.enum(["NEVER", "ON_FAILURE"]);
export type RestartPolicy = z.infer<typeof RestartPolicySchema>;

export const ConcurrencyPolicySchema = z.enum(["ALLOW", "FORBID", "REPLACE"]);
export type ConcurrencyPolicy = z.infer<typeof ConcurrencyPolicySchema>;

/** Metronome's placement operators (EQ is IS). */
const PlacementConstraintSchema = z.strictObject({
  attribute: z.string().min(1).max(128),
  operator: z.enum(["IS", "EQ", "LIKE", "UNLIKE"]),
  value: z.string().max(512).optional(),
});

const ArtifactSchema = z.strictObject({
  uri: z.string().min(1).max(4096),
  executable: z.boolean().default(false),
  extract: z.boolean().default(true),
  cache: z.boolean().default(false),
});

const JobVolumeSchema = z.strictObject({
  containerPath: z.string().min(1).max(1024),
  hostPath: z.string().min(1).max(1024),
  mode: z.enum(["RO", "RW"]),
});

const DockerSchema = z.strictObject({
  image: z.string().min(1).max(1024),
  forcePullImage: z.boolean().optional(),
  privileged: z.boolean().optional(),
  parameters: z
    .array(z.strictObject({ key: z.string().min(1).max(256), value: z.string().max(4096) }))
    .max(64)
    .optional(),
});

export const JobRunSpecSchema = z
  .strictObject({
    cmd: text(65_536).min(1).optional(),
    args: z.array(text(65_536)).max(1024).optional(),
    docker: DockerSchema.optional(),
    cpus: z.number().min(0.01).max(1024).default(1),
    mem: z
      .number()
      .min(32)
      .max(16 * 1024 * 1024)
      .default(128),
    disk: z
      .number()
      .min(0)
      .max(1024 * 1024 * 1024)
      .default(0),
    gpus: z.literal(0).optional(),
    env: z.record(z.string().min(1).max(256), text(65_536)).default({}),
    placement: z
      .strictObject({ constraints: z.array(PlacementConstraintSchema).max(64).default([]) })
      .default({ constraints: [] }),
    restart: z
      .strictObject({
        policy: RestartPolicySchema.default("NEVER"),
        activeDeadlineSeconds: z
          .number()
          .int()
          .min(1)
          .max(365 * 24 * 3600)
          .optional(),
      })
      .default({ policy: "NEVER" }),
    maxLaunchDelay: z
      .number()
      .int()
      .min(1)
      .max(365 * 24 * 3600)
      .default(3600),
    artifacts: z.array(ArtifactSchema).max(64).default([]),
    volumes: z.array(JobVolumeSchema).max(64).default([]),
    user: z.string().min(1).max(256).optional(),
    taskKillGracePeriodSeconds: seconds.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.cmd !== undefined && r.args !== undefined)
      ctx.addIssue({ code: "custom", path: ["args"], message: "must not be given together with cmd" });
    if (r.cmd === undefined && r.args === undefined && r.docker === undefined)
      ctx.addIssue({ code: "custom", path: ["cmd"], message: "required (or args, or docker.image)" });
  });
export type JobRunSpec = z.infer<typeof JobRunSpecSchema>;

export const ScheduleSpecSchema = z
  .strictObject({
    id: ScheduleIdSchema,
    cron: z.string().min(1).max(256),
    timezone: z.string().min(1).max(64).default("UTC"),
    startingDeadlineSeconds: z
      .number()
      .int()
      .min(60)
      .max(365 * 24 * 3600)
      .default(900),
    concurrencyPolicy: ConcurrencyPolicySchema.default("ALLOW"),
    enabled: z.boolean().default(true),
    /** Set by the server; a client that sends back what it read is not refused for it. */
    nextRunAt: z.string().max(64).optional(),
  })
  .superRefine((s, ctx) => {
    const problem = cronIssue(s.cron, s.timezone);
    if (problem) ctx.addIssue({ code: "custom", path: [problem.field], message: problem.message });
  })
  .transform(({ nextRunAt: _, ...s }) => s);
export type ScheduleSpec = z.infer<typeof ScheduleSpecSchema>;

export const JobSpecSchema = z.strictObject({
  id: JobIdSchema,
  description: text(4096).optional(),
  labels: z.record(z.string().min(1).max(256), text(4096)).default({}),
  run: JobRunSpecSchema,
});
export type JobSpec = z.infer<typeof JobSpecSchema>;

/** A job as POST /v1/jobs takes it: the definition, with schedules (kept on create, ignored on update). */
const JobInputSchema = JobSpecSchema.extend({
  schedules: z.array(z.unknown()).max(16).optional(),
});

/** Metronome fields Drover refuses by name, with why (paths in the input). */
const REFUSED: { path: string[]; why: string; unless?: (v: unknown) => boolean }[] = [
  { path: ["dependencies"], why: "job dependencies are not implemented" },
  { path: ["run", "ucr"], why: "Drover runs Docker containers: use run.docker" },
  { path: ["run", "secrets"], why: "secrets are not implemented yet" },
  { path: ["run", "networks"], why: "jobs run on the host network" },
  { path: ["run", "gpus"], why: "agents offer no GPUs", unless: (v) => v === 0 },
  { path: ["run", "docker", "pullConfig"], why: "no private registry credentials yet" },
  { path: ["run", "activeDeadlineSeconds"], why: "use run.restart.activeDeadlineSeconds" },
];

function at(input: unknown, path: readonly string[]): { found: boolean; value: unknown } {
  let cur = input;
  for (const seg of path) {
    if (cur === null || typeof cur !== "object" || Array.isArray(cur) || !Object.hasOwn(cur, seg))
      return { found: false, value: undefined };
    cur = (cur as Record<string, unknown>)[seg];
  }
  return { found: true, value: cur };
}

/** The refusals of `input` and a copy of it without the refused fields (so they are not "unknown"). */
function refusals(input: unknown): { issues: FieldIssue[]; rest: unknown } {
  const issues: FieldIssue[] = [];
  if (input === null || typeof input !== "object" || Array.isArray(input)) return { issues, rest: input };
  const rest = structuredClone(input) as Record<string, unknown>;
  for (const r of REFUSED) {
    const v = at(rest, r.path);
    if (!v.found || r.unless?.(v.value)) continue;
    issues.push({ path: formatPath(r.path), message: `not supported: ${r.why}` });
    const parent = at(rest, r.path.slice(0, -1)).value as Record<string, unknown>;
    delete parent[r.path[r.path.length - 1] as string];
  }
  // Metronome's secret references in env: `{"secret": "name"}`.
  const env = at(rest, ["run", "env"]).value;
  if (env && typeof env === "object" && !Array.isArray(env))
    for (const [k, v] of Object.entries(env as Record<string, unknown>))
      if (v !== null && typeof v === "object") {
        issues.push({ path: `run.env.${k}`, message: "not supported: secrets are not implemented yet" });
        delete (env as Record<string, unknown>)[k];
      }
  // Metronome's secret volumes: `{"containerPath": ..., "secret": "name"}`.
  const volumes = at(rest, ["run", "volumes"]).value;
  if (Array.isArray(volumes))
    for (const [i, v] of volumes.entries())
      if (v !== null && typeof v === "object" && Object.hasOwn(v, "secret")) {
        issues.push({
          path: `run.volumes[${i}].secret`,
          message: "not supported: secrets are not implemented yet",
        });
        delete (v as Record<string, unknown>).secret;
        if (!Object.hasOwn(v, "hostPath")) volumes.splice(i, 1, { ...v, hostPath: "/", mode: "RO" });
      }
  return { issues, rest };
}

function merged<T>(refused: FieldIssue[], v: Validated<T>): Validated<T> {
  if (refused.length === 0) return v;
  return { ok: false, issues: [...refused, ...(v.ok ? [] : v.issues)] };
}

/** A job definition (any JSON value) with its schedules, or every problem by field. Never throws. */
export function parseJob(input: unknown): Validated<{ spec: JobSpec; schedules: ScheduleSpec[] }> {
  const { issues, rest } = refusals(input);
  const v = validate(JobInputSchema, rest);
  if (!v.ok) return merged(issues, v);
  const { schedules: raw, ...spec } = v.value;
  const schedules: ScheduleSpec[] = [];
  const seen = new Set<string>();
  for (const [i, s] of (raw ?? []).entries()) {
    const one = parseSchedule(s);
    if (!one.ok) {
      issues.push(...one.issues.map((x) => ({ ...x, path: `schedules[${i}]${x.path ? `.${x.path}` : ""}` })));
      continue;
    }
    if (seen.has(one.value.id)) issues.push({ path: `schedules[${i}].id`, message: "duplicate schedule id" });
    seen.add(one.value.id);
    schedules.push(one.value);
  }
  const checked = checkPlacement(spec.run);
  if (!checked.ok) issues.push(...checked.issues);
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: { spec, schedules } };
}

/** One schedule (any JSON value), or every problem by field. Never throws. */
export function parseSchedule(input: unknown): Validated<ScheduleSpec> {
  return validate(ScheduleSpecSchema, input);
}

/** A job's placement constraints as the placement core reads them (EQ is IS). */
export function jobConstraints(run: JobRunSpec): Constraint[] {
  return run.placement.constraints.map((c) => ({
    field: c.attribute,
    operator: c.operator === "EQ" ? "IS" : c.operator,
    ...(c.value !== undefined ? { value: c.value } : {}),
  }));
}

/** The constraints checked as the app model checks them (values, regexes). */
function checkPlacement(run: JobRunSpec): Validated<Constraint[]> {
  const cs = jobConstraints(run);
  const v = parseConstraints(
    cs.map((c) => [c.field, c.operator, ...(c.value !== undefined ? [c.value] : [])]),
  );
  if (v.ok) return v;
  return {
    ok: false,
    issues: v.issues.map((i) => ({
      path: `run.placement.constraints${i.path.replace(/^constraints/, "").replace(/^\[(\d+)\].*$/, "[$1]")}`,
      message: i.message,
    })),
  };
}
