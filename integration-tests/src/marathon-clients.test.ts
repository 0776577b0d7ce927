/**
 * Third-party Marathon clients, unmodified, against a real cluster (etcd, NATS, master, scheduler, agent, Docker).
 *
 * 1. Debian's python3-marathon (integration-tests/python/marathon_groups.py): groups (create with a
 *    dependency, get, list, scaleBy, update, delete), deployments (list while one runs, cancel with
 *    a rollback and with force) and its event stream reader in a thread. (Drover's GroupInfo leaves
 *    out `enforceRole`, which 0.13's MarathonGroup cannot take: Drover has no group roles.)
 * 2. npm's marathon-node 1.1.0: apps (create, get, list with embed, update/scale, restart, tasks,
 *    kill a task, versions, delete), groups (create, get, list, update, delete), task kills
 *    (killTasks; tasks.kill with scale), deployments (list, cancel with force), queue (list, reset
 *    the delay), info, leader, ping and its EventSource.
 * 3. marathon-lb's calls replayed with plain HTTP: `GET /v2/apps?embed=apps.tasks` and
 *    `GET /v2/events?event_type=…`, checking the fields marathon-lb reads (a host-networked app and
 *    a bridged one, both with HTTP health checks).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
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
const SCRIPT = join(repoRoot, "integration-tests", "python", "marathon_groups.py");
/** Debian's python3 (where apt's python3-marathon is installed), not another one first on the PATH. */
const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
/** Host ports of this cluster's agent: other clusters run on the same Docker host at the same time. */
const AGENT_PORTS = { from: 36_500, to: 36_599 };

let cluster: Cluster | undefined;
let url = "";

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

before(async () => {
  cluster = await startCluster({
    agents: 1,
    schedulers: 1,
    agentEnv: () => ({ DROVER_AGENT_PORTS: `${AGENT_PORTS.from}-${AGENT_PORTS.to}` }),
  });
  const scheduler = cluster.schedulers[0];
  assert.ok(scheduler, "a scheduler");
  url = httpUrlOf(scheduler) ?? "";
  assert.ok(url, "the scheduler has an HTTP address");
  await waitFor(
    "GET /v2/apps answered by the leader",
    async () => (await fetch(`${url}/v2/apps`).catch(() => undefined))?.status === 200,
    { timeoutMs: 60_000, intervalMs: 200 },
  );
});

after(async () => {
  await cluster?.stop();
});

const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

test(
  "python3-marathon, unmodified: groups, deployments and its event stream reader",
  { timeout: 240_000 },
  () =>
    withLogs(async () => {
      current();
      const { stdout, stderr } = await run(PYTHON, [SCRIPT, url, "/pyg"], {
        timeout: 220_000,
        maxBuffer: 4 * 1024 * 1024,
      }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
        throw new Error(
          `marathon_groups.py failed: ${err.message}\nstdout:\n${err.stdout}\nstderr:\n${err.stderr?.slice(-4000)}`,
        );
      });
      const last = stdout.trim().split("\n").pop() ?? "";
      const summary = JSON.parse(last) as { passed: string[]; failed: Record<string, string> };
      assert.deepEqual(
        summary.passed,
        [
          "create_group",
          "get_group",
          "list_groups",
          "scale_group",
          "update_group",
          "list_deployments",
          "delete_deployment (rollback)",
          "delete_deployment(force=True)",
          "delete_group",
          "event_stream(event_types)",
        ],
        stderr.slice(-2000),
      );
      assert.deepEqual(summary.failed, {});
    }),
);

// ---------------------------------------------------------------------------------------------------
// marathon-node 1.1.0 (CommonJS, no types): the part of its API this test drives.

type Query = Record<string, unknown> | undefined;
interface MarathonNode {
  apps: {
    getList(query?: Query): Promise<{ apps: AppJson[] }>;
    create(body: unknown): Promise<AppJson>;
    getOne(id: string, query?: Query): Promise<{ app: AppJson }>;
    update(id: string, body: unknown, force?: boolean): Promise<{ deploymentId: string; version: string }>;
    destroy(id: string, force?: boolean): Promise<{ deploymentId: string; version: string }>;
    restart(id: string, force?: boolean): Promise<{ deploymentId: string; version: string }>;
    getTasks(id: string): Promise<{ tasks: TaskJson[] }>;
    killTasks(id: string, query?: Query): Promise<{ tasks: TaskJson[] }>;
    killTask(id: string, taskId: string, scale?: boolean): Promise<{ deploymentId: string; version: string }>;
    getVersions(id: string): Promise<{ versions: string[] }>;
    getVersion(id: string, version: string): Promise<AppJson>;
  };
  tasks: {
    getList(): Promise<{ tasks: TaskJson[] }>;
    kill(body: { ids: string[] }, scale?: boolean, wipe?: boolean): Promise<{ deploymentId: string }>;
  };
  groups: {
    getList(): Promise<GroupJson>;
    create(body: unknown): Promise<{ deploymentId: string; version: string }>;
    getOne(id: string): Promise<GroupJson>;
    update(id: string, body: unknown, force?: boolean): Promise<{ deploymentId: string; version: string }>;
    destroy(id: string, force?: boolean): Promise<{ deploymentId: string; version: string }>;
  };
  deployments: {
    getList(): Promise<{ id: string; affectedApps: string[] }[]>;
    destroy(id: string, force?: boolean): Promise<unknown>;
  };
  queue: { get(): Promise<{ queue: unknown[] }>; resetDelay(id: string): Promise<unknown> };
  info: { get(): Promise<{ name: string; version: string; elected: boolean; leader: string }> };
  leader: { get(): Promise<{ leader: string }> };
  misc: { ping(): Promise<unknown> };
  events: {
    createEventSource(opts?: { eventType?: string | string[] }): EventSourceLike;
  };
}
interface EventSourceLike {
  addEventListener(type: string, listener: (e: { data: string }) => void): void;
  onerror: ((e: unknown) => void) | null;
  close(): void;
}
interface AppJson {
  id: string;
  cmd?: string;
  instances: number;
  tasksRunning?: number;
  tasks?: TaskJson[];
  version?: string;
}
interface GroupJson {
  id: string;
  apps: AppJson[];
  groups: GroupJson[];
}
interface TaskJson {
  id: string;
  appId: string;
  host: string;
  state?: string;
  ports: number[];
  startedAt?: string;
}

const requireCjs = createRequire(import.meta.url);
const Marathon = requireCjs("marathon-node") as (baseUrl: string, opts?: object) => MarathonNode;

test(
  "marathon-node 1.1.0, unmodified: apps, tasks, deployments, queue, info, leader, ping, events",
  { timeout: 180_000 },
  () =>
    withLogs(async () => {
      current();
      const client = Marathon(url);
      const id = "/it/node";
      const seen: { type: string; data: Record<string, unknown> }[] = [];
      const source = client.events.createEventSource({
        eventType: ["event_stream_attached", "status_update_event", "deployment_success"],
      });
      let streamError: unknown;
      source.onerror = (e) => {
        streamError = e;
      };
      for (const type of ["event_stream_attached", "status_update_event", "deployment_success"])
        source.addEventListener(type, (e) =>
          seen.push({ type, data: JSON.parse(e.data) as Record<string, unknown> }),
        );
      try {
        await waitFor("event_stream_attached on marathon-node's EventSource", async () =>
          seen.some((e) => e.type === "event_stream_attached"),
        );

        assert.equal(await client.misc.ping(), "pong");
        const info = await client.info.get();
        assert.ok(info.name, "a server name"); // Drover answers "drover"
        assert.equal(info.elected, true);
        assert.ok(info.version);
        const leader = await client.leader.get();
        assert.equal(`http://${leader.leader}`, url);
        assert.equal(info.leader, leader.leader);

        const created = await client.apps.create({
          id,
          cmd: "sleep 100000",
          cpus: 0.05,
          mem: 16,
          instances: 1,
        });
        assert.equal(created.id, id);
        assert.equal(created.instances, 1);
        const tasksRunning = async (n: number) => {
          const { app } = await client.apps.getOne(id, { embed: "app.tasks" });
          return app.tasksRunning === n && app.tasks?.filter((t) => t.state === "TASK_RUNNING").length === n
            ? app
            : undefined;
        };
        const one = await waitFor("1 task running (getOne)", () => tasksRunning(1), { timeoutMs: 90_000 });
        assert.equal(one.cmd, "sleep 100000");

        const listed = await client.apps.getList({ embed: "apps.tasks" });
        const mine = listed.apps.find((a) => a.id === id);
        assert.ok(mine, JSON.stringify(listed.apps.map((a) => a.id)));
        assert.equal(mine.tasks?.length, 1);
        assert.deepEqual((await client.apps.getList({ id: "no-such-app" })).apps, []);

        const scaled = await client.apps.update(id, { instances: 2 });
        assert.ok(scaled.deploymentId && scaled.version, JSON.stringify(scaled));
        const deployments = await client.deployments.getList();
        assert.ok(Array.isArray(deployments));
        await waitFor("2 tasks running", () => tasksRunning(2), { timeoutMs: 90_000 });
        await waitFor(
          "the scale's deployment to end",
          async () => !(await client.deployments.getList()).some((d) => d.id === scaled.deploymentId),
        );

        const { tasks } = await client.apps.getTasks(id);
        assert.equal(tasks.length, 2);
        assert.ok(tasks.every((t) => t.appId === id && t.host && t.startedAt && t.ports.length === 1));
        assert.ok(
          tasks.every((t) => (t.ports[0] ?? 0) >= AGENT_PORTS.from && (t.ports[0] ?? 0) <= AGENT_PORTS.to),
        );
        const all = await client.tasks.getList();
        assert.ok(tasks.every((t) => all.tasks.some((a) => a.id === t.id)));

        const victim = tasks[0]?.id ?? "";
        const killed = await client.apps.killTask(id, victim, true);
        assert.ok(killed.deploymentId, JSON.stringify(killed));
        await waitFor("scaled to 1 without the killed task", async () => {
          const { app } = await client.apps.getOne(id, { embed: "app.tasks" });
          return app.instances === 1 && app.tasksRunning === 1 && !app.tasks?.some((t) => t.id === victim);
        });

        const updated = await client.apps.update(id, { cmd: "sleep 200000" });
        await waitFor(
          "the update's deployment to end",
          async () => !(await client.deployments.getList()).some((d) => d.id === updated.deploymentId),
          { timeoutMs: 90_000 },
        );
        await waitFor("the new cmd running", async () => {
          const app = await tasksRunning(1);
          return app?.cmd === "sleep 200000";
        });
        const restarted = await client.apps.restart(id);
        assert.ok(restarted.deploymentId);
        await waitFor(
          "the restart's deployment to end",
          async () => !(await client.deployments.getList()).some((d) => d.id === restarted.deploymentId),
          { timeoutMs: 90_000 },
        );

        const { versions } = await client.apps.getVersions(id);
        assert.ok(versions.length >= 3, JSON.stringify(versions));
        const first = await client.apps.getVersion(id, versions[versions.length - 1] ?? "");
        assert.equal(first.cmd, "sleep 100000");
        assert.ok(Array.isArray((await client.queue.get()).queue));

        const removed = await client.apps.destroy(id);
        assert.ok(removed.deploymentId);
        await assert.rejects(
          client.apps.getOne(id),
          (err: { statusCode?: number }) => err.statusCode === 404,
        );
        await waitFor(
          "no task of the app left",
          async () => !(await client.tasks.getList()).tasks.some((t) => t.appId === id),
        );
        await waitFor("deployment_success of the delete on marathon-node's EventSource", async () =>
          seen.some((e) => e.type === "deployment_success" && e.data.id === removed.deploymentId),
        );
        const updates = seen.filter((e) => e.type === "status_update_event" && e.data.appId === id);
        const states = new Set(updates.map((e) => e.data.taskStatus));
        assert.ok(states.has("TASK_RUNNING") && states.has("TASK_KILLED"), JSON.stringify([...states]));
        assert.ok(seen.every((e) => e.data.eventType === e.type));
        assert.equal(streamError, undefined);
      } finally {
        source.close();
      }
    }),
);

test(
  "marathon-node 1.1.0, unmodified: groups, task kills, a forced deployment cancel, queue delay",
  { timeout: 180_000 },
  () =>
    withLogs(async () => {
      current();
      const client = Marathon(url);
      const group = "/nodeg";
      const id = `${group}/a`;
      const spec = { id, cmd: "sleep 100000", cpus: 0.05, mem: 16, instances: 1 };
      const created = await client.groups.create({ id: group, apps: [spec] });
      assert.ok(created.deploymentId && created.version, JSON.stringify(created));
      const runningTasks = async (n: number) => {
        const { app } = await client.apps.getOne(id, { embed: "app.tasks" });
        const alive = app.tasks?.filter((t) => t.state === "TASK_RUNNING") ?? [];
        return app.instances === n && alive.length === n && app.tasks?.length === n ? alive : undefined;
      };
      const [first] =
        (await waitFor("1 task of the group's app running", () => runningTasks(1), { timeoutMs: 90_000 })) ??
        [];
      assert.ok(first);
      // A change while a deployment of the app runs is 409 (Marathon's lock): wait for it to end
      // (it records its success a moment after the task runs), as a Marathon client does.
      const deploymentsIdle = (what: string) =>
        waitFor(`${what}: no deployment running`, async () =>
          (await client.deployments.getList()).length === 0 ? true : undefined,
        );
      await deploymentsIdle("after the group's creation");

      const got = await client.groups.getOne(group);
      assert.equal(got.id, group);
      assert.deepEqual(
        got.apps.map((a) => a.id),
        [id],
      );
      assert.ok((await client.groups.getList()).groups.some((g) => g.id === group));

      // DELETE /v2/apps/{id}/tasks without scale: the killed task is replaced.
      const killed = await client.apps.killTasks(id);
      assert.deepEqual(
        killed.tasks.map((t) => t.id),
        [first.id],
      );
      const [second] =
        (await waitFor("a replacement running", async () => {
          const alive = await runningTasks(1);
          return alive?.[0]?.id !== first.id ? alive : undefined;
        })) ?? [];
      assert.ok(second);

      // POST /v2/tasks/delete?scale=true: the app scales down to 0.
      await deploymentsIdle("after the replacement");
      const scaledDown = await client.tasks.kill({ ids: [second.id] }, true);
      assert.ok(scaledDown.deploymentId, JSON.stringify(scaledDown));
      await waitFor("scaled to 0", async () => {
        const { app } = await client.apps.getOne(id, { embed: "app.tasks" });
        return app.instances === 0 && app.tasks?.length === 0;
      });

      // A group update that cannot finish (a check that never passes), cancelled with force.
      await deploymentsIdle("after the scale down");
      const stuck = await client.groups.update(group, {
        apps: [
          {
            ...spec,
            cmd: "sleep 100001",
            healthChecks: [
              {
                protocol: "COMMAND",
                command: { value: "false" },
                gracePeriodSeconds: 300,
                intervalSeconds: 1,
              },
            ],
          },
        ],
      });
      await waitFor("the stuck deployment listed", async () =>
        (await client.deployments.getList()).some(
          (d) => d.id === stuck.deploymentId && d.affectedApps.includes(id),
        ),
      );
      await client.deployments.destroy(stuck.deploymentId, true);
      await waitFor(
        "the cancelled deployment gone",
        async () => !(await client.deployments.getList()).some((d) => d.id === stuck.deploymentId),
      );
      await client.queue.resetDelay(id);

      const removed = await client.groups.destroy(group);
      assert.ok(removed.deploymentId && removed.version, JSON.stringify(removed));
      await assert.rejects(
        client.groups.getOne(group),
        (err: { statusCode?: number }) => err.statusCode === 404,
      );
      await waitFor(
        "no task of the group left",
        async () => !(await client.tasks.getList()).tasks.some((t) => t.appId === id),
      );
    }),
);

// ---------------------------------------------------------------------------------------------------
// marathon-lb's calls, replayed with plain HTTP.

interface LbTask {
  id: string;
  appId: string;
  host: string;
  ports: number[];
  servicePorts: number[];
  startedAt?: string;
  healthCheckResults?: { alive: boolean }[];
}
interface LbApp {
  id: string;
  labels: Record<string, string>;
  env: Record<string, unknown>;
  healthChecks: { protocol: string; path?: string; portIndex?: number }[];
  portDefinitions?: { port: number; name?: string; labels?: Record<string, string>; protocol: string }[];
  container?: {
    type: string;
    docker?: {
      image: string;
      network?: string;
      portMappings?: {
        containerPort: number;
        hostPort: number;
        servicePort: number;
        name?: string;
        labels?: Record<string, string>;
      }[];
    };
    portMappings?: unknown[];
  };
  networks?: { mode: string }[];
  tasks: LbTask[];
}

/** Reads an SSE stream into parsed events until `done` says so (or the deadline passes). */
async function readSse(
  res: Response,
  done: (events: { event: string; data: Record<string, unknown> }[]) => boolean,
  timeoutMs: number,
): Promise<{ event: string; data: Record<string, unknown> }[]> {
  const reader = res.body?.getReader();
  assert.ok(reader, "an SSE body");
  const decoder = new TextDecoder();
  const events: { event: string; data: Record<string, unknown> }[] = [];
  let buffer = "";
  const deadline = Date.now() + timeoutMs;
  while (!done(events)) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    let timer: NodeJS.Timeout | undefined;
    const chunk = await Promise.race([
      reader.read(),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), left);
      }),
    ]);
    clearTimeout(timer);
    if (chunk === undefined || chunk.done) break;
    buffer += decoder.decode(chunk.value, { stream: true });
    let cut = buffer.indexOf("\n\n");
    while (cut >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) events.push({ event, data: JSON.parse(data) as Record<string, unknown> });
      cut = buffer.indexOf("\n\n");
    }
  }
  return events;
}

test(
  "marathon-lb's calls with plain HTTP: /v2/apps?embed=apps.tasks and /v2/events?event_type=…",
  { timeout: 180_000 },
  () =>
    withLogs(async () => {
      current();
      const abort = new AbortController();
      const events = await fetch(
        `${url}/v2/events?event_type=status_update_event&event_type=health_status_changed_event&event_type=api_post_event`,
        { headers: { accept: "text/event-stream" }, signal: abort.signal },
      );
      assert.equal(events.status, 200);
      assert.equal(events.headers.get("content-type")?.split(";")[0], "text/event-stream");
      try {
        const serve = (port: string) =>
          `mkdir -p /www && echo ok > /www/health && exec httpd -f -p ${port} -h /www`;
        const check = {
          protocol: "HTTP",
          path: "/health",
          portIndex: 0,
          intervalSeconds: 1,
          gracePeriodSeconds: 10,
          maxConsecutiveFailures: 3,
        };
        const hostApp = {
          id: "/lb/host",
          cmd: serve("$PORT0"),
          cpus: 0.05,
          mem: 16,
          instances: 1,
          labels: { HAPROXY_GROUP: "external", HAPROXY_0_VHOST: "host.example.com" },
          env: { GREETING: "hi" },
          portDefinitions: [
            { port: 10_101, name: "http", protocol: "tcp", labels: { VIP_0: "/lb-host:80" } },
          ],
          requirePorts: false,
          healthChecks: [check],
        };
        const bridgeApp = {
          id: "/lb/bridge",
          cmd: serve("8080"),
          cpus: 0.05,
          mem: 16,
          instances: 1,
          labels: { HAPROXY_GROUP: "external" },
          container: {
            type: "DOCKER",
            docker: {
              image: TASK_IMAGE,
              network: "BRIDGE",
              portMappings: [
                {
                  containerPort: 8080,
                  hostPort: 0,
                  servicePort: 10_102,
                  protocol: "tcp",
                  name: "web",
                  labels: { VIP_0: "/lb-bridge:80" },
                },
              ],
            },
          },
          healthChecks: [check],
        };
        for (const app of [hostApp, bridgeApp]) {
          const res = await fetch(`${url}/v2/apps`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(app),
          });
          assert.equal(res.status, 201, await res.text());
        }

        const healthy = await waitFor(
          "both apps' tasks running and alive in /v2/apps?embed=apps.tasks",
          async () => {
            const res = await fetch(`${url}/v2/apps?embed=apps.tasks`, {
              headers: { accept: "application/json" },
            });
            const { apps } = (await res.json()) as { apps: LbApp[] };
            const mine = apps.filter((a) => a.id.startsWith("/lb/"));
            const ok =
              mine.length === 2 &&
              mine.every(
                (a) =>
                  a.tasks.length === 1 &&
                  a.tasks.every((t) => t.startedAt && t.healthCheckResults?.[0]?.alive === true),
              );
            return ok ? mine : undefined;
          },
          { timeoutMs: 120_000, intervalMs: 500 },
        );
        const host = healthy.find((a) => a.id === "/lb/host");
        const bridge = healthy.find((a) => a.id === "/lb/bridge");
        assert.ok(host && bridge);

        // The app fields marathon-lb reads.
        assert.deepEqual(host.labels, hostApp.labels);
        assert.deepEqual(host.env, hostApp.env);
        assert.equal(host.healthChecks.length, 1);
        assert.equal(host.healthChecks[0]?.protocol, "HTTP");
        assert.equal(host.healthChecks[0]?.path, "/health");
        assert.deepEqual(
          host.portDefinitions?.map((p) => ({ port: p.port, name: p.name, labels: p.labels })),
          [{ port: 10_101, name: "http", labels: { VIP_0: "/lb-host:80" } }],
        );
        assert.deepEqual(bridge.labels, bridgeApp.labels);
        // Marathon 1.5+ answers container.portMappings; marathon-lb reads that or docker.portMappings.
        assert.ok(
          bridge.networks?.[0]?.mode === "container/bridge" || bridge.container?.docker?.network === "BRIDGE",
          JSON.stringify({ networks: bridge.networks, container: bridge.container }),
        );
        const mappings = (bridge.container?.portMappings ?? bridge.container?.docker?.portMappings) as
          | { containerPort: number; servicePort: number; name?: string; labels?: Record<string, string> }[]
          | undefined;
        assert.ok(mappings, JSON.stringify(bridge.container));
        assert.deepEqual(
          mappings.map((m) => ({
            containerPort: m.containerPort,
            servicePort: m.servicePort,
            name: m.name,
            labels: m.labels,
          })),
          [{ containerPort: 8080, servicePort: 10_102, name: "web", labels: { VIP_0: "/lb-bridge:80" } }],
        );
        // The task fields marathon-lb reads.
        for (const [app, servicePort] of [
          [host, 10_101],
          [bridge, 10_102],
        ] as const) {
          const task = app.tasks[0];
          assert.ok(task);
          assert.equal(task.appId, app.id);
          assert.ok(task.id && task.host, JSON.stringify(task));
          assert.equal(task.ports.length, 1);
          const port = task.ports[0] ?? 0;
          assert.ok(
            port >= AGENT_PORTS.from && port <= AGENT_PORTS.to,
            `host port ${port} in the agent's window`,
          );
          assert.deepEqual(task.servicePorts, [servicePort]);
          assert.ok(!Number.isNaN(Date.parse(task.startedAt ?? "")));
          assert.deepEqual(
            task.healthCheckResults?.map((r) => r.alive),
            [true],
          );
        }

        // The events marathon-lb follows, as it filters them.
        const seen = await readSse(
          events,
          (evs) =>
            ["/lb/host", "/lb/bridge"].every((id) =>
              evs.some(
                (e) =>
                  e.event === "status_update_event" &&
                  e.data.appId === id &&
                  e.data.taskStatus === "TASK_RUNNING",
              ),
            ) &&
            ["/lb/host", "/lb/bridge"].every((id) =>
              evs.some(
                (e) =>
                  e.event === "health_status_changed_event" && e.data.appId === id && e.data.alive === true,
              ),
            ) &&
            evs.filter((e) => e.event === "api_post_event").length >= 2,
          30_000,
        );
        const types = new Set(seen.map((e) => e.event));
        assert.deepEqual(
          [...types].sort(),
          ["api_post_event", "health_status_changed_event", "status_update_event"],
          JSON.stringify([...types]),
        );
        for (const e of seen) assert.equal(e.data.eventType, e.event);
        for (const app of [host, bridge]) {
          const running = seen.find(
            (e) =>
              e.event === "status_update_event" &&
              e.data.appId === app.id &&
              e.data.taskStatus === "TASK_RUNNING",
          );
          assert.ok(running, `status_update_event TASK_RUNNING of ${app.id}`);
          assert.equal(running.data.taskId, app.tasks[0]?.id);
          assert.equal(running.data.host, app.tasks[0]?.host);
          assert.deepEqual(running.data.ports, app.tasks[0]?.ports);
        }
        const posts = seen.filter((e) => e.event === "api_post_event");
        assert.deepEqual(posts.map((e) => (e.data.appDefinition as { id: string } | undefined)?.id).sort(), [
          "/lb/bridge",
          "/lb/host",
        ]);

        for (const id of ["/lb/host", "/lb/bridge"]) {
          const res = await fetch(`${url}/v2/apps${id}`, { method: "DELETE" });
          assert.equal(res.status, 200, await res.text());
        }
      } finally {
        abort.abort();
      }
    }),
);
