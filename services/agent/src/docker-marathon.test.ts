/**
 * Marathon's app model on the real Docker engine through DockerExecutor: bridge and named networks,
 * host-path and persistent volumes, the sandbox and fetch (from a node:http server in this process),
 * privileged, docker parameters, user and forcePullImage. Image drover/busybox:1. Every container
 * and volume made here carries drover.test=executor and this run's drover.test.run label; they, the
 * test network, the work dir and the image tag are removed at the end, and none may be left.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  DockerExecutor,
  type DockerExecutorOptions,
  isNotFound,
  LABEL_AGENT_ID,
  LABEL_TASK_ID,
  LABEL_VOLUME_SIZE_MIB,
  SANDBOX_PATH,
  Sandboxes,
  type TaskLaunchSpec,
} from "@drover/runtime";
import { EventRecorder } from "@drover/runtime/conformance";
import Dockerode from "dockerode";

const run = promisify(execFile);
const IMAGE = "drover/busybox:1";
const RUN_ID = randomUUID().slice(0, 8);
const TEST_LABELS = { "drover.test": "executor", "drover.test.run": RUN_ID };
const NETWORK = `drover-test-net-${RUN_ID}`;
/** The local image under a name whose registry (a closed loopback port) cannot be pulled from. */
const UNPULLABLE = `127.0.0.1:1/drover/busybox:force-${RUN_ID}`;
const docker = new Dockerode();
const quiet = { debug: () => {}, warn: () => {} };

let workDir: string;
let server: Server;
let base: string;
const served = new Map<string, Buffer>();
const requests = new Map<string, number>();
const executors: DockerExecutor[] = [];
let agentSeq = 0;
let taskSeq = 0;
const newTaskId = (name: string) => `${name}.${RUN_ID}.${++taskSeq}`;

function newExecutor(opts: Partial<DockerExecutorOptions> = {}): {
  ex: DockerExecutor;
  rec: EventRecorder;
  agentId: string;
} {
  const agentId = opts.agentId ?? `agent-${RUN_ID}-m${++agentSeq}`;
  const ex = new DockerExecutor({ agentId, extraLabels: TEST_LABELS, logger: quiet, workDir, ...opts });
  executors.push(ex);
  const rec = new EventRecorder(30_000);
  ex.onEvent(rec.push);
  return { ex, rec, agentId };
}

function taskSpec(agentId: string, name: string, over: Partial<TaskLaunchSpec> = {}): TaskLaunchSpec {
  return {
    taskId: newTaskId(name),
    appId: `/test/${name}`,
    frameworkId: "fw-test",
    agentId,
    image: IMAGE,
    cmd: "sleep 300",
    cpus: 0.1,
    mem: 32,
    env: {},
    labels: {},
    ...over,
  };
}

async function waitUntil(cond: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function containersOfTask(taskId: string): Promise<Dockerode.ContainerInfo[]> {
  return docker.listContainers({
    all: true,
    filters: { label: [`${LABEL_TASK_ID}=${taskId}`, `drover.test.run=${RUN_ID}`] },
  });
}

/** A port nothing listens on now. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function httpGet(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return res.text();
}

before(async () => {
  try {
    await docker.getImage(IMAGE).inspect();
  } catch {
    const script = fileURLToPath(new URL("../../../deploy/images/build.sh", import.meta.url));
    await run("bash", [script], { timeout: 300_000 });
    await docker.getImage(IMAGE).inspect();
  }
  workDir = await mkdtemp(join(tmpdir(), "drover-marathon-test-"));
  // What the fetch tests serve: a script and a tarball made with the system's tar.
  const src = join(workDir, "src");
  await mkdir(join(src, "bundle"), { recursive: true });
  await writeFile(join(src, "bundle", "hello.txt"), "hello from the bundle\n");
  await run("tar", ["-czf", join(workDir, "bundle.tar.gz"), "-C", src, "bundle"]);
  served.set("/bundle.tar.gz", await readFile(join(workDir, "bundle.tar.gz")));
  served.set("/tool.sh", Buffer.from('#!/bin/sh\necho "tool ran" > tool.out\n'));
  server = createServer((req, res) => {
    const path = req.url ?? "/";
    requests.set(path, (requests.get(path) ?? 0) + 1);
    const body = served.get(path);
    if (!body) res.writeHead(404).end("not here");
    else res.writeHead(200, { "content-length": body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await Promise.allSettled(executors.map((e) => e.close()));
  const list = await docker.listContainers({ all: true, filters: { label: [`drover.test.run=${RUN_ID}`] } });
  await Promise.all(
    list.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        }),
    ),
  );
  const vols = await docker.listVolumes({ filters: { label: [`drover.test.run=${RUN_ID}`] } });
  for (const v of vols.Volumes ?? []) await docker.getVolume(v.Name).remove({ force: true });
  await docker
    .getNetwork(NETWORK)
    .remove()
    .catch(() => undefined);
  await docker
    .getImage(UNPULLABLE)
    .remove()
    .catch(() => undefined);
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  if (workDir) await rm(workDir, { recursive: true, force: true });
  const left = await docker.listContainers({ all: true, filters: { label: [`drover.test.run=${RUN_ID}`] } });
  assert.equal(left.length, 0, "test containers left behind");
  const leftVols = await docker.listVolumes({ filters: { label: [`drover.test.run=${RUN_ID}`] } });
  assert.equal(leftVols.Volumes?.length ?? 0, 0, "test volumes left behind");
});

/** busybox httpd serving the sandbox on `port`, with an index page saying `text`. */
const httpd = (text: string, port = 8080) => `echo ${text} > index.html && exec httpd -f -p ${port} -h .`;

describe("DockerExecutor: Marathon's app model (real Docker engine)", () => {
  test("bridge: httpd on containerPort 8080 answers on its mapped host port; the container's address is reported", async () => {
    const { ex, rec, agentId } = newExecutor();
    const hostPort = await freePort();
    const spec = taskSpec(agentId, "bridge", {
      cmd: httpd("bridge-ok"),
      ports: [hostPort],
      run: {
        network: { mode: "bridge" },
        portMappings: [{ containerPort: 8080, hostPort, protocol: "tcp" }],
      },
    });
    await ex.launch(spec);
    const running = await rec.running(spec.taskId);
    assert.ok(running.containerId);
    const info = await docker.getContainer(running.containerId).inspect();
    assert.equal(info.HostConfig.NetworkMode, "bridge");
    assert.deepEqual(info.HostConfig.PortBindings, {
      "8080/tcp": [{ HostIp: "", HostPort: String(hostPort) }],
    });
    assert.equal(info.Config.WorkingDir, SANDBOX_PATH, "a command-only task runs in its sandbox");
    assert.ok(info.Config.Env.includes(`MESOS_SANDBOX=${SANDBOX_PATH}`));
    assert.equal(running.containerIp, info.NetworkSettings.Networks.bridge?.IPAddress);
    assert.match(running.containerIp ?? "", /^\d+\.\d+\.\d+\.\d+$/);
    // Marathon's ipAddresses: the container's address(es) on its network, its own first.
    assert.equal(running.ipAddresses?.[0], running.containerIp);
    let body = "";
    await waitUntil(async () => {
      body = await httpGet(`http://127.0.0.1:${hostPort}/index.html`);
      return true;
    }, "httpd on the mapped host port");
    assert.equal(body.trim(), "bridge-ok");
    await ex.kill(spec.taskId, 1);
    assert.equal((await rec.terminal(spec.taskId)).state, "TASK_KILLED");
  });

  test("container network: joins the named network (reachable at its address); a missing network fails naming it", async () => {
    await docker.createNetwork({ Name: NETWORK, Labels: TEST_LABELS });
    const { ex, rec, agentId } = newExecutor();
    const spec = taskSpec(agentId, "named", {
      cmd: httpd("named-ok"),
      run: {
        network: { mode: "container", name: NETWORK },
        portMappings: [{ containerPort: 8080, hostPort: 0, protocol: "tcp" }],
      },
    });
    await ex.launch(spec);
    const running = await rec.running(spec.taskId);
    assert.ok(running.containerId);
    const info = await docker.getContainer(running.containerId).inspect();
    assert.equal(info.HostConfig.NetworkMode, NETWORK);
    assert.deepEqual(Object.keys(info.NetworkSettings.Networks), [NETWORK]);
    const ip = info.NetworkSettings.Networks[NETWORK]?.IPAddress;
    assert.ok(ip);
    assert.equal(running.containerIp, ip);
    assert.deepEqual(running.ipAddresses, [
      ip,
      ...(info.NetworkSettings.Networks[NETWORK]?.GlobalIPv6Address || []),
    ]);
    assert.deepEqual(info.HostConfig.PortBindings, {}, "a mapping without a host port is not published");
    // What a health check of a container network does: probe the container's address directly.
    await waitUntil(
      async () => (await httpGet(`http://${ip}:8080/index.html`)).trim() === "named-ok",
      "httpd at the container's address",
    );
    await ex.kill(spec.taskId, 1);
    await rec.terminal(spec.taskId);

    const missing = `drover-test-nonet-${RUN_ID}`;
    const lost = taskSpec(agentId, "nonet", { run: { network: { mode: "container", name: missing } } });
    await ex.launch(lost);
    const failed = await rec.terminal(lost.taskId);
    assert.equal(failed.state, "TASK_FAILED");
    assert.match(failed.message, new RegExp(`^network ${missing} does not exist on this agent`));
    assert.equal((await containersOfTask(lost.taskId)).length, 0);
    assert.equal(existsSync(new Sandboxes(workDir).path(lost.taskId)), false);
  });

  test("hostPath volumes: RO is readable and not writable, RW is writable; relative container paths are in the sandbox", async () => {
    const { ex, rec, agentId } = newExecutor();
    const roDir = join(workDir, "host-ro");
    const rwDir = join(workDir, "host-rw");
    await mkdir(roDir, { recursive: true });
    await mkdir(rwDir, { recursive: true });
    await writeFile(join(roDir, "in.txt"), "from the host\n");
    const spec = taskSpec(agentId, "binds", {
      cmd: [
        "cat /ro/in.txt > /rw/copy.txt",
        "if echo x > /ro/new.txt; then echo writable > /rw/ro-result; else echo refused > /rw/ro-result; fi",
        "test -f $MESOS_SANDBOX/rel/in.txt",
      ].join(" && "),
      run: {
        volumes: [
          { containerPath: "/ro", hostPath: roDir, mode: "RO" },
          { containerPath: "/rw", hostPath: rwDir, mode: "RW" },
          { containerPath: "rel", hostPath: roDir, mode: "RO" },
        ],
      },
    });
    await ex.launch(spec);
    const done = await rec.terminal(spec.taskId);
    assert.equal(done.state, "TASK_FINISHED", done.message);
    assert.equal(await readFile(join(rwDir, "copy.txt"), "utf8"), "from the host\n");
    assert.equal((await readFile(join(rwDir, "ro-result"), "utf8")).trim(), "refused");
    assert.equal(existsSync(join(roDir, "new.txt")), false);
  });

  test("a persistent volume keeps its data across kill, container removal and a new task; its size is a label", async () => {
    const { ex, rec, agentId } = newExecutor();
    const name = `drover-test-pv-${RUN_ID}`;
    const volumes = [
      { containerPath: "data", mode: "RW" as const, persistent: { name, sizeMib: 10 } },
      // Marathon's idiom: the persistent volume mounted again at an absolute path.
      { containerPath: "/var/lib/app", hostPath: "data", mode: "RW" as const },
    ];
    const sandboxes = new Sandboxes(workDir);
    const first = taskSpec(agentId, "pv1", {
      cmd: "echo kept > /var/lib/app/f && touch $MESOS_SANDBOX/written && sleep 300",
      run: { volumes },
    });
    await ex.launch(first);
    await rec.running(first.taskId);
    await waitUntil(
      async () => existsSync(join(sandboxes.path(first.taskId), "written")),
      "the first task's write",
    );
    await ex.kill(first.taskId, 1);
    assert.equal((await rec.terminal(first.taskId)).state, "TASK_KILLED");
    await waitUntil(async () => (await containersOfTask(first.taskId)).length === 0, "container removal");
    await waitUntil(async () => !existsSync(sandboxes.path(first.taskId)), "sandbox removal");

    const vol = await docker.getVolume(name).inspect();
    assert.equal(vol.Labels?.[LABEL_VOLUME_SIZE_MIB], "10");
    assert.equal(vol.Labels?.[LABEL_AGENT_ID], agentId);

    const second = taskSpec(agentId, "pv2", { cmd: 'test "$(cat data/f)" = kept', run: { volumes } });
    await ex.launch(second);
    const done = await rec.terminal(second.taskId);
    assert.equal(done.state, "TASK_FINISHED", `the new task reads the first one's data: ${done.message}`);
  });

  test("fetch: files land in the sandbox (extract, executable), the cache serves the second task, a 404 fails naming the URI", async () => {
    const { ex, rec, agentId } = newExecutor();
    const sandboxes = new Sandboxes(workDir);
    const fetchList = [
      { uri: `${base}/tool.sh`, extract: false, executable: true, cache: true },
      { uri: `${base}/bundle.tar.gz`, extract: true, executable: false, cache: false },
    ];
    const cmd =
      'test -x tool.sh && ./tool.sh && test "$(cat tool.out)" = "tool ran" && test "$(cat bundle/hello.txt)" = "hello from the bundle" && test -f bundle.tar.gz';
    const first = taskSpec(agentId, "fetch1", { cmd, run: { fetch: fetchList } });
    await ex.launch(first);
    const done = await rec.terminal(first.taskId);
    assert.equal(done.state, "TASK_FINISHED", done.message);
    await waitUntil(
      async () => !existsSync(sandboxes.path(first.taskId)),
      "sandbox removal with the container",
    );

    const second = taskSpec(agentId, "fetch2", { cmd, run: { fetch: fetchList } });
    await ex.launch(second);
    assert.equal((await rec.terminal(second.taskId)).state, "TASK_FINISHED");
    assert.equal(requests.get("/tool.sh"), 1, "the cached URI was downloaded once");
    assert.equal(requests.get("/bundle.tar.gz"), 2, "the uncached URI was downloaded each time");

    const missing = `${base}/missing.tgz`;
    const third = taskSpec(agentId, "fetch404", {
      run: { fetch: [{ uri: missing, extract: true, executable: false, cache: false }] },
    });
    await ex.launch(third);
    const failed = await rec.terminal(third.taskId);
    assert.equal(failed.state, "TASK_FAILED");
    assert.equal(failed.message, `fetch ${missing}: HTTP 404 Not Found`);
    assert.deepEqual(rec.states(third.taskId), ["TASK_STARTING", "TASK_FAILED"]);
    assert.equal((await containersOfTask(third.taskId)).length, 0);
    assert.equal(existsSync(sandboxes.path(third.taskId)), false);
  });

  test("privileged, docker parameters and user land on the container; the sandbox belongs to a numeric user", async () => {
    const { ex, rec, agentId } = newExecutor();
    const spec = taskSpec(agentId, "options", {
      cmd: "id -u > $MESOS_SANDBOX/uid && sleep 300",
      run: {
        privileged: true,
        user: "1234:1234",
        dockerParameters: [
          { key: "label", value: "tier=backend" },
          { key: "env", value: "FROM_PARAM=yes" },
          { key: "cap-add", value: "NET_ADMIN" },
          { key: "ulimit", value: "nofile=1024:2048" },
          { key: "hostname", value: "drover-box" },
          { key: "shm-size", value: "32m" },
          { key: "tmpfs", value: "/scratch:size=16m" },
          { key: "add-host", value: "db.internal:10.1.2.3" },
        ],
      },
    });
    await ex.launch(spec);
    const running = await rec.running(spec.taskId);
    assert.ok(running.containerId);
    const info = await docker.getContainer(running.containerId).inspect();
    assert.equal(info.HostConfig.Privileged, true);
    assert.equal(info.Config.User, "1234:1234");
    assert.equal(info.Config.Labels.tier, "backend");
    assert.ok(info.Config.Env.includes("FROM_PARAM=yes"));
    assert.deepEqual(info.HostConfig.CapAdd, ["NET_ADMIN"]);
    assert.deepEqual(info.HostConfig.Ulimits, [{ Name: "nofile", Soft: 1024, Hard: 2048 }]);
    assert.equal(info.Config.Hostname, "drover-box");
    assert.equal(info.HostConfig.ShmSize, 32 * 1024 * 1024);
    assert.deepEqual(info.HostConfig.Tmpfs, { "/scratch": "size=16m" });
    assert.deepEqual(info.HostConfig.ExtraHosts, ["db.internal:10.1.2.3"]);
    const uidFile = join(new Sandboxes(workDir).path(spec.taskId), "uid");
    await waitUntil(async () => existsSync(uidFile), "the task's write into its sandbox as uid 1234");
    assert.equal((await readFile(uidFile, "utf8")).trim(), "1234");
    await ex.kill(spec.taskId, 0);
    await rec.terminal(spec.taskId);
  });

  test("an unknown docker parameter fails the launch naming it; nothing is created", async () => {
    const { ex, rec, agentId } = newExecutor();
    const spec = taskSpec(agentId, "badparam", {
      run: {
        dockerParameters: [
          { key: "cap-add", value: "NET_ADMIN" },
          { key: "pid", value: "host" },
        ],
      },
    });
    await ex.launch(spec);
    const failed = await rec.terminal(spec.taskId);
    assert.equal(failed.state, "TASK_FAILED");
    assert.equal(failed.message, "container.docker.parameters: pid not supported");
    assert.deepEqual(rec.states(spec.taskId), ["TASK_FAILED"]);
    assert.equal((await containersOfTask(spec.taskId)).length, 0);
  });

  test("forcePullImage pulls even a present image, and a failed pull fails the task", async () => {
    await docker
      .getImage(IMAGE)
      .tag({ repo: UNPULLABLE.slice(0, UNPULLABLE.lastIndexOf(":")), tag: `force-${RUN_ID}` });
    const { ex, rec, agentId } = newExecutor();
    const present = taskSpec(agentId, "nopull", { image: UNPULLABLE, cmd: "true" });
    await ex.launch(present);
    assert.equal((await rec.terminal(present.taskId)).state, "TASK_FINISHED", "present: not pulled");
    const forced = taskSpec(agentId, "forcepull", {
      image: UNPULLABLE,
      cmd: "true",
      run: { forcePullImage: true },
    });
    await ex.launch(forced);
    const failed = await rec.terminal(forced.taskId);
    assert.equal(failed.state, "TASK_FAILED");
    assert.match(failed.message, /127\.0\.0\.1:1.*connection refused/i);
    assert.equal((await containersOfTask(forced.taskId)).length, 0);
  });
});
