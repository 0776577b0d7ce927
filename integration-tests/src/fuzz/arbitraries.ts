/**
 * Generators of hostile input for every boundary of Drover (fast-check arbitraries).
 *
 * An input is plain data (printable, replayable): strings, numbers, byte arrays, a JSON syntax tree
 * (so that the exact text is under control: `__proto__` as an own key, duplicate keys, NaN tokens,
 * unescaped control characters, deep nesting), and *references* (`{ $ref, i }`) to live things the
 * fuzzer can only know at run time (the fuzz framework's id, a live offer, a task of the scheduler,
 * the fake agent's id …), resolved by the targets just before sending.
 *
 * Input number `i` of seed `S` is `fc.sample(fuzzInput(targets), { seed: S, path: String(i), numRuns: 1 })`,
 * the value fast-check's `fc.assert` would try in its run `i` (its counterexample path "i").
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  AgentConfigSchema,
  CliConfigSchema,
  MasterConfigSchema,
  SchedulerConfigSchema,
} from "@drover/config";
import { TASK_STATES } from "@drover/core";
import fc from "fast-check";

// ------------------------------------------------------------------ references to live things

export const REF_NAMES = [
  "ownFrameworkId",
  "schedulerFrameworkId",
  "otherFrameworkId",
  "subFrameworkId",
  "liveOfferId",
  "ownTaskId",
  "schedulerTaskId",
  "anyTaskId",
  "fakeAgentId",
  "otherAgentId",
  "anchorAppId",
  /** The app id the same request names (UpdateApp's id, inside its app_json). */
  "requestAppId",
] as const;
export type RefName = (typeof REF_NAMES)[number];

/** A value known only at run time: `pool(name)[i % length]`. */
export interface Ref {
  $ref: RefName;
  i: number;
}

export function isRef(v: unknown): v is Ref {
  return typeof v === "object" && v !== null && typeof (v as { $ref?: unknown }).$ref === "string";
}

const ref = (...names: RefName[]): fc.Arbitrary<Ref> =>
  fc.record({ $ref: fc.constantFrom(...names), i: fc.nat({ max: 1_000 }) });

// ------------------------------------------------------------------ hostile strings

/** Hand-picked strings that break naive code: unicode oddities, prototype keys, injections, edge ids. */
export const CURATED_STRINGS: readonly string[] = [
  "",
  " ",
  "\t",
  "\n",
  "\r\n",
  "\r",
  "\0",
  "a\0b",
  "\x1b[31mred\x1b[0m",
  "\x1b]0;title\x07",
  "\x7f",
  "\x08\x08\x08",
  "\u0085",
  "\u202Eevil\u202C",
  "\u202Egnp.exe",
  "\u200F\u200E",
  "\u2066isolate\u2069",
  "\uFEFF",
  "\uFEFFweb",
  "\u200B",
  "\u200D",
  "\u00A0",
  "\u3000",
  "\u2028",
  "\u2029",
  "\uFFFD",
  "\uFFFE",
  "\uFFFF",
  "e\u0301",
  "e\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301",
  "Z\u0337\u0321\u031b\u0348\u034e\u0329\u0344\u034a\u0315a\u0336l\u0335g\u0336o\u0338",
  "\uD800",
  "\uDFFF",
  "a\uD800b",
  "\uDC00\uD800",
  "\uDBFF\uDFFF",
  "😀",
  "👩‍👩‍👧‍👦",
  "🏳️‍🌈",
  "🇺🇳",
  "👍🏽",
  "#️⃣",
  "İ",
  "ı",
  "ß",
  "ǅ",
  "ﬀ",
  "Ⅻ",
  "٣",
  "𝟙",
  "ｗｅｂ",
  "wéb",
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "__defineGetter__",
  "__lookupSetter__",
  "then",
  "null",
  "undefined",
  "NaN",
  "Infinity",
  "-0",
  "1e309",
  "0x10",
  "true",
  "[]",
  "{}",
  '{"a":1}',
  "../../../../etc/passwd",
  "/dev/zero",
  "C:\\Windows\\System32",
  "%s%s%s%n",
  "$\u{7b}jndi:ldap://127.0.0.1/x}",
  "{{7*7}}",
  "<script>alert(1)</script>",
  "' OR '1'='1",
  "drover.app_id",
  "drover.",
  "drover.status.>",
  "a.b.c",
  "*",
  ">",
  "\\",
  '"',
  "'",
  "`",
  "=",
  "A=B",
  "a:b",
  "a,b",
  "web",
  "Web",
  "a-",
  "-a",
  "a--b",
  "x".repeat(63),
  "x".repeat(64),
  "x".repeat(129),
  "x".repeat(254),
  "127.0.0.1:5050",
  "0.0.0.0:0",
  "host:99999",
  "http://",
  "nats://",
];

const fromCode = (c: number): string => String.fromCharCode(c);
const controlChar = fc.integer({ min: 0, max: 0x1f }).map(fromCode);
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map(fromCode);
const bidiChar = fc.constantFrom(
  "\u202A",
  "\u202B",
  "\u202C",
  "\u202D",
  "\u202E",
  "\u2066",
  "\u2067",
  "\u2068",
  "\u2069",
  "\u200E",
  "\u200F",
  "\u061C",
);
const combiningMark = fc.integer({ min: 0x300, max: 0x36f }).map(fromCode);
const emoji = fc.constantFrom("😀", "👩‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇳", "👍🏽", "🧑‍🚀", "💩", "#️⃣");
const oddChar = fc.constantFrom(
  "\uFEFF",
  "\u200B",
  "\u200D",
  "\u00A0",
  "\u2028",
  "\u2029",
  "\uFFFD",
  "\uFFFF",
  "\u0085",
  "\x7f",
);
const asciiBit = fc.constantFrom("a", "z", "0", "-", ".", "_", "/", " ", "=", ":", ",", '"', "\\", "{", "}");

/** A short hostile string (a few characters of one kind or a mix). */
const piece: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...CURATED_STRINGS) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 8 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 8 }) },
  {
    weight: 3,
    arbitrary: fc.string({
      unit: fc.oneof(controlChar, loneSurrogate, bidiChar, combiningMark, emoji, oddChar, asciiBit),
      maxLength: 12,
    }),
  },
);

/** Units repeated into huge strings: every one of them is hostile somewhere (escaping, UTF-8, surrogates). */
const HUGE_UNITS = ["a", "é", "😀", "\u0301", "\u202E", "\0", "\uD800", '\\"', "x y", "\n"] as const;

/** A huge string: 1 KiB to 1 MiB (UTF-16 code units) of one repeated unit. */
export const hugeString: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom(...HUGE_UNITS),
    fc.oneof(
      { weight: 4, arbitrary: fc.constant(1025) },
      { weight: 3, arbitrary: fc.constant(8 * 1024) },
      { weight: 2, arbitrary: fc.constant(64 * 1024) },
      { weight: 1, arbitrary: fc.constant(1024 * 1024) },
    ),
  )
  .map(([unit, size]) => unit.repeat(Math.ceil(size / unit.length)).slice(0, size));

/** Strings shaped like valid ids (so that the next check, not the first, is exercised). */
const validLooking: fc.Arbitrary<string> = fc.oneof(
  fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,14}[a-z0-9]$/),
  fc.stringMatching(/^[a-zA-Z0-9._-]{1,40}$/),
  fc.uuid().map((u) => `fw-${u}`),
);

/** A hostile string; `hugeWeight` tunes how often it is huge (leaves of big objects use less). */
export function hostileString(hugeWeight = 2): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 10, arbitrary: piece },
    { weight: 6, arbitrary: fc.array(piece, { minLength: 2, maxLength: 5 }).map((p) => p.join("")) },
    { weight: 4, arbitrary: validLooking },
    { weight: hugeWeight, arbitrary: hugeString },
  );
}

/** A string field of a request: hostile, or a reference to something live. */
export function stringField(refs: RefName[] = [], hugeWeight = 2): fc.Arbitrary<string | Ref> {
  if (refs.length === 0) return hostileString(hugeWeight);
  return fc.oneof(
    { weight: 6, arbitrary: hostileString(hugeWeight) },
    { weight: 4, arbitrary: ref(...refs) },
  );
}

// ------------------------------------------------------------------ hostile numbers

export const EDGE_NUMBERS: readonly number[] = [
  0,
  -0,
  1,
  -1,
  0.5,
  0.001,
  0.0099,
  0.01,
  0.1,
  5.999,
  6,
  32,
  64,
  64.000001,
  1000,
  1001,
  65535,
  65536,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  2 ** 53 - 1,
  2 ** 53 + 2,
  1e21,
  1e308,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  Number.MIN_VALUE,
  Number.EPSILON,
  1e-300,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
];

/** Any double, with the edges (NaN, ±Infinity, -0, MAX_VALUE, denormals) often. */
export const hostileDouble: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...EDGE_NUMBERS) },
  { weight: 3, arbitrary: fc.double() },
  { weight: 2, arbitrary: fc.integer({ min: -1000, max: 100_000 }) },
);

/** int32 values (what the encoder can write), edges first. */
export const hostileInt32: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, 1, -1, 2, 1000, 1001, 2 ** 31 - 1, -(2 ** 31)),
  fc.integer(),
);

export const hostileUint32: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, 1, 1023, 1024, 31000, 65535, 65536, 2 ** 31, 2 ** 32 - 1),
  fc.integer({ min: 0, max: 2 ** 32 - 1 }),
);

/** int64 fields as numbers (ts-proto's encoding): safe integers only. */
export const hostileInt64: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, -1, 1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 1_700_000_000_000),
  fc.maxSafeInteger(),
);

// ------------------------------------------------------------------ JSON documents as syntax trees

/** A JSON document as a syntax tree, so that the exact text is under control. */
export type Json =
  /** A token written as is: null, true, a number, or something invalid (NaN, 01, undefined …). */
  | { k: "lit"; raw: string }
  /** A string; `raw` writes it between quotes without escaping (control characters: invalid JSON). */
  | { k: "str"; v: string; raw?: boolean }
  | { k: "ref"; ref: Ref }
  | { k: "arr"; items: Json[] }
  | { k: "obj"; entries: [string, Json][] }
  /** `depth` nested arrays or objects around `null` (built as text, not as a tree). */
  | { k: "deep"; depth: number; open: "[" | "{" }
  /** An array or object of `count` generated members (huge counts without a huge tree). */
  | { k: "many"; count: number; shape: "arr" | "obj" | "ports" };

/** Serializes a tree; `refs` resolves references to live values. */
export function jsonText(node: Json, resolveRef: (r: Ref) => string = (r) => `${r.$ref}#${r.i}`): string {
  switch (node.k) {
    case "lit":
      return node.raw;
    case "str":
      return node.raw ? `"${node.v}"` : JSON.stringify(node.v);
    case "ref":
      return JSON.stringify(resolveRef(node.ref));
    case "arr":
      return `[${node.items.map((i) => jsonText(i, resolveRef)).join(",")}]`;
    case "obj":
      return `{${node.entries.map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v, resolveRef)}`).join(",")}}`;
    case "deep":
      return node.open === "["
        ? `${"[".repeat(node.depth)}null${"]".repeat(node.depth)}`
        : `${'{"a":'.repeat(node.depth)}null${"}".repeat(node.depth)}`;
    case "many": {
      const n = node.count;
      if (node.shape === "arr") return `[${Array.from({ length: n }, (_, i) => i).join(",")}]`;
      if (node.shape === "ports") return `[${Array.from({ length: n }, (_, i) => i % 65536).join(",")}]`;
      return `{${Array.from({ length: n }, (_, i) => `"K${i}":"v"`).join(",")}}`;
    }
  }
}

const numberText = (n: number): string => (Object.is(n, -0) ? "-0" : String(n));

/** Number tokens, valid JSON or not. */
const numberToken: fc.Arbitrary<Json> = fc.oneof(
  { weight: 5, arbitrary: hostileDouble.map((n) => ({ k: "lit" as const, raw: numberText(n) })) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(
        "1e309",
        "-1e309",
        "1e-400",
        "123456789012345678901234567890",
        "0.1e1",
        "1E2",
        "-0.0",
        "00",
        "01",
        "+1",
        ".5",
        "5.",
        "0x10",
        "1_000",
        "١٢",
      )
      .map((raw) => ({ k: "lit" as const, raw })),
  },
);

const literal: fc.Arbitrary<Json> = fc
  .constantFrom("null", "true", "false", "undefined", "True", "nul", "NaN", "Infinity")
  .map((raw) => ({ k: "lit" as const, raw }));

/** Keys that mean something to JavaScript or to Drover, or are just hostile. */
export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "__proto__",
      "constructor",
      "prototype",
      "toString",
      "valueOf",
      "hasOwnProperty",
      "__defineSetter__",
      "",
      "id",
      "instances",
      "drover.app_id",
      "drover.x",
      "A=B",
      "a.b",
      "PATH",
    ),
  },
  { weight: 4, arbitrary: hostileString(0) },
);

const stringNode = (s: fc.Arbitrary<string>): fc.Arbitrary<Json> =>
  fc.oneof(
    { weight: 6, arbitrary: s.map((v) => ({ k: "str" as const, v })) },
    { weight: 1, arbitrary: s.map((v) => ({ k: "str" as const, v, raw: true })) },
  );

const jsonLeaf: fc.Arbitrary<Json> = fc.oneof(
  { weight: 4, arbitrary: stringNode(hostileString(0)) },
  { weight: 3, arbitrary: numberToken },
  { weight: 2, arbitrary: literal },
);

const deepNode: fc.Arbitrary<Json> = fc.record({
  k: fc.constant("deep" as const),
  depth: fc.constantFrom(64, 1_000, 10_000, 100_000),
  open: fc.constantFrom("[" as const, "{" as const),
});

const manyNode: fc.Arbitrary<Json> = fc.record({
  k: fc.constant("many" as const),
  count: fc.constantFrom(1_000, 10_000, 100_000),
  shape: fc.constantFrom("arr" as const, "obj" as const, "ports" as const),
});

/** JSON values nested a few levels, with hostile keys and (short) hostile leaves. */
const lightJson: fc.Arbitrary<Json> = fc.letrec<{ value: Json; arr: Json; obj: Json }>((tie) => ({
  value: fc.oneof(
    { maxDepth: 3 },
    { weight: 6, arbitrary: jsonLeaf },
    { weight: 2, arbitrary: tie("arr") },
    { weight: 2, arbitrary: tie("obj") },
  ),
  arr: fc.array(tie("value"), { maxLength: 4 }).map((items) => ({ k: "arr" as const, items })),
  obj: fc
    .array(fc.tuple(hostileKey, tie("value")), { maxLength: 4 })
    .map((entries) => ({ k: "obj" as const, entries })),
})).value;

/**
 * Any JSON-ish value: nested with hostile keys and leaves, or one heavy thing (deep nesting, a huge
 * count of members, a huge string). Heavy things never nest, so one input stays a few MiB at most.
 */
export const hostileJson: fc.Arbitrary<Json> = fc.oneof(
  { weight: 10, arbitrary: lightJson },
  { weight: 1, arbitrary: deepNode },
  { weight: 1, arbitrary: manyNode },
  { weight: 1, arbitrary: hugeString.map((v) => ({ k: "str" as const, v })) },
);

const str = (v: string): Json => ({ k: "str", v });
const num = (n: number): Json => ({ k: "lit", raw: numberText(n) });

/** How many fields of a valid base get a hostile value: none (a valid input) a quarter of the time. */
const mutationCount = fc.oneof(
  { weight: 3, arbitrary: fc.constant(0) },
  { weight: 5, arbitrary: fc.constant(1) },
  { weight: 2, arbitrary: fc.integer({ min: 2, max: 3 }) },
);

/**
 * A valid base with `mutationCount` of its fields replaced by hostile values: most inputs are one
 * mistake away from valid, so the check after the first one runs too. A hostile value `undefined`
 * removes the field.
 */
function mutated<T extends Record<string, unknown>>(
  valid: fc.Arbitrary<T>,
  hostile: { [K in keyof T]?: fc.Arbitrary<unknown> },
): fc.Arbitrary<T> {
  const keys = Object.keys(hostile);
  const hostileRecord = fc.record(hostile as Record<string, fc.Arbitrary<unknown>>);
  return fc
    .tuple(
      valid,
      hostileRecord,
      mutationCount.chain((n) => {
        const k = Math.min(n, keys.length);
        return fc.shuffledSubarray(keys, { minLength: k, maxLength: k });
      }),
    )
    .map(([base, bad, which]) => {
      const out: Record<string, unknown> = { ...base };
      for (const k of which) {
        const v = (bad as Record<string, unknown>)[k];
        if (v === undefined) delete out[k];
        else out[k] = v;
      }
      return out as T;
    });
}

const validAppId = fc.stringMatching(/^fz-[a-z0-9]{1,10}$/);

/** Free text a schema takes as it is (cmd, env values, label values): hostile but non-empty. */
const freeText: fc.Arbitrary<string> = fc.oneof(
  { weight: 9, arbitrary: hostileString(0).filter((t) => t.length > 0) },
  { weight: 1, arbitrary: hugeString },
);

/** Map keys the app schema takes (env: no "=", NUL or __proto__; labels: not "drover."). */
const envName = hostileString(0).filter((k) => /^[^=\0]+$/.test(k) && k !== "__proto__" && k.length <= 256);
const labelKey = hostileString(0).filter((k) => !k.startsWith("drover.") && k.length <= 256);

const validMap = (key: fc.Arbitrary<string>): fc.Arbitrary<Json> =>
  fc
    .array(
      fc.tuple(
        key,
        freeText.filter((v) => v.length <= 4096),
      ),
      { maxLength: 4 },
    )
    .map((entries) => ({ k: "obj" as const, entries: entries.map(([k, v]): [string, Json] => [k, str(v)]) }));

/** A map (env, labels) with hostile keys and values, or a huge one. */
const hostileMap = (extraKeys: string[]): fc.Arbitrary<Json> =>
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .array(fc.tuple(fc.oneof(hostileKey, fc.constantFrom(...extraKeys)), stringNode(hostileString(1))), {
          minLength: 1,
          maxLength: 6,
        })
        .map((entries) => ({ k: "obj" as const, entries })),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(1_000, 10_000)
        .map((count) => ({ k: "many" as const, count, shape: "obj" as const })),
    },
  );

const objOf = (entries: [string, Json][]): Json => ({ k: "obj", entries });
const MISSING = fc.constant(undefined);

/**
 * An app definition as a JSON syntax tree: a valid one (with hostile but acceptable text: unicode in
 * cmd, env and labels) with up to three fields made hostile (wrong type, out of range, missing, any
 * JSON), sometimes with extra members (prototype keys, unknown keys, a duplicate id).
 */
export function appDefinition(opts: { anchorId?: boolean } = {}): fc.Arbitrary<Json> {
  const id: fc.Arbitrary<Json> = opts.anchorId
    ? fc.oneof(
        { weight: 8, arbitrary: ref("requestAppId").map((r): Json => ({ k: "ref", ref: r })) },
        { weight: 2, arbitrary: validAppId.map(str) },
      )
    : validAppId.map(str);
  const image = fc.constantFrom("drover/busybox:1", "busybox", "registry.invalid/x/y:1").map(str);
  const valid = fc.record({
    id,
    container: image.map((i) => objOf([["docker", objOf([["image", i]])]])),
    cmd: fc.option(freeText.map(str), { nil: undefined }),
    instances: fc.option(fc.integer({ min: 0, max: 2 }).map(num), { nil: undefined }),
    cpus: fc.option(fc.double({ min: 0.01, max: 64, noNaN: true }).map(num), { nil: undefined }),
    mem: fc.option(fc.double({ min: 6, max: 1_048_576, noNaN: true }).map(num), { nil: undefined }),
    disk: fc.option(fc.double({ min: 0, max: 1e6, noNaN: true }).map(num), { nil: undefined }),
    env: fc.option(validMap(envName), { nil: undefined }),
    labels: fc.option(validMap(labelKey), { nil: undefined }),
    ports: fc.option(
      fc
        .uniqueArray(fc.integer({ min: 1, max: 65535 }), { maxLength: 3 })
        .chain((ps) => fc.constantFrom(ps, [0, ...ps], [0, 0]))
        .map((items): Json => ({ k: "arr", items: items.map(num) })),
      { nil: undefined },
    ),
  });
  const hostileText = fc.oneof(stringNode(hostileString(2)), hostileJson);
  const hostileNumber = fc.oneof(
    { weight: 3, arbitrary: numberToken },
    { weight: 1, arbitrary: hostileJson },
  );
  const dockerBad: fc.Arbitrary<Json | undefined> = fc.oneof(
    MISSING,
    hostileJson,
    fc.tuple(image, hostileKey, hostileJson).map(([i, k, v]) =>
      objOf([
        [
          "docker",
          objOf([
            ["image", i],
            [k, v],
          ]),
        ],
      ]),
    ),
    fc.oneof(hostileText, fc.constant(str(""))).map((i) => objOf([["docker", objOf([["image", i]])]])),
    fc.constant(objOf([["docker", objOf([])]])),
  );
  const extra = fc.array(fc.tuple(hostileKey, hostileJson), { minLength: 1, maxLength: 2 });
  return mutated(
    valid.map((v) => ({
      ...v,
      extra: undefined as [string, Json][] | undefined,
      dupId: undefined as Json | undefined,
    })),
    {
      id: fc.oneof(MISSING, stringNode(hostileString(1)), hostileJson),
      container: dockerBad,
      cmd: fc.oneof(hostileText, fc.constant(str(""))),
      instances: hostileNumber,
      cpus: hostileNumber,
      mem: hostileNumber,
      disk: hostileNumber,
      env: fc.oneof(hostileMap(["A", "__proto__", "A=B", ""]), hostileJson),
      labels: fc.oneof(hostileMap(["drover.app_id", "drover."]), hostileJson),
      ports: fc.oneof(
        fc.array(numberToken, { minLength: 1, maxLength: 6 }).map((items): Json => ({ k: "arr", items })),
        fc.constant<Json>({ k: "arr", items: [num(8080), num(8080)] }),
        manyNode,
        hostileJson,
      ),
      extra,
      dupId: stringNode(hostileString(1)),
    },
  ).map((r): Json => {
    const entries: [string, Json][] = [];
    for (const key of [
      "id",
      "container",
      "cmd",
      "instances",
      "cpus",
      "mem",
      "disk",
      "env",
      "labels",
      "ports",
    ]) {
      const v = r[key as keyof typeof r] as Json | undefined;
      if (v !== undefined) entries.push([key, v]);
    }
    if (r.extra) entries.push(...r.extra);
    if (r.dupId) entries.push(["id", r.dupId]);
    return { k: "obj", entries };
  });
}

/** The text of an app definition: mostly app-shaped, sometimes any JSON, deep, or not JSON at all. */
export interface JsonDoc {
  $json: Json;
  /** Text around the document: a BOM, garbage, a cut. */
  prefix?: string;
  suffix?: string;
  cutAt?: number;
}

export function isJsonDoc(v: unknown): v is JsonDoc {
  return typeof v === "object" && v !== null && "$json" in v;
}

export function jsonDocText(doc: JsonDoc, resolveRef?: (r: Ref) => string): string {
  let text = jsonText(doc.$json, resolveRef);
  if (doc.cutAt !== undefined && text.length > 0) text = text.slice(0, doc.cutAt % text.length);
  return `${doc.prefix ?? ""}${text}${doc.suffix ?? ""}`;
}

export function appJsonDoc(opts: { anchorId?: boolean } = {}): fc.Arbitrary<JsonDoc> {
  return fc.oneof(
    { weight: 12, arbitrary: appDefinition(opts).map(($json) => ({ $json })) },
    { weight: 2, arbitrary: hostileJson.map(($json) => ({ $json })) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(
          appDefinition(opts),
          fc.constantFrom("\uFEFF", "", " \n\t", "// comment\n", "\0"),
          fc.constantFrom("", "}", ",", " garbage", "\0", "\n{}"),
          fc.option(fc.nat(), { nil: undefined }),
        )
        .map(([$json, prefix, suffix, cutAt]) => ({
          $json,
          prefix,
          suffix,
          ...(cutAt === undefined ? {} : { cutAt }),
        })),
    },
    { weight: 1, arbitrary: hostileString(2).map((v): JsonDoc => ({ $json: { k: "str", v, raw: true } })) },
  );
}

// ------------------------------------------------------------------ gRPC requests, per method

export type SchedulerMethod =
  | "CreateApp"
  | "GetApp"
  | "ListApps"
  | "UpdateApp"
  | "ScaleApp"
  | "DeleteApp"
  | "ListTasks"
  | "GetQueue"
  | "ListAppVersions"
  | "GetAppVersion"
  | "RestartApp"
  | "ListDeployments"
  | "GetDeployment"
  | "CancelDeployment"
  | "PromoteDeployment";

export type MasterUnaryMethod =
  | "Accept"
  | "Decline"
  | "Revive"
  | "Suppress"
  | "Kill"
  | "Acknowledge"
  | "Reconcile"
  | "ListAgents"
  | "ListTasks"
  | "ListFrameworks"
  | "GetState";

/** The framework calls: they act for a framework and must prove to be its subscription. */
export const FRAMEWORK_CALLS: readonly MasterUnaryMethod[] = [
  "Accept",
  "Decline",
  "Revive",
  "Suppress",
  "Kill",
  "Acknowledge",
  "Reconcile",
];

/** Which `drover-stream-id` a framework call carries. */
export type StreamIdChoice =
  | { kind: "own" }
  | { kind: "none" }
  | { kind: "sub" }
  | { kind: "value"; value: string };

/** A request in ts-proto's partial shape; strings may be references, app_json a JsonDoc. */
export type WireRequest = Record<string, unknown>;

const schedulerApp = appJsonDoc();

export const schedulerRequest: fc.Arbitrary<{ method: SchedulerMethod; req: WireRequest }> = fc.oneof(
  {
    weight: 10,
    arbitrary: schedulerApp.map((appJson) => ({ method: "CreateApp" as const, req: { appJson } })),
  },
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        fc.oneof({ weight: 8, arbitrary: ref("anchorAppId") }, { weight: 2, arbitrary: hostileString() }),
        appJsonDoc({ anchorId: true }),
      )
      .map(([id, appJson]) => ({ method: "UpdateApp" as const, req: { id, appJson } })),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({ id: fc.oneof(ref("anchorAppId"), hostileString()), instances: hostileInt32 })
      .map((req) => ({ method: "ScaleApp" as const, req })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ id: stringField(["anchorAppId"]) })
      .map((req) => ({ method: "GetApp" as const, req })),
  },
  {
    weight: 2,
    arbitrary: fc.record({ id: hostileString() }).map((req) => ({ method: "DeleteApp" as const, req })),
  },
  { weight: 1, arbitrary: fc.constant({ method: "ListApps" as const, req: {} }) },
  {
    weight: 1,
    arbitrary: fc
      .record({ appId: stringField(["anchorAppId"]), includeTerminal: fc.boolean() })
      .map((req) => ({ method: "ListTasks" as const, req })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ appId: stringField(["anchorAppId"]) })
      .map((req) => ({ method: "GetQueue" as const, req })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ appId: stringField(["anchorAppId"]) })
      .map((req) => ({ method: "ListAppVersions" as const, req })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({
        appId: stringField(["anchorAppId"]),
        version: fc.oneof(
          fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
          hostileString(),
        ),
      })
      .map((req) => ({ method: "GetAppVersion" as const, req })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ id: stringField(["anchorAppId"]), force: fc.boolean() })
      .map((req) => ({ method: "RestartApp" as const, req })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ includeEnded: fc.boolean() })
      .map((req) => ({ method: "ListDeployments" as const, req })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ id: fc.oneof(fc.uuid(), hostileString()) })
      .map((req) => ({ method: "GetDeployment" as const, req })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ id: fc.oneof(fc.uuid(), hostileString()), force: fc.boolean() })
      .map((req) => ({ method: "CancelDeployment" as const, req })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ id: fc.oneof(fc.uuid(), hostileString()) })
      .map((req) => ({ method: "PromoteDeployment" as const, req })),
  },
);

const FRAMEWORK_REFS: RefName[] = ["ownFrameworkId", "schedulerFrameworkId", "otherFrameworkId"];
const TASK_REFS: RefName[] = ["ownTaskId", "schedulerTaskId", "anyTaskId"];

/**
 * A list that is usually short, sometimes of a huge count: `light` (an item with no huge part) repeated,
 * so that a huge count never multiplies a huge item.
 */
function list<T>(
  item: fc.Arbitrary<T>,
  maxLength: number,
  light: fc.Arbitrary<T>,
  counts = [1_000, 10_000, 100_000],
): fc.Arbitrary<T[]> {
  // smaller counts more often: weights 4, 2, 1 … for the counts in order
  const count = fc.oneof(
    ...counts.map((n, i) => ({ weight: 2 ** (counts.length - 1 - i), arbitrary: fc.constant(n) })),
  );
  return fc.oneof(
    { weight: 24, arbitrary: fc.array(item, { maxLength }) },
    { weight: 1, arbitrary: fc.tuple(light, count).map(([v, n]) => Array.from({ length: n }, () => v)) },
  );
}

/** A string→string map with hostile keys and values (built so that `__proto__` is an own key). */
const wireMap: fc.Arbitrary<Record<string, string>> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .array(fc.tuple(hostileKey, hostileString(1)), { maxLength: 4 })
      .map((entries) => Object.fromEntries(entries)),
  },
  { weight: 3, arbitrary: fc.constant({}) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(1_000, 10_000)
      .map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`K${i}`, "v"]))),
  },
);

const wireResources = fc.record({
  cpus: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(0.1, 0.5) },
    { weight: 2, arbitrary: hostileDouble },
  ),
  mem: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(16, 64) }, { weight: 2, arbitrary: hostileDouble }),
  disk: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: hostileDouble }),
  ports: list(
    fc.record({ begin: hostileUint32, end: hostileUint32 }),
    3,
    fc.record({ begin: hostileUint32, end: hostileUint32 }),
  ),
});

/** A TaskInfo: a valid one for the fake agent's offers, with up to three fields made hostile. */
const wireTaskInfo: fc.Arbitrary<WireRequest> = mutated(
  fc.record({
    taskId: fc.stringMatching(/^fz-task-[a-z0-9]{4,12}$/) as fc.Arbitrary<string | Ref>,
    name: fc.oneof(fc.constant("fuzz"), hostileString(0)),
    agentId: ref("fakeAgentId") as fc.Arbitrary<string | Ref>,
    frameworkId: ref("ownFrameworkId") as fc.Arbitrary<string | Ref>,
    appId: fc.oneof(fc.constant(""), hostileString(0)),
    container: fc.record({
      image: fc.constant("drover/busybox:1"),
      cmd: fc.oneof(fc.constant(""), hostileString(0)),
    }),
    resources: fc.record({
      cpus: fc.constantFrom(0.01, 0.1),
      mem: fc.constantFrom(6, 16),
      disk: fc.constant(0),
      ports: fc.constant([] as { begin: number; end: number }[]),
    }),
    env: fc.oneof(fc.constant({}), wireMap),
    labels: fc.oneof(fc.constant({}), wireMap),
  }),
  {
    taskId: fc.oneof(hostileString(), ref(...TASK_REFS)),
    name: hostileString(2),
    agentId: fc.oneof(ref("otherAgentId"), hostileString(1)),
    frameworkId: stringField(FRAMEWORK_REFS, 1),
    appId: hostileString(2),
    container: fc.record({
      image: fc.oneof(hostileString(1), fc.constant("")),
      cmd: hostileString(2),
    }),
    resources: wireResources,
    env: wireMap,
    labels: wireMap,
  },
).map((t): WireRequest => t);

const offerIds = list(
  fc.oneof({ weight: 3, arbitrary: ref("liveOfferId") }, { weight: 2, arbitrary: hostileString(1) }),
  3,
  fc.oneof(ref("liveOfferId"), hostileString(0)),
);

/** A small valid-looking TaskInfo, the item of huge task lists. */
const lightTaskInfo: fc.Arbitrary<WireRequest> = fc
  .record({
    taskId: fc.stringMatching(/^fz-task-[a-z0-9]{4,12}$/) as fc.Arbitrary<string | Ref>,
    name: fc.constant<string>("fuzz"),
    agentId: ref("fakeAgentId") as fc.Arbitrary<string | Ref>,
    frameworkId: ref("ownFrameworkId") as fc.Arbitrary<string | Ref>,
    appId: fc.constant<string>(""),
    container: fc.constant({ image: "drover/busybox:1" as string, cmd: "" as string }),
    resources: fc.constant({ cpus: 0.01, mem: 1, disk: 0, ports: [] as { begin: number; end: number }[] }),
    env: fc.constant<Record<string, string>>({}),
    labels: fc.constant<Record<string, string>>({}),
  })
  .map((t): WireRequest => t);

const filters = fc.option(fc.record({ refuseSeconds: hostileDouble }), { nil: undefined, freq: 4 });

const streamIdChoice: fc.Arbitrary<StreamIdChoice> = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ kind: "own" as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: "none" as const }) },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map(fromCode), maxLength: 80 }),
        fc.uuid(),
        fc.constantFrom(" ", "x".repeat(4096), "00000000-0000-0000-0000-000000000000"),
      )
      .map((value) => ({ kind: "value" as const, value })),
  },
);

/** The valid TaskInfo of `wireTaskInfo` (for valid accepts). */
const validTaskInfo: fc.Arbitrary<WireRequest> = fc
  .record({
    taskId: fc.stringMatching(/^fz-task-[a-z0-9]{4,12}$/),
    name: fc.constant("fuzz"),
    agentId: ref("fakeAgentId"),
    frameworkId: ref("ownFrameworkId"),
    appId: fc.constant(""),
    container: fc.constant({ image: "drover/busybox:1", cmd: "" }),
    resources: fc.constantFrom(0.01, 0.1).map((cpus) => ({ cpus, mem: 6, disk: 0, ports: [] })),
    env: fc.constant({}),
    labels: fc.constant({}),
  })
  .map((t): WireRequest => t);

const launchOf = (tasks: WireRequest[]) => ({ operation: { $case: "launch", value: { tasks } } });

const hostileOperations = list(
  fc.oneof(
    { weight: 8, arbitrary: list(wireTaskInfo, 2, lightTaskInfo, [1_000, 5_000]).map(launchOf) },
    { weight: 1, arbitrary: fc.constant({}) },
  ),
  2,
  fc.constant({}),
  [1_000, 10_000],
);

const taskIds = list(stringField(TASK_REFS, 1), 4, stringField(TASK_REFS, 0));

/**
 * A master unary request: each framework call is a valid one for the framework `mine` (the caller's
 * own: a live offer, one of its tasks) with up to three fields made hostile, `theirs` being the
 * framework ids of others and hostile strings. Operator queries have few fields to spoil.
 */
export function masterRequest(
  mine: fc.Arbitrary<string | Ref> = ref("ownFrameworkId"),
  theirs: fc.Arbitrary<string | Ref> = fc.oneof(
    ref("schedulerFrameworkId", "otherFrameworkId"),
    hostileString(),
  ),
): fc.Arbitrary<{ method: MasterUnaryMethod; req: WireRequest }> {
  const liveOffers = fc.nat({ max: 1_000 }).map((i): Ref[] => [{ $ref: "liveOfferId", i }]);
  const call = (method: MasterUnaryMethod, weight: number, req: fc.Arbitrary<WireRequest>) => ({
    weight,
    arbitrary: req.map((r) => ({ method, req: r })),
  });
  return fc.oneof(
    call(
      "Accept",
      6,
      mutated(
        fc.record({
          frameworkId: mine,
          offerIds: liveOffers,
          operations: fc
            .array(validTaskInfo, { minLength: 1, maxLength: 2 })
            .map((tasks) => [launchOf(tasks)]),
          filters: fc.constant({ refuseSeconds: 0 }),
        }),
        { frameworkId: theirs, offerIds, operations: hostileOperations, filters },
      ),
    ),
    call(
      "Decline",
      3,
      mutated(
        fc.record({ frameworkId: mine, offerIds: liveOffers, filters: fc.constant({ refuseSeconds: 1 }) }),
        { frameworkId: theirs, offerIds, filters },
      ),
    ),
    call("Revive", 2, mutated(fc.record({ frameworkId: mine }), { frameworkId: theirs })),
    call("Suppress", 1, mutated(fc.record({ frameworkId: mine }), { frameworkId: theirs })),
    call(
      "Kill",
      3,
      mutated(fc.record({ frameworkId: mine, taskId: ref("ownTaskId") }), {
        frameworkId: theirs,
        taskId: stringField(TASK_REFS),
      }),
    ),
    call(
      "Acknowledge",
      2,
      mutated(fc.record({ frameworkId: mine, taskId: ref("ownTaskId"), uuid: fc.uuid() }), {
        frameworkId: theirs,
        taskId: stringField(TASK_REFS),
        uuid: hostileString(),
      }),
    ),
    call(
      "Reconcile",
      3,
      mutated(fc.record({ frameworkId: mine, taskIds: fc.array(ref("ownTaskId"), { maxLength: 2 }) }), {
        frameworkId: theirs,
        taskIds,
      }),
    ),
    call("ListAgents", 1, fc.constant({})),
    call("ListFrameworks", 1, fc.constant({})),
    call("GetState", 1, fc.constant({})),
    call(
      "ListTasks",
      1,
      fc.record({
        frameworkId: stringField(FRAMEWORK_REFS),
        appId: fc.oneof(fc.constant(""), hostileString()),
        includeTerminal: fc.boolean(),
      }),
    ),
  );
}

const wireTaskStatus = fc.record({
  taskId: fc.oneof(
    { weight: 3, arbitrary: ref(...TASK_REFS) },
    { weight: 2, arbitrary: fc.stringMatching(/^fz-task-[a-z0-9]{4,12}$/) },
    { weight: 2, arbitrary: hostileString(1) },
  ),
  agentId: stringField(["fakeAgentId", "otherAgentId"], 1),
  state: fc.oneof(fc.integer({ min: 0, max: 10 }), hostileInt32),
  message: hostileString(1),
  exitCode: fc.option(hostileInt32, { nil: undefined }),
  timestampMs: hostileInt64,
  uuid: fc.oneof(fc.uuid(), hostileString(1)),
  containerId: hostileString(1),
  source: fc.oneof(fc.constantFrom("agent", "master", "reconciliation", ""), hostileString(1)),
});

/** A small TaskStatus, the item of huge reported-task lists. */
const lightTaskStatus = fc.record({
  taskId: fc.oneof(ref(...TASK_REFS), fc.stringMatching(/^fz-task-[a-z0-9]{4,12}$/)),
  agentId: fc.constant(""),
  state: fc.integer({ min: 0, max: 10 }),
  message: fc.constant(""),
  exitCode: fc.constant(undefined),
  timestampMs: fc.constant(0),
  uuid: fc.uuid(),
  containerId: fc.constant(""),
  source: fc.constant("agent"),
});

/** A RegisterAgent: a valid one (small resources, no task) with up to three fields made hostile. */
export const wireRegisterAgent: fc.Arbitrary<WireRequest> = mutated(
  fc.record({
    agentId: fc.stringMatching(/^fz-agent-[a-z0-9]{2,8}$/) as fc.Arbitrary<string | Ref>,
    hostname: fc.oneof(
      fc.constant("fuzz-host"),
      hostileString(0).filter((h) => h.length <= 253),
    ),
    resources: fc.constant({
      cpus: 0.5,
      mem: 64,
      disk: 0,
      ports: [{ begin: 32000, end: 32009 }],
    }) as fc.Arbitrary<Record<string, unknown> | undefined>,
    attributes: fc.array(fc.record({ key: fc.stringMatching(/^[a-z]{1,8}$/), value: hostileString(0) }), {
      maxLength: 2,
    }),
    tasks: fc.constant([] as Record<string, unknown>[]),
    version: fc.oneof(fc.constant("fuzz"), hostileString(0)),
  }),
  {
    agentId: fc.oneof(hostileString(), ref("otherAgentId", "fakeAgentId")),
    hostname: hostileString(),
    resources: fc.option(wireResources, { nil: undefined, freq: 4 }),
    attributes: list(
      fc.record({ key: hostileKey, value: hostileString(1) }),
      3,
      fc.record({ key: hostileString(0), value: hostileString(0) }),
    ),
    tasks: list(wireTaskStatus, 2, lightTaskStatus, [1_000, 10_000]),
    version: hostileString(2),
  },
).map((r): WireRequest => r);

export type AgentFrame =
  | { register: WireRequest }
  | { heartbeat: number }
  | { empty: true }
  | { garbage: Uint8Array };

const agentFrame: fc.Arbitrary<AgentFrame> = fc.oneof(
  { weight: 6, arbitrary: wireRegisterAgent.map((register) => ({ register })) },
  { weight: 2, arbitrary: hostileInt64.map((heartbeat) => ({ heartbeat })) },
  { weight: 1, arbitrary: fc.constant({ empty: true as const }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((garbage) => ({ garbage })) },
);

export const subscribeRequest = fc.record({
  frameworkId: fc.oneof(
    { weight: 5, arbitrary: fc.constant("") },
    { weight: 2, arbitrary: ref("otherFrameworkId") },
    { weight: 2, arbitrary: fc.uuid().map((u) => `fz-fw-${u.slice(0, 8)}`) },
    { weight: 3, arbitrary: hostileString() },
  ),
  name: fc.oneof(fc.constant("fuzz-sub"), hostileString()),
  role: fc.oneof(fc.constantFrom("*", "fuzz"), hostileString()),
  failoverTimeoutSeconds: fc.oneof(fc.constantFrom(0, 1, 60), hostileDouble),
});

// ------------------------------------------------------------------ raw bytes

/** The gRPC method paths of both services. */
export const METHOD_PATHS: readonly string[] = [
  "/drover.v1.Master/AgentSession",
  "/drover.v1.Master/Subscribe",
  "/drover.v1.Master/Accept",
  "/drover.v1.Master/Decline",
  "/drover.v1.Master/Revive",
  "/drover.v1.Master/Suppress",
  "/drover.v1.Master/Kill",
  "/drover.v1.Master/Acknowledge",
  "/drover.v1.Master/Reconcile",
  "/drover.v1.Master/ListAgents",
  "/drover.v1.Master/ListTasks",
  "/drover.v1.Master/ListFrameworks",
  "/drover.v1.Master/GetState",
  "/drover.v1.Scheduler/CreateApp",
  "/drover.v1.Scheduler/GetApp",
  "/drover.v1.Scheduler/ListApps",
  "/drover.v1.Scheduler/UpdateApp",
  "/drover.v1.Scheduler/ScaleApp",
  "/drover.v1.Scheduler/DeleteApp",
  "/drover.v1.Scheduler/ListTasks",
  "/drover.v1.Scheduler/GetQueue",
  "/drover.v1.Scheduler/ListAppVersions",
  "/drover.v1.Scheduler/GetAppVersion",
  "/drover.v1.Scheduler/RestartApp",
  "/drover.v1.Scheduler/ListDeployments",
  "/drover.v1.Scheduler/GetDeployment",
  "/drover.v1.Scheduler/CancelDeployment",
  "/drover.v1.Scheduler/PromoteDeployment",
];

function varint(value: bigint, minBytes = 1): number[] {
  const out: number[] = [];
  let v = value < 0n ? value & ((1n << 64n) - 1n) : value;
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n || out.length + 1 < minBytes) b |= 0x80;
    out.push(b);
  } while (v > 0n || out.length < minBytes);
  return out;
}

/** One protobuf field, encoded by hand: any field number, any wire type, hostile payloads. */
interface CraftedField {
  no: number;
  wt: number;
  payload: Uint8Array;
  /** For length-delimited fields: a length that lies. */
  lenDelta: number;
  varintValue: bigint;
  overlong: number;
}

const INVALID_UTF8: readonly number[][] = [
  [0xff, 0xfe],
  [0xc0, 0x80],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xe2, 0x82],
  [0x80],
  [0xef, 0xbb, 0xbf],
];

const craftedField: fc.Arbitrary<CraftedField> = fc.record({
  no: fc.oneof(fc.integer({ min: 1, max: 16 }), fc.constantFrom(0, 19000, 536_870_911)),
  wt: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(0, 1, 2, 5) },
    { weight: 1, arbitrary: fc.constantFrom(3, 4, 6, 7) },
  ),
  payload: fc.oneof(
    fc.uint8Array({ maxLength: 24 }),
    fc.constantFrom(...INVALID_UTF8).map((b) => Uint8Array.from(b)),
    fc.string({ unit: "binary", maxLength: 12 }).map((s) => new TextEncoder().encode(s)),
  ),
  lenDelta: fc.oneof(
    { weight: 6, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: -3, max: 1_000_000 }) },
  ),
  varintValue: fc.oneof(
    fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    fc.constantFrom(0n, 1n, 2n ** 31n, 2n ** 32n, 2n ** 63n, (1n << 64n) - 1n, 1n << 70n),
  ),
  overlong: fc.oneof(
    { weight: 6, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 2, max: 12 }) },
  ),
});

function encodeCrafted(fields: CraftedField[]): Uint8Array {
  const out: number[] = [];
  for (const f of fields) {
    out.push(...varint((BigInt(f.no) << 3n) | BigInt(f.wt)));
    switch (f.wt) {
      case 0:
        out.push(...varint(f.varintValue, f.overlong));
        break;
      case 1:
        out.push(...Array.from({ length: 8 }, (_, i) => f.payload[i] ?? 0xff));
        break;
      case 5:
        out.push(...Array.from({ length: 4 }, (_, i) => f.payload[i] ?? 0x7f));
        break;
      case 2:
        out.push(...varint(BigInt(Math.max(0, f.payload.length + f.lenDelta))), ...f.payload);
        break;
      case 3:
        out.push(...f.payload);
        break;
      default:
        break;
    }
  }
  return Uint8Array.from(out);
}

/** Start-group tags nested `depth` deep (recursion in the decoder's skip of unknown fields). */
function deepGroups(depth: number, fieldNo: number): Uint8Array {
  const start = (fieldNo << 3) | 3;
  const end = (fieldNo << 3) | 4;
  const bytes = new Uint8Array(depth * 2);
  bytes.fill(start, 0, depth);
  bytes.fill(end, depth);
  return bytes;
}

/** Length-delimited fields nested `depth` deep (field 3: a message in most requests). */
function deepMessages(depth: number): Uint8Array {
  let inner: number[] = [];
  for (let i = 0; i < depth; i++) inner = [0x1a, ...varint(BigInt(inner.length)), ...inner];
  return Uint8Array.from(inner);
}

export type RawHow = "random" | "crafted" | "deep-groups" | "deep-messages" | "empty" | "huge";

export const rawBody: fc.Arbitrary<{ how: RawHow; bytes: Uint8Array }> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.uint8Array({ maxLength: 256 }).map((bytes) => ({ how: "random" as const, bytes })),
  },
  {
    weight: 5,
    arbitrary: fc
      .array(craftedField, { minLength: 1, maxLength: 8 })
      .map((f) => ({ how: "crafted" as const, bytes: encodeCrafted(f) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(100, 10_000, 100_000), fc.constantFrom(1, 15, 100))
      .map(([depth, no]) => ({ how: "deep-groups" as const, bytes: deepGroups(depth, no) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(100, 1_000)
      .map((depth) => ({ how: "deep-messages" as const, bytes: deepMessages(depth) })),
  },
  { weight: 1, arbitrary: fc.constant({ how: "empty" as const, bytes: new Uint8Array(0) }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(64 * 1024, 1024 * 1024), fc.integer({ min: 0, max: 255 }))
      .map(([n, b]) => ({ how: "huge" as const, bytes: new Uint8Array(n).fill(b) })),
  },
);

// ------------------------------------------------------------------ NATS status messages

const refNode = (...names: RefName[]): fc.Arbitrary<Json> =>
  ref(...names).map((r) => ({ k: "ref" as const, ref: r }));

/**
 * A status message as the master's consumer expects it (for a live task, from the fake agent or another)
 * with up to three fields made hostile.
 */
const statusShaped: fc.Arbitrary<Json> = mutated(
  fc.record({
    agentId: refNode("fakeAgentId", "otherAgentId"),
    taskId: refNode(...TASK_REFS),
    state: fc.constantFrom(...TASK_STATES).map(str),
    message: fc.oneof(fc.constant(str("fuzz")), stringNode(hostileString(0))),
    exitCode: fc.option(fc.integer({ min: -1, max: 255 }).map(num), { nil: undefined }),
    timestampMs: fc.constant(num(1_700_000_000_000)),
    uuid: fc.uuid().map(str),
    source: fc.constantFrom("agent", "master", "reconciliation").map(str),
    extra: fc.constant(undefined as [string, Json][] | undefined),
  }),
  {
    agentId: fc.oneof(MISSING, stringNode(hostileString(1)), hostileJson),
    taskId: fc.oneof(MISSING, stringNode(hostileString(1)), hostileJson),
    state: fc.oneof(MISSING, stringNode(hostileString(1)), hostileJson),
    message: fc.oneof(stringNode(hostileString(2)), hostileJson),
    exitCode: fc.oneof(numberToken, hostileJson),
    timestampMs: fc.oneof(MISSING, numberToken, hostileJson),
    uuid: fc.oneof(MISSING, stringNode(hostileString(1)), hostileJson),
    source: fc.oneof(MISSING, stringNode(hostileString(1)), hostileJson),
    extra: fc.array(fc.tuple(hostileKey, hostileJson), { minLength: 1, maxLength: 2 }),
  },
).map((r): Json => {
  const status: [string, Json][] = [];
  for (const key of ["state", "message", "exitCode", "timestampMs", "uuid", "source"] as const) {
    const v = r[key];
    if (v !== undefined) status.push([key, v]);
  }
  const entries: [string, Json][] = [];
  if (r.agentId !== undefined) entries.push(["agentId", r.agentId]);
  if (r.taskId !== undefined) entries.push(["taskId", r.taskId]);
  entries.push(["status", { k: "obj", entries: status }]);
  if (r.extra) entries.push(...r.extra);
  return { k: "obj", entries };
});

/** A subject token NATS accepts (no whitespace, '.', '*' or '>'), hostile otherwise. */
const natsToken = hostileString(0).map((s) => {
  const t = s.replace(/[\s.*>\0]/gu, "_").slice(0, 200);
  return t.length > 0 ? t : "_";
});

export interface NatsInput {
  subject: string | Ref;
  msgId: string;
  payload: { json: Json } | { bytes: Uint8Array };
}

export const natsStatus: fc.Arbitrary<NatsInput> = fc.record({
  subject: fc.oneof(
    { weight: 3, arbitrary: ref("fakeAgentId", "otherAgentId") },
    { weight: 2, arbitrary: natsToken },
  ),
  msgId: fc.uuid(),
  payload: fc.oneof(
    { weight: 6, arbitrary: statusShaped.map((json) => ({ json })) },
    { weight: 2, arbitrary: hostileJson.map((json) => ({ json })) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }).map((bytes) => ({ bytes })) },
  ),
});

// ------------------------------------------------------------------ config (libs/config)

export type ConfigService = "master" | "scheduler" | "agent" | "cli";

/**
 * Every variable libs/config reads: the names in its source (so that a new variable is fuzzed without
 * a change here), DROVER_CONFIG first.
 */
function configEnvNames(): string[] {
  let source = "";
  try {
    source = readFileSync(fileURLToPath(import.meta.resolve("@drover/config")), "utf8");
  } catch {
    // fall back to the names known when this was written
  }
  const found = source.match(/DROVER_[A-Z0-9_]+/g) ?? [];
  const known = [
    "DROVER_ETCD_ENDPOINTS",
    "DROVER_NATS_SERVERS",
    "DROVER_LEADER_TTL_SECONDS",
    "DROVER_LOG_LEVEL",
    "DROVER_MASTERS",
    "DROVER_SCHEDULERS",
    "DROVER_MASTER_LISTEN",
    "DROVER_MASTER_ADVERTISE",
    "DROVER_SCHEDULER_LISTEN",
    "DROVER_SCHEDULER_ADVERTISE",
    "DROVER_AGENT_CPUS",
    "DROVER_AGENT_PORTS",
    "DROVER_AGENT_ATTRIBUTES",
  ];
  // `DROVER_${prefix}_LISTEN` is built in the source: the prefix-less stems are not variables
  const names = [...new Set([...known, ...found])].filter((n) => !n.endsWith("_") && n !== "DROVER_CONFIG");
  return ["DROVER_CONFIG", ...names.sort()];
}

export const CONFIG_ENV_NAMES: readonly string[] = configEnvNames();

/** Every key of the config file schemas. */
export const CONFIG_FILE_KEYS: readonly string[] = [
  ...new Set(
    [MasterConfigSchema, SchedulerConfigSchema, AgentConfigSchema, CliConfigSchema].flatMap((schema) =>
      Object.keys(schema.shape),
    ),
  ),
].sort();

/** Values an environment variable can hold: no NUL (the OS cannot pass it), anything else. */
const envValue = fc
  .oneof(
    { weight: 4, arbitrary: hostileString(1) },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        "1",
        "0",
        "-1",
        "abc",
        " ",
        "",
        "1e309",
        "NaN",
        "Infinity",
        "0x10",
        "3.5",
        "a:1,b:2",
        "=,:,",
        ",,,",
        "127.0.0.1:5050",
        "http://127.0.0.1:2379",
        "nats://127.0.0.1:4222",
        "[]",
        "{}",
        '[{"role":"a","weight":-1}]',
        '[{"role":"__proto__","weight":1}]',
        "debug",
        "31000-32000",
        "99999-1",
      ),
    },
    { weight: 2, arbitrary: hostileJson.map((j) => jsonText(j)) },
  )
  .map((s) => s.replace(/\0/g, ""));

const configValue: fc.Arbitrary<Json> = fc.oneof(
  { weight: 3, arbitrary: hostileJson },
  {
    weight: 2,
    arbitrary: fc.constantFrom<Json>(
      { k: "arr", items: [str("127.0.0.1:5050")] },
      { k: "arr", items: [str("http://127.0.0.1:2379")] },
      { k: "arr", items: [] },
      num(3),
      num(0),
      num(-1),
      str("debug"),
      { k: "obj", entries: [] },
      {
        k: "arr",
        items: [
          {
            k: "obj",
            entries: [
              ["role", str("a")],
              ["weight", num(2)],
            ],
          },
        ],
      },
      {
        k: "arr",
        items: [
          {
            k: "obj",
            entries: [
              ["role", str("a")],
              ["__proto__", { k: "obj", entries: [] }],
            ],
          },
        ],
      },
    ),
  },
);

export interface ConfigInput {
  service: ConfigService;
  env: [string, string][];
  /** The config file's text (written to a temporary file and passed as `--config FILE`). */
  file?: string;
  /** Instead of a file: a path (hostile) in DROVER_CONFIG. */
  configPath?: string;
}

export const configInput: fc.Arbitrary<ConfigInput> = fc.record(
  {
    service: fc.constantFrom<ConfigService>("master", "scheduler", "agent", "cli"),
    env: fc.array(
      fc.tuple(
        fc.oneof(
          { weight: 9, arbitrary: fc.constantFrom(...CONFIG_ENV_NAMES.slice(1)) },
          { weight: 1, arbitrary: fc.constant("DROVER_UNKNOWN") },
        ),
        envValue,
      ),
      { maxLength: 5 },
    ),
    file: fc.oneof(
      {
        weight: 5,
        arbitrary: fc
          .array(
            fc.tuple(
              fc.oneof(
                { weight: 4, arbitrary: fc.constantFrom(...CONFIG_FILE_KEYS) },
                { weight: 1, arbitrary: hostileKey },
              ),
              configValue,
            ),
            {
              maxLength: 5,
            },
          )
          .map((entries) => jsonText({ k: "obj", entries })),
      },
      { weight: 2, arbitrary: hostileJson.map((j) => jsonText(j)) },
      { weight: 1, arbitrary: hostileString(2) },
    ),
    configPath: fc.constantFrom(
      "/nonexistent/drover.json",
      "/tmp",
      "/dev/null",
      "",
      "relative/../x.json",
      "a\u202Eb.json",
    ),
  },
  { requiredKeys: ["service", "env"] },
);

// ------------------------------------------------------------------ CLI input files

export interface CliInput {
  command: "add" | "update";
  /** The ID argument of `app update` (no NUL: it is a process argument). */
  id: string;
  file: { text: string } | { bytes: Uint8Array };
}

export const cliFileContent: fc.Arbitrary<CliInput["file"]> = fc.oneof(
  { weight: 8, arbitrary: appJsonDoc().map((doc) => ({ text: jsonDocText(doc) })) },
  { weight: 1, arbitrary: hostileJson.map((j) => ({ text: jsonText(j) })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((bytes) => ({ bytes })) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(...INVALID_UTF8).map((b) => ({
      bytes: Uint8Array.from([
        ...new TextEncoder().encode('{"id":"'),
        ...b,
        ...new TextEncoder().encode('"}'),
      ]),
    })),
  },
);

export const cliInput: fc.Arbitrary<CliInput> = fc.record({
  command: fc.constantFrom<CliInput["command"]>("add", "add", "add", "update"),
  id: fc.oneof(
    fc.constant("fzanchor-0"),
    hostileString(0).map((s) => s.replace(/\0/g, "") || "x"),
  ),
  file: cliFileContent,
});

// ------------------------------------------------------------------ one input of any target

export const TARGETS = ["scheduler", "master", "subscribe", "agent", "raw", "nats", "config", "cli"] as const;
export type TargetName = (typeof TARGETS)[number];

export interface MasterCallInput {
  method: MasterUnaryMethod;
  req: WireRequest;
  streamId: StreamIdChoice;
}

export type FuzzInput =
  | { target: "scheduler"; method: SchedulerMethod; req: WireRequest }
  | ({ target: "master" } & MasterCallInput)
  | { target: "subscribe"; req: WireRequest; followUps: MasterCallInput[] }
  | { target: "agent"; frames: AgentFrame[] }
  | { target: "raw"; path: string; how: RawHow; frames: Uint8Array[] }
  | ({ target: "nats" } & NatsInput)
  | ({ target: "config" } & ConfigInput)
  | ({ target: "cli" } & CliInput);

/** How often each target is drawn (relative weights). */
export const DEFAULT_WEIGHTS: Record<TargetName, number> = {
  scheduler: 30,
  master: 26,
  subscribe: 5,
  agent: 9,
  raw: 18,
  nats: 7,
  config: 5,
  cli: 1,
};

const masterCall: fc.Arbitrary<MasterCallInput> = fc
  .tuple(masterRequest(), streamIdChoice)
  .map(([m, streamId]) => ({ ...m, streamId }));

const followUp: fc.Arbitrary<MasterCallInput> = fc
  .tuple(
    masterRequest(
      ref("subFrameworkId"),
      fc.oneof(ref("ownFrameworkId", "schedulerFrameworkId"), hostileString(1)),
    ),
    fc.oneof(
      { weight: 6, arbitrary: fc.constant({ kind: "sub" as const }) },
      { weight: 2, arbitrary: streamIdChoice },
    ),
  )
  .map(([m, streamId]) => ({ ...m, streamId }));

const ARBITRARIES: Record<TargetName, fc.Arbitrary<FuzzInput>> = {
  scheduler: schedulerRequest.map((r) => ({ target: "scheduler" as const, ...r })),
  master: masterCall.map((m) => ({ target: "master" as const, ...m })),
  subscribe: fc
    .tuple(subscribeRequest, fc.array(followUp, { maxLength: 3 }))
    .map(([req, followUps]) => ({ target: "subscribe" as const, req, followUps })),
  agent: fc
    .array(agentFrame, { minLength: 1, maxLength: 4 })
    .map((frames) => ({ target: "agent" as const, frames })),
  raw: fc
    .tuple(fc.constantFrom(...METHOD_PATHS), fc.array(rawBody, { minLength: 1, maxLength: 3 }))
    .map(([path, bodies]) => ({
      target: "raw" as const,
      path,
      how: bodies[0]?.how ?? "empty",
      frames: bodies.map((b) => b.bytes),
    })),
  nats: natsStatus.map((n) => ({ target: "nats" as const, ...n })),
  config: configInput.map((c) => ({ target: "config" as const, ...c })),
  cli: cliInput.map((c) => ({ target: "cli" as const, ...c })),
};

/** One input of any of `targets`, drawn by weight. */
export function fuzzInput(
  targets: readonly TargetName[] = TARGETS,
  weights: Record<TargetName, number> = DEFAULT_WEIGHTS,
): fc.Arbitrary<FuzzInput> {
  const chosen = targets.filter((t) => weights[t] > 0);
  if (chosen.length === 0) throw new Error("no target to fuzz");
  return fc.oneof(...chosen.map((t) => ({ weight: weights[t], arbitrary: ARBITRARIES[t] })));
}

/** Input `index` of the run with `seed` (exactly what the run sends). */
export function inputsAt(
  arb: fc.Arbitrary<FuzzInput>,
  seed: number,
  index: number,
  count: number,
): FuzzInput[] {
  return fc.sample(arb, { seed, path: String(index), numRuns: count });
}

// ------------------------------------------------------------------ printing

/** A compact, bounded rendering of an input for reports (long strings and bytes are elided). */
export function renderInput(input: unknown, maxChars = 400): string {
  const text = JSON.stringify(input, (_key, value: unknown) => {
    if (typeof value === "string") {
      if (value.length <= 80) return value;
      return `${value.slice(0, 40)}…(${value.length} chars of ${JSON.stringify(value.slice(0, 3))}…)`;
    }
    if (value instanceof Uint8Array) {
      const hex = Buffer.from(value.subarray(0, 24)).toString("hex");
      return `<${value.length} bytes ${hex}${value.length > 24 ? "…" : ""}>`;
    }
    if (Array.isArray(value) && value.length > 8) {
      return [...value.slice(0, 4), `…(${value.length} items)`];
    }
    if (typeof value === "number" && !Number.isFinite(value)) return String(value);
    if (typeof value === "number" && Object.is(value, -0)) return "-0";
    if (typeof value === "object" && value !== null) {
      if ((value as Json).k === "many") return `<${(value as { count: number }).count} members>`;
      if ((value as Json).k === "deep") return `<${(value as { depth: number }).depth} deep>`;
    }
    return value;
  });
  const s = text ?? String(input);
  return s.length <= maxChars ? s : `${s.slice(0, maxChars)}…(${s.length} chars)`;
}
