/**
 * Standard 5-field cron expressions (minute hour day-of-month month day-of-week) in an IANA time
 * zone, evaluated with `croner` (pure computation: no timer is started, the time is passed in).
 * Day-of-month and day-of-week combine as in Vixie cron (either matches when both are restricted).
 */
import { Cron } from "croner";

/** What is wrong with a cron expression or a time zone, by field; undefined when both are fine. */
export function cronIssue(
  expr: string,
  timezone: string,
): { field: "cron" | "timezone"; message: string } | undefined {
  if (!validTimezone(timezone)) return { field: "timezone", message: `unknown time zone '${timezone}'` };
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5)
    return {
      field: "cron",
      message: `must have 5 fields (minute hour day month weekday), has ${fields.length}`,
    };
  try {
    const c = compile(expr, timezone);
    if (c.nextRun(new Date(0)) === null && c.nextRun(new Date(Date.UTC(2000, 0, 1))) === null)
      return { field: "cron", message: "never matches" };
  } catch (err) {
    return {
      field: "cron",
      message: err instanceof Error ? err.message.replace(/^CronPattern: /, "") : "invalid",
    };
  }
  return undefined;
}

function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const compiled = new Map<string, Cron>();

function compile(expr: string, timezone: string): Cron {
  const key = `${timezone}\u0000${expr}`;
  let c = compiled.get(key);
  if (!c) {
    c = new Cron(expr.trim(), { timezone, paused: true, legacyMode: true });
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(key, c);
  }
  return c;
}

/** The first time strictly after `afterMs` at which the expression fires (ms), or undefined. */
export function nextCronAfter(expr: string, timezone: string, afterMs: number): number | undefined {
  // croner's resolution is a second: step past the whole second `afterMs` is in.
  const next = compile(expr, timezone).nextRun(new Date(afterMs));
  if (!next) return undefined;
  const t = next.getTime();
  return t > afterMs ? t : nextCronAfter(expr, timezone, afterMs + 1000);
}
