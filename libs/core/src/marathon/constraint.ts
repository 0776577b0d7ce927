/**
 * An app's `constraints` as the app definition reads them: both syntaxes (`["rack", "GROUP_BY",
 * "3"]` and `"rack:GROUP_BY:3"`), normalised to the array form with the operator upper-case. The
 * rules are placement's (libs/core/src/constraints.ts `checkConstraint`): one reading of a
 * constraint for the definition and for placement, so a definition that is accepted always places.
 */
import { CONSTRAINT_OPERATORS, checkConstraint, constraintToArray } from "../constraints.js";

/** The seven operators (one list, with placement's). */
export const MARATHON_CONSTRAINT_OPERATORS = CONSTRAINT_OPERATORS;

/**
 * Parses one constraint: an array of 2 or 3 strings, or a string `field:OPERATOR[:value]`.
 * Returns the array form or the problem.
 */
export function parseConstraint(
  raw: unknown,
): { ok: true; value: string[] } | { ok: false; message: string } {
  let parts: unknown[];
  if (typeof raw === "string") parts = raw.split(":").map((p) => p.trim());
  else if (Array.isArray(raw)) parts = raw;
  else return { ok: false, message: 'must be [field, operator, value?] or "field:operator[:value]"' };
  if (parts.length < 2 || parts.length > 3)
    return { ok: false, message: "Each constraint must have either 2 or 3 fields" };
  if (!parts.every((p): p is string => typeof p === "string"))
    return { ok: false, message: "field, operator and value must be strings" };
  const [field, op, value] = parts as [string, string, string | undefined];
  const c = checkConstraint(field, op, value);
  return typeof c === "string" ? { ok: false, message: c } : { ok: true, value: constraintToArray(c) };
}
