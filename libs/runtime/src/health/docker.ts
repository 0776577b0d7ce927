/**
 * What the health checks of a task running in a Docker container need from Docker, by container
 * id: a CommandRunner that runs COMMAND checks with `docker exec` in the container (as Mesos's
 * Docker executor does), and the container's IP address (for a check on a port that no host port
 * publishes). Uses dockerode directly, beside the DockerExecutor rather than through it.
 *
 * A command that runs past its timeout (or is aborted) is killed inside the container with its
 * descendants: the wrapper prints the shell's pid (in the container's pid namespace) on stderr
 * before it execs the command, and a second exec sends SIGKILL to that pid and every process
 * under it (/proc/<pid>/task/<tid>/children). Docker's API has no way to kill an exec.
 */
import type { Duplex } from "node:stream";
import type Dockerode from "dockerode";
import { dockerErrorMessage } from "../docker/docker-errors.js";
import type { CommandOutcome, CommandRunner } from "./command.js";

/** Access to a task's container, by container id; what the agent's health checks need of the runtime. */
export interface TaskContainers {
  /** Runs COMMAND checks in the container. */
  commandRunner(containerId: string): CommandRunner;
  /**
   * The container's IP address on `network` (by name), else on its only or first network;
   * undefined when it has none (host networking) or cannot be inspected.
   */
  ipAddress(containerId: string, network?: string): Promise<string | undefined>;
}

/** Bytes of a command's output kept for the failure cause (the end of it), as LocalCommandRunner. */
const OUTPUT_LIMIT_BYTES = 1024;
/** How long a killed command's exec may take to report its end before the outcome is given anyway. */
const AFTER_KILL_MS = 2000;

/** `sh -c WRAPPER drover-health-check COMMAND`: prints its pid on stderr, then becomes the command's shell. */
const WRAPPER = 'echo "$$" >&2; exec /bin/sh -c "$1"';
/** `sh -c KILL_TREE drover-health-check PID`: SIGKILL to PID and all its descendants (collected first). */
const KILL_TREE =
  't() { echo "$1"; for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do t "$c"; done; }; ' +
  'kill -9 $(t "$1") 2>/dev/null; true';

export class DockerTaskContainers implements TaskContainers {
  constructor(private readonly docker: Dockerode) {}

  commandRunner(containerId: string): CommandRunner {
    return new DockerExecCommandRunner(this.docker, containerId);
  }

  async ipAddress(containerId: string, network?: string): Promise<string | undefined> {
    let info: Dockerode.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(containerId).inspect();
    } catch {
      return undefined;
    }
    const networks = info.NetworkSettings?.Networks ?? {};
    const named = network !== undefined ? networks[network]?.IPAddress : undefined;
    if (named) return named;
    for (const n of Object.values(networks)) if (n?.IPAddress) return n.IPAddress;
    return undefined;
  }
}

/** Runs `/bin/sh -c <command>` in one container with `docker exec`. Never rejects. */
export class DockerExecCommandRunner implements CommandRunner {
  constructor(
    private readonly docker: Dockerode,
    private readonly containerId: string,
  ) {}

  async run(
    command: string,
    options: { timeoutMs: number; signal?: AbortSignal | undefined },
  ): Promise<CommandOutcome> {
    const { timeoutMs, signal } = options;
    if (signal?.aborted) return { kind: "aborted" };
    const container = this.docker.getContainer(this.containerId);
    let exec: Dockerode.Exec;
    let stream: Duplex;
    try {
      exec = await container.exec({
        Cmd: ["/bin/sh", "-c", WRAPPER, "drover-health-check", command],
        AttachStdin: false,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
      });
      stream = await exec.start({ hijack: true, stdin: false });
    } catch (err) {
      return { kind: "error", message: `docker exec: ${dockerErrorMessage(err)}` };
    }
    return new Promise<CommandOutcome>((resolve) => {
      let output: Buffer = Buffer.alloc(0);
      let stderrHead = "";
      let pid: number | undefined;
      let stopped: "timeout" | "aborted" | undefined;
      let settled = false;
      let afterKill: NodeJS.Timeout | undefined;
      const keep = (chunk: Buffer) => {
        output = Buffer.concat([output, chunk]);
        if (output.length > OUTPUT_LIMIT_BYTES) output = output.subarray(output.length - OUTPUT_LIMIT_BYTES);
      };
      const onStderr = (chunk: Buffer) => {
        if (pid !== undefined) return keep(chunk);
        // The wrapper's first line is its pid; the rest is the command's.
        stderrHead += chunk.toString("utf8");
        const nl = stderrHead.indexOf("\n");
        if (nl < 0) return;
        const n = Number(stderrHead.slice(0, nl).trim());
        pid = Number.isInteger(n) && n > 0 ? n : 0;
        const rest = stderrHead.slice(nl + 1);
        if (rest) keep(Buffer.from(rest));
        if (stopped) this.killTree(pid);
      };
      const settle = (outcome: CommandOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (afterKill) clearTimeout(afterKill);
        signal?.removeEventListener("abort", onAbort);
        stream.destroy();
        resolve(outcome);
      };
      const stop = (why: "timeout" | "aborted") => {
        if (stopped || settled) return;
        stopped = why;
        if (pid) this.killTree(pid);
        // The exec's stream ends once the command is gone; do not wait for it forever.
        afterKill = setTimeout(() => settle({ kind: why }), AFTER_KILL_MS);
      };
      const timer = setTimeout(() => stop("timeout"), timeoutMs);
      const onAbort = () => stop("aborted");
      signal?.addEventListener("abort", onAbort, { once: true });
      demux(stream, keep, onStderr);
      stream.once("error", (err) => {
        if (stopped) settle({ kind: stopped });
        else settle({ kind: "error", message: `docker exec: ${dockerErrorMessage(err)}` });
      });
      stream.once("close", () => void finished());
      stream.once("end", () => void finished());
      const finished = async () => {
        if (settled) return;
        if (stopped) return settle({ kind: stopped });
        try {
          const info = await exec.inspect();
          if (stopped) return settle({ kind: stopped });
          settle({
            kind: "exited",
            exitCode: info.ExitCode ?? -1,
            output: output.toString("utf8").trim(),
          });
        } catch (err) {
          settle({ kind: "error", message: `docker exec inspect: ${dockerErrorMessage(err)}` });
        }
      };
    });
  }

  /** Best effort: SIGKILL to the command's process tree in the container. */
  private killTree(pid: number): void {
    if (!pid) return;
    void (async () => {
      try {
        const exec = await this.docker.getContainer(this.containerId).exec({
          Cmd: ["/bin/sh", "-c", KILL_TREE, "drover-health-check", String(pid)],
          AttachStdout: true,
          AttachStderr: true,
        });
        const s = await exec.start({ hijack: true, stdin: false });
        s.resume();
        s.once("error", () => undefined);
      } catch {
        // The container is gone, or Docker is unreachable: nothing left to kill here.
      }
    })();
  }
}

/** Docker's multiplexed exec stream (no TTY): 8-byte frames [type, 0, 0, 0, size u32 BE] + payload. */
function demux(stream: Duplex, stdout: (b: Buffer) => void, stderr: (b: Buffer) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  stream.on("data", (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 8) {
      const type = buf.readUInt8(0);
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) return;
      const payload = buf.subarray(8, 8 + size);
      buf = buf.subarray(8 + size);
      if (type === 2) stderr(payload);
      else stdout(payload);
    }
  });
}
