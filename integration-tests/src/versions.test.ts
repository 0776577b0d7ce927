/**
 * App versions and the launch backoff across a scheduler failover, on a real cluster (1 master, 2
 * schedulers, 1 agent; the schedulers keep at most 3 versions per app):
 * - every change is a new version (Marathon's ISO-8601 with ms); a scale moves lastScalingAt and
 *   keeps lastConfigChangeAt, a config change moves both; `app versions` lists them newest first,
 *   `app show --version` gives an earlier definition; the cap drops the oldest; each task carries
 *   the version it runs (task list, MARATHON_APP_VERSION);
 * - an app whose command exits 1 at once backs off; after SIGKILL of the scheduler leader the new
 *   leader keeps the backed-off delay (read from etcd): no launch before it ends, one after.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
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

const MAX_VERSIONS = 3;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const docker = new Docker({ socketPath: "/var/run/docker.sock" });
let cluster: Cluster | undefined;
let etcd: Etcd3 | undefined;
let dir = "";

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-versions-"));
  cluster = await startCluster({
    masters: 1,
    schedulers: 2,
    agents: 1,
    env: { DROVER_SCHEDULER_MAX_APP_VERSIONS: String(MAX_VERSIONS) },
  });
  etcd = new Etcd3({ hosts: cluster.infra.etcdEndpoint, dialTimeout: 3000 });
});

after(async () => {
  etcd?.close();
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

async function appFile(name: string, def: Record<string, unknown>): Promise<string> {
  const file = join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify(def), "utf8");
  return file;
}

interface Shown {
  id: string;
  instances: number;
  cmd?: string;
  env?: Record<string, string>;
  version: string;
  versionInfo: { lastScalingAt: string; lastConfigChangeAt: string };
}

interface TaskJson {
  taskId: string;
  appId: string;
  state: string;
  appVersion?: string;
  createdAtMs: number;
  updatedAtMs: number;
}

const show = (id: string, ...extra: string[]) =>
  current().cliJson<Shown>(["app", "show", id, ...extra, "--json"]);
const versions = (id: string) => current().cliJson<string[]>(["app", "versions", id, "--json"]);

async function running(id: string, n: number): Promise<TaskJson[]> {
  return waitFor(
    `${n} tasks of ${id} RUNNING`,
    async () => {
      const all = await current().cliJson<TaskJson[]>(["task", "list", "--app", id, "--json"]);
      const run = all.filter((t) => t.state === "TASK_RUNNING");
      return run.length === n ? run : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
}

async function containerEnv(taskId: string): Promise<Record<string, string>> {
  const [c] = await docker.listContainers({ filters: { label: [`drover.task_id=${taskId}`] } });
  assert.ok(c, `a container of ${taskId}`);
  const info = await docker.getContainer(c.Id).inspect();
  return Object.fromEntries(
    (info.Config.Env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]),
  );
}

test(
  "versions: listed after create, scale and update; a scale keeps lastConfigChangeAt; earlier ones retrievable; the cap holds",
  {
    timeout: 240_000,
  },
  () =>
    withLogs(async () => {
      const c = current();
      const id = "/ver/web";
      const def = { id, cmd: "sleep 100000", instances: 1, cpus: 0.05, mem: 16 };
      const added = await c.cli(["app", "add", await appFile("web", def)]);
      assert.equal(added.code, 0, added.stderr);
      const s1 = await show(id);
      const v1 = s1.version;
      assert.match(v1, ISO_MS);
      assert.deepEqual(s1.versionInfo, { lastScalingAt: v1, lastConfigChangeAt: v1 });
      // Marathon's field order: version and versionInfo after user, before killSelection.
      const keys = Object.keys(s1);
      assert.ok(keys.indexOf("version") < keys.indexOf("killSelection"), keys.join(","));
      assert.equal(keys.indexOf("versionInfo"), keys.indexOf("version") + 1, keys.join(","));
      const [first] = await running(id, 1);
      assert.ok(first);
      assert.equal(first.appVersion, v1, "the task runs the version it was launched for");
      assert.equal((await containerEnv(first.taskId)).MARATHON_APP_VERSION, v1);

      // A scale: a new version, lastConfigChangeAt stays.
      const scaled = await c.cli(["app", "scale", id, "2"]);
      assert.equal(scaled.code, 0, scaled.stderr);
      const s2 = await show(id);
      const v2 = s2.version;
      assert.ok(v2 > v1, `${v2} after ${v1}`);
      assert.deepEqual(s2.versionInfo, { lastScalingAt: v2, lastConfigChangeAt: v1 });
      const two = await running(id, 2);
      const added2 = two.find((t) => t.taskId !== first.taskId);
      assert.equal(added2?.appVersion, v2, "the instance the scale added runs v2");
      const table = await c.cli(["task", "list", "--app", id]);
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout.split("\n")[0] ?? "", /VERSION/);
      assert.ok(table.stdout.includes(v1) && table.stdout.includes(v2), table.stdout);

      // An identical definition is no change; a new command is a config change.
      const same = await c.cli(["app", "update", id, await appFile("web-same", { ...def, instances: 2 })]);
      assert.equal(same.code, 0, same.stderr);
      assert.equal((await show(id)).version, v2, "an identical definition made a version");
      const changed = await c.cli([
        "app",
        "update",
        id,
        await appFile("web-v3", { ...def, instances: 2, env: { V: "3" } }),
      ]);
      assert.equal(changed.code, 0, changed.stderr);
      const s3 = await show(id);
      const v3 = s3.version;
      assert.ok(v3 > v2);
      assert.deepEqual(s3.versionInfo, { lastScalingAt: v3, lastConfigChangeAt: v3 });

      assert.deepEqual(await versions(id), [v3, v2, v1]);
      const old1 = await show(id, "--version", v1);
      assert.equal(old1.version, v1);
      assert.equal(old1.instances, 1);
      assert.equal(old1.env, undefined);
      const old2 = await show(id, "--version", v2);
      assert.equal(old2.instances, 2);
      assert.deepEqual(old2.versionInfo, { lastScalingAt: v2, lastConfigChangeAt: v1 });
      assert.deepEqual((await show(id, "--version", v3)).env, { V: "3" });
      const listed = await c.cli(["app", "versions", id]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, new RegExp(`${v3.replace(/[.]/g, "\\.")}\\s+\\(current\\)`));

      // Two more scales: only the newest 3 are kept.
      for (const n of [3, 1]) {
        const r = await c.cli(["app", "scale", id, String(n)]);
        assert.equal(r.code, 0, r.stderr);
      }
      const kept = await versions(id);
      assert.equal(kept.length, MAX_VERSIONS, JSON.stringify(kept));
      assert.equal(kept[2], v3);
      assert.deepEqual((await show(id)).versionInfo.lastConfigChangeAt, v3);
      const gone = await c.cli(["app", "show", id, "--version", v1]);
      assert.notEqual(gone.code, 0, "a dropped version was still served");
      assert.match(gone.stderr, /not found|does not exist/i);
      const stored = await etcd?.getAll().prefix("/drover/app-versions/ver_web/").keys();
      assert.equal(stored?.length, MAX_VERSIONS - 1, `stored: ${JSON.stringify(stored)}`);
      const bad = await c.cli(["app", "show", id, "--version", "yesterday"]);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /version/);

      const verify = await c.cli(["admin", "verify-log", "--json"]);
      assert.equal(verify.code, 0, `admin verify-log: ${verify.stdout} ${verify.stderr}`);

      const removed = await c.cli(["app", "remove", id]);
      assert.equal(removed.code, 0, removed.stderr);
      assert.deepEqual(await etcd?.getAll().prefix("/drover/app-versions/ver_web/").keys(), []);
    }),
);

/** The value (advertised address) of the scheduler leader's election key. */
async function electedLeader(): Promise<string | undefined> {
  assert.ok(etcd);
  const res = await etcd
    .getAll()
    .prefix("/drover/election/scheduler/")
    .sort("Create", "Ascend")
    .limit(1)
    .exec();
  return res.kvs[0]?.value.toString();
}

interface Why {
  appId: string;
  waiting: number;
  backoffUntilMs?: number;
  reasons: { kind: string; text: string }[];
}

test(
  "the launch backoff survives SIGKILL of the scheduler leader: the next launch still waits the delay",
  {
    timeout: 300_000,
  },
  () =>
    withLogs(async () => {
      const c = current();
      const id = "/ver/crash";
      // Fails at once; 4 s doubling: after the 4th failure the delay is 32 s.
      const def = {
        id,
        cmd: "exit 1",
        instances: 1,
        cpus: 0.05,
        mem: 16,
        backoffSeconds: 4,
        backoffFactor: 2,
      };
      const added = await c.cli(["app", "add", await appFile("crash", def)]);
      assert.equal(added.code, 0, added.stderr);
      const why = () => c.cliJson<Why>(["app", "why", id, "--json"], { timeoutMs: 25_000 });
      const failed = async () =>
        (
          await c.cliJson<TaskJson[]>(["task", "list", "--all", "--app", id, "--json"], { timeoutMs: 25_000 })
        ).filter((t) => t.state === "TASK_FAILED");

      // Until the app waits 20 s or more for its next launch.
      const until = await waitFor(
        "a backoff of 20 s or more",
        async () => {
          const w = await why();
          const u = Number(w.backoffUntilMs ?? 0);
          return u - Date.now() >= 20_000 ? u : undefined;
        },
        { timeoutMs: 150_000, intervalMs: 300 },
      );
      assert.ok(
        (await why()).reasons.some((r) => r.kind === "backoff"),
        "'app why' does not name the backoff",
      );
      // The failure that raised it is in etcd (written within 200 ms; give it a second).
      await new Promise((r) => setTimeout(r, 1000));
      const key = await etcd?.get("/drover/meta/scheduler/backoff/ver_crash").string();
      assert.ok(key, "no backoff key in etcd");
      assert.equal((JSON.parse(key) as { delayUntilMs: number }).delayUntilMs, until);
      const failuresBefore = (await failed()).length;

      const leaderAddr = await electedLeader();
      assert.ok(leaderAddr, "no scheduler leader");
      const leader = c.schedulers.find(
        (s) => s.env.DROVER_SCHEDULER_ADVERTISE === leaderAddr,
      ) as ServiceProcess;
      assert.ok(leader, `no scheduler process at ${leaderAddr}`);
      const killedAt = Date.now();
      leader.kill("SIGKILL");
      assert.equal(await withTimeout("the scheduler leader to exit", leader.exited, 10_000), null);
      await waitFor(
        "another scheduler leader",
        async () => {
          const now = await electedLeader();
          return now !== undefined && now !== leaderAddr;
        },
        { timeoutMs: 60_000, intervalMs: 100 },
      );
      const electedMs = Date.now() - killedAt;

      // The new leader reports the same delay, and launches nothing before it ends.
      const after = await waitFor(
        "'app why' from the new leader",
        async () => {
          try {
            return await why();
          } catch {
            return undefined;
          }
        },
        { timeoutMs: 60_000, intervalMs: 300 },
      );
      assert.equal(
        Number(after.backoffUntilMs ?? 0),
        until,
        "the new leader does not keep the backed-off delay",
      );
      console.log(
        `[versions] backoff until +${until - killedAt} ms after the kill; new leader after ${electedMs} ms`,
      );
      while (Date.now() < until - 1500) {
        const all = await c.cliJson<TaskJson[]>(["task", "list", "--all", "--app", id, "--json"], {
          timeoutMs: 25_000,
        });
        const early = all.filter((t) => t.createdAtMs > killedAt && t.createdAtMs < until - 1000);
        assert.deepEqual(
          early,
          [],
          `launched before the backoff ended (until ${new Date(until).toISOString()})`,
        );
        await new Promise((r) => setTimeout(r, 1000));
      }
      // And it does launch again once the delay is over.
      await waitFor("a launch after the backoff", async () => (await failed()).length > failuresBefore, {
        timeoutMs: 60_000,
        intervalMs: 500,
      });
      const next = (await failed()).filter((t) => t.createdAtMs > killedAt);
      for (const t of next)
        assert.ok(t.createdAtMs >= until - 1000, `task ${t.taskId} created before ${until}`);

      const removed = await c.cli(["app", "remove", id]);
      assert.equal(removed.code, 0, removed.stderr);
      await waitFor(
        "the backoff key of the removed app gone",
        async () => (await etcd?.get("/drover/meta/scheduler/backoff/ver_crash").string()) === null,
        { timeoutMs: 30_000, intervalMs: 500 },
      );
    }),
);
