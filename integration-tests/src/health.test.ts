/**
 * Marathon health checks on a real cluster: the agent runs an app's checks next to its task and the
 * task's health travels with its status updates to the master, the scheduler and the CLI.
 *
 * - An HTTP check (interval 1 s, maxConsecutiveFailures 2) turns the task healthy (`task list`,
 *   `app show --json`); once the checked file is removed in the container, the task is killed on
 *   exactly the third failure, its terminal status says why (REASON_TASK_UNHEALTHY_CHECK_STATUS,
 *   "unhealthy: HTTP check on port … failed 3 times: 404 …"), and a new task replaces it. The time
 *   from the first failing check to the replacement's RUNNING is printed.
 * - A TCP check and a COMMAND check (run with docker exec in the task's container) pass.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { LeaderClient } from "@drover/common";
import { fromWireState, MasterClient, type Task } from "@drover/proto";
import Docker from "dockerode";
import { type Cluster, startCluster, TASK_IMAGE, waitFor, withClusterLogs } from "./harness/index.js";

const docker = new Docker({ socketPath: "/var/run/docker.sock" });
let cluster: Cluster | undefined;
let master: LeaderClient<MasterClient> | undefined;
let dir = "";

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-health-"));
  cluster = await startCluster({
    masters: 1,
    schedulers: 1,
    agents: 1,
    env: { DROVER_AGENT_PORTS: "31100-31120" },
  });
  master = new LeaderClient(MasterClient, cluster.env.DROVER_MASTERS?.split(",") ?? []);
});

after(async () => {
  master?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  await cluster?.stop();
});

const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

interface HealthJson {
  healthy: boolean;
  lastSuccessMs?: number;
  lastFailureMs?: number;
  consecutiveFailures: number;
  lastFailureCause?: string;
}

interface TaskJson {
  taskId: string;
  appId: string;
  state: string;
  message: string;
  ports: number[];
  health?: HealthJson;
  lastFailureCause?: string;
  reason?: string;
}

async function addApp(app: Record<string, unknown>): Promise<void> {
  const file = join(dir, `${String(app.id)}.json`);
  await writeFile(file, JSON.stringify({ cpus: 0.1, mem: 32, instances: 1, ...app }));
  const res = await current().cli(["app", "add", file]);
  assert.equal(res.code, 0, res.stderr);
}

async function tasks(appId: string, all = false): Promise<TaskJson[]> {
  return current().cliJson<TaskJson[]>(["task", "list", "--app", appId, "--json", ...(all ? ["--all"] : [])]);
}

/** Every task of the app as the master has it now (gRPC: quicker than the CLI, for timing). */
async function masterTasks(appId: string): Promise<Task[]> {
  assert.ok(master);
  const res = await master.call((c) => c.listTasks.bind(c), {
    pageSize: 0,
    pageToken: "",
    frameworkId: "",
    appId,
    includeTerminal: true,
  });
  return res.tasks;
}

async function containerOf(taskId: string): Promise<Docker.ContainerInfo> {
  const [c] = await docker.listContainers({ filters: { label: [`drover.task_id=${taskId}`] } });
  assert.ok(c, `a running container of ${taskId}`);
  return c;
}

/** Runs a command in a container (docker exec) and waits for it to end. */
async function exec(containerId: string, cmd: string[]): Promise<void> {
  const e = await docker.getContainer(containerId).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await e.start({ hijack: true, stdin: false });
  await new Promise<void>((resolve) => {
    stream.on("end", resolve);
    stream.on("close", resolve);
    stream.resume();
  });
  const info = await e.inspect();
  assert.equal(info.ExitCode, 0, `${cmd.join(" ")} exited ${info.ExitCode}`);
}

const INTERVAL_S = 1;
const MAX_FAILURES = 2;

test(
  "an HTTP check: healthy, then failing: killed on failure max+1 with its reason, and replaced",
  { timeout: 240_000 },
  () =>
    withLogs(async () => {
      await addApp({
        id: "web-checked",
        cmd: "mkdir -p /www && echo ok > /www/health && exec httpd -f -p $PORT0 -h /www",
        healthChecks: [
          {
            protocol: "HTTP",
            path: "/health",
            portIndex: 0,
            intervalSeconds: INTERVAL_S,
            timeoutSeconds: 1,
            gracePeriodSeconds: 5,
            maxConsecutiveFailures: MAX_FAILURES,
          },
        ],
      });

      // Healthy, as the CLI shows it (JSON, table, and Marathon's app counts).
      const first = await waitFor(
        "web-checked RUNNING and healthy",
        async () => (await tasks("web-checked")).find((t) => t.state === "TASK_RUNNING" && t.health?.healthy),
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      const port = first.ports[0];
      assert.ok(port, "the task has a host port");
      assert.equal(first.health?.consecutiveFailures, 0);
      assert.ok(first.health?.lastSuccessMs, "lastSuccessMs");
      assert.equal(first.reason, "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED");
      const table = await current().cli(["task", "list", "--app", "web-checked"]);
      assert.match(table.stdout.split("\n")[0] ?? "", /\bHEALTH\b/);
      assert.match(table.stdout, new RegExp(`${first.taskId}.*TASK_RUNNING\\s+healthy`));
      const shown = await current().cliJson<Record<string, unknown>>([
        "app",
        "show",
        "web-checked",
        "--json",
      ]);
      assert.equal(shown.tasksHealthy, 1);
      assert.equal(shown.tasksUnhealthy, 0);
      assert.equal((shown.healthChecks as unknown[]).length, 1);

      // The checked file disappears: the check answers 404 from now on.
      const c = await containerOf(first.taskId);
      const flippedAt = Date.now();
      await exec(c.Id, ["/bin/sh", "-c", "rm /www/health"]);

      // Watched through the master at a fine grain: the first failure (as the unhealthy update has
      // it), the kill, the replacement's RUNNING.
      let firstFailureMs: number | undefined;
      let unhealthySeenAt: number | undefined;
      let killed: Task | undefined;
      let replacement: Task | undefined;
      let replacementSeenAt = 0;
      await waitFor(
        "web-checked killed for its health and replaced by a RUNNING task",
        async () => {
          const all = await masterTasks("/web-checked");
          const orig = all.find((t) => t.info?.taskId === first.taskId);
          const h = orig?.status?.health;
          if (h && !h.healthy && h.consecutiveFailures === 1 && firstFailureMs === undefined) {
            firstFailureMs = Number(h.lastFailureMs);
            unhealthySeenAt = Date.now();
          }
          if (orig?.status?.reason === "REASON_TASK_UNHEALTHY_CHECK_STATUS") killed = orig;
          replacement = all.find(
            (t) =>
              t.info?.taskId !== first.taskId && t.status && fromWireState(t.status.state) === "TASK_RUNNING",
          );
          if (replacement) replacementSeenAt = Date.now();
          return killed && replacement;
        },
        { timeoutMs: 60_000, intervalMs: 100 },
      );
      assert.ok(killed?.status && replacement?.status);

      // Killed on exactly failure max+1, and it says so (the CLI's JSON as well).
      const after = (await tasks("web-checked", true)).find((t) => t.taskId === first.taskId);
      assert.ok(after, "the killed task is listed with --all");
      assert.equal(after.state, "TASK_KILLED");
      assert.equal(after.reason, "REASON_TASK_UNHEALTHY_CHECK_STATUS");
      assert.equal(after.health?.healthy, false);
      assert.equal(after.health?.consecutiveFailures, MAX_FAILURES + 1);
      assert.match(after.lastFailureCause ?? "", /^404\b/);
      assert.match(
        after.message,
        new RegExp(`^unhealthy: HTTP check on port ${port} failed ${MAX_FAILURES + 1} times: 404\\b`),
      );
      const lastFailureMs = after.health?.lastFailureMs ?? 0;
      // Fixed rate: the failures are one interval apart, so the first one was max intervals before the last.
      firstFailureMs ??= lastFailureMs - MAX_FAILURES * INTERVAL_S * 1000;
      assert.ok(firstFailureMs >= flippedAt - 50, "no failure counted before the file was removed");
      const spread = lastFailureMs - firstFailureMs;
      assert.ok(
        spread >= MAX_FAILURES * INTERVAL_S * 1000 - 300 && spread <= MAX_FAILURES * INTERVAL_S * 1000 + 1500,
        `failures ${MAX_FAILURES + 1} at the check interval: first to last ${spread} ms`,
      );

      // The replacement is a new task, RUNNING, and turns healthy again.
      const replacementId = replacement.info?.taskId ?? "";
      await waitFor(
        "the replacement healthy",
        async () => (await tasks("web-checked")).find((t) => t.taskId === replacementId && t.health?.healthy),
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      const killedAtMs = Number(killed.status.timestampMs);
      console.log(
        `health: file removed → first failing check ${firstFailureMs - flippedAt} ms` +
          `${unhealthySeenAt ? ` (unhealthy seen at the master ${unhealthySeenAt - flippedAt} ms)` : ""}; ` +
          `→ killed (TASK_KILLED) ${killedAtMs - firstFailureMs} ms after the first failing check; ` +
          `→ replacement RUNNING seen ${replacementSeenAt - firstFailureMs} ms after the first failing check ` +
          `(${replacementSeenAt - killedAtMs} ms after the kill, scheduler backoff included)`,
      );
      assert.equal((await current().cli(["app", "remove", "web-checked"])).code, 0);
    }),
);

test(
  "after an agent restart the recovered task is checked again (its checks were kept in the work dir)",
  { timeout: 180_000 },
  () =>
    withLogs(async () => {
      await addApp({
        id: "survivor",
        cmd: "mkdir -p /www && echo ok > /www/health && exec httpd -f -p $PORT0 -h /www",
        healthChecks: [
          {
            protocol: "HTTP",
            path: "/health",
            intervalSeconds: 1,
            gracePeriodSeconds: 5,
            maxConsecutiveFailures: 1,
          },
        ],
      });
      const t = await waitFor(
        "survivor healthy",
        async () => (await tasks("survivor")).find((x) => x.state === "TASK_RUNNING" && x.health?.healthy),
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      const agent = current().agents[0];
      assert.ok(agent);
      const restarted = await current().restart(agent);
      await waitFor(
        "the restarted agent checking the recovered task",
        async () =>
          restarted.logs().includes(`"health checks started","agentId"`) &&
          restarted.logs().includes(t.taskId),
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      const c = await containerOf(t.taskId);
      await exec(c.Id, ["/bin/sh", "-c", "rm /www/health"]);
      const killed = await waitFor(
        "survivor killed for its health after the restart",
        async () =>
          (await tasks("survivor", true)).find(
            (x) => x.taskId === t.taskId && x.reason === "REASON_TASK_UNHEALTHY_CHECK_STATUS",
          ),
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      assert.equal(killed.state, "TASK_KILLED");
      assert.match(killed.message, /^unhealthy: HTTP check on port \d+ failed 2 times: 404\b/);
      await waitFor(
        "survivor replaced",
        async () =>
          (await tasks("survivor")).find((x) => x.taskId !== t.taskId && x.state === "TASK_RUNNING"),
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      assert.equal((await current().cli(["app", "remove", "survivor"])).code, 0);
    }),
);

test(
  "bridge: an HTTP check on the mapping's host port; a user-defined network without host port: a MESOS_HTTP check on the container's IP",
  { timeout: 180_000 },
  () =>
    withLogs(async () => {
      const network = `drover-hc-${current().id}`;
      await docker.createNetwork({ Name: network, Labels: { "drover.test.cluster": current().id } });
      try {
        const serve = "mkdir -p /www && echo ok > /www/health && exec httpd -f -p 8080 -h /www";
        const check = {
          path: "/health",
          intervalSeconds: 1,
          gracePeriodSeconds: 10,
          maxConsecutiveFailures: 2,
        };
        await addApp({
          id: "bridged",
          cmd: serve,
          networks: [{ mode: "container/bridge" }],
          container: {
            type: "DOCKER",
            docker: { image: TASK_IMAGE },
            portMappings: [{ containerPort: 8080, hostPort: 0, name: "http" }],
          },
          healthChecks: [{ protocol: "HTTP", portIndex: 0, ...check }],
        });
        await addApp({
          id: "overlay",
          cmd: serve,
          networks: [{ mode: "container", name: network }],
          container: {
            type: "DOCKER",
            docker: { image: TASK_IMAGE },
            portMappings: [{ containerPort: 8080, name: "http" }],
          },
          healthChecks: [{ protocol: "MESOS_HTTP", portIndex: 0, delaySeconds: 1, ...check }],
        });
        for (const id of ["bridged", "overlay"])
          await waitFor(
            `${id} RUNNING and healthy`,
            async () => (await tasks(id)).find((t) => t.state === "TASK_RUNNING" && t.health?.healthy),
            { timeoutMs: 60_000, intervalMs: 500 },
          );
        // Where each check went: the agent logs its checks by address.
        const agentLog = current()
          .agents.map((a) => a.logs())
          .join("\n");
        assert.match(agentLog, /"checks":\["HTTP check on port 311\d\d"\]/, "bridge: the host port");
        assert.match(
          agentLog,
          /"checks":\["MESOS_HTTP check on \d+\.\d+\.\d+\.\d+:8080"\]/,
          "container network: the container's IP",
        );
        for (const id of ["bridged", "overlay"])
          assert.equal((await current().cli(["app", "remove", id])).code, 0);
        await waitFor("overlay's container gone", async () => (await tasks("overlay")).length === 0, {
          timeoutMs: 30_000,
        });
      } finally {
        await docker
          .getNetwork(network)
          .remove()
          .catch(() => undefined);
      }
    }),
);

test("a TCP check and a COMMAND check (docker exec in the task's container) pass", { timeout: 120_000 }, () =>
  withLogs(async () => {
    await addApp({
      id: "tcp-command",
      container: { type: "DOCKER", docker: { image: TASK_IMAGE } },
      cmd: "mkdir -p /www && echo ok > /www/ready && exec httpd -f -p $PORT0 -h /www",
      healthChecks: [
        {
          protocol: "TCP",
          portIndex: 0,
          intervalSeconds: 1,
          gracePeriodSeconds: 10,
          maxConsecutiveFailures: 2,
        },
        {
          protocol: "COMMAND",
          // Runs in the container, with its environment: $PORT0 is the task's port.
          command: { value: "wget -q -O /dev/null http://127.0.0.1:$PORT0/ready" },
          intervalSeconds: 1,
          delaySeconds: 1,
          gracePeriodSeconds: 10,
          maxConsecutiveFailures: 2,
        },
      ],
    });
    const t = await waitFor(
      "tcp-command healthy (both checks)",
      async () => (await tasks("tcp-command")).find((x) => x.state === "TASK_RUNNING" && x.health?.healthy),
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.equal(t.health?.consecutiveFailures, 0);
    assert.equal(t.lastFailureCause, undefined);
    // Still healthy and the same task at every sample over a few intervals (nothing flaps, nothing is killed).
    for (const until = Date.now() + 4000; Date.now() < until; ) {
      const now = await tasks("tcp-command");
      assert.deepEqual(
        now.map((x) => [x.taskId, x.state, x.health?.healthy]),
        [[t.taskId, "TASK_RUNNING", true]],
      );
      await new Promise((r) => setTimeout(r, 500));
    }
    const again = await tasks("tcp-command");
    assert.deepEqual(
      again.map((x) => [x.taskId, x.state, x.health?.healthy]),
      [[t.taskId, "TASK_RUNNING", true]],
    );
    const shown = await current().cliJson<Record<string, unknown>>(["app", "show", "tcp-command", "--json"]);
    assert.equal(shown.tasksHealthy, 1);
    assert.equal(shown.tasksUnhealthy, 0);
    assert.equal((await current().cli(["app", "remove", "tcp-command"])).code, 0);
  }),
);
