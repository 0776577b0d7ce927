/**
 * At the size users reach on one machine, with real containers: an app of 100 instances on one
 * agent reaches 100 RUNNING (before group commit, no app over 42 instances could start: its
 * accept exceeded etcd's 128 operations per transaction), scales back to 0 leaving no
 * container, and the log replays to the projections.
 */
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import Docker from "dockerode";
import { type Cluster, startCluster, TASK_IMAGE, waitFor } from "./harness/index.js";

const N = 100;
const docker = new Docker({ socketPath: "/var/run/docker.sock" });
let cluster: Cluster | undefined;

before(async () => {
  cluster = await startCluster({ masters: 1, schedulers: 1, agents: 1 });
});

after(async () => {
  await cluster?.stop();
});

async function containers(c: Cluster, appId: string) {
  return docker.listContainers({
    all: false,
    filters: { label: [`drover.app_id=/${appId.replace(/^\//, "")}`, `drover.test.cluster=${c.id}`] },
  });
}

test(`an app of ${N} instances on one agent reaches ${N} RUNNING, then scales to 0 leaving no container`, async () => {
  const c = cluster;
  assert.ok(c);
  const file = join(await mkdtemp(join(tmpdir(), "drover-scale-")), "many.json");
  await writeFile(
    file,
    JSON.stringify({
      id: "many",
      container: { docker: { image: TASK_IMAGE } },
      cmd: "sleep 100000",
      instances: N,
      cpus: 0.01,
      mem: 16,
    }),
  );
  const started = performance.now();
  const add = await c.cli(["app", "add", file]);
  assert.equal(add.code, 0, add.stderr);
  await waitFor(
    `${N} tasks RUNNING and ${N} containers`,
    async () => {
      const app = await c.cliJson<{ tasksRunning: number }>(["app", "show", "many", "--json"]);
      if (app.tasksRunning < N) return false;
      return (await containers(c, "many")).length === N;
    },
    { timeoutMs: 300_000, intervalMs: 1000 },
  );
  console.log(
    `[scale-real] ${N} instances RUNNING in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  const why = await c.cli(["app", "why", "many"]);
  assert.equal(why.code, 0, why.stderr);

  const scale = await c.cli(["app", "scale", "many", "0"]);
  assert.equal(scale.code, 0, scale.stderr);
  await waitFor("no container of the app is left", async () => (await containers(c, "many")).length === 0, {
    timeoutMs: 180_000,
    intervalMs: 1000,
  });
  const verify = await c.cli(["admin", "verify-log"]);
  assert.equal(verify.code, 0, verify.stderr || verify.stdout);
  const dead = [...c.masters, ...c.schedulers, ...c.agents].filter((p) => !p.running).map((p) => p.name);
  assert.deepEqual(dead, [], c.describe(40));
});
