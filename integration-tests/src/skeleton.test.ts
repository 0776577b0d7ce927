/**
 * The walking skeleton end to end on real etcd, NATS and Docker: an app of 3 instances runs
 * as 3 containers with the right limits and labels; a container killed behind Drover's back
 * is replaced; scaling down stops the surplus; removing the app leaves nothing; the event log
 * replays to the stored projections; `drover events` follows the events live.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import Docker from "dockerode";
import { type Cluster, repoRoot, startCluster, TASK_IMAGE, waitFor } from "./harness/index.js";

const docker = new Docker({ socketPath: "/var/run/docker.sock" });
let cluster: Cluster;
let dir: string;

interface TaskRow {
  taskId: string;
  appId: string;
  agentId: string;
  state: string;
  message: string;
  exitCode?: number;
}

async function containers(appId: string) {
  return docker.listContainers({
    all: false,
    filters: { label: [`drover.app_id=/${appId.replace(/^\//, "")}`, `drover.test.cluster=${cluster.id}`] },
  });
}

async function running(appId: string): Promise<TaskRow[]> {
  const tasks = await cluster.cliJson<TaskRow[]>(["task", "list", "--app", appId, "--json"]);
  return tasks.filter((t) => t.state === "TASK_RUNNING");
}

/** Waits until exactly `n` tasks of the app run and exactly `n` containers of it exist. */
async function converged(appId: string, n: number, timeoutMs = 60_000): Promise<TaskRow[]> {
  return waitFor(
    `${appId} at ${n} running tasks and containers`,
    async () => {
      const [tasks, cs] = await Promise.all([running(appId), containers(appId)]);
      const all = await cluster.cliJson<TaskRow[]>(["task", "list", "--app", appId, "--json"]);
      return tasks.length === n && cs.length === n && all.length === n ? tasks : undefined;
    },
    { timeoutMs, intervalMs: 500 },
  );
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-skeleton-"));
  cluster = await startCluster({ masters: 1, schedulers: 1, agents: 1 });
});

after(async () => {
  await cluster?.stop();
});

test("an app of 3 instances runs as 3 containers with limits and labels, and is kept at its count", async () => {
  const file = join(dir, "web.json");
  await writeFile(
    file,
    JSON.stringify({
      id: "web",
      container: { docker: { image: TASK_IMAGE } },
      cmd: "sleep 100000",
      instances: 3,
      cpus: 0.25,
      mem: 48,
      env: { GREETING: "hello" },
      labels: { team: "platform" },
    }),
  );
  const add = await cluster.cli(["app", "add", file]);
  assert.equal(add.code, 0, add.stderr);

  const tasks = await converged("web", 3);
  const [agentId] = await cluster.agentIds();
  assert.ok(agentId, "the agent wrote its id");
  const ids = new Set(tasks.map((t) => t.taskId));
  assert.equal(ids.size, 3, "three distinct task ids");

  for (const c of await containers("web")) {
    const info = await docker.getContainer(c.Id).inspect();
    assert.equal(info.HostConfig.NanoCpus, 250_000_000, "cpu limit");
    assert.equal(info.HostConfig.Memory, 48 * 1024 * 1024, "memory limit");
    const labels = info.Config.Labels;
    assert.ok(ids.has(labels["drover.task_id"] ?? ""), "task id label names a running task");
    assert.equal(labels["drover.app_id"], "/web");
    assert.equal(labels["drover.agent_id"], agentId);
    assert.equal(labels.team, "platform", "app labels are passed on");
    assert.ok(info.Config.Env.includes("GREETING=hello"), "app env is passed on");
    assert.ok(info.Config.Env.includes(`DROVER_TASK_ID=${labels["drover.task_id"]}`));
  }

  const apps = await cluster.cliJson<{ id: string; instances: number; tasksRunning: number }[]>([
    "app",
    "list",
    "--json",
  ]);
  assert.deepEqual(
    apps.map((a) => [a.id, a.instances, a.tasksRunning]),
    [["/web", 3, 3]],
  );
});

test("a container killed behind Drover's back is reported TASK_FAILED and replaced", async () => {
  const before = await running("web");
  const victim = (await containers("web"))[0];
  assert.ok(victim);
  const victimTask = victim.Labels["drover.task_id"];
  await docker.getContainer(victim.Id).kill();

  const failed = await waitFor(
    "the killed task to be reported failed",
    async () => {
      const all = await cluster.cliJson<TaskRow[]>(["task", "list", "--app", "web", "--all", "--json"]);
      return all.find((t) => t.taskId === victimTask && t.state === "TASK_FAILED");
    },
    { timeoutMs: 30_000 },
  );
  assert.equal(failed.exitCode, 137);
  const after = await converged("web", 3);
  assert.ok(!after.some((t) => t.taskId === victimTask), "the killed task is not counted as running");
  const replaced = after.filter((t) => !before.some((b) => b.taskId === t.taskId));
  assert.equal(replaced.length, 1, "exactly one replacement");
});

test("scaling to 1 stops two containers; the survivors are untouched", async () => {
  const before = await running("web");
  const scale = await cluster.cli(["app", "scale", "web", "1"]);
  assert.equal(scale.code, 0, scale.stderr);
  const after = await converged("web", 1);
  assert.ok(
    before.some((b) => b.taskId === after[0]?.taskId),
    "the remaining task was running before",
  );
  const all = await cluster.cliJson<TaskRow[]>(["task", "list", "--app", "web", "--all", "--json"]);
  const killed = all.filter((t) => t.state === "TASK_KILLED");
  assert.equal(killed.length, 2, "two tasks were killed");
});

test("an agent restart re-attaches to its running containers: same tasks, no new ones", async () => {
  const before = await running("web");
  const containersBefore = (await containers("web")).map((c) => c.Id).sort();
  const agent = cluster.agents[0];
  assert.ok(agent);
  cluster.agents[0] = await cluster.restart(agent);
  await waitFor(
    "the agent connected again",
    async () => {
      const agents = await cluster.cliJson<{ connected: boolean }[]>(["agent", "list", "--json"]);
      return agents.length === 1 && agents[0]?.connected === true;
    },
    { timeoutMs: 30_000 },
  );
  const after = await converged("web", before.length);
  assert.deepEqual(
    after.map((t) => t.taskId).sort(),
    before.map((t) => t.taskId).sort(),
    "the same tasks run after the restart",
  );
  assert.deepEqual(
    (await containers("web")).map((c) => c.Id).sort(),
    containersBefore,
    "the same containers",
  );
});

test("removing the app leaves no task and no container", async () => {
  const rm = await cluster.cli(["app", "remove", "web"]);
  assert.equal(rm.code, 0, rm.stderr);
  await waitFor(
    "no container and no active task of web",
    async () => {
      const [cs, tasks] = await Promise.all([
        containers("web"),
        cluster.cliJson<TaskRow[]>(["task", "list", "--app", "web", "--json"]),
      ]);
      return cs.length === 0 && tasks.length === 0;
    },
    { timeoutMs: 30_000 },
  );
  const apps = await cluster.cliJson<unknown[]>(["app", "list", "--json"]);
  assert.deepEqual(apps, []);
  const again = await cluster.cli(["app", "remove", "web"]);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /app \/web not found/);
});

test("replaying the event log rebuilds the stored projections exactly", async () => {
  const res = await cluster.cli(["admin", "verify-log", "--json"]);
  assert.equal(res.code, 0, res.stdout + res.stderr);
  const report = JSON.parse(res.stdout) as { ok: boolean; events: number; mismatches: unknown[] };
  assert.equal(report.ok, true);
  assert.deepEqual(report.mismatches, []);
  assert.ok(report.events >= 10, `the log holds the run's events (${report.events})`);
});

test("`drover events` replays the published events in revision order and follows new ones live", async () => {
  const cli = spawn(
    process.execPath,
    [join(repoRoot, "services/cli/bin/drover.js"), "events", "--from-start", "--json"],
    {
      env: { ...process.env, ...cluster.env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  cli.stdout.on("data", (b: Buffer) => {
    out += b.toString();
  });
  try {
    const parse = () =>
      out
        .split("\n")
        .filter(Boolean)
        .map(
          (l) =>
            JSON.parse(l) as { aggregate: string; id: string; revision: string; event: { type: string } },
        );
    await waitFor("the past events", async () => parse().some((e) => e.event.type === "AppDeleted"));
    const file = join(dir, "live.json");
    await writeFile(
      file,
      JSON.stringify({ id: "live", container: { docker: { image: TASK_IMAGE } }, instances: 0 }),
    );
    assert.equal((await cluster.cli(["app", "add", file])).code, 0);
    await waitFor("the live AppCreated event", async () =>
      parse().some((e) => e.aggregate === "app" && e.id === "live" && e.event.type === "AppCreated"),
    );
    // The create's deployment ends right after it (0 instances): wait until the CLI has every event
    // the log holds (a duplicate would show as a repeated key below, a loss as a wait that times out).
    const { events } = await waitFor("every event of the log printed exactly once", async () => {
      const v = JSON.parse((await cluster.cli(["admin", "verify-log", "--json"])).stdout) as {
        events: number;
      };
      const seen = parse();
      return seen.length === v.events ? { verify: v, events: seen } : undefined;
    });
    const revisions = events.map((e) => BigInt(e.revision));
    for (let i = 1; i < revisions.length; i++) {
      assert.ok((revisions[i] ?? 0n) >= (revisions[i - 1] ?? 0n), "events arrive in revision order");
    }
    const keys = events.map((e) => `${e.revision}:${e.aggregate}/${e.id}:${e.event.type}`);
    assert.equal(new Set(keys).size, keys.length, "no event is published twice");
  } finally {
    cli.kill("SIGTERM");
  }
});
