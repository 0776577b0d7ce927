/**
 * `npm run bench`: figures measured on the real parts, printed, never asserted.
 *   1. time from `drover app add` of N instances to all TASK_RUNNING, next to the same N
 *      containers started directly through dockerode in parallel;
 *   2. the same for an app of 100 instances on the one agent (BENCH_LARGE), next to 100
 *      containers started directly through dockerode in parallel;
 *   3. master leader takeover after kill -9 of the leader, at the default lease TTL.
 */
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LeaderClient } from "@drover/common";
import { Framework } from "@drover/framework";
import { SchedulerClient } from "@drover/proto";
import Docker from "dockerode";
import { Etcd3 } from "etcd3";
import { type Cluster, startCluster, TASK_IMAGE, waitFor } from "../harness/index.js";

const N = Number(process.env.BENCH_INSTANCES ?? 10);
const LARGE = Number(process.env.BENCH_LARGE ?? 100);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const docker = new Docker({ socketPath: "/var/run/docker.sock" });

interface Row {
  what: string;
  values: number[];
}
const rows: Row[] = [];
const record = (what: string, v: number) => {
  let r = rows.find((x) => x.what === what);
  if (!r) {
    r = { what, values: [] };
    rows.push(r);
  }
  r.values.push(v);
  console.log(`  ${what}: ${v.toFixed(0)} ms`);
};

/** Polled in-process over gRPC (spawning the CLI every 50 ms would load the 2 cores being measured). */
async function runningCount(cluster: Cluster, appId: string): Promise<number> {
  schedulers ??= new LeaderClient(SchedulerClient, (cluster.env.DROVER_SCHEDULERS ?? "").split(","));
  const res = await schedulers.call((c) => c.getApp.bind(c), { id: appId });
  return res.app?.tasksRunning ?? 0;
}
let schedulers: LeaderClient<SchedulerClient> | undefined;

async function appToRunning(cluster: Cluster, dir: string, round: number, n = N): Promise<void> {
  const id = `bench${round}`;
  const file = join(dir, `${id}.json`);
  await writeFile(
    file,
    JSON.stringify({
      id,
      container: { docker: { image: TASK_IMAGE } },
      cmd: "sleep 100000",
      instances: n,
      cpus: n > N ? 0.01 : 0.1,
      mem: 16,
    }),
  );
  const t0 = performance.now();
  const add = await cluster.cli(["app", "add", file]);
  if (add.code !== 0) throw new Error(add.stderr);
  await waitFor(`${n} running`, async () => (await runningCount(cluster, id)) === n, {
    timeoutMs: 600_000,
    intervalMs: 50,
  });
  record(`drover: app add of ${n} instances → all TASK_RUNNING`, performance.now() - t0);
  await cluster.cli(["app", "remove", id]);
  await waitFor(
    "bench app gone",
    async () =>
      (await docker.listContainers({ filters: { label: [`drover.app_id=/${id.replace(/^\//, "")}`] } }))
        .length === 0,
    { timeoutMs: 300_000 },
  );
}

async function dockerodeBaseline(round: number, n = N): Promise<void> {
  const t0 = performance.now();
  const made = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const c = await docker.createContainer({
        name: `drover-bench-${process.pid}-${round}-${i}`,
        Image: TASK_IMAGE,
        Cmd: ["/bin/sh", "-c", "sleep 100000"],
        Labels: { "drover.test": "bench" },
        HostConfig: {
          NanoCpus: n > N ? 10_000_000 : 100_000_000,
          Memory: 16 * 1024 * 1024,
          MemorySwap: 16 * 1024 * 1024,
          Init: true,
        },
      });
      await c.start();
      return c;
    }),
  );
  record(`dockerode: ${n} containers created and started in parallel`, performance.now() - t0);
  await Promise.all(made.map((c) => c.remove({ force: true })));
}

/** Through the framework SDK: the time from an accept to the TASK_RUNNING update of its task. */
async function acceptToRunning(cluster: Cluster, rounds: number): Promise<void> {
  const masters = (cluster.env.DROVER_MASTERS ?? "").split(",");
  let launched = 0;
  let current: { taskId: string; t0: number } | undefined;
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const fw: Framework = new Framework(
    { masters, name: "bench", failoverTimeoutSeconds: 5 },
    {
      // One task at a time: launch on the first offer, decline the rest briefly.
      offers: async (offers) => {
        for (const offer of offers) {
          if (current || launched >= rounds) {
            await fw.decline([offer.offerId], 0.2);
            continue;
          }
          const taskId = `bench-${process.pid}-${launched++}`;
          current = { taskId, t0: performance.now() };
          await fw.launch(offer, [{ taskId, image: TASK_IMAGE, cmd: "sleep 100000", cpus: 0.1, mem: 16 }]);
        }
      },
      update: async (u) => {
        if (!current || u.taskId !== current.taskId) return;
        if (u.state === "TASK_RUNNING") {
          record(
            "framework SDK: accept → TASK_RUNNING of one real container",
            performance.now() - current.t0,
          );
          await fw.kill(u.taskId);
        } else if (u.state === "TASK_KILLED" || u.state === "TASK_FAILED") {
          current = undefined;
          if (launched >= rounds) done();
          else await fw.revive();
        }
      },
    },
  );
  const running = fw.run();
  const timeout = setTimeout(() => done(), 120_000);
  await finished;
  clearTimeout(timeout);
  fw.stop();
  await running.catch(() => undefined);
}

async function leader(etcd: Etcd3): Promise<string | undefined> {
  const res = await etcd.getAll().prefix("/drover/election/master/").sort("Create", "Ascend").limit(1).exec();
  return res.kvs[0]?.value.toString();
}

async function takeover(cluster: Cluster, etcd: Etcd3): Promise<void> {
  const before = await waitFor("a master leader", () => leader(etcd));
  const idx = cluster.masters.findIndex((m) => m.env.DROVER_MASTER_ADVERTISE === before);
  const victim = cluster.masters[idx];
  if (!victim) throw new Error(`no master advertises ${before}`);
  const t0 = performance.now();
  victim.kill("SIGKILL");
  await waitFor(
    "another leader",
    async () => {
      const now = await leader(etcd);
      return now !== undefined && now !== before;
    },
    { intervalMs: 20, timeoutMs: 30_000 },
  );
  record("master takeover after kill -9 (new leader key)", performance.now() - t0);
  await waitFor(
    "agent re-registered",
    async () => {
      const agents = await cluster.cliJson<{ connected: boolean }[]>(["agent", "list", "--json"]);
      return agents.length > 0 && agents.every((a) => a.connected);
    },
    { intervalMs: 50, timeoutMs: 30_000 },
  );
  record("master takeover after kill -9 → agent re-registered with new leader", performance.now() - t0);
  cluster.masters[idx] = await cluster.restart(victim);
}

function summary(): void {
  console.log("\nsummary (ms)                                                       min     median  max");
  for (const r of rows) {
    const s = [...r.values].sort((a, b) => a - b);
    const med = s[Math.floor(s.length / 2)] ?? 0;
    console.log(
      `${r.what.padEnd(64)} ${String(Math.round(s[0] ?? 0)).padStart(6)} ${String(Math.round(med)).padStart(8)} ${String(Math.round(s[s.length - 1] ?? 0)).padStart(6)}`,
    );
  }
}

const dir = await mkdtemp(join(tmpdir(), "drover-bench-"));
console.log(`drover bench: ${N} instances, ${ROUNDS} rounds, default leader TTL 3 s`);
const cluster = await startCluster({ masters: 2, schedulers: 1, agents: 1, logLevel: "warn" });
const etcd = new Etcd3({ hosts: cluster.infra.etcdEndpoint });
try {
  for (let r = 0; r < ROUNDS; r++) {
    console.log(`round ${r + 1}`);
    await appToRunning(cluster, dir, r);
    await dockerodeBaseline(r);
  }
  if (LARGE > 0) {
    console.log(`${LARGE} instances on the one agent`);
    await appToRunning(cluster, dir, ROUNDS, LARGE);
    await dockerodeBaseline(ROUNDS, LARGE);
  }
  console.log("framework accept → running");
  await acceptToRunning(cluster, ROUNDS * 2);
  for (let r = 0; r < ROUNDS; r++) {
    console.log(`takeover ${r + 1}`);
    await takeover(cluster, etcd);
  }
  summary();
} finally {
  etcd.close();
  schedulers?.close();
  await cluster.stop();
}
