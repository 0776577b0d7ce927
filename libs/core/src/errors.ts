import type { z } from "zod";
import { type FieldIssue, formatIssues, validate } from "./validation.js";

/**
 * Bad input at a boundary. Carries the field issues so a transport (REST, gRPC) can map it to its
 * own error shape in one place; callers match on the class, never on the message text.
 */
export class ValidationError extends Error {
  readonly issues: FieldIssue[];

  constructor(issues: FieldIssue[]) {
    super(formatIssues(issues));
    this.name = "ValidationError";
    this.issues = issues.map((i) => ({ path: i.path, message: i.message }));
  }
}

/** Parse `input` with `schema` or throw a `ValidationError` with every field issue. */
export function parseOrThrow<T>(schema: z.ZodType<T>, input: unknown): T {
  const result = validate(schema, input);
  if (!result.ok) throw new ValidationError(result.issues);
  return result.value;
}
