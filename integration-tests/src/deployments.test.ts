/**
 * Deployments on a real cluster (1 master, 2 schedulers, 1 agent): rolling upgrades of 4 instances
 * of busybox httpd with an HTTP health check (interval 1 s, grace 5 s, 3 failures), the healthy and
 * total counts sampled every 200 ms through the scheduler's ListTasks.
 *
 * - 1/1, 0.5/0 and 0/0: `drover app update` (followed, plain lines) exits 0; the healthy count never
 *   went below ceil(4 × minimumHealthCapacity), the active count never above the maximum; every
 *   task runs the new version afterwards; the same for 10 instances under 1/1. Prints each
 *   upgrade's time (next to the time the same instances took to start) and lowest healthy count.
 * - A version whose health check never passes (1/1): the deployment stays running, says what fails,
 *   the old tasks are untouched; `deployment cancel` rolls back (a new deployment that succeeds);
 *   again, `deployment cancel --force` just stops it and the old tasks stay.
 * - SIGKILL of the scheduler leader mid-upgrade: the other scheduler resumes the deployment from
 *   etcd, it succeeds, healthy never below the minimum, no task id twice (tasks or containers).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { LeaderClient } from "@drover/common";
import { type Deployment, fromWireState, SchedulerClient } from "@drover/proto";
import Docker from "dockerode";
import { Etcd3 } from "etcd3";
import { type Cluster, startCluster, waitFor, withClusterLogs } from "./harness/index.js";

const docker = new Docker({ socketPath: "/var/run/docker.sock" });
let cluster: Cluster | undefined;
let scheduler: LeaderClient<SchedulerClient> | undefined;
let etcd: Etcd3 | undefined;
let dir = "";

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

function sched(): LeaderClient<SchedulerClient> {
  assert.ok(scheduler, "no scheduler client");
  return scheduler;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-deployments-"));
  cluster = await startCluster({
    masters: 1,
    schedulers: 2,
    agents: 1,
    leaderTtlSeconds: 3,
    env: { DROVER_AGENT_PORTS: "31300-31360", DROVER_AGENT_CPUS: "8" },
  });
  scheduler = new LeaderClient(SchedulerClient, cluster.env.DROVER_SCHEDULERS?.split(",") ?? []);
  etcd = new Etcd3({ hosts: cluster.infra.etcdEndpoint, dialTimeout: 3000 });
});

after(async () => {
  scheduler?.close();
  etcd?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  await cluster?.stop();
});

const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

function appDef(id: string, strategy: [number, number], v: string, path = "/health", instances = 4) {
  return {
    id,
    cmd: "mkdir -p /www && echo ok > /www/health && exec httpd -f -p $PORT0 -h /www",
    cpus: 0.05,
    mem: 16,
    instances,
    env: { V: v },
    upgradeStrategy: { minimumHealthCapacity: strategy[0], maximumOverCapacity: strategy[1] },
    healthChecks: [
      {
        protocol: "HTTP",
        path,
        portIndex: 0,
        intervalSeconds: 1,
        timeoutSeconds: 1,
        gracePeriodSeconds: 5,
        maxConsecutiveFailures: 3,
      },
    ],
  };
}

async function writeDef(def: Record<string, unknown>): Promise<string> {
  const file = join(dir, `${String(def.id)}-${Date.now()}.json`);
  await writeFile(file, JSON.stringify(def));
  return file;
}

interface Snapshot {
  ids: string[];
  active: number;
  healthy: number;
  versions: string[];
}

async function snapshot(appId: string): Promise<Snapshot> {
  const res = await sched().call((c) => c.listTasks.bind(c), {
    appId,
    includeTerminal: false,
    pageSize: 0,
    pageToken: "",
  });
  const states = res.tasks.map((t) => ({
    id: t.info?.taskId ?? "",
    state: t.status ? fromWireState(t.status.state) : undefined,
    healthy: t.status?.health?.healthy === true,
    version: t.info?.run?.appVersion ?? "",
  }));
  return {
    ids: states.map((s) => s.id),
    active: states.length,
    healthy: states.filter((s) => s.state === "TASK_RUNNING" && s.healthy).length,
    versions: states.map((s) => s.version),
  };
}

/** Samples the app's counts every 200 ms until stopped (a failed read, e.g. during a failover, is skipped). */
function sampler(appId: string) {
  let stop = false;
  const seen = { minHealthy: Number.POSITIVE_INFINITY, maxActive: 0, samples: 0, failed: 0 };
  const duplicates: string[] = [];
  const loop = (async () => {
    while (!stop) {
      try {
        const s = await snapshot(appId);
        seen.samples++;
        seen.minHealthy = Math.min(seen.minHealthy, s.healthy);
        seen.maxActive = Math.max(seen.maxActive, s.active);
        if (new Set(s.ids).size !== s.ids.length) duplicates.push(...s.ids);
      } catch {
        seen.failed++;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    seen,
    duplicates,
    async stop() {
      stop = true;
      await loop;
      return seen;
    },
  };
}

/** Adds the app and waits until all its instances are healthy; returns how long that took. */
async function addHealthy(def: Record<string, unknown>): Promise<number> {
  const started = Date.now();
  const n = Number(def.instances);
  const res = await current().cli(["app", "add", await writeDef(def)]);
  assert.equal(res.code, 0, res.stderr);
  await waitFor(
    `${String(def.id)}: ${n} healthy`,
    async () => (await snapshot(String(def.id))).healthy === n,
    {
      timeoutMs: 90_000,
      intervalMs: 200,
    },
  );
  return Date.now() - started;
}

async function deployment(id: string): Promise<Deployment> {
  const d = (await sched().call((c) => c.getDeployment.bind(c), { id })).deployment;
  assert.ok(d, `deployment ${id}`);
  return d;
}

async function remove(appId: string): Promise<void> {
  const res = await current().cli(["app", "remove", appId]);
  assert.equal(res.code, 0, res.stderr);
}

for (const [n, min, over, minHealthy, maxActive] of [
  [4, 1, 1, 4, 8],
  [4, 0.5, 0, 2, 4],
  [4, 0, 0, 0, 4],
  [10, 1, 1, 10, 20],
] as const) {
  test(`rolling upgrade of ${n} under ${min}/${over}: healthy never below ${minHealthy}, never more than ${maxActive} tasks`, () =>
    withLogs(async () => {
      const id = `/web-${n}-${String(min).replace(".", "")}-${over}`;
      const startMs = await addHealthy(appDef(id, [min, over], "1", "/health", n));
      const before = await snapshot(id);
      const s = sampler(id);
      const started = Date.now();
      const res = await current().cli(
        ["app", "update", id, await writeDef(appDef(id, [min, over], "2", "/health", n))],
        {
          timeoutMs: 180_000,
        },
      );
      const ms = Date.now() - started;
      const seen = await s.stop();
      assert.equal(res.code, 0, `app update: ${res.stdout} ${res.stderr}`);
      const lines = res.stdout.trim().split("\n");
      assert.match(lines[0] ?? "", /^app .* updated; deployment [0-9a-f-]{36}$/);
      assert.ok(
        lines.some((l) => /^deployment [0-9a-f-]{36}: \/web\S* old \d+ new \d+ healthy \d+\/\d+ — /.test(l)),
        res.stdout,
      );
      assert.match(lines.at(-1) ?? "", /— succeeded$/);
      const after = await snapshot(id);
      assert.equal(after.healthy, n);
      assert.equal(after.active, n);
      assert.ok(
        after.ids.every((t) => !before.ids.includes(t)),
        "every instance was replaced",
      );
      assert.equal(new Set(after.versions).size, 1);
      assert.ok(seen.samples > 5, `samples: ${seen.samples}`);
      assert.ok(seen.minHealthy >= minHealthy, `lowest healthy ${seen.minHealthy} < ${minHealthy}`);
      assert.ok(seen.maxActive <= maxActive, `most tasks ${seen.maxActive} > ${maxActive}`);
      assert.deepEqual(s.duplicates, []);
      console.log(
        `[deployments] ${min}/${over}: ${n} instances upgraded in ${ms} ms (update to success, CLI following; ` +
          `adding them took ${startMs} ms to all healthy); ` +
          `lowest healthy ${seen.minHealthy} (minimum ${minHealthy}), most tasks ${seen.maxActive} (max ${maxActive}), ${seen.samples} samples`,
      );
      await remove(id);
    }));
}

test("a version that never turns healthy: stuck with the reason, old tasks untouched; cancel rolls back, cancel --force stops", () =>
  withLogs(async () => {
    const id = "/stuck";
    await addHealthy(appDef(id, [1, 1], "1"));
    const old = await snapshot(id);
    const s = sampler(id);
    for (const force of [false, true]) {
      const up = await current().cli([
        "app",
        "update",
        id,
        await writeDef(appDef(id, [1, 1], force ? "3" : "2", "/missing")),
        "--detach",
      ]);
      assert.equal(up.code, 0, up.stderr);
      const depId = /deployment ([0-9a-f-]{36})/.exec(up.stdout)?.[1];
      assert.ok(depId, up.stdout);
      const stuck = await waitFor(
        "the deployment to say which health check fails",
        async () => {
          const d = await deployment(depId);
          return d.state === "running" && /health/.test(d.waitingFor) && /404|failing/.test(d.waitingFor)
            ? d
            : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 300 },
      );
      console.log(`[deployments] stuck deployment says: ${stuck.waitingFor}`);
      const shown = await current().cli(["deployment", "show", depId]);
      assert.match(shown.stdout, /waiting for: .*health/);
      const listed = await current().cliJson<{ id: string }[]>(["deployment", "list", "--json"]);
      assert.ok(listed.some((d) => d.id === depId));
      const now = await snapshot(id);
      for (const t of old.ids) assert.ok(now.ids.includes(t), `old task ${t} still runs`);
      // The update of a locked app is refused, naming the deployment.
      const refused = await current().cli(["app", "update", id, await writeDef(appDef(id, [1, 1], "9"))]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, new RegExp(`locked by deployment ${depId}`));
      if (!force) {
        const c = await current().cli(["deployment", "cancel", depId]);
        assert.equal(c.code, 0, c.stderr);
        const rollbackId = /rolling back with deployment ([0-9a-f-]{36})/.exec(c.stdout)?.[1];
        assert.ok(rollbackId, c.stdout);
        await waitFor(
          "the rollback to succeed",
          async () => (await deployment(rollbackId)).state === "succeeded",
          {
            timeoutMs: 120_000,
            intervalMs: 300,
          },
        );
        assert.equal((await deployment(depId)).state, "rolled-back");
        const back = await snapshot(id);
        assert.equal(back.healthy, 4);
        old.ids = back.ids;
      } else {
        const c = await current().cli(["deployment", "cancel", depId, "--force"]);
        assert.equal(c.code, 0, c.stderr);
        assert.equal((await deployment(depId)).state, "cancelled");
        await waitFor(
          "only the old tasks left",
          async () => {
            const n = await snapshot(id);
            return n.active === 4 && old.ids.every((t) => n.ids.includes(t));
          },
          { timeoutMs: 60_000, intervalMs: 300 },
        );
      }
    }
    const seen = await s.stop();
    assert.ok(seen.minHealthy >= 4, `lowest healthy ${seen.minHealthy}`);
    console.log(`[deployments] stuck/rollback/cancel: lowest healthy ${seen.minHealthy} (minimum 4)`);
    await remove(id);
  }));

async function electedScheduler(): Promise<string | undefined> {
  assert.ok(etcd);
  const res = await etcd
    .getAll()
    .prefix("/drover/election/scheduler/")
    .sort("Create", "Ascend")
    .limit(1)
    .exec();
  return res.kvs[0]?.value.toString();
}

test("SIGKILL of the scheduler leader mid-upgrade: the new leader completes the deployment, healthy never below 4, no task twice", () =>
  withLogs(async () => {
    const id = "/failover";
    await addHealthy(appDef(id, [1, 1], "1"));
    const s = sampler(id);
    const started = Date.now();
    const up = await current().cli([
      "app",
      "update",
      id,
      await writeDef(appDef(id, [1, 1], "2")),
      "--detach",
    ]);
    assert.equal(up.code, 0, up.stderr);
    const depId = /deployment ([0-9a-f-]{36})/.exec(up.stdout)?.[1];
    assert.ok(depId, up.stdout);
    await waitFor(
      "the upgrade half way (a new task healthy, old ones left)",
      async () => {
        const a = (await deployment(depId)).apps[0];
        return a !== undefined && a.newHealthy >= 1 && a.old >= 2;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const leaderAddr = await electedScheduler();
    const leader = current().schedulers.find((p) => p.env.DROVER_SCHEDULER_ADVERTISE === leaderAddr);
    assert.ok(leader, `scheduler leader ${leaderAddr}`);
    leader.kill("SIGKILL");
    const killedAt = Date.now();
    const d = await waitFor(
      "the deployment to succeed under the new leader",
      async () => {
        const x = await deployment(depId).catch(() => undefined);
        return x?.state === "succeeded" ? x : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 300 },
    );
    const ms = Date.now() - started;
    const doneAfterKillMs = Date.now() - killedAt;
    const seen = await s.stop();
    assert.equal(d.state, "succeeded");
    assert.notEqual(await electedScheduler(), leaderAddr);
    const after = await snapshot(id);
    assert.equal(after.healthy, 4);
    assert.equal(after.active, 4);
    assert.deepEqual(s.duplicates, []);
    const containers = await docker.listContainers({
      filters: { label: [`drover.app_id=${id}`, `drover.test.cluster=${current().id}`], status: ["running"] },
    });
    const taskIds = containers.map((c) => c.Labels["drover.task_id"] ?? "");
    assert.equal(
      new Set(taskIds).size,
      taskIds.length,
      `a task id twice among containers: ${taskIds.join(",")}`,
    );
    assert.equal(taskIds.length, 4);
    assert.ok(seen.minHealthy >= 4, `lowest healthy ${seen.minHealthy} < 4`);
    console.log(
      `[deployments] failover: upgrade of 4 succeeded ${ms} ms after the update, ${doneAfterKillMs} ms after the SIGKILL; ` +
        `lowest healthy ${seen.minHealthy} (minimum 4), most tasks ${seen.maxActive}, ${seen.samples} samples, ${seen.failed} reads failed during the failover`,
    );
    await remove(id);
  }));
