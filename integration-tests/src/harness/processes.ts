import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "./paths.js";

export type ServiceKind = "master" | "scheduler" | "agent";

/** Where every spawned service writes its full log: `<tmpdir>/drover-it-logs/<name>.log`. */
export const LOG_DIR: string = join(tmpdir(), "drover-it-logs");

/** How much of a service's output `logs()` keeps (the log file has everything). */
const RING_BYTES = 256 * 1024;

export interface ServiceProcess {
  readonly pid: number;
  readonly name: string;
  readonly kind: ServiceKind;
  /** The environment overrides the process was started with (undefined = removed from process.env). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Path of the full log (stdout and stderr interleaved). */
  readonly logFile: string;
  /** Resolves with the exit code (null when a signal ended the process) once it has exited. */
  readonly exited: Promise<number | null>;
  /** True until the process has exited. */
  readonly running: boolean;
  /** Sends a signal (default SIGTERM); no-op once exited. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited (idempotent). */
  stop(): Promise<void>;
  /** The last 256 KiB of stdout and stderr. */
  logs(): string;
}

/** Tail buffer of a process's output. */
class Ring {
  private chunks: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > RING_BYTES && this.chunks.length > 1) {
      const first = this.chunks.shift();
      this.size -= first?.length ?? 0;
    }
  }

  toString(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - RING_BYTES)).toString("utf8");
  }
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** If the test process dies without stopping its services, take them down with it. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

/** Starts `node <repo>/services/<kind>/dist/main.js` with process.env overlaid by `env`. */
export function spawnService(
  kind: ServiceKind,
  env: Record<string, string | undefined>,
  name: string,
): ServiceProcess {
  installExitHook();
  mkdirSync(LOG_DIR, { recursive: true });
  const logFile = join(LOG_DIR, `${name}.log`);
  const file: WriteStream = createWriteStream(logFile, { flags: "w" });
  const ring = new Ring();
  // As deployed (deploy/systemd, npm start): two glibc malloc arenas, unless the caller says otherwise.
  const mergedEnv: NodeJS.ProcessEnv = { MALLOC_ARENA_MAX: "2", ...process.env };
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete mergedEnv[key];
    else mergedEnv[key] = value;
  }
  const script = join(repoRoot, "services", kind, "dist", "main.js");
  // DROVER_TEST_NODE_ARGS: extra node flags for the services (the benchmark's --cpu-prof, which
  // NODE_OPTIONS does not allow).
  const nodeArgs = (process.env.DROVER_TEST_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, script], {
    cwd: repoRoot,
    env: mergedEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);

  const record = (chunk: Buffer): void => {
    ring.push(chunk);
    file.write(chunk);
  };
  child.stdout?.on("data", record);
  child.stderr?.on("data", record);

  let running = true;
  const exited = new Promise<number | null>((resolve) => {
    let done = false;
    const finish = (code: number | null, how: string): void => {
      if (done) return;
      done = true;
      running = false;
      live.delete(child);
      record(Buffer.from(`[harness] ${name} exited (${how})\n`));
      file.end(() => resolve(code));
    };
    child.once("error", (err) => {
      record(Buffer.from(`[harness] could not start or signal ${name}: ${err.message}\n`));
      if (child.pid === undefined) finish(null, "spawn error");
    });
    // "close" comes after the output streams are drained, so logs() is complete once `exited` resolves.
    child.once("close", (code, signal) => finish(code, signal ? `signal ${signal}` : `code ${code}`));
  });

  let stopping: Promise<void> | undefined;
  const proc: ServiceProcess = {
    pid: child.pid ?? -1,
    name,
    kind,
    env: { ...env },
    logFile,
    exited,
    get running() {
      return running;
    },
    kill(signal: NodeJS.Signals = "SIGTERM") {
      if (running) child.kill(signal);
    },
    stop() {
      stopping ??= (async () => {
        if (!running) {
          await exited;
          return;
        }
        child.kill("SIGTERM");
        const timer = setTimeout(() => {
          if (running) child.kill("SIGKILL");
        }, 5_000);
        try {
          await exited;
        } finally {
          clearTimeout(timer);
        }
      })();
      return stopping;
    },
    logs() {
      return ring.toString();
    },
  };
  return proc;
}

const handedOut = new Set<number>();

/** A TCP port on 127.0.0.1 that is free right now and that this process has not handed out before. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once("error", reject);
      srv.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
        const address = srv.address();
        const p = typeof address === "object" && address ? address.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error("freePort: no free port found after 50 attempts");
}
