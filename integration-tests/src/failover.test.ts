/**
 * Failover of the leader-elected processes against real etcd, NATS and Docker: a cluster of 2 masters,
 * 2 schedulers and 1 agent runs an app of 3 instances; SIGKILL of the master leader, then of the scheduler
 * leader, must leave the app at its count with the same tasks (invariant 4: no duplicates, no gaps), and a
 * scale through the CLI must reach the new scheduler leader. A last test checks fencing (invariant 1) with
 * the store library directly: a deposed leader's commit is rejected by etcd.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { createLogger, errorMessage, FencedError } from "@drover/common";
import { AppAggregate, type AppSpec, AppSpecSchema } from "@drover/core";
import { connectEtcd, EventStore, LeaderElection, type Leadership, verifyLog } from "@drover/store";
import Docker from "dockerode";
import { Etcd3 } from "etcd3";
import {
  type Cluster,
  type ServiceProcess,
  startCluster,
  waitFor,
  withClusterLogs,
  withTimeout,
} from "./harness/index.js";

const APP_ID = "web";
/** Convergence deadline: generous, the machine is small and shared. */
const CONVERGE_MS = 60_000;
/** How long the cluster is watched for duplicates once it has converged. */
const OBSERVE_MS = 15_000;
const POLL_MS = 500;

interface TaskJson {
  taskId: string;
  appId: string;
  agentId: string;
  state: string;
  message: string;
  exitCode?: number;
}

interface AgentJson {
  agentId: string;
  connected: boolean;
}

interface RunningContainer {
  containerId: string;
  taskId: string;
}

let cluster: Cluster | undefined;
let etcd: Etcd3 | undefined;
let workDir: string | undefined;
const docker = new Docker({ socketPath: "/var/run/docker.sock" });

/** Task ids of the app's first deployment (set by the first test, checked after each failover). */
let originalTaskIds: string[] | undefined;

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

function etcdClient(): Etcd3 {
  assert.ok(etcd, "etcd client not connected");
  return etcd;
}

function deployed(): string[] {
  assert.ok(originalTaskIds, "the app was not deployed (the first test failed)");
  return originalTaskIds;
}

before(async () => {
  cluster = await startCluster({ masters: 2, schedulers: 2, agents: 1, leaderTtlSeconds: 3 });
  etcd = new Etcd3({ hosts: cluster.infra.etcdEndpoint, dialTimeout: 3000 });
  workDir = await mkdtemp(join(tmpdir(), "drover-failover-"));
});

after(async () => {
  etcd?.close();
  if (workDir) await rm(workDir, { recursive: true, force: true });
  await cluster?.stop();
});

/** Runs a test body; a failure carries the processes' last log lines. */
const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

// ------------------------------------------------------------------ observations

/** The app's tasks as the CLI lists them (through the scheduler leader). */
async function tasks(appId: string): Promise<TaskJson[]> {
  return current().cliJson<TaskJson[]>(["task", "list", "--app", appId, "--json"], { timeoutMs: 25_000 });
}

function runningIds(list: TaskJson[]): string[] {
  return list
    .filter((t) => t.state === "TASK_RUNNING")
    .map((t) => t.taskId)
    .sort();
}

/** Running Docker containers of the app in this cluster. */
async function containers(appId: string): Promise<RunningContainer[]> {
  const found = await docker.listContainers({
    filters: {
      label: [`drover.app_id=/${appId.replace(/^\//, "")}`, `drover.test.cluster=${current().id}`],
      status: ["running"],
    },
  });
  return found.map((c) => ({ containerId: c.Id, taskId: c.Labels["drover.task_id"] ?? "" }));
}

/** The value (advertised address) of the first election key of `service`, by create revision. */
async function electedLeader(service: "master" | "scheduler"): Promise<string | undefined> {
  const res = await etcdClient()
    .getAll()
    .prefix(`/drover/election/${service}/`)
    .sort("Create", "Ascend")
    .limit(1)
    .exec();
  return res.kvs[0]?.value.toString();
}

function advertised(p: ServiceProcess): string | undefined {
  return p.kind === "master" ? p.env.DROVER_MASTER_ADVERTISE : p.env.DROVER_SCHEDULER_ADVERTISE;
}

function processAt(group: ServiceProcess[], address: string): ServiceProcess {
  const p = group.find((x) => advertised(x) === address);
  assert.ok(p, `no process advertises ${address} (known: ${group.map(advertised).join(", ")})`);
  return p;
}

/** Timestamps (ms) of the log entries of `file` whose msg is `msg`. */
async function logTimes(file: string, msg: string): Promise<number[]> {
  const text = await readFile(file, "utf8");
  const out: number[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const entry = JSON.parse(line) as { t?: string; msg?: string };
      if (entry.msg === msg && entry.t) out.push(Date.parse(entry.t));
    } catch {
      // not a log entry
    }
  }
  return out;
}

/**
 * Polls Docker every 500 ms in the background and records every moment the app has more containers than
 * allowed, a task id on two containers at once, a task id that moved to another container over time (it ran
 * twice), or a required task missing (a gap).
 */
class ContainerWatch {
  max: number;
  required: Set<string>;
  samples = 0;
  failedSamples = 0;
  lastError = "";
  readonly violations: string[] = [];
  readonly seen = new Map<string, string>(); // taskId → containerId
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly appId: string,
    opts: { max: number; required: string[] },
  ) {
    this.max = opts.max;
    this.required = new Set(opts.required);
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const started = Date.now();
      try {
        this.check(await containers(this.appId));
      } catch (err) {
        this.failedSamples++;
        this.lastError = errorMessage(err);
      }
      await delay(Math.max(0, POLL_MS - (Date.now() - started)));
    }
  }

  private check(list: RunningContainer[]): void {
    this.samples++;
    const at = new Date().toISOString();
    const ids = list.map((c) => c.taskId);
    if (list.length > this.max)
      this.violations.push(`${at}: ${list.length} containers > ${this.max}: ${ids.join(", ")}`);
    const counts = new Map<string, number>();
    for (const c of list) {
      counts.set(c.taskId, (counts.get(c.taskId) ?? 0) + 1);
      const before = this.seen.get(c.taskId);
      if (before !== undefined && before !== c.containerId)
        this.violations.push(
          `${at}: task ${c.taskId} ran twice (containers ${before.slice(0, 12)} and ${c.containerId.slice(0, 12)})`,
        );
      this.seen.set(c.taskId, c.containerId);
    }
    for (const [taskId, n] of counts)
      if (n > 1) this.violations.push(`${at}: task ${taskId} on ${n} containers at once`);
    for (const taskId of this.required)
      if (!counts.has(taskId)) this.violations.push(`${at}: task ${taskId} has no running container (gap)`);
  }

  /** Keeps watching for `ms` more and checks that Docker was actually sampled during that time. */
  async observe(ms: number): Promise<void> {
    const from = this.samples;
    await delay(ms);
    const expected = Math.floor(ms / POLL_MS / 3);
    assert.ok(
      this.samples - from >= expected,
      `Docker was sampled only ${this.samples - from} times in ${ms} ms (want >= ${expected}); last error: ${this.lastError}`,
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  assertClean(phase: string): void {
    assert.deepEqual(
      this.violations.slice(0, 20),
      [],
      `${phase}: ${this.violations.length} violation(s) in ${this.samples} Docker samples`,
    );
  }
}

/** Waits until the CLI shows exactly `n` running tasks and Docker exactly `n` running containers, the same ids. */
async function waitConverged(appId: string, n: number, what: string): Promise<string[]> {
  let last = "";
  return waitFor(
    what,
    async () => {
      const [list, running] = await Promise.all([tasks(appId), containers(appId)]);
      const ids = runningIds(list);
      const inDocker = running.map((c) => c.taskId).sort();
      last = `tasks ${JSON.stringify(list.map((t) => `${t.taskId}:${t.state}`))}; containers ${JSON.stringify(inDocker)}`;
      if (list.length !== n || ids.length !== n || inDocker.length !== n) throw new Error(last);
      if (JSON.stringify(ids) !== JSON.stringify(inDocker))
        throw new Error(`CLI and Docker disagree: ${last}`);
      return ids;
    },
    { timeoutMs: CONVERGE_MS, intervalMs: POLL_MS },
  );
}

// ------------------------------------------------------------------ tests

test("an app of 3 instances runs as 3 tasks and 3 containers", { timeout: 180_000 }, () =>
  withLogs(async () => {
    const c = current();
    assert.ok(workDir);
    const file = join(workDir, `${APP_ID}.json`);
    await writeFile(
      file,
      JSON.stringify({
        id: APP_ID,
        container: { docker: { image: "drover/busybox:1" } },
        cmd: "sleep 100000",
        instances: 3,
        cpus: 0.1,
        mem: 32,
      }),
    );
    const added = await c.cli(["app", "add", file, "--json"]);
    assert.equal(added.code, 0, `app add failed: ${added.stderr}`);

    const ids = await waitConverged(APP_ID, 3, "3 TASK_RUNNING tasks and 3 running containers");
    assert.equal(new Set(ids).size, 3);
    originalTaskIds = ids;
  }),
);

test(
  "SIGKILL of the master leader: another master leads, the agent reconnects, the app keeps its 3 tasks",
  { timeout: 300_000 },
  () =>
    withLogs(async () => {
      const c = current();
      const ids = deployed();
      const leaderAddr = await electedLeader("master");
      assert.ok(leaderAddr, "no master leader in etcd");
      const leader = processAt(c.masters, leaderAddr);
      const other = c.masters.find((m) => m !== leader);
      assert.ok(other?.running, "the other master is not running");
      const otherAddr = advertised(other);
      const [agent] = c.agents;
      assert.ok(agent);

      const watch = new ContainerWatch(APP_ID, { max: 3, required: ids });
      try {
        const killedAt = Date.now();
        leader.kill("SIGKILL");
        assert.equal(await withTimeout("the master leader to exit", leader.exited, 10_000), null);

        await waitFor(
          `the master election key to move from ${leaderAddr} to ${otherAddr}`,
          async () => (await electedLeader("master")) === otherAddr,
          { timeoutMs: CONVERGE_MS, intervalMs: 100 },
        );
        const electedMs = Date.now() - killedAt;

        await waitFor(
          "the agent connected again in 'agent list --json'",
          async () => {
            const agents = await c.cliJson<AgentJson[]>(["agent", "list", "--json"], { timeoutMs: 25_000 });
            return agents.length === 1 && agents[0]?.connected === true;
          },
          { timeoutMs: CONVERGE_MS, intervalMs: 250 },
        );
        const agentSeenMs = Date.now() - killedAt;
        const registered = (await logTimes(agent.logFile, "registered with master")).filter(
          (t) => t >= killedAt,
        );
        const reRegisteredMs = registered[0] === undefined ? undefined : registered[0] - killedAt;

        console.log(
          `[failover] master leader ${leaderAddr} killed; ${otherAddr} elected after ${electedMs} ms; ` +
            `agent re-registered after ${reRegisteredMs ?? "?"} ms (agent log), ` +
            `shown connected by 'agent list' after ${agentSeenMs} ms (TTL 3 s)`,
        );

        const after = await waitConverged(APP_ID, 3, "3 running tasks after the master failover");
        assert.deepEqual(after, ids, "the tasks after the master failover are not the ones deployed");

        await watch.observe(OBSERVE_MS);
        const final = await waitConverged(APP_ID, 3, "3 running tasks after the observation window");
        assert.deepEqual(final, ids, "the tasks changed during the observation window");
      } finally {
        await watch.stop();
      }
      watch.assertClean("master failover");
      assert.deepEqual([...watch.seen.keys()].sort(), ids, "Docker ran tasks other than the deployed ones");
    }),
);

test(
  "SIGKILL of the scheduler leader: the other scheduler leads and 'app scale' reaches it; 4 tasks, no duplicates",
  { timeout: 300_000 },
  () =>
    withLogs(async () => {
      const c = current();
      const ids = deployed();
      const leaderAddr = await electedLeader("scheduler");
      assert.ok(leaderAddr, "no scheduler leader in etcd");
      const leader = processAt(c.schedulers, leaderAddr);
      const other = c.schedulers.find((s) => s !== leader);
      assert.ok(other?.running, "the other scheduler is not running");
      const otherAddr = advertised(other);
      assert.ok(otherAddr);

      const watch = new ContainerWatch(APP_ID, { max: 3, required: ids });
      try {
        const killedAt = Date.now();
        leader.kill("SIGKILL");
        assert.equal(await withTimeout("the scheduler leader to exit", leader.exited, 10_000), null);

        await waitFor(
          `the scheduler election key to move from ${leaderAddr} to ${otherAddr}`,
          async () => (await electedLeader("scheduler")) === otherAddr,
          { timeoutMs: CONVERGE_MS, intervalMs: 100 },
        );
        const electedMs = Date.now() - killedAt;

        // The dead leader first: the CLI must move on to the new leader by itself.
        watch.max = 4;
        const scaleStarted = Date.now();
        const scaled = await c.cli(["app", "scale", APP_ID, "4", "--json"], {
          env: { DROVER_SCHEDULERS: `${leaderAddr},${otherAddr}` },
        });
        assert.equal(scaled.code, 0, `app scale failed: ${scaled.stderr}`);
        const scaledMs = Date.now() - scaleStarted;
        const app = JSON.parse(scaled.stdout) as { id: string; instances: number };
        assert.equal(app.id, `/${APP_ID}`);
        assert.equal(app.instances, 4);

        const four = await waitConverged(APP_ID, 4, "4 running tasks after the scale");
        const runningMs = Date.now() - killedAt;
        for (const id of ids) assert.ok(four.includes(id), `deployed task ${id} was replaced by the scale`);
        console.log(
          `[failover] scheduler leader ${leaderAddr} killed; ${otherAddr} elected after ${electedMs} ms; ` +
            `'app scale' answered in ${scaledMs} ms; 4 running after ${runningMs} ms`,
        );

        watch.required = new Set(four);
        await watch.observe(OBSERVE_MS);
        const final = await waitConverged(APP_ID, 4, "4 running tasks after the observation window");
        assert.deepEqual(final, four, "the tasks changed during the observation window");
      } finally {
        await watch.stop();
      }
      watch.assertClean("scheduler failover");

      const verify = await c.cli(["admin", "verify-log", "--json"]);
      assert.equal(verify.code, 0, `admin verify-log failed: ${verify.stdout} ${verify.stderr}`);
      const report = JSON.parse(verify.stdout) as { ok: boolean; events: number };
      assert.equal(report.ok, true);
      assert.ok(report.events > 0);
    }),
);

test("fencing: a deposed leader's commit is rejected by etcd, the new leader's commit succeeds", {
  timeout: 120_000,
}, async () => {
  const endpoint = current().infra.etcdEndpoint;
  const service = `fencing-it-${randomBytes(4).toString("hex")}`;
  const log = createLogger("failover-test", "warn");
  const clientA = connectEtcd([endpoint]);
  const clientB = connectEtcd([endpoint]);
  const storeA = new EventStore(clientA);
  const storeB = new EventStore(clientB);
  const electionA = new LeaderElection(clientA, service, 3, log);
  const electionB = new LeaderElection(clientB, service, 3, log);
  let leadershipA: Leadership | undefined;
  let leadershipB: Leadership | undefined;
  try {
    leadershipA = await withTimeout("A to lead", electionA.campaign("candidate-a"), 30_000);
    assert.ok(leadershipA.isLeader());
    assert.equal(await electionA.leader(), "candidate-a");

    // Lease expiry, as seen from etcd: A's key disappears while A still believes it leads.
    const deleted = await etcdClient().delete().key(leadershipA.key).exec();
    assert.equal(deleted.deleted, "1", "A's election key was not there to delete");

    leadershipB = await withTimeout("B to lead", electionB.campaign("candidate-b"), 30_000);
    assert.ok(leadershipB.isLeader());
    assert.equal(await electionB.leader(), "candidate-b");
    assert.notEqual(leadershipB.createRevision, leadershipA.createRevision);

    const appId = `fenced-${randomBytes(3).toString("hex")}`;
    const spec: AppSpec = AppSpecSchema.parse({
      id: appId,
      container: { docker: { image: "drover/busybox:1" } },
      cmd: "sleep 100000",
      instances: 0, // never launched, whoever reads it
      cpus: 0.1,
      mem: 32,
    });
    const change = () => ({
      def: AppAggregate,
      id: appId,
      expectedVersion: 0,
      expectedModRevision: "0",
      state: undefined,
      events: [{ type: "AppCreated" as const, spec }],
    });

    await assert.rejects(storeA.commit(leadershipA, [change()], Date.now()), FencedError);
    await withTimeout("A's leadership.lost", leadershipA.lost, 10_000);
    assert.equal(leadershipA.isLeader(), false);
    // A's view from before it noticed: etcd itself must refuse the write (the fence compare fails).
    const stale: Leadership = { ...leadershipA, isLeader: () => true };
    await assert.rejects(storeA.commit(stale, [change()], Date.now()), FencedError);
    assert.equal((await storeB.get(AppAggregate, appId)).version, 0, "a fenced commit wrote the app");

    const res = await storeB.commit(leadershipB, [change()], Date.now());
    assert.equal(res.results[0]?.version, 1);
    const stored = await storeB.get(AppAggregate, appId);
    assert.equal(stored.version, 1);
    assert.deepEqual(stored.state?.spec, spec);
    assert.ok(leadershipB.isLeader(), "B lost its leadership");

    const report = await verifyLog(storeB);
    assert.deepEqual(report.mismatches, []);
    assert.equal(report.ok, true);
  } finally {
    await leadershipB?.resign().catch(() => undefined);
    await leadershipA?.resign().catch(() => undefined);
    clientA.close();
    clientB.close();
  }
});
