/**
 * Text that leaves a process (gRPC status details and trailers, log lines, CLI errors) is made
 * safe here: well-formed UTF-16 (no lone surrogates, which `encodeURIComponent` and gRPC's
 * header encoding refuse), bounded in size with a visible truncation marker, and, for gRPC
 * metadata, printable ASCII only. Nothing user-supplied is ever echoed at more than a few
 * hundred bytes.
 */

/** Longest piece of one input value an error may quote (characters). */
export const MAX_ECHO_CHARS = 200;
/** Longest error message (status details) that leaves a process (characters). */
export const MAX_DETAILS_CHARS = 1024;
/** At most this many field issues travel with one error; the rest are counted. */
export const MAX_ISSUES = 20;
/** Upper bound of the `drover-issues` trailer (bytes; it is ASCII, so characters). */
export const MAX_ISSUES_TRAILER_BYTES = 6 * 1024;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Replaces lone surrogates with U+FFFD (what String.prototype.toWellFormed does). */
export function wellFormed(text: string): string {
  return text.replace(LONE_SURROGATE, "\uFFFD");
}

/**
 * `text` cut to at most `max` characters, ending with a marker that says how much was cut.
 * Never splits a surrogate pair; the result is well-formed.
 */
export function clip(text: string, max: number): string {
  const s = wellFormed(text);
  if (s.length <= max) return s;
  const marker = `…[${s.length} chars, truncated]`;
  let end = Math.max(0, max - marker.length);
  // Do not leave the first half of a surrogate pair at the end.
  const code = s.charCodeAt(end - 1);
  if (end > 0 && code >= 0xd800 && code <= 0xdbff) end -= 1;
  return s.slice(0, end) + marker;
}

/** A short, quoted rendering of an input value for an error message ("…" when cut). */
export function quote(value: unknown, max = MAX_ECHO_CHARS): string {
  let text: string;
  try {
    text = typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return clip(text, max);
}

/**
 * JSON of `value` in printable ASCII only: every character outside 0x20-0x7e is written as a
 * \uXXXX escape (JSON.stringify already escapes control characters and lone surrogates), so
 * the text is valid gRPC metadata and still parses back to the same value.
 */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Printable ASCII only (other characters become "?"), at most `max` characters. */
export function asciiOnly(text: string, max: number): string {
  return clip(text, max).replace(/[^\x20-\x7e]/g, "?");
}

/** Control characters (C0, DEL, C1), line/paragraph separators and bidi marks: never written raw to a terminal. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * `text` safe for a terminal line: control and bidi characters escaped as \uXXXX (so input cannot
 * clear the screen, change colours or reorder the line), well-formed, at most `max` characters.
 */
export function printable(text: string, max = MAX_DETAILS_CHARS * 4): string {
  return clip(text, max).replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
