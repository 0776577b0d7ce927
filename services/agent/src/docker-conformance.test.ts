/**
 * The executor conformance suite (@drover/runtime/conformance) against DockerExecutor on the real
 * engine, with the local image drover/busybox:1. The same commands drive the simulated runtime in
 * libs/runtime's unit tests. Every container made here carries drover.test=executor and this run's
 * drover.test.run label; they are removed at the end, and none may be left.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { before } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { DockerExecutor, isNotFound } from "@drover/runtime";
import { describeExecutor } from "@drover/runtime/conformance";
import Dockerode from "dockerode";

const IMAGE = "drover/busybox:1";
const RUN_ID = randomUUID().slice(0, 8);
const TEST_LABELS = { "drover.test": "executor", "drover.test.run": RUN_ID };
const docker = new Dockerode();
const quiet = { debug: () => {}, warn: () => {} };

before(async () => {
  try {
    await docker.getImage(IMAGE).inspect();
  } catch {
    const script = fileURLToPath(new URL("../../../deploy/images/build.sh", import.meta.url));
    await promisify(execFile)("bash", [script], { timeout: 300_000 });
    await docker.getImage(IMAGE).inspect();
  }
});

async function removeTestContainers(): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [`drover.test.run=${RUN_ID}`] } });
  await Promise.all(
    list.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        }),
    ),
  );
}

describeExecutor(
  "DockerExecutor",
  (agentId) => new DockerExecutor({ agentId, extraLabels: TEST_LABELS, logger: quiet }),
  {
    baseSpec: { image: IMAGE },
    faults: {
      runsUntilKilled: () => ({ cmd: "sleep 300" }),
      exitsWith: (code, afterSeconds = 0) => ({
        cmd: afterSeconds > 0 ? `sleep ${afterSeconds}; exit ${code}` : `exit ${code}`,
      }),
      // Under the container's init, SIGTERM reaches the shell, which ignores it (and so does sleep).
      ignoresSigterm: () => ({ cmd: "trap '' TERM; sleep 300" }),
      // A registry on a closed loopback port: the pull fails at once, and no traffic leaves the machine.
      failsToLaunch: () => ({ image: "127.0.0.1:1/drover/none:1" }),
      crash: async (_agentId, _taskId, containerId) => {
        await docker.getContainer(containerId).kill();
        return 137;
      },
    },
    waitMs: 30_000,
    cleanup: async () => {
      await removeTestContainers();
      const left = await docker.listContainers({
        all: true,
        filters: { label: [`drover.test.run=${RUN_ID}`] },
      });
      assert.equal(left.length, 0, "test containers left behind");
    },
  },
);
