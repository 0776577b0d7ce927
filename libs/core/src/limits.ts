/**
 * The size limits of everything Drover takes in, in one table (documented in the README's
 * "Limits" section). Every boundary schema uses these; a value beyond one is refused with
 * INVALID_ARGUMENT naming the field, never stored.
 */
export const LIMITS = {
  /** A whole app definition as JSON text (bytes, UTF-8). */
  definitionBytes: 512 * 1024,
  /** One task as launched (its JSON, bytes): what one TaskLaunched event may carry. */
  taskBytes: 512 * 1024,
  appIdChars: 63,
  taskIdChars: 128,
  agentIdChars: 64,
  frameworkIdChars: 64,
  imageChars: 512,
  cmdChars: 32 * 1024,
  envCount: 256,
  envNameChars: 256,
  envValueChars: 32 * 1024,
  labelCount: 128,
  labelKeyChars: 256,
  labelValueChars: 4096,
  portsPerApp: 32,
  /** Port ranges one agent or one task may hold. */
  portRanges: 1024,
  attributeCount: 64,
  attributeKeyChars: 128,
  attributeValueChars: 1024,
  hostnameChars: 253,
  /** A task status message (longer ones are cut by the agent before they are sent). */
  statusMessageChars: 4096,
  /** Tasks one agent may report at registration, and tasks one accept may launch. */
  tasksPerMessage: 10_000,
  /** Ids per request (offer ids of an accept or decline, task ids of a reconcile). */
  idsPerRequest: 10_000,
  /** Scalar resources: cpus, and mem / disk in MiB. */
  maxCpus: 1_000_000,
  maxMiB: 1_000_000_000_000,
  uuidChars: 64,
  nameChars: 128,
} as const;

/** The UTF-8 size of `text` in bytes (a lone surrogate counts as the 3 bytes of U+FFFD). */
export function utf8Bytes(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i += 1;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Label keys with this prefix are reserved for Drover's own container labels. */
export const RESERVED_LABEL_PREFIX = "drover.";

/** The limits of an app definition, in the units of `Resources` (cores, MiB). */
export const APP_LIMITS = {
  maxInstances: 1000,
  /** Docker's floor: a CFS quota of 1 ms per 100 ms period. */
  minCpus: 0.01,
  maxCpus: 64,
  /** Docker refuses memory limits below 6 MiB. */
  minMem: 6,
  maxMem: 1_048_576,
} as const;
