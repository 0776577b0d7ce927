/**
 * The health checks' Docker access (@drover/runtime DockerTaskContainers) against the real Docker
 * engine with drover/busybox:1: COMMAND checks by `docker exec` (exit code, output, the task's
 * environment, a timeout that kills the command and what it started), and the container's IP.
 * The container carries drover.test=health and is removed at the end, even on failure.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { healthCheckSpec } from "@drover/core";
import { DockerTaskContainers, runCheck } from "@drover/runtime";
import Dockerode from "dockerode";

const IMAGE = "drover/busybox:1";
const docker = new Dockerode();
const containers = new DockerTaskContainers(docker);
let containerId = "";

/** The processes running in the container (busybox ps: PID USER TIME COMMAND). */
async function processes(): Promise<string[]> {
  const runner = containers.commandRunner(containerId);
  const out = await runner.run("ps -o args", { timeoutMs: 5000 });
  assert.equal(out.kind, "exited");
  return out.kind === "exited" ? out.output.split("\n").slice(1) : [];
}

before(async () => {
  const c = await docker.createContainer({
    Image: IMAGE,
    Cmd: ["/bin/sh", "-c", "sleep 600"],
    Env: ["PORT0=31002"],
    Labels: { "drover.test": "health", "drover.test.run": randomUUID().slice(0, 8) },
    HostConfig: { Init: true },
  });
  containerId = c.id;
  await c.start();
});

after(async () => {
  if (containerId)
    await docker
      .getContainer(containerId)
      .remove({ force: true })
      .catch(() => undefined);
});

describe("DockerTaskContainers", () => {
  test("a command's exit code and output, with the container's environment", async () => {
    const runner = containers.commandRunner(containerId);
    assert.deepEqual(await runner.run("true", { timeoutMs: 5000 }), {
      kind: "exited",
      exitCode: 0,
      output: "",
    });
    // stdout and stderr are two streams: both are kept, in the order each was written, but Docker
    // does not order one against the other.
    const mixed = await runner.run('echo "port $PORT0"; echo oops >&2; exit 3', { timeoutMs: 5000 });
    assert.equal(mixed.kind, "exited");
    assert.equal(mixed.kind === "exited" && mixed.exitCode, 3);
    assert.deepEqual(mixed.kind === "exited" && mixed.output.split("\n").sort(), ["oops", "port 31002"]);
    assert.deepEqual(await runner.run("echo one; echo two; exit 4", { timeoutMs: 5000 }), {
      kind: "exited",
      exitCode: 4,
      output: "one\ntwo",
    });
  });

  test("a COMMAND check passes on exit 0 and fails with the exit status and the output's last line", async () => {
    const runner = containers.commandRunner(containerId);
    const spec = (value: string) => healthCheckSpec({ protocol: "COMMAND", command: { value } });
    assert.deepEqual(await runCheck(spec("test -d /tmp"), undefined, 5000, { commandRunner: runner }), {
      kind: "healthy",
    });
    assert.deepEqual(await runCheck(spec("ls /missing"), undefined, 5000, { commandRunner: runner }), {
      kind: "unhealthy",
      cause: "command exited with status 1: ls: /missing: No such file or directory",
    });
  });

  test("a command past its timeout is killed in the container, with what it started", async () => {
    const runner = containers.commandRunner(containerId);
    const t0 = Date.now();
    const out = await runner.run("sleep 77 & sleep 78; true", { timeoutMs: 700 });
    const took = Date.now() - t0;
    assert.deepEqual(out, { kind: "timeout" });
    assert.ok(took < 3000, `ended ${took} ms after it started`);
    // The kill runs as its own exec: give it a moment.
    let left: string[] = [];
    for (let i = 0; i < 40; i++) {
      left = (await processes()).filter((p) => /sleep 7[78]/.test(p));
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(left, [], "no sleep left behind");
  });

  test("an abort ends the command at once", async () => {
    const runner = containers.commandRunner(containerId);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 300);
    assert.deepEqual(await runner.run("sleep 60", { timeoutMs: 30_000, signal: abort.signal }), {
      kind: "aborted",
    });
  });

  test("a container that is gone is an error, not a throw", async () => {
    const out = await containers.commandRunner("no-such-container").run("true", { timeoutMs: 2000 });
    assert.equal(out.kind, "error");
  });

  test("the container's IP address on its network", async () => {
    const ip = await containers.ipAddress(containerId);
    assert.match(ip ?? "", /^\d+\.\d+\.\d+\.\d+$/);
    assert.equal(await containers.ipAddress(containerId, "bridge"), ip);
    assert.equal(await containers.ipAddress("no-such-container"), undefined);
  });
});
