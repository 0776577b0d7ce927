/** A small structured logger: one JSON line per entry on stderr, bounded in size; it never throws. */
import { clip } from "./safe-text.js";

/** Longest log line: a field holding a large input never floods the log. */
const MAX_LOG_LINE_CHARS = 16 * 1024;

export type LogLevel = "debug" | "info" | "warn" | "error";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(
  component: string,
  level: LogLevel = (process.env.DROVER_LOG_LEVEL as LogLevel | undefined) ?? "info",
  base: Record<string, unknown> = {},
): Logger {
  const min = ORDER[level] ?? ORDER.info;
  const write = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    const entry: Record<string, unknown> = {
      t: new Date().toISOString(),
      level: lvl,
      component,
      msg,
      ...base,
    };
    if (fields) {
      for (const [k, v] of Object.entries(fields)) entry[k] = v instanceof Error ? v.message : v;
    }
    let line: string;
    try {
      line = JSON.stringify(entry, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
    } catch (err) {
      // A field that cannot be written (a cycle, a throwing toJSON) never costs the process.
      line = JSON.stringify({ t: entry.t, level: lvl, component, msg, unloggable: String(err) });
    }
    process.stderr.write(`${clip(line, MAX_LOG_LINE_CHARS)}\n`);
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (fields) => createLogger(component, level, { ...base, ...fields }),
  };
}
