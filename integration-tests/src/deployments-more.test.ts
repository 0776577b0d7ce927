/**
 * More deployments on a real cluster (2 masters, 2 schedulers, 1 agent), 4 instances of busybox
 * httpd with an HTTP health check under 1/1, the healthy count sampled every 200 ms throughout
 * (deployment-helpers.ts); each test prints the lowest healthy count it saw:
 *
 * - a canary of 1 (`app update --canary 1`): one new instance next to the 4 old ones, staying so;
 *   `deployment promote` goes on and ends with 4 new instances;
 * - a canary of 1 cancelled: the rollback kills the canary and keeps the 4 old instances;
 * - a progress deadline (label DROVER_PROGRESS_DEADLINE_SECONDS=8) on a version never healthy: the
 *   deployment fails with the reason, is rolled back automatically (old instances kept); prints the
 *   time from the deadline passing to the rollback finished;
 * - cancel scope: two apps upgrading, one stuck; cancelling the stuck one's deployment rolls back
 *   only that app while the other's deployment goes on and succeeds;
 * - SIGKILL of the master leader mid-upgrade, and an agent restart mid-upgrade (1/0.25: one new
 *   instance at a time, so launches go on after the disruption): the deployment completes, healthy never below 4, no task id twice (tasks or containers).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { LeaderClient } from "@drover/common";
import { SchedulerClient } from "@drover/proto";
import Docker from "dockerode";
import { Etcd3 } from "etcd3";
import { appDef, DeploymentFixture, electedLeader } from "./deployment-helpers.js";
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

const f = new DeploymentFixture(
  current,
  () => {
    assert.ok(scheduler, "no scheduler client");
    return scheduler;
  },
  () => dir,
);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-deployments-more-"));
  cluster = await startCluster({
    masters: 2,
    schedulers: 2,
    agents: 1,
    leaderTtlSeconds: 3,
    env: { DROVER_AGENT_PORTS: "31400-31460", DROVER_AGENT_CPUS: "8" },
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

/** Starts a canary of 1 and waits until it is healthy next to the 4 old instances (and stays so). */
async function canaryOf1(id: string) {
  await f.addHealthy(appDef(id, "1"));
  const s = f.sampler(id);
  const oldIds = (await f.snapshot(id)).ids;
  const depId = await f.updateDetached(appDef(id, "2"), ["--canary", "1"]);
  await waitFor(
    "the canary healthy next to the old instances",
    async () => {
      const a = (await f.deployment(depId)).apps[0];
      return a?.newHealthy === 1 && a.old === 4;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  // It stays a canary: no more new instances, no old one killed, sampled over 3 s.
  for (const until = Date.now() + 3000; Date.now() < until; ) {
    const a = (await f.deployment(depId)).apps[0];
    assert.deepEqual([a?.new, a?.old], [1, 4], "the canary stays one new instance next to the 4 old ones");
    await new Promise((r) => setTimeout(r, 200));
  }
  const d = await f.deployment(depId);
  assert.equal(d.state, "running");
  assert.equal(d.canaryInstances, 1);
  assert.match(d.waitingFor, /waiting for promote/);
  assert.equal(d.apps[0]?.new, 1);
  assert.equal(d.apps[0]?.old, 4);
  const now = await f.snapshot(id);
  assert.equal(now.active, 5);
  for (const t of oldIds) assert.ok(now.ids.includes(t), `old task ${t} still runs`);
  const shown = await current().cli(["deployment", "show", depId]);
  assert.match(shown.stdout, /canary of 1: promote or cancel/);
  return { depId, oldIds, s };
}

test("a canary of 1 promoted: 1 new next to 4 old until promote, then the rolling upgrade ends with 4 new", () =>
  withLogs(async () => {
    const id = "/canary-promoted";
    const { depId, oldIds, s } = await canaryOf1(id);
    const p = await current().cli(["deployment", "promote", depId], { timeoutMs: 120_000 });
    assert.equal(p.code, 0, `${p.stdout} ${p.stderr}`);
    assert.match(p.stdout.trim().split("\n").at(-1) ?? "", /— succeeded$/);
    const seen = await s.stop();
    const end = await f.snapshot(id);
    assert.equal(end.healthy, 4);
    assert.equal(end.active, 4);
    assert.ok(end.ids.every((t) => !oldIds.includes(t)));
    assert.deepEqual(s.duplicates, []);
    assert.ok(seen.minHealthy >= 4, `lowest healthy ${seen.minHealthy} < 4`);
    console.log(
      `[deployments-more] canary promoted: lowest healthy ${seen.minHealthy} (minimum 4), most tasks ${seen.maxActive}, ${seen.samples} samples`,
    );
    await f.remove(id);
  }));

test("a canary of 1 cancelled: rolled back, the canary killed and the 4 old instances kept", () =>
  withLogs(async () => {
    const id = "/canary-cancelled";
    const { depId, oldIds, s } = await canaryOf1(id);
    const c = await current().cli(["deployment", "cancel", depId]);
    assert.equal(c.code, 0, c.stderr);
    const rollbackId = /rolling back with deployment ([0-9a-f-]{36})/.exec(c.stdout)?.[1];
    assert.ok(rollbackId, c.stdout);
    await f.ended(rollbackId, "succeeded");
    assert.equal((await f.deployment(depId)).state, "rolled-back");
    await waitFor("only the old instances", async () => (await f.snapshot(id)).active === 4, {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    const seen = await s.stop();
    const end = await f.snapshot(id);
    assert.deepEqual([...end.ids].sort(), [...oldIds].sort(), "the old instances are the ones left");
    assert.equal(end.healthy, 4);
    assert.deepEqual(s.duplicates, []);
    assert.ok(seen.minHealthy >= 4, `lowest healthy ${seen.minHealthy} < 4`);
    console.log(
      `[deployments-more] canary cancelled: lowest healthy ${seen.minHealthy} (minimum 4), most tasks ${seen.maxActive}, ${seen.samples} samples`,
    );
    await f.remove(id);
  }));

test("a progress deadline on a version never healthy: failed with the reason, rolled back automatically", () =>
  withLogs(async () => {
    const id = "/deadline";
    const labels = { DROVER_PROGRESS_DEADLINE_SECONDS: "8" };
    await f.addHealthy(appDef(id, "1", { labels }));
    const oldIds = (await f.snapshot(id)).ids;
    const s = f.sampler(id);
    const depId = await f.updateDetached(appDef(id, "2", { labels, path: "/missing" }));
    const failed = await f.ended(depId, "failed", 90_000);
    assert.match(
      failed.reason,
      /no progress for 8 s \(DROVER_PROGRESS_DEADLINE_SECONDS\); it waited for: .*health/,
    );
    assert.ok(failed.rollbackId, "a rollback deployment");
    const rollback = await f.ended(failed.rollbackId, "succeeded");
    assert.equal(rollback.kind, "rollback");
    const seen = await s.stop();
    const end = await f.snapshot(id);
    assert.equal(end.healthy, 4);
    assert.deepEqual([...end.ids].sort(), [...oldIds].sort(), "the old instances are the ones left");
    assert.ok(seen.minHealthy >= 4, `lowest healthy ${seen.minHealthy} < 4`);
    // No new instance ever became healthy: the deadline passed 8 s after the deployment started.
    const deadlineAt = failed.createdAtMs + 8000;
    console.log(`[deployments-more] deadline: failed with: ${failed.reason}`);
    console.log(
      `[deployments-more] deadline: failed ${failed.updatedAtMs - deadlineAt} ms after the deadline passed, ` +
        `rollback finished ${rollback.updatedAtMs - deadlineAt} ms after it; lowest healthy ${seen.minHealthy} (minimum 4)`,
    );
    await f.remove(id);
  }));

test("cancel scope: cancelling one app's stuck deployment rolls back only that app; the other's deployment succeeds", () =>
  withLogs(async () => {
    const stuck = "/scope-stuck";
    const other = "/scope-other";
    await f.addHealthy(appDef(stuck, "1"));
    await f.addHealthy(appDef(other, "1"));
    const stuckOld = (await f.snapshot(stuck)).ids;
    const otherOld = (await f.snapshot(other)).ids;
    const s1 = f.sampler(stuck);
    const s2 = f.sampler(other);
    const stuckDep = await f.updateDetached(appDef(stuck, "2", { path: "/missing" }));
    const otherDep = await f.updateDetached(appDef(other, "2"));
    await waitFor(
      "the stuck deployment to say which check fails",
      async () => /health/.test((await f.deployment(stuckDep)).waitingFor),
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    const c = await current().cli(["deployment", "cancel", stuckDep]);
    assert.equal(c.code, 0, c.stderr);
    const rollbackId = /rolling back with deployment ([0-9a-f-]{36})/.exec(c.stdout)?.[1];
    assert.ok(rollbackId, c.stdout);
    const rollback = await f.ended(rollbackId, "succeeded");
    assert.deepEqual(
      rollback.apps.map((a) => a.appId),
      [stuck],
    );
    const done = await f.ended(otherDep, "succeeded");
    assert.equal(done.rollbackId, "");
    const seen1 = await s1.stop();
    const seen2 = await s2.stop();
    const stuckEnd = await f.snapshot(stuck);
    assert.deepEqual([...stuckEnd.ids].sort(), [...stuckOld].sort());
    const otherEnd = await f.snapshot(other);
    assert.equal(otherEnd.healthy, 4);
    assert.ok(
      otherEnd.ids.every((t) => !otherOld.includes(t)),
      "the other app runs its new version",
    );
    assert.ok(seen1.minHealthy >= 4 && seen2.minHealthy >= 4, `${seen1.minHealthy} ${seen2.minHealthy}`);
    console.log(
      `[deployments-more] cancel scope: lowest healthy ${seen1.minHealthy} (stuck app, rolled back) and ${seen2.minHealthy} (other app, upgraded); minimum 4`,
    );
    await f.remove(stuck);
    await f.remove(other);
  }));

/** Upgrades 4 instances and does `disrupt` half way; the deployment must complete, healthy never below 4. */
async function upgradeThrough(id: string, what: string, disrupt: () => Promise<void>): Promise<void> {
  // 1/0.25: at most 5 instances, so the new ones start one at a time, before and after the disruption.
  await f.addHealthy(appDef(id, "1", { strategy: [1, 0.25] }));
  const s = f.sampler(id);
  const started = Date.now();
  const depId = await f.updateDetached(appDef(id, "2", { strategy: [1, 0.25] }));
  await waitFor(
    "the upgrade half way (a new task healthy, old ones left)",
    async () => {
      const a = (await f.deployment(depId)).apps[0];
      return a !== undefined && a.newHealthy >= 1 && a.old >= 2;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  const disruptedAt = Date.now();
  await disrupt();
  await f.ended(depId, "succeeded", 150_000);
  const ms = Date.now() - started;
  const afterMs = Date.now() - disruptedAt;
  const seen = await s.stop();
  const end = await f.snapshot(id);
  assert.equal(end.healthy, 4);
  assert.equal(end.active, 4);
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
  assert.ok(seen.maxActive <= 5, `most tasks ${seen.maxActive} > 5`);
  console.log(
    `[deployments-more] ${what}: upgrade of 4 succeeded ${ms} ms after the update, ${afterMs} ms after the ${what}; ` +
      `lowest healthy ${seen.minHealthy} (minimum 4), most tasks ${seen.maxActive}, ${seen.samples} samples, ${seen.failed} reads failed`,
  );
  await f.remove(id);
}

test("SIGKILL of the master leader mid-upgrade: the deployment completes, healthy never below 4, no task twice", () =>
  withLogs(async () => {
    assert.ok(etcd);
    const e = etcd;
    await upgradeThrough("/master-kill", "master leader SIGKILL", async () => {
      const addr = await electedLeader(e, "master");
      const leader = current().masters.find((p) => p.env.DROVER_MASTER_ADVERTISE === addr);
      assert.ok(leader, `master leader ${addr}`);
      leader.kill("SIGKILL");
      await waitFor("another master elected", async () => (await electedLeader(e, "master")) !== addr, {
        timeoutMs: 30_000,
        intervalMs: 200,
      });
    });
  }));

test("an agent restart mid-upgrade: the deployment completes, healthy never below 4, no task twice", () =>
  withLogs(async () => {
    await upgradeThrough("/agent-restart", "agent restart", async () => {
      const agent = current().agents[0];
      assert.ok(agent);
      await current().restart(agent);
    });
  }));
