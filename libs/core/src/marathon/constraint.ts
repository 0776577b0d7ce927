/**
 * A minimal reading of an app's `constraints` for the app definition: both syntaxes
 * (`["rack", "GROUP_BY", "3"]` and `"rack:GROUP_BY:3"`), checked as Marathon checks them, and
 * normalised to the array form with the operator upper-case. Placement (what a constraint means
 * for an offer) is not here.
 *
 * Upstream (mesosphere/marathon @ 90619da70d79): `api/v2/validation/SchedulingValidation.scala`
 * (`complyWithAppConstraintRules`, `complyWithConstraintRules`, the messages).
 */
import { CONSTRAINT_OPERATORS } from "../constraints.js";

/** The seven operators (one list, with placement's). */
export const MARATHON_CONSTRAINT_OPERATORS = CONSTRAINT_OPERATORS;

/** IS takes a Mesos text or scalar value (`SchedulingValidationMessages.MesosLiteralOrFloatValue`). */
const IS_VALUE = /^[a-zA-Z0-9_/.-]*$/;
/** What Scala's `String.toInt` accepts. */
const JAVA_INT = /^[+-]?[0-9]{1,10}$/;

function isJavaInt(s: string): boolean {
  if (!JAVA_INT.test(s)) return false;
  const n = Number(s);
  return n >= -2_147_483_648 && n <= 2_147_483_647;
}

function validRegex(s: string): boolean {
  try {
    new RegExp(s.startsWith("(?i)") ? s.slice(4) : s);
    return true;
  } catch {
    return false;
  }
}

/**
 * Parses one constraint: an array of 2 or 3 strings, or a string `field:OPERATOR[:value]`.
 * Returns the array form or the problem (Marathon's message where it has one).
 */
export function parseConstraint(
  raw: unknown,
): { ok: true; value: string[] } | { ok: false; message: string } {
  let parts: unknown[];
  if (typeof raw === "string") parts = raw.split(":");
  else if (Array.isArray(raw)) parts = raw;
  else return { ok: false, message: 'must be [field, operator, value?] or "field:operator[:value]"' };
  if (parts.length < 2 || parts.length > 3)
    return { ok: false, message: "Each constraint must have either 2 or 3 fields" };
  if (!parts.every((p): p is string => typeof p === "string"))
    return { ok: false, message: "field, operator and value must be strings" };
  const [field, op, value] = parts as [string, string, string | undefined];
  if (field === "") return { ok: false, message: "missing field for constraint declaration" };
  const operator = MARATHON_CONSTRAINT_OPERATORS.find((o) => o === op.toUpperCase());
  if (operator === undefined)
    return {
      ok: false,
      message: "operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS",
    };
  const out = value === undefined ? [field, operator] : [field, operator, value];
  switch (operator) {
    case "UNIQUE":
      return value === undefined
        ? { ok: true, value: out }
        : { ok: false, message: "UNIQUE does not accept a value" };
    case "CLUSTER":
      return { ok: true, value: out };
    case "GROUP_BY":
      return value === undefined || isJavaInt(value)
        ? { ok: true, value: out }
        : { ok: false, message: "GROUP BY must define an integer value or else no value at all" };
    case "MAX_PER":
      return value !== undefined && isJavaInt(value)
        ? { ok: true, value: out }
        : { ok: false, message: "MAX_PER requires an integer value" };
    case "LIKE":
    case "UNLIKE":
      if (value === undefined)
        return { ok: false, message: "LIKE and UNLIKE require a non-empty, regular expression value" };
      return validRegex(value)
        ? { ok: true, value: out }
        : { ok: false, message: "is not a valid regular expression" };
    case "IS":
      return IS_VALUE.test(value ?? "")
        ? { ok: true, value: out }
        : {
            ok: false,
            message:
              "IS only supports Mesos text and float values (see http://mesos.apache.org/documentation/latest/attributes-resources/)",
          };
  }
}
