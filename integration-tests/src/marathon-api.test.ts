/**
 * Marathon's /v2 REST API on a real cluster (etcd, NATS, Docker; two scheduler replicas).
 *
 * 1. Debian's python3-marathon client, unmodified (integration-tests/python/marathon_client.py),
 *    given the follower first: create, get and list apps with embeds and a label selector, scale,
 *    list tasks, kill a task with scale, kill an app's tasks (replaced), update and watch the
 *    deployment, restart, versions, queue, delete.
 * 2. Plain HTTP: status codes and bodies Marathon clients rely on (201 + Location, 422 details,
 *    400 bad JSON, 404 messages, 409 with the blocking deployment, 202 on a forced cancel, 501 for
 *    pods), through the leader and through a follower.
 * 3. A bridge-networked task's `ipAddresses` (GET /v2/apps/{id}/tasks, status_update_event): its
 *    container's address, as Docker has it.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { isIPv4 } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import {
  type Cluster,
  httpUrlOf,
  repoRoot,
  startCluster,
  TASK_IMAGE,
  waitFor,
  withClusterLogs,
} from "./harness/index.js";

const run = promisify(execFile);
const SCRIPT = join(repoRoot, "integration-tests", "python", "marathon_client.py");
/** Debian's python3 (where apt's python3-marathon is installed), not another one first on the PATH. */
const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

let cluster: Cluster | undefined;
let leaderUrl = "";
let followerUrl = "";

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

before(async () => {
  // Host ports of a window of our own: other clusters on this Docker host use 31000 and up.
  const base = 20_000 + Math.floor(Math.random() * 90) * 100;
  cluster = await startCluster({
    agents: 1,
    schedulers: 2,
    env: { DROVER_AGENT_PORTS: `${base}-${base + 99}` },
  });
  const urls = cluster.schedulers.map((s) => httpUrlOf(s) ?? "");
  assert.ok(
    urls.every((u) => u !== ""),
    "every scheduler has an HTTP address",
  );
  // The leader as any replica names it (GET /v2/leader is answered locally), once it is known.
  const leader = await waitFor(
    "a scheduler leader with a published HTTP address",
    async () => {
      for (const u of urls) {
        const res = await fetch(`${u}/v2/leader`).catch(() => undefined);
        if (res?.status === 200) return ((await res.json()) as { leader: string }).leader;
      }
      return undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  leaderUrl = `http://${leader}`;
  followerUrl = urls.find((u) => u !== leaderUrl) ?? "";
  assert.ok(urls.includes(leaderUrl), `${leaderUrl} is one of ${urls.join(", ")}`);
  assert.ok(followerUrl, "a follower");
  // The leader answers app listings once it leads (the follower forwards by then too).
  await waitFor(
    "GET /v2/apps through the follower",
    async () => (await fetch(`${followerUrl}/v2/apps`).catch(() => undefined))?.status === 200,
    { timeoutMs: 60_000, intervalMs: 200 },
  );
});

after(async () => {
  await cluster?.stop();
});

const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; headers: Headers; json: unknown; text: string }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json", accept: "application/json" },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

test("python3-marathon, unmodified, drives Drover through a follower", { timeout: 300_000 }, () =>
  withLogs(async () => {
    current();
    const { stdout, stderr } = await run(PYTHON, [SCRIPT, leaderUrl, followerUrl, "/it/python"], {
      timeout: 280_000,
      maxBuffer: 4 * 1024 * 1024,
    }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(
        `marathon_client.py failed: ${err.message}\nstdout:\n${err.stdout}\nstderr:\n${err.stderr?.slice(-4000)}`,
      );
    });
    const last = stdout.trim().split("\n").pop() ?? "";
    const summary = JSON.parse(last) as { passed: string[] };
    assert.deepEqual(
      summary.passed,
      [
        "create_app",
        "get_app(embed_tasks)",
        "list_apps(embed_tasks, embed_counts, label, app_id)",
        "scale_app",
        "list_tasks",
        "kill_task(scale=True)",
        "kill_tasks (replaced)",
        "update_app + list_deployments",
        "restart_app",
        "list_versions + get_version",
        "list_queue",
        "get_info + get_leader + ping + get_metrics",
        "delete_app",
      ],
      stderr.slice(-2000),
    );
  }),
);

test("raw HTTP: Marathon's status codes, headers and error bodies", { timeout: 180_000 }, () =>
  withLogs(async () => {
    current();
    const id = "/it/raw";
    // 201 + Location + Marathon-Deployment-Id, through the follower.
    const created = await call(followerUrl, "POST", "/v2/apps", {
      id,
      cmd: "sleep 100000",
      cpus: 0.05,
      mem: 16,
      instances: 1,
    });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.headers.get("location"), `/v2/apps${id}`);
    assert.ok(created.headers.get("marathon-deployment-id"));
    assert.equal((created.json as { id: string }).id, id);

    const dup = await call(leaderUrl, "POST", "/v2/apps", { id, cmd: "sleep 1", cpus: 0.05, mem: 16 });
    assert.equal(dup.status, 409);
    assert.deepEqual(dup.json, { message: `An app with id [${id}] already exists.` });

    // 422 with Marathon's details.
    const invalid = await call(leaderUrl, "PUT", `/v2/apps${id}`, {
      cpus: -1,
      upgradeStrategy: { minimumHealthCapacity: 2 },
    });
    assert.equal(invalid.status, 422, invalid.text);
    const details = invalid.json as { message: string; details: { path: string; errors: string[] }[] };
    assert.equal(details.message, "Object is not valid");
    const paths = details.details.map((d) => d.path).sort();
    assert.deepEqual(paths, ["/cpus", "/upgradeStrategy/minimumHealthCapacity"]);
    assert.ok(details.details.every((d) => d.errors.length > 0 && d.errors.every((e) => e.length > 0)));

    // 400 on a body that is no JSON, through the follower too.
    for (const base of [leaderUrl, followerUrl]) {
      const bad = await call(base, "POST", "/v2/apps", "{ not json");
      assert.equal(bad.status, 400, bad.text);
      assert.equal((bad.json as { message: string }).message, "Invalid JSON");
    }

    // 404 with Marathon's messages.
    assert.deepEqual((await call(leaderUrl, "GET", "/v2/apps/it/none")).json, {
      message: "App '/it/none' does not exist",
    });
    assert.equal((await call(leaderUrl, "GET", "/v2/apps/it/none")).status, 404);
    const noDep = await call(leaderUrl, "DELETE", "/v2/deployments/00000000-0000-4000-8000-000000000000");
    assert.equal(noDep.status, 404);
    assert.deepEqual(noDep.json, {
      message: "DeploymentPlan 00000000-0000-4000-8000-000000000000 does not exist",
    });

    // A deployment that cannot finish (its new instances never become healthy) locks the app: 409 naming it.
    await waitFor(
      "1 task running",
      async () =>
        ((await call(leaderUrl, "GET", `/v2/apps${id}`)).json as { app: { tasksRunning: number } }).app
          .tasksRunning === 1,
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    const stuck = await call(leaderUrl, "PUT", `/v2/apps${id}`, {
      cmd: "sleep 100001",
      healthChecks: [
        { protocol: "COMMAND", command: { value: "false" }, gracePeriodSeconds: 300, intervalSeconds: 1 },
      ],
    });
    assert.equal(stuck.status, 200, stuck.text);
    const depId = (stuck.json as { deploymentId: string }).deploymentId;
    assert.equal(stuck.headers.get("marathon-deployment-id"), depId);
    const listed = (await call(followerUrl, "GET", "/v2/deployments")).json as {
      id: string;
      affectedApps: string[];
    }[];
    assert.ok(
      listed.some((d) => d.id === depId && d.affectedApps.includes(id)),
      JSON.stringify(listed),
    );
    const locked = await call(leaderUrl, "PUT", `/v2/apps${id}`, { instances: 2 });
    assert.equal(locked.status, 409, locked.text);
    assert.deepEqual((locked.json as { deployments: unknown }).deployments, [{ id: depId }]);
    assert.match((locked.json as { message: string }).message, /App is locked by one or more deployments/);
    const restartLocked = await call(leaderUrl, "POST", `/v2/apps${id}/restart`);
    assert.equal(restartLocked.status, 409, restartLocked.text);
    assert.deepEqual((restartLocked.json as { deployments: unknown }).deployments, [{ id: depId }]);

    // Cancel with force: 202 and no body; the deployment is gone from the list.
    const cancelled = await call(followerUrl, "DELETE", `/v2/deployments/${depId}?force=true`);
    assert.equal(cancelled.status, 202, cancelled.text);
    assert.equal(cancelled.text, "");
    const after = (await call(leaderUrl, "GET", "/v2/deployments")).json as { id: string }[];
    assert.ok(!after.some((d) => d.id === depId));

    // Tasks: JSON and text/plain.
    const tasks = (await call(leaderUrl, "GET", "/v2/tasks?status=running")).json as {
      tasks: { appId: string; host: string }[];
    };
    assert.ok(
      tasks.tasks.some((t) => t.appId === id && t.host.length > 0),
      JSON.stringify(tasks),
    );
    const text = await fetch(`${leaderUrl}/v2/apps${id}/tasks`, { headers: { accept: "text/plain" } });
    assert.equal(text.headers.get("content-type")?.split(";")[0], "text/plain");
    assert.match(await text.text(), /^it_raw\t/);

    // Pods are refused, saying so.
    for (const method of ["HEAD", "GET"]) {
      const pods = await fetch(`${followerUrl}/v2/pods`, { method });
      assert.equal(pods.status, 501, method);
    }
    // ping and metrics on every replica.
    for (const base of [leaderUrl, followerUrl]) {
      assert.equal(await (await fetch(`${base}/ping`)).text(), "pong");
      assert.match(await (await fetch(`${base}/metrics/prometheus`)).text(), /# TYPE /);
      const json = (await (await fetch(`${base}/metrics`)).json()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(json).sort(), [
        "counters",
        "gauges",
        "histograms",
        "meters",
        "timers",
        "version",
      ]);
    }
    // The SSE plugin (http/events.ts) is registered: a follower serves /v2/events itself.
    const abort = new AbortController();
    const events = await fetch(`${followerUrl}/v2/events`, {
      headers: { accept: "text/event-stream" },
      signal: abort.signal,
    });
    assert.equal(events.status, 200);
    assert.equal(events.headers.get("content-type")?.split(";")[0], "text/event-stream");
    const reader = events.body?.getReader();
    assert.ok(reader);
    let received = "";
    await waitFor(
      "event_stream_attached on the follower's /v2/events",
      async () => {
        const chunk = await reader.read();
        received += new TextDecoder().decode(chunk.value ?? new Uint8Array());
        return received.includes("event: event_stream_attached") || chunk.done;
      },
      { timeoutMs: 20_000, intervalMs: 1 },
    );
    assert.match(received, /event: event_stream_attached/);
    abort.abort();
    const info = (await call(followerUrl, "GET", "/v2/info")).json as { elected: boolean; leader: string };
    assert.equal(info.elected, false);
    assert.equal(`http://${info.leader}`, leaderUrl);

    const removed = await call(followerUrl, "DELETE", `/v2/apps${id}`);
    assert.equal(removed.status, 200, removed.text);
    assert.ok((removed.json as { deploymentId: string }).deploymentId);
    assert.equal((await call(leaderUrl, "GET", `/v2/apps${id}`)).status, 404);
  }),
);

test(
  "a bridge-networked task's ipAddresses: its container's IPv4, in /v2/apps/{id}/tasks and status_update_event",
  {
    timeout: 120_000,
  },
  () =>
    withLogs(async () => {
      current();
      const id = "/it/ip/bridge";
      // The follower's event stream, from before the app exists: its status_update_event of RUNNING.
      const abort = new AbortController();
      const events = await fetch(`${followerUrl}/v2/events?event_type=status_update_event`, {
        headers: { accept: "text/event-stream" },
        signal: abort.signal,
      });
      assert.equal(events.status, 200);
      const reader = events.body?.getReader();
      assert.ok(reader);
      try {
        const created = await call(leaderUrl, "POST", "/v2/apps", {
          id,
          cmd: "sleep 100000",
          cpus: 0.05,
          mem: 16,
          instances: 1,
          container: {
            type: "DOCKER",
            docker: {
              image: TASK_IMAGE,
              network: "BRIDGE",
              portMappings: [{ containerPort: 8080, hostPort: 0, protocol: "tcp" }],
            },
          },
        });
        assert.equal(created.status, 201, created.text);
        type Task = { id: string; state: string; ipAddresses: { ipAddress: string; protocol: string }[] };
        const task = await waitFor(
          "the bridge task running, with its addresses",
          async () => {
            const res = await call(followerUrl, "GET", `/v2/apps${id}/tasks`);
            const tasks = res.status === 200 ? (res.json as { tasks: Task[] }).tasks : [];
            return tasks.find((t) => t.state === "TASK_RUNNING" && t.ipAddresses.length > 0);
          },
          { timeoutMs: 90_000, intervalMs: 250 },
        );
        const v4 = task.ipAddresses.filter((a) => a.protocol === "IPv4");
        assert.equal(v4.length, 1, JSON.stringify(task.ipAddresses));
        const ip = v4[0]?.ipAddress ?? "";
        assert.ok(isIPv4(ip), ip);
        for (const a of task.ipAddresses) assert.ok(a.protocol === "IPv4" || a.protocol === "IPv6");
        // The address Docker gave the container on the bridge.
        const { stdout: cid } = await run("docker", [
          "ps",
          "-q",
          "--filter",
          `label=drover.task_id=${task.id}`,
        ]);
        assert.ok(cid.trim(), `the container of ${task.id}`);
        const { stdout: dockerIp } = await run("docker", [
          "inspect",
          "-f",
          "{{.NetworkSettings.Networks.bridge.IPAddress}}",
          cid.trim(),
        ]);
        assert.equal(ip, dockerIp.trim());

        // The same addresses in the status_update_event of its RUNNING.
        let received = "";
        const running = await waitFor(
          "status_update_event TASK_RUNNING of the bridge task",
          async () => {
            const chunk = await reader.read();
            received += new TextDecoder().decode(chunk.value ?? new Uint8Array());
            // Complete lines only (a chunk may end inside one).
            for (const line of received.split("\n").slice(0, -1)) {
              if (!line.startsWith("data: ")) continue;
              const e = JSON.parse(line.slice(6)) as {
                taskId?: string;
                taskStatus?: string;
                ipAddresses?: unknown;
              };
              if (e.taskId === task.id && e.taskStatus === "TASK_RUNNING") return e;
            }
            assert.ok(!chunk.done, "the stream ended");
            return undefined;
          },
          { timeoutMs: 30_000, intervalMs: 1 },
        );
        assert.deepEqual(running.ipAddresses, task.ipAddresses);
      } finally {
        abort.abort();
      }
      const removed = await call(leaderUrl, "DELETE", `/v2/apps${id}?force=true`);
      assert.equal(removed.status, 200, removed.text);
    }),
);

test(
  "GET /v2/queue: the funnel of the last offers, the launch attempt's sums and the offers unused, with their reasons",
  {
    timeout: 120_000,
  },
  () =>
    withLogs(async () => {
      current();
      // Too big for the one agent, and a constraint no agent meets.
      const big = { id: "/it/queue/big", cmd: "sleep 100000", cpus: 0.05, mem: 1_000_000, instances: 2 };
      const nowhere = {
        id: "/it/queue/nowhere",
        cmd: "sleep 100000",
        cpus: 0.05,
        mem: 16,
        instances: 1,
        constraints: [["hostname", "LIKE", "nowhere-.*"]],
      };
      for (const app of [big, nowhere]) {
        const res = await call(followerUrl, "POST", "/v2/apps", app);
        assert.equal(res.status, 201, res.text);
      }
      type Row = { reason: string; declined: number; processed: number };
      type Item = {
        app: { id: string };
        count: number;
        since: string;
        processedOffersSummary: {
          processedOffersCount: number;
          unusedOffersCount: number;
          rejectSummaryLastOffers: Row[];
          rejectSummaryLaunchAttempt: Row[];
        };
        lastUnusedOffers?: {
          offer: { id: string; agentId: string; hostname: string; resources: { name: string }[] };
          reason: string[];
          timestamp: string;
        }[];
      };
      // Both have been offered the agent's resources at least twice.
      const queue = await waitFor(
        "both apps in the queue after two rounds of offers",
        async () => {
          const res = await call(followerUrl, "GET", "/v2/queue?embed=lastUnusedOffers");
          if (res.status !== 200) return undefined;
          const items = (res.json as { queue: Item[] }).queue;
          const mine = items.filter((i) => i.app.id.startsWith("/it/queue/"));
          return mine.length === 2 && mine.every((i) => i.processedOffersSummary.processedOffersCount >= 2)
            ? mine
            : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      const byId = new Map(queue.map((i) => [i.app.id, i]));
      const row = (
        item: Item | undefined,
        list: "rejectSummaryLastOffers" | "rejectSummaryLaunchAttempt",
        reason: string,
      ) => item?.processedOffersSummary[list].find((r) => r.reason === reason);

      const b = byId.get(big.id);
      assert.equal(b?.count, 2);
      // The one agent's offer is declined for memory; every check before that passed it.
      assert.deepEqual(row(b, "rejectSummaryLastOffers", "UnfulfilledConstraint"), {
        reason: "UnfulfilledConstraint",
        declined: 0,
        processed: 1,
      });
      assert.deepEqual(row(b, "rejectSummaryLastOffers", "InsufficientMemory"), {
        reason: "InsufficientMemory",
        declined: 1,
        processed: 1,
      });
      assert.deepEqual(row(b, "rejectSummaryLastOffers", "InsufficientDisk"), {
        reason: "InsufficientDisk",
        declined: 0,
        processed: 0,
      });
      const attempt = b?.processedOffersSummary;
      assert.ok(attempt && attempt.unusedOffersCount === attempt.processedOffersCount);
      assert.equal(
        row(b, "rejectSummaryLaunchAttempt", "InsufficientMemory")?.declined,
        attempt.processedOffersCount,
      );
      assert.equal(b?.lastUnusedOffers?.length, 1);
      const unused = b?.lastUnusedOffers?.[0];
      assert.deepEqual(unused?.reason, ["InsufficientMemory"]);
      assert.ok(unused?.offer.id && unused.offer.agentId && unused.offer.hostname, JSON.stringify(unused));
      assert.deepEqual(unused?.offer.resources.map((r) => r.name).slice(0, 3), ["cpus", "mem", "disk"]);

      const n = byId.get(nowhere.id);
      assert.deepEqual(row(n, "rejectSummaryLastOffers", "UnfulfilledConstraint"), {
        reason: "UnfulfilledConstraint",
        declined: 1,
        processed: 1,
      });
      assert.equal(row(n, "rejectSummaryLastOffers", "InsufficientCpus")?.processed, 0);
      assert.deepEqual(n?.lastUnusedOffers?.[0]?.reason, ["UnfulfilledConstraint"]);

      // Without the embed, no lastUnusedOffers; an embed the queue does not know is refused by name.
      const plain = (await call(leaderUrl, "GET", "/v2/queue")).json as { queue: Item[] };
      assert.ok(plain.queue.every((i) => i.lastUnusedOffers === undefined));
      const bad = await call(leaderUrl, "GET", "/v2/queue?embed=offers");
      assert.equal(bad.status, 400);
      assert.match(bad.text, /embed: unknown 'offers'/);

      for (const app of [big, nowhere]) {
        const res = await call(leaderUrl, "DELETE", `/v2/apps${app.id}?force=true`);
        assert.equal(res.status, 200, res.text);
      }
    }),
);
