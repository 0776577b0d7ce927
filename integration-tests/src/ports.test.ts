/**
 * Host ports end to end: an app asking for `"ports": [0, 0]` gets two distinct host ports from the agent's
 * range, learns them as PORT0, PORT1 and PORT, and is reachable on them from the host; the master's task
 * info carries them. A specific port can be held by one instance per agent only: the second waits, and
 * `drover app why` / `drover app queue` say which port is taken. An app bigger than any agent waits with
 * "insufficient mem".
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { LeaderClient } from "@drover/common";
import { MasterClient } from "@drover/proto";
import Docker from "dockerode";
import { type Cluster, startCluster, TASK_IMAGE, waitFor, withClusterLogs } from "./harness/index.js";

const PORT_MIN = 31000;
const PORT_MAX = 31010;
const FIXED_PORT = 31005;
const AGENT_MEM = 1024;

const docker = new Docker({ socketPath: "/var/run/docker.sock" });
let cluster: Cluster | undefined;
let master: LeaderClient<MasterClient> | undefined;
let dir = "";

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-ports-"));
  cluster = await startCluster({
    masters: 1,
    schedulers: 1,
    agents: 1,
    env: { DROVER_AGENT_PORTS: `${PORT_MIN}-${PORT_MAX}`, DROVER_AGENT_MEM: String(AGENT_MEM) },
  });
  master = new LeaderClient(MasterClient, cluster.env.DROVER_MASTERS?.split(",") ?? []);
});

after(async () => {
  master?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  await cluster?.stop();
});

/** Runs a test body; a failure carries the processes' last log lines. */
const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

interface TaskJson {
  taskId: string;
  appId: string;
  state: string;
}

interface Reason {
  kind: string;
  agents: number;
  port: number;
  text: string;
}

interface QueueJson {
  appId: string;
  waiting: number;
  reasons: Reason[];
}

async function addApp(app: Record<string, unknown>): Promise<void> {
  const file = join(dir, `${String(app.id)}.json`);
  await writeFile(file, JSON.stringify({ container: { docker: { image: TASK_IMAGE } }, ...app }));
  const res = await current().cli(["app", "add", file]);
  assert.equal(res.code, 0, res.stderr);
}

async function tasks(appId: string): Promise<TaskJson[]> {
  return current().cliJson<TaskJson[]>(["task", "list", "--app", appId, "--json"]);
}

async function running(appId: string, n: number): Promise<TaskJson[]> {
  return waitFor(
    `${appId} at ${n} running task(s)`,
    async () => {
      const r = (await tasks(appId)).filter((t) => t.state === "TASK_RUNNING");
      return r.length === n ? r : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
}

async function containers(appId: string) {
  return docker.listContainers({
    filters: { label: [`drover.app_id=/${appId.replace(/^\//, "")}`, `drover.test.cluster=${current().id}`] },
  });
}

async function envOf(containerId: string): Promise<Map<string, string>> {
  const info = await docker.getContainer(containerId).inspect();
  return new Map(
    (info.Config.Env ?? []).map((kv) => {
      const i = kv.indexOf("=");
      return [kv.slice(0, i), kv.slice(i + 1)] as const;
    }),
  );
}

/** The host ports the master recorded for a task. */
async function masterPorts(taskId: string): Promise<number[]> {
  assert.ok(master);
  const res = await master.call((c) => c.listTasks.bind(c), {
    pageSize: 0,
    pageToken: "",
    frameworkId: "",
    appId: "",
    includeTerminal: false,
  });
  const t = res.tasks.find((x) => x.info?.taskId === taskId);
  assert.ok(t, `the master knows task ${taskId}`);
  const out: number[] = [];
  for (const r of t.info?.resources?.ports ?? []) for (let p = r.begin; p <= r.end; p++) out.push(p);
  return out.sort((a, b) => a - b);
}

async function why(appId: string): Promise<QueueJson> {
  return current().cliJson<QueueJson>(["app", "why", appId, "--json"]);
}

let webPorts: number[] = [];

test('an app with "ports": [0, 0] gets two host ports as PORT0, PORT1, PORT and serves on PORT0', () =>
  withLogs(async () => {
    await addApp({
      id: "web",
      cmd: "mkdir -p /www && echo ok > /www/index.html && httpd -f -p $PORT0 -h /www",
      instances: 1,
      cpus: 0.1,
      mem: 32,
      ports: [0, 0],
    });
    const [task] = await running("web", 1);
    assert.ok(task);
    const [c] = await containers("web");
    assert.ok(c, "a running container of web");
    assert.equal(c.Labels["drover.task_id"], task.taskId);

    const env = await envOf(c.Id);
    const port0 = Number(env.get("PORT0"));
    const port1 = Number(env.get("PORT1"));
    for (const [name, p] of [
      ["PORT0", port0],
      ["PORT1", port1],
    ] as const)
      assert.ok(
        Number.isInteger(p) && p >= PORT_MIN && p <= PORT_MAX,
        `${name}=${env.get(name)} in the agent's range`,
      );
    assert.notEqual(port0, port1, "two distinct ports");
    assert.equal(env.get("PORT"), String(port0), "PORT is PORT0");
    assert.equal(env.has("PORT2"), false, "only two ports");
    webPorts = [port0, port1].sort((a, b) => a - b);

    // Published on the host, each to the same container port.
    const info = await docker.getContainer(c.Id).inspect();
    for (const p of [port0, port1])
      assert.equal(
        info.HostConfig.PortBindings?.[`${p}/tcp`]?.[0]?.HostPort,
        String(p),
        `host port ${p} published`,
      );

    // Reachable from the host (loopback only).
    const t0 = Date.now();
    const body = await waitFor(
      `GET http://127.0.0.1:${port0}/`,
      async () => {
        const res = await fetch(`http://127.0.0.1:${port0}/`, { signal: AbortSignal.timeout(2_000) });
        return res.ok ? await res.text() : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    console.log(`httpd answered on host port ${port0} (${Date.now() - t0} ms after RUNNING was seen)`);
    assert.equal(body.trim(), "ok");

    // The master's task info carries the ports.
    assert.deepEqual(await masterPorts(task.taskId), webPorts);
  }));

test("a specific port (31005) is held by one instance per agent: the second waits and `app why` says why", () =>
  withLogs(async () => {
    assert.ok(!webPorts.includes(FIXED_PORT), `web did not take ${FIXED_PORT} (${webPorts.join(",")})`);
    await addApp({ id: "fixed", cmd: "sleep 100000", instances: 2, cpus: 0.1, mem: 32, ports: [FIXED_PORT] });
    const [task] = await running("fixed", 1);
    assert.ok(task);
    const [c] = await containers("fixed");
    assert.ok(c);
    const env = await envOf(c.Id);
    assert.equal(env.get("PORT0"), String(FIXED_PORT));
    assert.equal(env.get("PORT"), String(FIXED_PORT));
    assert.deepEqual(await masterPorts(task.taskId), [FIXED_PORT]);

    const reason = await waitFor(
      `'app why fixed' to name port ${FIXED_PORT}`,
      async () => {
        const q = await why("fixed");
        return q.waiting === 1 && q.reasons.find((r) => r.text.includes(`port ${FIXED_PORT} taken`))
          ? q
          : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500 },
    );
    assert.ok(
      reason.reasons.some((r) => r.text === `port ${FIXED_PORT} taken on 1 agent`),
      JSON.stringify(reason.reasons),
    );
    const text = await current().cli(["app", "why", "fixed"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /1 instance\(s\) waiting/);
    assert.match(text.stdout, new RegExp(`port ${FIXED_PORT} taken on 1 agent`));

    // Meanwhile, observed for 3 s: one task, one container, never a second.
    const until = Date.now() + 3_000;
    let samples = 0;
    while (Date.now() < until) {
      const [ts, cs] = await Promise.all([tasks("fixed"), containers("fixed")]);
      assert.equal(ts.length, 1, `one task of fixed: ${JSON.stringify(ts)}`);
      assert.equal(cs.length, 1, "one container of fixed");
      samples++;
      await delay(200);
    }
    assert.ok(samples >= 3, `sampled ${samples} times`);

    const queue = await current().cliJson<QueueJson[]>(["app", "queue", "--json"]);
    const fixed = queue.find((q) => q.appId === "/fixed");
    assert.ok(fixed, `app queue lists fixed: ${JSON.stringify(queue)}`);
    assert.equal(fixed.waiting, 1);
    assert.ok(!queue.some((q) => q.appId === "/web"), "web, fully placed, is not queued");
  }));

test("an app asking for more mem than the agent has waits with 'insufficient mem'", () =>
  withLogs(async () => {
    await addApp({ id: "huge", cmd: "sleep 100000", instances: 1, cpus: 0.1, mem: AGENT_MEM * 4 });
    const q = await waitFor(
      "'app why huge' to say insufficient mem",
      async () => {
        const r = await why("huge");
        return r.reasons.some((x) => x.text.includes("insufficient mem")) ? r : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500 },
    );
    assert.equal(q.waiting, 1);
    assert.ok(
      q.reasons.some((r) => r.text === "insufficient mem on 1 agent"),
      JSON.stringify(q.reasons),
    );
    assert.ok(
      !q.reasons.some((r) => /cpus|port/.test(r.text)),
      `only mem is short: ${JSON.stringify(q.reasons)}`,
    );
    assert.deepEqual(await tasks("huge"), [], "nothing launched");
    assert.deepEqual(await containers("huge"), []);
    const queue = await current().cliJson<QueueJson[]>(["app", "queue", "--json"]);
    assert.deepEqual(queue.map((x) => [x.appId, x.waiting]).sort(), [
      ["/fixed", 1],
      ["/huge", 1],
    ]);
    const table = await current().cli(["app", "queue"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /huge.*insufficient mem on 1 agent/);
    assert.match(table.stdout, new RegExp(`fixed.*port ${FIXED_PORT} taken on 1 agent`));
  }));
