/**
 * Fuzz of the config loader (seeded, in process): whatever the environment and the config file hold
 * (wrong types, unicode oddities, control characters, huge strings, deep nesting, NaN and Infinity,
 * prototype keys), a load returns a config that passes its own schema, or throws the project's typed
 * error (InvalidArgumentError) whose issues name the field; never anything else.
 * A failure prints fast-check's counterexample with its seed and path (pass them to `fc.assert` to replay).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { DroverError, InvalidArgumentError } from "@drover/common";
import fc from "fast-check";
import {
  AgentConfigSchema,
  CliConfigSchema,
  type LoadOptions,
  loadAgentConfig,
  loadCliConfig,
  loadMasterConfig,
  loadSchedulerConfig,
  MasterConfigSchema,
  SchedulerConfigSchema,
} from "./index.js";

const SEED = 20_261_129;
const RUNS = 300;

const LOADERS = {
  master: { load: loadMasterConfig, schema: MasterConfigSchema },
  scheduler: { load: loadSchedulerConfig, schema: SchedulerConfigSchema },
  agent: { load: loadAgentConfig, schema: AgentConfigSchema },
  cli: { load: loadCliConfig, schema: CliConfigSchema },
} as const;
type Service = keyof typeof LOADERS;
const SERVICES = Object.keys(LOADERS) as Service[];

/** Every variable the loader reads: the names in its own source, so that a new one is fuzzed too. */
const ENV_NAMES: string[] = [
  ...new Set(readFileSync(new URL("./index.js", import.meta.url), "utf8").match(/DROVER_[A-Z0-9_]+/g) ?? []),
]
  .filter((n) => !n.endsWith("_") && n !== "DROVER_CONFIG")
  .concat(["DROVER_MASTER_LISTEN", "DROVER_SCHEDULER_ADVERTISE"]);

/** Every key of the config file schemas. */
const FILE_KEYS: string[] = [
  ...new Set(
    [MasterConfigSchema, SchedulerConfigSchema, AgentConfigSchema, CliConfigSchema].flatMap((s) =>
      Object.keys(s.shape),
    ),
  ),
];

/** Variables whose field every service reads, with the field their errors must name. */
const NAMED: Record<string, { key: string; services: Service[] }> = {
  DROVER_LEADER_TTL_SECONDS: { key: "leaderTtlSeconds", services: ["master", "scheduler"] },
  DROVER_LOG_LEVEL: { key: "logLevel", services: ["master", "scheduler", "agent"] },
  DROVER_ETCD_ENDPOINTS: { key: "etcdEndpoints", services: ["master", "scheduler", "cli"] },
  DROVER_MASTERS: { key: "masters", services: ["scheduler", "agent", "cli"] },
  DROVER_MASTER_OFFER_TIMEOUT_SECONDS: { key: "offerTimeoutSeconds", services: ["master"] },
  DROVER_MASTER_ROLES: { key: "roles", services: ["master"] },
  DROVER_AGENT_CPUS: { key: "cpus", services: ["agent"] },
  DROVER_AGENT_PORTS: { key: "ports", services: ["agent"] },
  DROVER_AGENT_ID: { key: "agentId", services: ["agent"] },
};

// ------------------------------------------------------------------ generators

const hostileChar = fc.oneof(
  fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
  fc.constantFrom(
    "\u202E",
    "\u2066",
    "\u200F",
    "\uFEFF",
    "\u200B",
    "\u0301",
    "😀",
    "👩‍👩‍👧‍👦",
    "\u2028",
    "\x7f",
  ),
  fc.constantFrom("a", "1", "-", ".", ":", ",", "=", " ", '"', "\\", "{", "[", "/"),
);

const hostileString: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      "",
      " ",
      "0",
      "-1",
      "1e309",
      "NaN",
      "Infinity",
      "-0",
      "0x10",
      "3.5",
      "abc",
      "__proto__",
      "constructor",
      "a:1,b:2",
      "__proto__:x,constructor:y",
      "=,:,",
      ",,,",
      "127.0.0.1:5050",
      "host:99999",
      "http://127.0.0.1:2379",
      "nats://x",
      "31000-32000",
      "99999-1",
      "debug",
      "DEBUG",
      "[]",
      "{}",
      '[{"role":"a","weight":-1}]',
      '[{"role":"__proto__","weight":1,"__proto__":{"x":1}}]',
      "[".repeat(10_000),
    ),
  },
  { weight: 4, arbitrary: fc.string({ unit: hostileChar, maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 16 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.constantFrom("a", "é", "😀", "\u202E", "1,", "a:b,"),
        fc.oneof(
          { weight: 4, arbitrary: fc.constant(1025) },
          { weight: 2, arbitrary: fc.constant(65_536) },
          { weight: 1, arbitrary: fc.constant(1 << 20) },
        ),
      )
      .map(([u, n]) => u.repeat(Math.ceil(n / u.length))),
  },
);

/** Environment values cannot hold NUL (the OS cannot pass it). */
const envValue = hostileString.map((s) => s.replace(/\0/g, ""));

const jsonValue: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { maxDepth: 3 },
    {
      weight: 5,
      arbitrary: fc.oneof(hostileString, fc.double(), fc.boolean(), fc.constant(null), fc.integer()),
    },
    { weight: 1, arbitrary: fc.array(tie("v"), { maxLength: 4 }) },
    {
      weight: 1,
      arbitrary: fc
        .array(
          fc.tuple(
            fc.oneof(fc.constantFrom("__proto__", "constructor", "role", "weight"), hostileString),
            tie("v"),
          ),
          {
            maxLength: 4,
          },
        )
        .map((e) => Object.fromEntries(e)),
    },
  ),
})).v;

/** JSON text with tokens JSON.stringify cannot write (NaN, Infinity, -0, 1e309) and an own `__proto__`. */
function jsonText(value: unknown): string {
  if (typeof value === "number") return Object.is(value, -0) ? "-0" : String(value);
  if (Array.isArray(value)) return `[${value.map(jsonText).join(",")}]`;
  if (typeof value === "object" && value !== null)
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`)
      .join(",")}}`;
  return JSON.stringify(value) ?? "null";
}

const configText: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .array(
        fc.tuple(
          fc.oneof(
            { weight: 4, arbitrary: fc.constantFrom(...FILE_KEYS) },
            { weight: 1, arbitrary: hostileString },
          ),
          jsonValue,
        ),
        {
          maxLength: 5,
        },
      )
      .map((entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`).join(",")}}`),
  },
  { weight: 2, arbitrary: jsonValue.map(jsonText) },
  { weight: 1, arbitrary: hostileString },
  {
    weight: 1,
    arbitrary: fc.constantFrom(`{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}`, "\uFEFF{}", "{} {}", ""),
  },
);

const envMap = fc.array(fc.tuple(fc.constantFrom(...ENV_NAMES), envValue), { maxLength: 6 });

// ------------------------------------------------------------------ the property

let dir: string | undefined;
let files = 0;
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function configFile(text: string): string {
  dir ??= mkdtempSync(join(tmpdir(), "drover-config-fuzz-"));
  const path = join(dir, `config-${files++}.json`);
  writeFileSync(path, text, "utf8");
  return path;
}

/** Loads; returns the typed error (or undefined for a config), fails the property on anything else. */
function loadChecked(service: Service, opts: LoadOptions): InvalidArgumentError | undefined {
  const { load, schema } = LOADERS[service];
  let config: unknown;
  try {
    config = load(opts);
  } catch (err) {
    assert.ok(
      err instanceof DroverError,
      `threw ${err instanceof Error ? `${err.name}: ${err.message.slice(0, 200)}` : String(err)} instead of the typed error`,
    );
    assert.ok(
      err instanceof InvalidArgumentError,
      `threw ${err.name} (${err.code}) instead of INVALID_ARGUMENT`,
    );
    assert.ok(err.issues.length > 0, "an error without issues");
    for (const i of err.issues) {
      assert.equal(typeof i.path, "string", `issue path ${String(i.path)}`);
      assert.ok(
        typeof i.message === "string" && i.message.length > 0,
        `issue without a message: ${JSON.stringify(i)}`,
      );
    }
    // a root issue names its fields, quoted, in its message (zod: Unrecognized keys: "a", ""); a bounded list
    // ends with "and N more issues", which names nothing
    const names = (i: { path: string; message: string }) => i.path !== "" || /"[^"]*"/.test(i.message);
    assert.ok(err.issues.some(names), `no issue names a field: ${JSON.stringify(err.issues).slice(0, 300)}`);
    assert.ok(err.message.length <= 16 * 1024, `an error message of ${err.message.length} chars`);
    return err;
  }
  assert.ok(schema.safeParse(config).success, `the loaded ${service} config fails its own schema`);
  return undefined;
}

test("config fuzz: hostile environment and config files give a config or a typed error naming a field", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...SERVICES),
      envMap,
      fc.option(configText, { nil: undefined }),
      (service, env, text) => {
        const argv = text === undefined ? [] : ["--config", configFile(text)];
        loadChecked(service, { env: Object.fromEntries(env), argv });
      },
    ),
    { seed: SEED, numRuns: RUNS },
  );
});

test("config fuzz: a bad value in one variable is refused naming its field", () => {
  const named = Object.entries(NAMED);
  fc.assert(
    fc.property(fc.constantFrom(...named), envValue, fc.nat(), ([name, { key, services }], value, pick) => {
      const service = services[pick % services.length] as Service;
      const err = loadChecked(service, { env: { [name]: value }, argv: [] });
      if (err)
        assert.ok(
          err.issues.some(
            (i) => i.path === key || i.path.startsWith(`${key}.`) || i.path.startsWith(`${key}[`),
          ),
          `${name}=${JSON.stringify(value.slice(0, 80))} for the ${service}: issues ${JSON.stringify(err.issues).slice(0, 300)} do not name ${key}`,
        );
    }),
    { seed: SEED, numRuns: RUNS },
  );
});

test("config fuzz: DROVER_CONFIG naming no readable JSON object is refused with the path 'config'", () => {
  const paths = [
    "/nonexistent/drover.json",
    tmpdir(),
    "/dev/null",
    "relative/../nope.json",
    "a\u202Eb.json",
    " ",
  ];
  fc.assert(
    fc.property(fc.constantFrom(...SERVICES), fc.constantFrom(...paths), (service, path) => {
      const err = loadChecked(service, { env: { DROVER_CONFIG: path }, argv: [] });
      assert.ok(err, `DROVER_CONFIG=${JSON.stringify(path)} loaded a config`);
      assert.ok(
        err.issues.some((i) => i.path === "config"),
        `DROVER_CONFIG=${JSON.stringify(path)}: ${JSON.stringify(err.issues)}`,
      );
    }),
    { seed: SEED, numRuns: 30 },
  );
});
