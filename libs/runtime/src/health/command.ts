/**
 * COMMAND health checks run `/bin/sh -c <value>` where the task runs. A runtime provides that place
 * as a CommandRunner: the Docker runtime with `docker exec` in the task's container (as Mesos's
 * Docker executor does), LocalCommandRunner on this host (tests, and tasks run on the host).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:os";

export type CommandOutcome =
  /** The command ended by itself. `output`: the end of its stdout and stderr, for the failure cause. */
  | { kind: "exited"; exitCode: number; output: string }
  /** It ran past `timeoutMs`: it was killed, and has ended. */
  | { kind: "timeout" }
  /** `signal` aborted it: it was killed, and has ended. */
  | { kind: "aborted" }
  /** It could not run (no shell, no container, Docker unreachable…). */
  | { kind: "error"; message: string };

export interface CommandRunner {
  /**
   * Runs `/bin/sh -c <command>` with stdin closed. Resolves once the command has ended: by itself,
   * or killed (with everything it started) when `timeoutMs` passes or `signal` aborts. Never rejects.
   */
  run(
    command: string,
    options: { timeoutMs: number; signal?: AbortSignal | undefined },
  ): Promise<CommandOutcome>;
}

export interface LocalCommandRunnerOptions {
  /** Default "/bin/sh". */
  shell?: string;
  /** Added to this process's environment (a task's HOST, PORT0, …). */
  env?: Record<string, string>;
  cwd?: string;
}

/** Bytes of a command's output kept for the failure cause (the end of it). */
const OUTPUT_LIMIT_BYTES = 1024;

/**
 * Runs commands on this host, each in its own process group, so that a timeout or an abort kills
 * the shell and everything it started (SIGKILL to the group, as Mesos's `os::killtree`).
 */
export class LocalCommandRunner implements CommandRunner {
  private readonly shell: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly cwd: string | undefined;

  constructor(options: LocalCommandRunnerOptions = {}) {
    this.shell = options.shell ?? "/bin/sh";
    this.env = { ...process.env, ...options.env };
    this.cwd = options.cwd;
  }

  run(
    command: string,
    options: { timeoutMs: number; signal?: AbortSignal | undefined },
  ): Promise<CommandOutcome> {
    const { timeoutMs, signal } = options;
    if (signal?.aborted) return Promise.resolve({ kind: "aborted" });
    return new Promise((resolve) => {
      let child: ChildProcess;
      try {
        child = spawn(this.shell, ["-c", command], {
          detached: true,
          stdio: ["ignore", "pipe", "pipe"],
          env: this.env,
          cwd: this.cwd,
        });
      } catch (err) {
        resolve({ kind: "error", message: err instanceof Error ? err.message : String(err) });
        return;
      }
      let output = Buffer.alloc(0);
      const keep = (chunk: Buffer) => {
        output = Buffer.concat([output, chunk]);
        if (output.length > OUTPUT_LIMIT_BYTES) output = output.subarray(output.length - OUTPUT_LIMIT_BYTES);
      };
      child.stdout?.on("data", keep);
      child.stderr?.on("data", keep);
      let stopped: "timeout" | "aborted" | undefined;
      let settled = false;
      const killGroup = () => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // ESRCH: the group has ended already.
        }
      };
      const stop = (why: "timeout" | "aborted") => {
        if (stopped || settled) return;
        stopped = why;
        killGroup();
      };
      const timer = setTimeout(() => stop("timeout"), timeoutMs);
      const onAbort = () => stop("aborted");
      signal?.addEventListener("abort", onAbort, { once: true });
      const settle = (outcome: CommandOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        child.stdout?.destroy();
        child.stderr?.destroy();
        resolve(outcome);
      };
      child.once("error", (err) => settle({ kind: "error", message: err.message }));
      child.once("exit", (code, sig) => {
        // Whatever the shell left behind in its group goes with it.
        killGroup();
        if (stopped) return settle({ kind: stopped });
        const exitCode = code ?? 128 + signalNumber(sig);
        // Let the pipes drain (they close at once unless something outside the group holds them).
        const drained = setTimeout(() => settle({ kind: "exited", exitCode, output: text(output) }), 100);
        child.once("close", () => {
          clearTimeout(drained);
          settle({ kind: "exited", exitCode, output: text(output) });
        });
      });
    });
  }
}

function text(output: Buffer): string {
  return output.toString("utf8").trim();
}

/** A command killed by a signal reports 128 + its number, as a shell does. */
function signalNumber(sig: NodeJS.Signals | null): number {
  return sig ? constants.signals[sig] : 0;
}
