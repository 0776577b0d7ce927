/**
 * `npm run bench:scale`: the end-to-end benchmark at fleet size. Real etcd, NATS, two masters
 * and a scheduler; `drover-sim` runs the simulated agents (each with its own master session);
 * apps are created through the scheduler's gRPC API. Prints one line per figure (never asserts):
 *
 *   scale: P placements/s (tasks RUNNING / seconds from the first create to the last RUNNING)
 *
 * and the time to all RUNNING, p50/p99 of ListApps and ListTasks while it runs, master and
 * scheduler peak RSS, etcd operations per placed task, the Marathon API's listings at full size
 * (GET /v2/apps?embed=apps.tasks and GET /v2/tasks, p50/p99 of 20 each; `--apps 1000 --instances 10`
 * is issue 10's 1,000 apps / 10,000 tasks), and the master failover at full load (kill -9 of the
 * leader until offers flow again).
 *
 *   --agents N (5000)  --apps A (200)  --instances I (500)  --cpus C (4)  --mem MiB (16384)
 *   --task-cpus (0.1)  --task-mem (64)  --concurrency (8 creates in flight)  --profile (CPU profiles)
 *   --heap-snapshot (of the master leader once every task runs)
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SchedulerClient } from "@drover/proto";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import {
  type Cluster,
  httpUrlOf,
  metricsUrlOf,
  repoRoot,
  type ServiceProcess,
  startCluster,
  waitFor,
} from "../harness/index.js";

const { values: flags } = parseArgs({
  options: {
    agents: { type: "string", default: "5000" },
    apps: { type: "string", default: "200" },
    instances: { type: "string", default: "500" },
    cpus: { type: "string", default: "4" },
    mem: { type: "string", default: "16384" },
    "task-cpus": { type: "string", default: "0.1" },
    "task-mem": { type: "string", default: "64" },
    concurrency: { type: "string", default: "8" },
    "skip-failover": { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    "heap-snapshot": { type: "boolean", default: false },
  },
});
const num = (name: keyof typeof flags) => {
  const v = Number(flags[name]);
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`bench:scale: --${name} must be a positive number`);
    process.exit(2);
  }
  return v;
};
const AGENTS = num("agents");
const APPS = num("apps");
const INSTANCES = num("instances");
const TOTAL = APPS * INSTANCES;

const line = (text: string) => console.log(text);

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

/** CPU seconds (user + system) a process has used so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of /proc/<pid>/stat (12 and 13 after the command name).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The host pid of a container's main process (docker inspect). */
async function containerPid(id: string): Promise<number | undefined> {
  const out = await new Promise<string>((resolve) => {
    const p = spawn("docker", ["inspect", "-f", "{{.State.Pid}}", id]);
    let text = "";
    p.stdout.on("data", (d: Buffer) => {
      text += d.toString();
    });
    p.on("close", () => resolve(text.trim()));
    p.on("error", () => resolve(""));
  });
  const pid = Number(out);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Resident memory of a process now (VmRSS), MiB. */
async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

/** Peak resident memory of a process (VmHWM), MiB. */
async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

const metricsUrl = (p: ServiceProcess) => metricsUrlOf(p);

async function scrape(url: string | undefined): Promise<string> {
  if (!url) return "";
  try {
    return await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text();
  } catch {
    return "";
  }
}

/** The value of a series (`name` may include a label matcher), summed over matching lines. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const l of text.split("\n")) {
    if (!l.startsWith(`${name}{`) && !l.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))) continue;
    const v = Number(l.slice(l.lastIndexOf(" ") + 1));
    if (Number.isFinite(v)) {
      sum += v;
      found = true;
    }
  }
  return found ? sum : Number.NaN;
}

function unary<Res>(
  client: SchedulerClient,
  method: "createApp" | "listApps" | "listTasks",
  req: unknown,
  timeoutMs = 30_000,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = client[method] as unknown as (
      r: unknown,
      md: Metadata,
      o: { deadline: Date },
      cb: (e: ServiceError | null, res: Res) => void,
    ) => void;
    fn.call(client, req, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (e, res) =>
      e ? reject(e) : resolve(res),
    );
  });
}

async function leaderOf(cluster: Cluster): Promise<ServiceProcess | undefined> {
  for (const m of cluster.masters)
    if (m.running && metric(await scrape(metricsUrl(m)), "drover_master_leader") === 1) return m;
  return undefined;
}

async function main(): Promise<void> {
  line(
    `bench:scale: ${AGENTS} simulated agents (${flags.cpus} cpus / ${flags.mem} MiB), ${APPS} apps x ${INSTANCES} instances = ${TOTAL} tasks`,
  );
  const profileDir = flags.profile ? await mkdtemp(join(tmpdir(), "drover-profile-")) : undefined;
  const snapshotDir = flags["heap-snapshot"] ? await mkdtemp(join(tmpdir(), "drover-heap-")) : undefined;
  process.env.DROVER_TEST_NODE_ARGS = [
    ...(profileDir ? [`--cpu-prof --cpu-prof-dir=${profileDir}`] : []),
    ...(snapshotDir ? [`--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapshotDir}`] : []),
    process.env.DROVER_TEST_NODE_ARGS ?? "",
  ].join(" ");
  const cluster = await startCluster({
    masters: 2,
    schedulers: 1,
    agents: 0,
    waitReady: false,
    logLevel: process.env.BENCH_LOG_LEVEL ?? "warn",
    // A 3 s lease (the default) is lost under this load when etcd's applies fall behind (a lease
    // renewal waits for them): the benchmark uses 10 s, as a fleet of this size would.
    leaderTtlSeconds: Number(process.env.BENCH_LEADER_TTL ?? 10),
    env: {},
  });
  let sim: ReturnType<typeof spawn> | undefined;
  const scheduler = new SchedulerClient(
    cluster.env.DROVER_SCHEDULERS?.split(",")[0] ?? "",
    credentials.createInsecure(),
    {
      "grpc.max_receive_message_length": 256 * 1024 * 1024,
    },
  );
  try {
    await waitFor("the scheduler answers", async () => unary(scheduler, "listApps", {}).then(() => true), {
      timeoutMs: 60_000,
    });
    // The simulated fleet.
    const simStart = performance.now();
    sim = spawn(
      process.execPath,
      [
        // --profile covers the simulated fleet too.
        ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []),
        join(repoRoot, "services/agent/dist/sim.js"),
        "--agents",
        String(AGENTS),
        "--cpus",
        String(flags.cpus),
        "--mem",
        String(flags.mem),
        "--masters",
        cluster.env.DROVER_MASTERS ?? "",
        "--nats",
        cluster.infra.natsUrl,
        "--ramp-per-second",
        "1000",
        "--stats-interval-s",
        "0",
        "--start-latency-ms",
        "50-500",
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let simOut = "";
    sim.stdout?.on("data", (d: Buffer) => {
      simOut += d.toString();
    });
    await waitFor("every simulated agent registered", async () => /"msg":"registered"/.test(simOut), {
      timeoutMs: 600_000,
      intervalMs: 500,
    });
    line(`agents: ${AGENTS} registered in ${((performance.now() - simStart) / 1000).toFixed(1)} s`);
    const leader = await waitFor("a master leads", () => leaderOf(cluster), { timeoutMs: 30_000 });
    /** The metrics of whichever master leads now (a leader change during the run is reported). */
    let leaderNow = leader;
    const scrapeLeader = async (): Promise<string> => {
      const text = await scrape(metricsUrl(leaderNow));
      if (metric(text, "drover_master_leader") === 1) return text;
      const next = await leaderOf(cluster);
      if (next && next !== leaderNow) {
        line(`  (the master leader changed: ${leaderNow.name} -> ${next.name})`);
        leaderNow = next;
      }
      return scrape(metricsUrl(leaderNow));
    };
    const before = await scrapeLeader();

    // Latency of the operator queries while the cluster fills up.
    const listApps: number[] = [];
    const listTasks: number[] = [];
    let sampling = true;
    // Resident memory of masters and schedulers while the cluster fills (the final VmHWM also
    // counts the full-size queries made after it).
    const fillPeak = new Map<number, number>();
    const rssSampler = (async () => {
      while (sampling) {
        for (const p of [...cluster.masters, ...cluster.schedulers]) {
          const v = await rssMiB(p.pid);
          if (v > (fillPeak.get(p.pid) ?? 0)) fillPeak.set(p.pid, v);
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    // A failed call is counted, not timed (its latency would say nothing).
    const queryErrors: string[] = [];
    const timed = async (samples: number[], call: () => Promise<unknown>) => {
      const t = performance.now();
      try {
        await call();
        samples.push(performance.now() - t);
      } catch (err) {
        queryErrors.push(String(err));
      }
    };
    const sampler = (async () => {
      while (sampling) {
        await timed(listApps, () => unary(scheduler, "listApps", {}));
        await timed(listTasks, () =>
          unary(scheduler, "listTasks", {
            appId: "bench-0",
            includeTerminal: false,
            pageSize: 0,
            pageToken: "",
          }),
        );
        await new Promise((r) => setTimeout(r, 500));
      }
    })();

    // CPU used by each process while the cluster fills (where the time goes).
    const cpuOf: { name: string; pid: number }[] = [
      ...[...cluster.masters, ...cluster.schedulers].map((p) => ({ name: p.name, pid: p.pid })),
      ...(sim.pid ? [{ name: "drover-sim", pid: sim.pid }] : []),
    ];
    for (const [name, container] of [
      ["etcd", cluster.infra.etcdContainer],
      ["nats-server", cluster.infra.natsContainer],
    ] as const) {
      const pid = await containerPid(container.getId());
      if (pid) cpuOf.push({ name, pid });
    }
    // What each process uses idle (heartbeats, timers, the query sampler) over a few seconds: that
    // part grows with the run's length, not with its tasks, and is taken out of the per-task figure
    // below (on a shared machine a slower run otherwise looks costlier per task).
    const idleSeconds = Number(process.env.BENCH_IDLE_SECONDS ?? 5);
    const idleStart = await Promise.all(cpuOf.map((p) => cpuSeconds(p.pid)));
    const idleT0 = performance.now();
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const cpuBefore = await Promise.all(cpuOf.map((p) => cpuSeconds(p.pid)));
    const idleRate = cpuBefore.map(
      (c, i) => (c - (idleStart[i] ?? 0)) / ((performance.now() - idleT0) / 1000),
    );

    // Create the apps.
    const t0 = performance.now();
    let next = 0;
    const app = (i: number) =>
      JSON.stringify({
        id: `bench-${i}`,
        container: { docker: { image: "drover/busybox:1" } },
        cmd: "sleep 1000000",
        instances: INSTANCES,
        cpus: Number(flags["task-cpus"]),
        mem: Number(flags["task-mem"]),
      });
    await Promise.all(
      Array.from({ length: num("concurrency") }, async () => {
        while (next < APPS) {
          const i = next++;
          await unary(scheduler, "createApp", { appJson: app(i) });
        }
      }),
    );
    const created = performance.now();
    line(`create: ${APPS} apps created in ${((created - t0) / 1000).toFixed(1)} s`);
    let running = 0;
    let lastReport = performance.now();
    await waitFor(
      `${TOTAL} tasks RUNNING`,
      async () => {
        running = metric(await scrapeLeader(), "drover_master_tasks", { state: "TASK_RUNNING" });
        if (performance.now() - lastReport > 10_000) {
          lastReport = performance.now();
          line(`  ... ${running} RUNNING after ${((lastReport - t0) / 1000).toFixed(0)} s`);
        }
        return running >= TOTAL;
      },
      { timeoutMs: 3_600_000, intervalMs: 250 },
    );
    const seconds = (performance.now() - t0) / 1000;
    const cpuAfter = await Promise.all(cpuOf.map((p) => cpuSeconds(p.pid)));
    sampling = false;
    await sampler;
    await rssSampler;
    const after = await scrapeLeader();
    if (snapshotDir) {
      // A heap snapshot of the leader at full size (it collects garbage first: what stays is live).
      process.kill(leaderNow.pid, "SIGUSR2");
      await waitFor(
        "the leader's heap snapshot",
        async () => {
          const files = await readdir(snapshotDir);
          if (!files.some((f) => f.endsWith(".heapsnapshot"))) return false;
          // Written once the process's RSS stops growing; a size that holds for 2 s is taken as done.
          const sizes = async () =>
            Promise.all(files.map((f) => readFile(join(snapshotDir, f)).then((b) => b.length)));
          const a = await sizes();
          await new Promise((r) => setTimeout(r, 2000));
          const b = await sizes();
          return a.join() === b.join();
        },
        { timeoutMs: 300_000, intervalMs: 1000 },
      );
      line(`heap snapshot of the master leader: ${snapshotDir}`);
    }
    const ops =
      metric(after, "drover_master_etcd_ops_total") - metric(before, "drover_master_etcd_ops_total");
    const txns =
      metric(after, "drover_master_etcd_transactions_total", { result: "ok" }) -
      metric(before, "drover_master_etcd_transactions_total", { result: "ok" });
    const changes =
      metric(after, "drover_master_changes_committed_total") -
      metric(before, "drover_master_changes_committed_total");
    const alloc =
      metric(after, "drover_master_allocation_cycle_seconds_sum") /
      metric(after, "drover_master_allocation_cycle_seconds_count");

    line(
      `scale: ${(TOTAL / seconds).toFixed(0)} placements/s (${TOTAL} tasks RUNNING in ${seconds.toFixed(1)} s from the first create)`,
    );
    line(`time to all RUNNING: ${seconds.toFixed(1)} s`);
    line(
      `ListApps latency while filling: p50 ${percentile(listApps, 50).toFixed(0)} ms, p99 ${percentile(listApps, 99).toFixed(0)} ms (${listApps.length} calls)`,
    );
    line(
      `ListTasks (one app, ${INSTANCES} tasks) latency while filling: p50 ${percentile(listTasks, 50).toFixed(0)} ms, p99 ${percentile(listTasks, 99).toFixed(0)} ms`,
    );
    if (queryErrors.length > 0)
      line(`queries that failed while filling: ${queryErrors.length} (first: ${queryErrors[0]})`);
    let t = performance.now();
    // Every task, a page of 5,000 at a time (one answer of all of them exceeds the message limit).
    let listed = 0;
    let pages = 0;
    let failed = "";
    for (let token = "", first = true; first || token !== ""; first = false) {
      const page = await unary<{ tasks: unknown[]; nextPageToken: string }>(
        scheduler,
        "listTasks",
        { appId: "", includeTerminal: false, pageSize: 5000, pageToken: token },
        120_000,
      ).catch((err: unknown) => {
        failed = String(err);
        return undefined;
      });
      if (!page) break;
      listed += page.tasks.length;
      pages += 1;
      token = page.nextPageToken;
    }
    line(
      `ListTasks (all ${listed} tasks, ${pages} pages of 5,000) at full size: ${(performance.now() - t).toFixed(0)} ms${failed ? ` (failed: ${failed})` : ""}`,
    );
    t = performance.now();
    await unary(scheduler, "listApps", {});
    line(`ListApps at full size: ${(performance.now() - t).toFixed(0)} ms`);
    // The Marathon API's listings (what load balancers poll), from the scheduler's in-memory views.
    const httpBase = cluster.schedulers[0] ? httpUrlOf(cluster.schedulers[0]) : undefined;
    if (httpBase)
      for (const path of ["/v2/apps?embed=apps.tasks", "/v2/tasks"]) {
        const times: number[] = [];
        let bad = 0;
        for (let i = 0; i < 20; i++) {
          const start = performance.now();
          const res = await fetch(`${httpBase}${path}`).catch(() => undefined);
          if (res?.status === 200) {
            await res.arrayBuffer();
            times.push(performance.now() - start);
          } else bad++;
        }
        line(
          `GET ${path} at full size (${APPS} apps, ${TOTAL} tasks): p50 ${percentile(times, 50).toFixed(0)} ms, p99 ${percentile(times, 99).toFixed(0)} ms (${times.length} answers${bad ? `, ${bad} failed` : ""})`,
        );
      }
    line(
      `etcd operations per placed task: ${(ops / TOTAL).toFixed(2)} (${ops} ops in ${txns} transactions, ${changes} changes; ${(changes / txns).toFixed(1)} changes per transaction)`,
    );
    line(`allocation cycle: mean ${(alloc * 1000).toFixed(1)} ms`);
    const used = cpuOf.map((p, i) => ({ name: p.name, s: (cpuAfter[i] ?? 0) - (cpuBefore[i] ?? 0) }));
    const total = used.reduce((n, u) => n + u.s, 0);
    line(
      `CPU while filling: ${total.toFixed(0)} core-s in ${seconds.toFixed(0)} s (${((1000 * total) / TOTAL).toFixed(2)} ms per placed task): ${used
        .filter((u) => u.s > 0.5)
        .sort((a, b) => b.s - a.s)
        .map((u) => `${u.name} ${u.s.toFixed(1)} s (${((1000 * u.s) / TOTAL).toFixed(3)} ms/task)`)
        .join(", ")}`,
    );
    const net = used.map((u, i) => ({ name: u.name, s: Math.max(0, u.s - (idleRate[i] ?? 0) * seconds) }));
    const netTotal = net.reduce((n, u) => n + u.s, 0);
    line(
      `CPU per placed task net of idle (idle rate over ${idleSeconds} s before the creates, times ${seconds.toFixed(0)} s, taken out): ${((1000 * netTotal) / TOTAL).toFixed(2)} ms: ${net
        .filter((u) => u.s > 0.2)
        .sort((a, b) => b.s - a.s)
        .map((u) => `${u.name} ${((1000 * u.s) / TOTAL).toFixed(3)}`)
        .join(", ")}; idle: ${used
        .map((u, i) => `${u.name} ${((idleRate[i] ?? 0) * 100).toFixed(0)}%`)
        .join(", ")}`,
    );
    line(
      `master leader heap used at full size: ${(metric(after, "drover_master_nodejs_heap_size_used_bytes") / 2 ** 20).toFixed(0)} MiB (heap total ${(metric(after, "drover_master_nodejs_heap_size_total_bytes") / 2 ** 20).toFixed(0)} MiB, external ${(metric(after, "drover_master_nodejs_external_memory_bytes") / 2 ** 20).toFixed(0)} MiB; by space: ${["new", "old", "large_object", "code"].map((sp) => `${sp} ${(metric(after, "drover_master_nodejs_heap_space_size_used_bytes", { space: sp }) / 2 ** 20).toFixed(0)}/${(metric(after, "drover_master_nodejs_heap_space_size_total_bytes", { space: sp }) / 2 ** 20).toFixed(0)}`).join(", ")})`,
    );
    for (const p of [...cluster.masters, ...cluster.schedulers])
      line(
        `peak RSS ${p.name}${p === leader ? " (leader)" : ""}: ${(fillPeak.get(p.pid) ?? Number.NaN).toFixed(0)} MiB while filling, ${(await peakRssMiB(p.pid)).toFixed(0)} MiB with the full-size queries`,
      );
    const simRss = /"rssMiB":(\d+)/g;
    let m: RegExpExecArray | null;
    let simPeak = 0;
    for (m = simRss.exec(simOut); m; m = simRss.exec(simOut)) simPeak = Math.max(simPeak, Number(m[1]));
    if (sim.pid) line(`peak RSS drover-sim: ${(await peakRssMiB(sim.pid)).toFixed(0)} MiB`);

    if (!flags["skip-failover"]) {
      const other = cluster.masters.find((x) => x !== leaderNow);
      const otherUrl = other ? metricsUrl(other) : undefined;
      const offersBefore = metric(await scrape(otherUrl), "drover_master_offers_total");
      const killedAt = performance.now();
      leaderNow.kill("SIGKILL");
      let electedMs = Number.NaN;
      await waitFor(
        "offers flow again after the master leader's kill -9",
        async () => {
          const text = await scrape(otherUrl);
          if (Number.isNaN(electedMs) && metric(text, "drover_master_leader") === 1)
            electedMs = performance.now() - killedAt;
          const offers = metric(text, "drover_master_offers_total");
          return offers > (Number.isNaN(offersBefore) ? 0 : offersBefore);
        },
        { timeoutMs: 300_000, intervalMs: 100 },
      );
      line(
        `failover at full load: new leader after ${(electedMs / 1000).toFixed(1)} s, offers flow again after ${((performance.now() - killedAt) / 1000).toFixed(1)} s`,
      );
    }
  } finally {
    scheduler.close();
    sim?.kill("SIGTERM");
    await cluster.stop();
    if (profileDir) await summarizeProfiles(profileDir);
  }
}

/** The functions with the most self time in each CPU profile written by --cpu-prof. */
async function summarizeProfiles(dir: string): Promise<void> {
  for (const f of (await readdir(dir)).filter((x) => x.endsWith(".cpuprofile"))) {
    const prof = JSON.parse(await readFile(join(dir, f), "utf8")) as {
      nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
      samples: number[];
      timeDeltas: number[];
    };
    const self = new Map<number, number>();
    for (const [i, id] of prof.samples.entries())
      self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
    const byFn = new Map<string, number>();
    let total = 0;
    for (const n of prof.nodes) {
      const us = self.get(n.id) ?? 0;
      total += us;
      const where = `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.replace(/^.*\/(node_modules|libs|services)\//, "$1/")}:${n.callFrame.lineNumber}`;
      byFn.set(where, (byFn.get(where) ?? 0) + us);
    }
    line(`profile ${f}: ${(total / 1e6).toFixed(1)} s of samples; top self time:`);
    for (const [fn, us] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 15))
      line(`  ${((us / total) * 100).toFixed(1)}%  ${fn}`);
  }
}

await main();
