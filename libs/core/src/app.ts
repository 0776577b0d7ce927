/**
 * An app is Marathon's app definition (libs/core/src/marathon): given as Marathon JSON, normalized
 * with Marathon's defaults and rules (id absolute, old formats converted), and refused by field
 * where Drover cannot honour it. The names below are the ones the rest of Drover uses.
 */
import { appResourcesOf, hostPortDemand, MarathonAppSchema, parseMarathonAppJson } from "./marathon/app.js";
import type { AppDefinition } from "./marathon/types.js";
import type { Resources } from "./resources.js";
import type { Validated } from "./validation.js";

export { APP_LIMITS, RESERVED_LABEL_PREFIX } from "./limits.js";

/** An app definition as Drover keeps it: Marathon's, normalized (every default filled in). */
export type AppSpec = AppDefinition;

/** Validates and normalizes a Marathon app definition (also what is stored: normalizing is idempotent). */
export const AppSpecSchema = MarathonAppSchema;

/**
 * Parses and validates an app definition given as JSON text: at most LIMITS.definitionBytes
 * (checked before parsing); a leading byte-order mark is ignored.
 */
export function parseAppSpecJson(text: string): Validated<AppSpec> {
  return parseMarathonAppJson(text);
}

/** The resources one instance of the app needs (ports are chosen at placement: see appPortDemand). */
export function appResources(app: AppSpec): Resources {
  return appResourcesOf(app);
}

/** How many "any" host ports and which specific host ports one instance of the app needs. */
export function appPortDemand(app: AppSpec): { ports: number; requestedPorts: number[] } {
  return hostPortDemand(app);
}
