/**
 * Marathon placement constraints: what they are (the zod schema and parser for both syntaxes),
 * and how one of them judges one agent given the instances the app already has. Pure: no I/O.
 *
 * Upstream (mesosphere/marathon @ 90619da70d79): `mesos/Constraints.scala` (the checks),
 * `api/v2/validation/SchedulingValidation.scala` (validation), `raml/ConstraintConversion.scala`,
 * `docs/docs/constraints.md`; the string syntax is the Marathon UI's (mesosphere/marathon-ui
 * `AppFormFieldToModelTransforms.js`, `AppFormValidators.js`).
 */
import { z } from "zod";
import { LIMITS } from "./limits.js";
import { type Validated, validate } from "./validation.js";

export const CONSTRAINT_OPERATORS = [
  "UNIQUE",
  "CLUSTER",
  "GROUP_BY",
  "LIKE",
  "UNLIKE",
  "MAX_PER",
  "IS",
] as const;
export type ConstraintOperator = (typeof CONSTRAINT_OPERATORS)[number];

/**
 * One constraint, as Marathon stores it: `field` is `hostname` (or `@hostname`: the agent's
 * hostname), `@region` / `@zone` (the agent's fault domain) or the name of an agent attribute.
 * `value` is kept as the text given (`"3"` for GROUP_BY 3), and is absent when none was given.
 */
export interface Constraint {
  field: string;
  operator: ConstraintOperator;
  value?: string;
}

/** At most this many constraints per app (Marathon has no limit; this keeps a definition's checks bounded). */
export const MAX_CONSTRAINTS = 64;

/** What a constraint reads about an agent. `AgentLedger` and `OfferView` are both `AgentFacts`. */
export interface AgentFacts {
  hostname: string;
  attributes: Readonly<Record<string, string>>;
  /** The agent's fault domain, when it reports one (Drover agents report none yet). */
  region?: string | undefined;
  zone?: string | undefined;
}

// ------------------------------------------------------------------------------------ parsing

const PSEUDO_FIELDS = new Set(["hostname", "@hostname", "@region", "@zone"]);
/** Agent attribute names as agents accept them (libs/config). */
const ATTRIBUTE_NAME = /^[a-zA-Z0-9_.-]+$/;
/** IS takes a Mesos text or scalar value (`SchedulingValidationMessages.MesosLiteralOrFloatValue`). */
const IS_VALUE = /^[a-zA-Z0-9_/.-]*$/;
/** A Mesos scalar as Marathon recognises one in an IS value (`Constraints.MesosScalarValue`). */
const SCALAR = /^[0-9]+(?:\.[0-9]+)?$/;
const POSITIVE_INT = /^[0-9]+$/;
const INT_MAX = 2_147_483_647;

function positiveInt(value: string): number | undefined {
  if (!POSITIVE_INT.test(value)) return undefined;
  const n = Number(value);
  return n >= 1 && n <= INT_MAX ? n : undefined;
}

/** What Scala's `String.toInt` takes (Marathon's validation accepts any such GROUP_BY / MAX_PER value). */
function javaInt(value: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(value)) return undefined;
  const n = Number(value);
  return n >= -INT_MAX - 1 && n <= INT_MAX ? n : undefined;
}

/**
 * Compiles a LIKE / UNLIKE value as Marathon matches it (Java's `String.matches`: the whole
 * value). A leading `(?i)` (Java's inline flag) becomes the `i` flag; other Java-only syntax
 * (possessive quantifiers, `\p{Alpha}`, class intersections) is refused as invalid.
 */
export function compilePattern(value: string): RegExp {
  const ci = value.startsWith("(?i)");
  const source = ci ? value.slice(4) : value;
  new RegExp(source); // throws on its own syntax errors, before anchoring could hide one (`a)|(b`)
  return new RegExp(`^(?:${source})$`, ci ? "i" : "");
}

/** One constraint given as [field, operator, value?], or the problem with it. */
export function checkConstraint(field: string, op: string, value: string | undefined): string | Constraint {
  if (field === "") return "missing field";
  if (!PSEUDO_FIELDS.has(field) && !(ATTRIBUTE_NAME.test(field) && field.length <= LIMITS.attributeKeyChars))
    return `field must be hostname, @hostname, @region, @zone or an agent attribute name (letters, digits, '_', '.', '-'; at most ${LIMITS.attributeKeyChars} characters)`;
  const operator = CONSTRAINT_OPERATORS.find((o) => o === op.toUpperCase());
  if (operator === undefined)
    return `unknown operator ${JSON.stringify(op.slice(0, 40))}: must be one of ${CONSTRAINT_OPERATORS.join(", ")}`;
  if (value !== undefined && value.length > LIMITS.attributeValueChars)
    return `${operator} value must be at most ${LIMITS.attributeValueChars} characters`;
  const out: Constraint = value === undefined ? { field, operator } : { field, operator, value };
  switch (operator) {
    case "UNIQUE":
      return value === undefined ? out : "UNIQUE does not accept a value";
    case "CLUSTER":
      // An empty value means none (Marathon: `constraintValue.isEmpty`): pin to the first agent's value.
      return value === "" ? { field, operator } : out;
    case "GROUP_BY":
      return value === undefined || positiveInt(value) !== undefined
        ? out
        : "GROUP_BY value must be a positive integer (the number of groups), or no value at all";
    case "MAX_PER":
      return value !== undefined && positiveInt(value) !== undefined
        ? out
        : "MAX_PER value must be a positive integer";
    case "LIKE":
    case "UNLIKE":
      if (value === undefined || value === "")
        return `${operator} requires a value: a regular expression for the whole field value`;
      try {
        compilePattern(value);
        return out;
      } catch (err) {
        const detail = err instanceof Error ? err.message.replace(/^Invalid regular expression: /, "") : "";
        return `${operator} value is not a valid regular expression (${detail.slice(0, 120)})`;
      }
    case "IS":
      if (value === undefined || value === "") return "IS requires a value";
      return IS_VALUE.test(value)
        ? out
        : "IS value must be a Mesos text or scalar value: letters, digits, '_', '/', '.', '-'";
  }
}

/** One constraint: `["rack", "GROUP_BY", "3"]` or `"rack:GROUP_BY:3"` (Marathon UI syntax, parts trimmed). */
export const ConstraintSchema = z.union([z.array(z.unknown()), z.string()]).transform((raw, ctx) => {
  let parts: unknown[];
  if (typeof raw === "string") {
    parts = raw.split(":").map((s) => s.trim());
    if (parts.length < 2 || parts.length > 3) {
      ctx.addIssue({
        code: "custom",
        input: raw,
        message:
          "must be \"field:operator\" or \"field:operator:value\" (use the array form for a value with ':' or ',')",
      });
      return z.NEVER;
    }
  } else parts = raw;
  if (parts.length < 2 || parts.length > 3) {
    ctx.addIssue({
      code: "custom",
      input: raw,
      message: "must be [field, operator] or [field, operator, value]",
    });
    return z.NEVER;
  }
  const [field, op, value] = parts;
  if (
    typeof field !== "string" ||
    typeof op !== "string" ||
    (value !== undefined && typeof value !== "string")
  ) {
    ctx.addIssue({ code: "custom", input: raw, message: "field, operator and value must be strings" });
    return z.NEVER;
  }
  const result = checkConstraint(field, op, value);
  if (typeof result === "string") {
    ctx.addIssue({ code: "custom", input: raw, message: result });
    return z.NEVER;
  }
  return result;
});

/**
 * An app's `constraints`: an array of constraints in either syntax, or one string listing them
 * separated by commas (`"hostname:UNIQUE, rack:GROUP_BY:3"`, as the Marathon UI takes them; empty
 * entries are skipped). Operators are case-insensitive and come out upper-case. Identical
 * constraints count once (Marathon keeps a set). Issues are reported at the constraint's index:
 * `[1]: GROUP_BY value must be a positive integer ...`.
 */
export const ConstraintsSchema = z
  .union([
    z.array(z.unknown()).max(MAX_CONSTRAINTS),
    z
      .string()
      .max(MAX_CONSTRAINTS * (LIMITS.attributeKeyChars + LIMITS.attributeValueChars + 12))
      .transform((s) => s.split(",").filter((c) => c.trim() !== "")),
  ])
  .pipe(z.array(ConstraintSchema).max(MAX_CONSTRAINTS))
  .transform((list) => {
    const seen = new Set<string>();
    return list.filter((c) => {
      const key = JSON.stringify(constraintToArray(c));
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  });

/**
 * Parses the value of an app's `constraints` field (absent: none). Issue paths name the field and
 * the index: `constraints[1]: GROUP_BY value must be a positive integer (the number of groups), ...`.
 */
export function parseConstraints(input: unknown): Validated<Constraint[]> {
  if (input === undefined) return { ok: true, value: [] };
  const result = validate(z.object({ constraints: ConstraintsSchema }), { constraints: input });
  return result.ok ? { ok: true, value: result.value.constraints } : result;
}

/** `rack:GROUP_BY:3`, `hostname:UNIQUE`: how verdicts and explanations name a constraint. */
export function formatConstraint(c: Constraint): string {
  return c.value === undefined ? `${c.field}:${c.operator}` : `${c.field}:${c.operator}:${c.value}`;
}

/** Marathon's JSON form: `["rack", "GROUP_BY", "3"]`. */
export function constraintToArray(c: Constraint): string[] {
  return c.value === undefined ? [c.field, c.operator] : [c.field, c.operator, c.value];
}

// --------------------------------------------------------------------------------- evaluation

/** The key a field is read by: `hostname` and `@hostname` read the same thing. */
export function fieldKey(field: string): string {
  return field === "@hostname" ? "hostname" : field;
}

/** A text Mesos reads as a scalar attribute (`values::parse`: what `lexical_cast<double>` takes, but inf/nan). */
const MESOS_SCALAR = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/**
 * A scalar as Marathon prints it (`DecimalFormat("0.###")`: half-even on the double's exact value,
 * no grouping): 0.8 → `0.8`, 1.0005 → `1`, 1.00051 → `1.001`, 1.1005 → `1.101`, 1.0625 → `1.062`.
 */
export function formatScalar(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const abs = Math.abs(x);
  const sign = x < 0 || Object.is(x, -0) ? "-" : "";
  if (abs >= 1e21) return sign + BigInt(abs).toString();
  let fixed: string;
  const sixteenths = abs * 16;
  if (abs < 1e12 && Number.isInteger(sixteenths) && sixteenths % 2 === 1) {
    // An exact tie at the third decimal (abs = odd/16): toFixed rounds it up, Java to even.
    const k = Math.floor(abs * 1000);
    const n = k % 2 === 0 ? k : k + 1;
    fixed = `${Math.floor(n / 1000)}.${String(n % 1000).padStart(3, "0")}`;
  } else fixed = abs.toFixed(3);
  return sign + fixed.replace(/\.?0+$/, "");
}

/**
 * An attribute value as Marathon compares it: Mesos types `--attributes` values, and Marathon
 * prints a scalar with `formatScalar` (`rack:1.0` and `rack:1` are the same group, `v:1.10` reads
 * `1.1`); any other value is compared as the text given (Mesos' ranges and sets are not emulated).
 */
export function attributeText(raw: string): string {
  return MESOS_SCALAR.test(raw) ? formatScalar(Number(raw)) : raw;
}

/**
 * The value of a field (by `fieldKey`) on an agent, as constraints compare it; undefined when the
 * agent lacks it, or when nothing is known about the agent.
 */
export function fieldValue(facts: AgentFacts | undefined, key: string): string | undefined {
  if (facts === undefined) return undefined;
  switch (key) {
    case "hostname":
      return facts.hostname;
    case "@region":
      return facts.region;
    case "@zone":
      return facts.zone;
    default: {
      const raw = Object.hasOwn(facts.attributes, key) ? facts.attributes[key] : undefined;
      return raw === undefined ? undefined : attributeText(raw);
    }
  }
}

/** A constraint ready to judge agents. */
export interface CompiledConstraint {
  constraint: Constraint;
  /** `formatConstraint(constraint)`. */
  text: string;
  operator: ConstraintOperator;
  /** `fieldKey(constraint.field)`. */
  key: string;
  /** Whether the verdict depends on the app's instances (UNIQUE, MAX_PER, GROUP_BY, CLUSTER without value). */
  dynamic: boolean;
  /** GROUP_BY: the groups asked for (0 without a value); MAX_PER: the maximum. */
  n: number;
  /** LIKE / UNLIKE; undefined when the value does not compile (then no agent matches). */
  pattern: RegExp | undefined;
  /** CLUSTER with a value, IS: the value to equal (IS: a scalar in Marathon's print). */
  equals: string | undefined;
  /** A value that did not parse (a Constraint built without `parseConstraints`): no agent matches. */
  malformed: boolean;
}

export function compileConstraint(c: Constraint): CompiledConstraint {
  const value = c.value;
  const out: CompiledConstraint = {
    constraint: c,
    text: formatConstraint(c),
    operator: c.operator,
    key: fieldKey(c.field),
    dynamic: false,
    n: 0,
    pattern: undefined,
    equals: undefined,
    malformed: false,
  };
  switch (c.operator) {
    case "UNIQUE":
      out.dynamic = true;
      break;
    case "CLUSTER":
      if (value === undefined || value === "") out.dynamic = true;
      else out.equals = value;
      break;
    case "GROUP_BY":
    case "MAX_PER": {
      // `parseConstraints` takes positive values only; Marathon takes any int (and so may a
      // definition validated elsewhere): GROUP_BY counts one below 1 as 0 (`max(0, n)`), and a
      // MAX_PER below 1 accepts no agent.
      out.dynamic = true;
      const n = value === undefined && c.operator === "GROUP_BY" ? 0 : javaInt(value ?? "");
      if (n === undefined) out.malformed = true;
      else out.n = c.operator === "GROUP_BY" ? Math.max(0, n) : n;
      break;
    }
    case "LIKE":
    case "UNLIKE":
      try {
        out.pattern = value ? compilePattern(value) : undefined;
      } catch {
        out.pattern = undefined;
      }
      out.malformed = out.pattern === undefined;
      break;
    case "IS":
      out.equals = value === undefined ? undefined : SCALAR.test(value) ? formatScalar(Number(value)) : value;
      out.malformed = value === undefined;
      break;
    default:
      out.malformed = true;
  }
  return out;
}

/**
 * An app's instances counted by the value of one field on their agents. Instances on agents that
 * lack the field (or about which nothing is known) are counted apart, in `missing`: GROUP_BY treats
 * them as one more group, as Marathon's `groupBy` on an `Option` does.
 */
export class ValueCounts {
  private readonly counts = new Map<string, number>();
  /** count → how many groups (values, and the missing group) have that many instances. */
  private readonly levels = new Map<number, number>();
  missing = 0;
  /**
   * CLUSTER without a value: the value all instances go to. `null` while the app has no instance;
   * undefined when its first instance's agent lacks the field (then no agent matches, as in Marathon).
   */
  anchor: string | undefined | null = null;

  /**
   * The counts from the instances the app already runs: `[value, instances]` per agent. CLUSTER's
   * anchor is the value most of them share (tie: the lowest), standing in for Marathon's "first
   * instance", which Drover cannot tell; undefined when none of their agents has the field.
   */
  static of(existing: Iterable<readonly [string | undefined, number]>): ValueCounts {
    const vc = new ValueCounts();
    for (const [value, n] of existing) vc.add(value, n);
    if (vc.total() > 0) {
      let best: string | undefined;
      let bestCount = 0;
      for (const [v, c] of vc.counts)
        if (c > bestCount || (c === bestCount && best !== undefined && v < best)) {
          best = v;
          bestCount = c;
        }
      vc.anchor = best;
    }
    return vc;
  }

  total(): number {
    let n = this.missing;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  get(value: string): number {
    return this.counts.get(value) ?? 0;
  }

  /** How many groups have instances, the missing group included. */
  groups(): number {
    return this.counts.size + (this.missing > 0 ? 1 : 0);
  }

  /** The fewest instances any group has (0 when there is no group). */
  minCount(): number {
    let min = 0;
    for (const [count, groups] of this.levels) if (groups > 0 && (min === 0 || count < min)) min = count;
    return min;
  }

  add(value: string | undefined, n = 1): void {
    if (!(n >= 1)) return;
    if (this.anchor === null) this.anchor = value;
    const before = value === undefined ? this.missing : this.get(value);
    const after = before + n;
    if (before > 0) this.levels.set(before, (this.levels.get(before) ?? 0) - 1);
    this.levels.set(after, (this.levels.get(after) ?? 0) + 1);
    if (value === undefined) this.missing = after;
    else this.counts.set(value, after);
  }
}

/**
 * Marathon's `Constraints.checkConstraint` for one agent: `value` is the agent's value of the
 * constraint's field (undefined: it lacks it, and then only UNLIKE accepts), `counts` the app's
 * instances by that field (needed by the dynamic operators).
 *   UNIQUE: no instance has the value. MAX_PER n: fewer than n have it. CLUSTER v: value == v;
 *   CLUSTER: value == the anchor (any while there is none). LIKE / UNLIKE: the pattern matches the
 *   whole value / does not. IS v: value == v (a scalar v as Marathon prints it: `0.80` is `0.8`).
 *   GROUP_BY n (Marathon ≤ 1.10): a value no instance has yet, or one whose group has the fewest
 *   instances once at least n groups exist.
 */
export function meetsConstraint(
  c: CompiledConstraint,
  value: string | undefined,
  counts: ValueCounts | undefined,
): boolean {
  if (value === undefined) return c.operator === "UNLIKE";
  if (c.malformed) return false;
  switch (c.operator) {
    case "UNIQUE":
      return (counts?.get(value) ?? 0) === 0;
    case "MAX_PER":
      return (counts?.get(value) ?? 0) < c.n;
    case "CLUSTER":
      if (c.equals !== undefined) return value === c.equals;
      return counts === undefined || counts.anchor === null || counts.anchor === value;
    case "GROUP_BY": {
      const count = counts?.get(value) ?? 0;
      if (counts === undefined || count === 0) return true;
      return counts.groups() >= c.n && count === counts.minCount();
    }
    case "LIKE":
      return c.pattern?.test(value) === true;
    case "UNLIKE":
      return c.pattern?.test(value) === false;
    case "IS":
      return value === c.equals;
  }
}
