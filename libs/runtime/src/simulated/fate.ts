/**
 * What happens to a simulated task, decided once at launch from the simulation profile (seeded), the
 * task's command and its image. Pure: same profile, agent, task id, cmd and image → same fate.
 *
 * Command conventions (a tiny subset of sh, enough for tests to drive the runtime as they drive Docker
 * with busybox). Statements are separated by `;`, `&&` or newlines:
 *   `sleep N`          run N seconds (fractions allowed; `sleep infinity`: until killed)
 *   `exit N`           exit with code N (the rest is not run)
 *   `true` / `false`   status 0 / 1
 *   `trap '' TERM`     ignore SIGTERM from now on: a kill takes the whole grace period
 * Anything else (`echo hi`, `httpd -f -p 8080`) is ignored. A command with no `sleep`, `exit`, `true`
 * or `false` (and a task without command) is a service: its run time and exit code come from the profile.
 * Otherwise the task exits, once every sleep is over, with the status of its last statement.
 *
 * Image conventions: an image whose registry host ends in `.invalid` (RFC 2606) cannot be pulled
 * (`sim.invalid/app:1`): the launch fails after the start latency, as a failed pull does.
 */
import { z } from "zod";
import { between, taskRandom } from "./random.js";

/** A span of milliseconds, both ends included. */
export const MsRangeSchema = z
  .strictObject({
    min: z.number().int().min(0).max(86_400_000),
    max: z.number().int().min(0).max(86_400_000),
  })
  .refine((r) => r.min <= r.max, { message: "min must not exceed max", path: ["max"] });

const exitCode = z.number().int().min(0).max(255);

export const SimulationProfileSchema = z.strictObject({
  /** Seed of every random draw (unsigned 32-bit). */
  seed: z.number().int().min(0).max(0xffffffff).default(1),
  /** From launch to TASK_RUNNING (and to the failure of a launch that fails). */
  startLatencyMs: MsRangeSchema.default({ min: 10, max: 100 }),
  /** How long a service runs before it exits on its own; null: until killed. */
  runMs: MsRangeSchema.nullable().default(null),
  /** Of the services that exit on their own, the share that exit with a non-zero code. */
  failureRate: z.number().min(0).max(1).default(0),
  /** The non-zero codes they exit with, picked uniformly. */
  failureExitCodes: z.array(exitCode).min(1).max(64).default([1]),
  /** The share of launches that fail before the task starts (as a failed pull does). */
  launchFailureRate: z.number().min(0).max(1).default(0),
  /** From SIGTERM to the exit of a task that does not ignore it (capped by the grace period). */
  stopMs: MsRangeSchema.default({ min: 0, max: 0 }),
  /**
   * TASK_STARTING is reported when the start latency is over, just before what follows it (RUNNING,
   * or the failure or kill of the launch), instead of at launch: the agent sends both in one status
   * message (a fleet of thousands of simulated agents sends half the messages). Off by default.
   */
  startingWithRunning: z.boolean().default(false),
});
export type SimulationProfile = z.infer<typeof SimulationProfileSchema>;
export type SimulationProfileInput = z.input<typeof SimulationProfileSchema>;

export interface TaskFate {
  /** Why the launch fails once the start latency has passed; undefined: it starts. */
  launchError: string | undefined;
  startLatencyMs: number;
  /** How long the task runs before it exits on its own; undefined: until killed. */
  runMs: number | undefined;
  /** Its exit code when it exits on its own. */
  exitCode: number;
  /** It ignores SIGTERM: a kill takes the whole grace period and ends with SIGKILL (137). */
  ignoresTerm: boolean;
  /** From SIGTERM to its exit (143), when it does not ignore it. */
  stopMs: number;
}

/** What a command says about the task's run; `defined: false` when it says nothing (a service). */
export interface ParsedCmd {
  defined: boolean;
  /** undefined: forever (`sleep infinity`). */
  runMs: number | undefined;
  exitCode: number;
  ignoresTerm: boolean;
}

export function parseCmd(cmd: string | undefined): ParsedCmd {
  const out: ParsedCmd = { defined: false, runMs: 0, exitCode: 0, ignoresTerm: false };
  for (const statement of (cmd ?? "").split(/;|&&|\n/)) {
    const words = statement.trim().split(/\s+/);
    const [verb, arg] = words;
    if (verb === "trap" && words.length >= 3 && /^(''|"")$/.test(arg ?? "") && words.includes("TERM")) {
      out.ignoresTerm = true;
    } else if (verb === "sleep" && arg !== undefined) {
      out.defined = true;
      out.exitCode = 0;
      if (arg === "infinity") out.runMs = undefined;
      else if (out.runMs !== undefined && /^\d+(\.\d+)?$/.test(arg))
        out.runMs += Math.round(Number(arg) * 1000);
    } else if (verb === "exit") {
      out.defined = true;
      const code = Number(arg ?? "0");
      out.exitCode = Number.isInteger(code) ? ((code % 256) + 256) % 256 : 2;
      return out;
    } else if (verb === "true" || verb === "false") {
      out.defined = true;
      out.exitCode = verb === "true" ? 0 : 1;
    }
  }
  return out;
}

/** The registry host of an image reference ("sim.invalid/app:1" → "sim.invalid"), if it names one. */
function registryHost(image: string): string | undefined {
  const slash = image.indexOf("/");
  if (slash < 0) return undefined;
  const first = image.slice(0, slash);
  return first.includes(".") || first.includes(":") || first === "localhost" ? first : undefined;
}

export function taskFate(
  profile: SimulationProfile,
  agentId: string,
  task: { taskId: string; cmd?: string | undefined; image: string },
): TaskFate {
  const random = taskRandom(profile.seed, agentId, task.taskId);
  // Every draw is made, in this order, whatever is used: changing one setting does not reshuffle the others.
  const launchDraw = random();
  const startLatencyMs = between(random(), profile.startLatencyMs.min, profile.startLatencyMs.max);
  const runDraw = random();
  const failureDraw = random();
  const codeDraw = random();
  const stopMs = between(random(), profile.stopMs.min, profile.stopMs.max);

  const host = registryHost(task.image);
  let launchError: string | undefined;
  if (host?.endsWith(".invalid")) {
    launchError = `pull access denied for ${task.image}: registry ${host} does not exist (simulated)`;
  } else if (launchDraw < profile.launchFailureRate) {
    launchError = "simulated launch failure";
  }

  const parsed = parseCmd(task.cmd);
  if (parsed.defined) {
    return {
      launchError,
      startLatencyMs,
      runMs: parsed.runMs,
      exitCode: parsed.exitCode,
      ignoresTerm: parsed.ignoresTerm,
      stopMs,
    };
  }
  const codes = profile.failureExitCodes;
  return {
    launchError,
    startLatencyMs,
    runMs: profile.runMs === null ? undefined : between(runDraw, profile.runMs.min, profile.runMs.max),
    exitCode: failureDraw < profile.failureRate ? (codes[Math.floor(codeDraw * codes.length)] ?? 1) : 0,
    ignoresTerm: parsed.ignoresTerm,
    stopMs,
  };
}
