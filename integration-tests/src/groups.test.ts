/**
 * Groups and dependencies on a real cluster (1 master, 1 scheduler, 1 agent):
 *
 * - `drover group add` of /shop: /shop/db (busybox httpd behind a 5 s startup delay, an HTTP health
 *   check) and /shop/web depending on /shop/db. Sampled every 200 ms: while db is not healthy, web
 *   has no task and `drover app why /shop/web` names the dependency; web's first task is created
 *   only after db's first healthy sample, and later than db's task plus its startup delay.
 * - A group whose apps depend on each other is refused naming the cycle; nothing is created.
 * - `drover group scale /shop --by 2` doubles every app's instances (and they run).
 * - `drover group remove /shop` removes both apps, web before db; no task is left.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { LeaderClient } from "@drover/common";
import { fromWireState, SchedulerClient } from "@drover/proto";
import { type Cluster, startCluster, waitFor, withClusterLogs } from "./harness/index.js";

let cluster: Cluster | undefined;
let scheduler: LeaderClient<SchedulerClient> | undefined;
let dir = "";

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-groups-"));
  cluster = await startCluster({
    masters: 1,
    schedulers: 1,
    agents: 1,
    env: { DROVER_AGENT_PORTS: "31700-31760", DROVER_AGENT_CPUS: "8" },
  });
  scheduler = new LeaderClient(SchedulerClient, cluster.env.DROVER_SCHEDULERS?.split(",") ?? []);
});

after(async () => {
  scheduler?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  await cluster?.stop();
});

const STARTUP_DELAY_S = 5;

const shop = {
  id: "/shop",
  apps: [
    {
      id: "db",
      cmd: `mkdir -p /tmp/www && echo ok > /tmp/www/index.html && sleep ${STARTUP_DELAY_S} && exec httpd -f -p $PORT0 -h /tmp/www`,
      cpus: 0.05,
      mem: 16,
      instances: 1,
      healthChecks: [
        {
          protocol: "HTTP",
          path: "/",
          portIndex: 0,
          intervalSeconds: 1,
          timeoutSeconds: 1,
          gracePeriodSeconds: 2,
          maxConsecutiveFailures: 20,
        },
      ],
    },
    { id: "web", cmd: "exec sleep 100000", cpus: 0.05, mem: 16, instances: 1, dependencies: ["db"] },
  ],
};

async function writeJson(name: string, value: unknown): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, JSON.stringify(value));
  return file;
}

interface Seen {
  atMs: number;
  dbHealthy: boolean;
  webTasks: { id: string; createdAtMs: number }[];
  dbTasks: { id: string; createdAtMs: number; state: string }[];
}

async function tasksOf(appId: string) {
  assert.ok(scheduler);
  const res = await scheduler.call((c) => c.listTasks.bind(c), {
    appId,
    includeTerminal: false,
    pageSize: 0,
    pageToken: "",
  });
  return res.tasks.map((t) => ({
    id: t.info?.taskId ?? "",
    createdAtMs: t.createdAtMs,
    state: (t.status && fromWireState(t.status.state)) ?? "?",
    healthy: t.status?.health?.healthy === true,
  }));
}

test(
  "a group of db and web: web starts only after db is healthy; a cycle is refused; scaleBy; remove in reverse order",
  { timeout: 240_000 },
  () =>
    withClusterLogs(cluster, async () => {
      const c = current();
      const added = await c.cli(["group", "add", await writeJson("shop.json", shop), "--detach"]);
      assert.equal(added.code, 0, added.stderr);
      // One deployment whose steps follow the dependency: db scales before web.
      assert.match(added.stdout, /step 1: StartApplication \/shop\/db, StartApplication \/shop\/web/);
      assert.match(
        added.stdout,
        /step 2: ScaleApplication \/shop\/db\n\s+step 3: ScaleApplication \/shop\/web/,
      );
      const deploymentId = /deployment ([0-9a-f-]{36})/.exec(added.stdout)?.[1];
      assert.ok(deploymentId, added.stdout);

      // Sample until web runs; app why is asked while db is still starting.
      const samples: Seen[] = [];
      let why = "";
      await waitFor(
        "web running",
        async () => {
          const [db, web] = await Promise.all([tasksOf("/shop/db"), tasksOf("/shop/web")]);
          const dbHealthy = db.some((t) => t.state === "TASK_RUNNING" && t.healthy);
          samples.push({ atMs: Date.now(), dbHealthy, webTasks: web, dbTasks: db });
          if (!dbHealthy && !why) {
            const r = await c.cli(["app", "why", "/shop/web"]);
            if (/waiting for step/.test(r.stdout)) why = r.stdout;
          }
          await new Promise((r) => setTimeout(r, 200));
          return web.some((t) => t.state === "TASK_RUNNING") ? web : undefined;
        },
        { timeoutMs: 90_000 },
      );
      assert.match(why, /\/shop\/web: waiting for step 2 of 3 \(ScaleApplication \/shop\/db\)/);
      const firstHealthy = samples.find((s) => s.dbHealthy);
      assert.ok(firstHealthy, "db was seen healthy");
      for (const s of samples)
        if (!s.dbHealthy && s.atMs < firstHealthy.atMs)
          assert.deepEqual(s.webTasks, [], `web had a task while db was not healthy (sample at ${s.atMs})`);
      const lastUnhealthy = samples.filter((s) => !s.dbHealthy && s.atMs < firstHealthy.atMs).at(-1);
      const webTask = (await tasksOf("/shop/web"))[0];
      const dbTask = (await tasksOf("/shop/db"))[0];
      assert.ok(webTask && dbTask);
      if (lastUnhealthy)
        assert.ok(webTask.createdAtMs > lastUnhealthy.atMs, "web created after db's last unhealthy sample");
      assert.ok(
        webTask.createdAtMs >= dbTask.createdAtMs + STARTUP_DELAY_S * 1000,
        `web created ${webTask.createdAtMs - dbTask.createdAtMs} ms after db (its startup takes ${STARTUP_DELAY_S} s)`,
      );
      process.stdout.write(
        `# groups: web's first task ${webTask.createdAtMs - dbTask.createdAtMs} ms after db's; ${samples.length} samples\n`,
      );
      const done = await waitFor(
        "the group's deployment succeeded",
        async () => {
          const d = await c.cliJson<{ state: string; steps?: unknown }>([
            "deployment",
            "show",
            deploymentId,
            "--json",
          ]);
          return d.state === "succeeded" ? d : undefined;
        },
        { timeoutMs: 60_000 },
      );
      assert.equal(done.state, "succeeded");

      const shown = await c.cliJson<{ id: string; apps: { id: string; dependencies?: string[] }[] }>([
        "group",
        "show",
        "/shop",
        "--json",
      ]);
      assert.equal(shown.id, "/shop");
      assert.deepEqual(
        shown.apps.map((a) => [a.id, a.dependencies ?? []]),
        [
          ["/shop/db", []],
          ["/shop/web", ["/shop/db"]],
        ],
      );

      // A cycle is refused naming it; nothing of it is created.
      const loop = {
        id: "/loop",
        apps: [
          { id: "a", cmd: "sleep 1000", cpus: 0.05, mem: 16, dependencies: ["b"] },
          { id: "b", cmd: "sleep 1000", cpus: 0.05, mem: 16, dependencies: ["/loop/a"] },
        ],
      };
      const refused = await c.cli(["group", "add", await writeJson("loop.json", loop)]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /dependencies: cycle \/loop\/a → \/loop\/b → \/loop\/a/);
      const apps = await c.cliJson<{ id: string }[]>(["app", "list", "--json"]);
      assert.ok(!apps.some((a) => a.id.startsWith("/loop")), "nothing of the cycle was created");

      // scaleBy 2 doubles every app.
      const scaled = await c.cli(["group", "scale", "/shop", "--by", "2"]);
      assert.equal(scaled.code, 0, scaled.stderr);
      const after = await c.cliJson<{ id: string; instances: number }[]>(["app", "list", "--json"]);
      assert.deepEqual(
        after
          .filter((a) => a.id.startsWith("/shop/"))
          .map((a) => [a.id, a.instances])
          .sort(),
        [
          ["/shop/db", 2],
          ["/shop/web", 2],
        ],
      );
      await waitFor(
        "2 running of each",
        async () => {
          const [db, web] = await Promise.all([tasksOf("/shop/db"), tasksOf("/shop/web")]);
          return db.filter((t) => t.state === "TASK_RUNNING").length === 2 &&
            web.filter((t) => t.state === "TASK_RUNNING").length === 2
            ? true
            : undefined;
        },
        { timeoutMs: 60_000 },
      );

      // Remove: web first, db once web's tasks are gone.
      const removed = await c.cliJson<{ steps: { action: string; appId: string }[][] }>(
        ["group", "remove", "/shop", "--json"],
        { timeoutMs: 120_000 },
      );
      assert.deepEqual(removed.steps, [
        [{ action: "StopApplication", appId: "/shop/web" }],
        [{ action: "StopApplication", appId: "/shop/db" }],
      ]);
      const left = await c.cliJson<{ id: string }[]>(["app", "list", "--json"]);
      assert.ok(!left.some((a) => a.id.startsWith("/shop")), "no app of /shop is left");
      await waitFor(
        "no task of /shop",
        async () =>
          (await tasksOf("/shop/db")).length + (await tasksOf("/shop/web")).length === 0 ? true : undefined,
        { timeoutMs: 60_000 },
      );
      const gone = await c.cli(["group", "show", "/shop"]);
      assert.notEqual(gone.code, 0);
    }),
);
