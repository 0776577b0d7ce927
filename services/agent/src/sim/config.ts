/**
 * drover-sim's command line, validated with zod. Every flag has a default but --agents; the master
 * and NATS addresses and the log level also come from DROVER_MASTERS, DROVER_NATS_SERVERS and
 * DROVER_LOG_LEVEL. A bad flag is refused with its name (exit status 2, as a bad service config).
 */
import { parseArgs } from "node:util";
import { MsRangeSchema } from "@drover/runtime";
import { z } from "zod";

export const USAGE = `usage: drover-sim --agents N [flags]

Runs N simulated agents in one process against a real master: each has its own master session,
agent id (<prefix>-<i>), resources and attributes (rack=r<i%10>, zone=z<i%3>); tasks are timers
(@drover/runtime's simulated runtime). Status updates share one NATS connection.

  --agents N                  how many agents (1-100000)
  --cpus C                    cpus of each agent (default 4)
  --mem MIB                   mem of each agent (default 16384)
  --disk MIB                  disk of each agent (default 10240)
  --ports RANGES              port ranges of each agent (default 31000-32000)
  --attributes K=V,...        more attributes of every agent
  --id-prefix P               agent ids are P-<i> (default sim)
  --first-index I             the first i (default 0), to split a fleet over processes
  --seed S                    seed of every random draw (default 1)
  --start-latency-ms A-B      launch to RUNNING (default 10-100)
  --run-ms A-B|forever        run time of a task without sleep/exit in its cmd (default forever)
  --failure-rate P            share of those runs that exit non-zero (default 0)
  --launch-failure-rate P     share of launches that fail (default 0)
  --starting WHEN             when TASK_STARTING is reported: with-running (default: with what ends
                              the start latency, so the agent sends both in one status message) or
                              at-launch (as the Docker runtime does)
  --ramp-per-second R         agents started per second (default 200)
  --reconnect-spread-ms MS    after a lost session, each agent waits a random part of MS before it
                              registers again (default agents/ramp seconds, at most 20000)
  --stats-interval-s S        a stats line every S seconds, 0 for none (default 10)
  --masters HOST:PORT,...     default $DROVER_MASTERS or 127.0.0.1:5050
  --nats URL,...              default $DROVER_NATS_SERVERS or nats://127.0.0.1:4222
  --log-level L               debug, info, warn or error (default $DROVER_LOG_LEVEL or warn)
  --help
`;

/** A flag's text; a missing required flag says so. */
const text = () => z.string({ error: (i) => (i.input === undefined ? "is required" : "must be text") });

const number = (min: number, max: number) =>
  text()
    .trim()
    .regex(/^\d+(\.\d+)?$/, "must be a number")
    .transform(Number)
    .pipe(z.number().min(min).max(max));

const integer = (min: number, max: number) =>
  text()
    .trim()
    .regex(/^\d+$/, "must be a whole number")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const msRange = z
  .string()
  .trim()
  .regex(/^\d+(-\d+)?$/, 'must be "MIN-MAX" or "N" (milliseconds)')
  .transform((s) => {
    const [min = 0, max = min] = s.split("-").map(Number);
    return { min, max };
  })
  .pipe(MsRangeSchema);

const list = (item: z.ZodString) =>
  z
    .string()
    .transform((s) => s.split(",").map((x) => x.trim()))
    .pipe(z.array(item).min(1));

const portRange = z
  .string()
  .regex(/^\d{1,5}-\d{1,5}$/, 'must be "BEGIN-END"')
  .refine(
    (r) => {
      const [b = 0, e = 0] = r.split("-").map(Number);
      return b >= 1 && e <= 65535 && b <= e;
    },
    { message: "must be within 1-65535 with BEGIN <= END" },
  );

const attributes = z
  .string()
  .transform((s) => s.split(",").filter((kv) => kv.trim() !== ""))
  .pipe(z.array(z.string().regex(/^[a-zA-Z0-9_.-]+[=:][^,]*$/, "must be KEY=VALUE pairs, comma-separated")))
  .transform((pairs) => Object.fromEntries(pairs.map((kv) => kv.split(/[=:](.*)/s).slice(0, 2))));

const SimArgsSchema = z.strictObject({
  agents: integer(1, 100_000),
  cpus: number(0.01, 100_000).default(4),
  mem: number(1, 1 << 30).default(16_384),
  disk: number(0, 1 << 30).default(10_240),
  ports: list(portRange).default(["31000-32000"]),
  attributes: attributes.default({}),
  idPrefix: z
    .string()
    .regex(/^[a-zA-Z0-9._-]{1,40}$/, "must be 1-40 of [a-zA-Z0-9._-]")
    .default("sim"),
  firstIndex: integer(0, 10_000_000).default(0),
  seed: integer(0, 0xffffffff).default(1),
  startLatencyMs: msRange.default({ min: 10, max: 100 }),
  runMs: text()
    .regex(/^(forever|\d+(-\d+)?)$/, 'must be "forever", "MIN-MAX" or "N" (milliseconds)')
    .transform((s) => (s === "forever" ? null : s))
    .pipe(msRange.nullable())
    .default(null),
  failureRate: number(0, 1).default(0),
  launchFailureRate: number(0, 1).default(0),
  starting: z.enum(["with-running", "at-launch"]).default("with-running"),
  rampPerSecond: number(0.1, 100_000).default(200),
  reconnectSpreadMs: integer(0, 600_000).optional(),
  statsIntervalS: number(0, 86_400).default(10),
  masters: list(z.string().regex(/^[^\s:]+:\d{1,5}$/, "must be host:port")).default(["127.0.0.1:5050"]),
  nats: list(z.string().min(1)).default(["nats://127.0.0.1:4222"]),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("warn"),
});
export type SimConfig = z.output<typeof SimArgsSchema>;

/** How long re-registrations are spread after a master failover: as long as the ramp, at most 20 s. */
export function reconnectSpreadMs(config: SimConfig): number {
  return (
    config.reconnectSpreadMs ?? Math.min(20_000, Math.round((config.agents * 1000) / config.rampPerSecond))
  );
}

/** Environment variables that stand in for a flag that is not given. */
const ENV_FLAGS: Record<string, string> = {
  masters: "DROVER_MASTERS",
  nats: "DROVER_NATS_SERVERS",
  logLevel: "DROVER_LOG_LEVEL",
};

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const FLAGS = Object.keys(SimArgsSchema.shape);

export type SimArgsResult = { ok: true; config: SimConfig } | { ok: false; help: boolean; error: string };

export function parseSimArgs(argv: string[], env: NodeJS.ProcessEnv = {}): SimArgsResult {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        help: { type: "boolean" },
        ...Object.fromEntries(FLAGS.map((k) => [kebab(k), { type: "string" as const }])),
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    // node:util names the flag: "Unknown option '--agent'", "Option '--agents <value>' argument missing".
    return { ok: false, help: false, error: err instanceof Error ? err.message : String(err) };
  }
  if (values.help === true) return { ok: false, help: true, error: USAGE };
  const raw: Record<string, unknown> = {};
  for (const key of FLAGS) {
    const fromEnv = ENV_FLAGS[key] !== undefined ? env[ENV_FLAGS[key]] : undefined;
    const value = values[kebab(key)] ?? (fromEnv === "" ? undefined : fromEnv);
    if (value !== undefined) raw[key] = value;
  }
  const r = SimArgsSchema.safeParse(raw);
  if (r.success) return { ok: true, config: r.data };
  const issues = r.error.issues.map((i) => {
    const key = String(i.path[0] ?? "");
    const envName = ENV_FLAGS[key];
    const name = key ? `--${kebab(key)}${envName ? ` (or ${envName})` : ""}` : "flags";
    return `${name}: ${i.message}`;
  });
  return { ok: false, help: false, error: issues.join("; ") };
}
