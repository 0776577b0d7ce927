import type { z } from "zod";

/**
 * One problem with an input, addressed by a field path: `"instances"`, `"container.docker.image"`,
 * `"env.FOO"`, `"ports[0].begin"`; `""` for the root.
 */
export interface FieldIssue {
  path: string;
  message: string;
}

export type Validated<T> = { ok: true; value: T } | { ok: false; issues: FieldIssue[] };

type Segment = PropertyKey;
type ZodIssue = z.core.$ZodIssue;

/** Render a path: string keys joined by ".", array indices as "[n]". */
export function formatPath(path: readonly Segment[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

const MISSING = Symbol("missing");

/** The value at `path` inside `input`, or MISSING when the path does not exist. */
function valueAt(input: unknown, path: readonly Segment[]): unknown {
  let cur: unknown = input;
  for (const seg of path) {
    if (cur === null || typeof cur !== "object") return MISSING;
    if (!Object.hasOwn(cur, seg)) return MISSING;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

/** A short name for the JSON-ish type of a value, for "expected number, got string". */
function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") {
    if (Number.isNaN(v)) return "NaN";
    if (!Number.isFinite(v)) return "Infinity";
  }
  return typeof v;
}

const EXPECTED_NAMES: Record<string, string> = { int: "integer" };

function bound(issue: { minimum?: number | bigint; maximum?: number | bigint }): string {
  return String(issue.minimum ?? issue.maximum);
}

function sizeMessage(
  origin: string,
  limit: string,
  inclusive: boolean,
  exact: boolean,
  dir: "min" | "max",
): string {
  if (origin === "string") {
    if (dir === "min" && limit === "1" && inclusive) return "must not be empty";
    if (exact) return `must be exactly ${limit} characters`;
    return dir === "min" ? `must be at least ${limit} characters` : `must be at most ${limit} characters`;
  }
  if (origin === "array" || origin === "set") {
    if (exact) return `must have exactly ${limit} items`;
    return dir === "min" ? `must have at least ${limit} items` : `must have at most ${limit} items`;
  }
  const op = dir === "min" ? (inclusive ? ">=" : ">") : inclusive ? "<=" : "<";
  return `must be ${op} ${limit}`;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, " ").trim();
}

/** How far a union alternative was from matching: a type mismatch at its root counts as far. */
function unionDistance(issues: readonly ZodIssue[]): number {
  const typeMismatch = issues.some((i) => i.code === "invalid_type" && i.path.length === 0);
  return (typeMismatch ? 1000 : 0) + issues.length;
}

/** Map zod issues (paths relative to `base`) to field issues, one per unknown key. */
function mapIssues(issues: readonly ZodIssue[], base: readonly Segment[], input: unknown): FieldIssue[] {
  const out: FieldIssue[] = [];
  for (const issue of issues) {
    const path = [...base, ...issue.path];
    switch (issue.code) {
      case "unrecognized_keys":
        for (const key of issue.keys)
          out.push({ path: formatPath([...path, key]), message: "unknown field" });
        break;
      case "invalid_type": {
        const got = valueAt(input, path);
        const expected = EXPECTED_NAMES[issue.expected] ?? issue.expected;
        const message =
          got === MISSING || got === undefined
            ? "required"
            : issue.expected === "int" && typeof got === "number" && Number.isFinite(got)
              ? "must be an integer"
              : `expected ${expected}, got ${typeName(got)}`;
        out.push({ path: formatPath(path), message });
        break;
      }
      case "too_small":
        out.push({
          path: formatPath(path),
          message: sizeMessage(
            issue.origin,
            bound(issue),
            issue.inclusive ?? true,
            issue.exact ?? false,
            "min",
          ),
        });
        break;
      case "too_big":
        out.push({
          path: formatPath(path),
          message: sizeMessage(
            issue.origin,
            bound(issue),
            issue.inclusive ?? true,
            issue.exact ?? false,
            "max",
          ),
        });
        break;
      case "not_multiple_of":
        out.push({ path: formatPath(path), message: `must be a multiple of ${String(issue.divisor)}` });
        break;
      case "invalid_value":
        out.push({
          path: formatPath(path),
          message: `must be one of: ${issue.values.map((v) => JSON.stringify(v) ?? String(v)).join(", ")}`,
        });
        break;
      case "invalid_key":
      case "invalid_element":
        out.push(...mapIssues(issue.issues, path, input));
        break;
      case "invalid_union": {
        // Report the alternative that came closest: one whose type matched, then fewest issues.
        // Nested paths are relative to the union.
        const best = [...issue.errors].sort((a, b) => unionDistance(a) - unionDistance(b))[0];
        if (best !== undefined && best.length > 0) out.push(...mapIssues(best, path, input));
        else out.push({ path: formatPath(path), message: oneLine(issue.message) });
        break;
      }
      default:
        // invalid_format and custom carry the schema author's message.
        out.push({ path: formatPath(path), message: oneLine(issue.message) });
    }
  }
  return out;
}

/** Convert zod issues into field issues; exposed for callers that already hold a ZodError. */
export function toFieldIssues(issues: readonly ZodIssue[], input: unknown): FieldIssue[] {
  return mapIssues(issues, [], input);
}

/** Parse `input` with `schema`; never throws for bad input. */
export function validate<T>(schema: z.ZodType<T>, input: unknown): Validated<T> {
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, issues: toFieldIssues(result.error.issues, input) };
}

/** One line: `"instances: must be >= 0; foo: unknown field"`. Root issues have no path prefix. */
export function formatIssues(issues: readonly FieldIssue[]): string {
  return issues.map((i) => oneLine(i.path === "" ? i.message : `${i.path}: ${i.message}`)).join("; ");
}

/** `JSON.parse`, with a syntax error reported as a root issue `"invalid JSON: ..."`. */
export function parseJson(text: string): Validated<unknown> {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    // V8's message quotes the input around the error: keep it short.
    return { ok: false, issues: [{ path: "", message: oneLine(`invalid JSON: ${detail}`).slice(0, 300) }] };
  }
}

/** Parse JSON text and validate it with `schema`. */
export function validateJson<T>(schema: z.ZodType<T>, text: string): Validated<T> {
  const parsed = parseJson(text);
  return parsed.ok ? validate(schema, parsed.value) : parsed;
}
