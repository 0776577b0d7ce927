/**
 * Resident apps (Marathon's local persistent volumes) on a real cluster of two agents: the
 * instance's volume is a named Docker volume on the agent of its reservation; a task that replaces
 * it (killed behind Drover's back, or after a scale to 0 and back) runs on the same agent and finds
 * the file the first task wrote; a new app of the same id gets a new, empty volume.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import Docker from "dockerode";
import { type Cluster, startCluster, TASK_IMAGE, waitFor, withClusterLogs } from "./harness/index.js";

const docker = new Docker({ socketPath: "/var/run/docker.sock" });
let cluster: Cluster | undefined;
let dir = "";
const appId = `/resident-${randomBytes(3).toString("hex")}`;
const volumePrefix = `drover-${appId.slice(1)}-`;

interface TaskRow {
  taskId: string;
  agentId: string;
  state: string;
}

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-resident-"));
  cluster = await startCluster({
    agents: 2,
    agentEnv: (i) => ({
      DROVER_AGENT_HOSTNAME: `drover-r${i + 1}`,
      DROVER_AGENT_PORTS: `${32000 + i * 100}-${32099 + i * 100}`,
    }),
  });
});

after(async () => {
  await cluster?.stop();
  for (const v of (await docker.listVolumes()).Volumes ?? [])
    if (v.Name.startsWith(volumePrefix))
      await docker
        .getVolume(v.Name)
        .remove()
        .catch(() => undefined);
});

const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

async function running(): Promise<TaskRow[]> {
  const tasks = await current().cliJson<TaskRow[]>(["task", "list", "--app", appId, "--json"]);
  return tasks.filter((t) => t.state === "TASK_RUNNING");
}

async function oneRunning(not?: string): Promise<TaskRow> {
  return waitFor(
    `one running task of ${appId}${not ? ` other than ${not}` : ""}`,
    async () => {
      const r = await running();
      return r.length === 1 && r[0]?.taskId !== not ? r[0] : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
}

async function containerOf(taskId: string): Promise<Docker.Container> {
  const list = await docker.listContainers({
    filters: { label: [`drover.task_id=${taskId}`, `drover.test.cluster=${current().id}`] },
  });
  const c = list[0];
  assert.ok(c, `a container of ${taskId}`);
  return docker.getContainer(c.Id);
}

/** The marker the first task of the volume wrote (cat through docker exec). */
async function marker(taskId: string): Promise<string> {
  return waitFor(`the marker in ${taskId}'s volume`, async () => {
    const exec = await (await containerOf(taskId)).exec({
      Cmd: ["sh", "-c", 'cat "$MESOS_SANDBOX/data/marker"'],
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({ hijack: true, stdin: false });
    const chunks: Buffer[] = [];
    stream.on("data", (b: Buffer) => chunks.push(b));
    await new Promise((r) => stream.on("end", r));
    // The multiplexed stream's frames carry an 8-byte header each; the marker is one line.
    const text = Buffer.concat(chunks).toString("latin1");
    const m = /task:([\w.-]+)/.exec(text);
    return m?.[1];
  });
}

async function addApp(): Promise<void> {
  const file = join(dir, "app.json");
  await writeFile(
    file,
    JSON.stringify({
      id: appId,
      instances: 1,
      cpus: 0.05,
      mem: 16,
      // The first task of a volume leaves its id there; later ones only read it.
      cmd: 'test -f "$MESOS_SANDBOX/data/marker" || echo "task:$MESOS_TASK_ID" > "$MESOS_SANDBOX/data/marker"; sleep 100000',
      container: {
        type: "DOCKER",
        docker: { image: TASK_IMAGE },
        volumes: [{ containerPath: "data", mode: "RW", persistent: { size: 16 } }],
      },
    }),
  );
  const r = await current().cli(["app", "add", file]);
  assert.equal(r.code, 0, r.stderr);
}

test("a resident task keeps its agent and its data across a kill, and across a scale to 0 and back", () =>
  withLogs(async () => {
    await addApp();
    const first = await oneRunning();
    assert.equal(await marker(first.taskId), first.taskId);
    const volumes = ((await docker.listVolumes()).Volumes ?? []).filter((v) =>
      v.Name.startsWith(volumePrefix),
    );
    assert.equal(volumes.length, 1, `one named volume: ${volumes.map((v) => v.Name).join(", ")}`);

    // Killed behind Drover's back: the replacement runs on the same agent, on the same data.
    await (await containerOf(first.taskId)).kill();
    const second = await oneRunning(first.taskId);
    assert.equal(second.agentId, first.agentId, "pinned to the agent of its reservation");
    assert.equal(await marker(second.taskId), first.taskId, "the data of the first task");

    // Scaled to 0 and back: the reservation is reused.
    assert.equal((await current().cli(["app", "scale", appId, "0"])).code, 0);
    await waitFor("no task", async () => (await running()).length === 0, { timeoutMs: 60_000 });
    assert.equal((await current().cli(["app", "scale", appId, "1"])).code, 0);
    const third = await oneRunning(second.taskId);
    assert.equal(third.agentId, first.agentId);
    assert.equal(await marker(third.taskId), first.taskId);
  }));

test("an app removed and added again starts on a new, empty volume", () =>
  withLogs(async () => {
    assert.equal((await current().cli(["app", "remove", appId])).code, 0);
    await waitFor("no task", async () => (await running()).length === 0, { timeoutMs: 60_000 });
    await addApp();
    const fresh = await oneRunning();
    assert.equal(await marker(fresh.taskId), fresh.taskId, "a new reservation: its own marker");
    const volumes = ((await docker.listVolumes()).Volumes ?? []).filter((v) =>
      v.Name.startsWith(volumePrefix),
    );
    assert.equal(
      volumes.length,
      2,
      "the old volume stays on its agent (not destroyed), the new one is separate",
    );
  }));
