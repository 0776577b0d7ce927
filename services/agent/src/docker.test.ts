/**
 * DockerExecutor against the real Docker engine (/var/run/docker.sock or DOCKER_HOST) with the
 * local image drover/busybox:1. Every container created here carries drover.test=executor and this
 * run's drover.test.run label; they are removed by those labels at the end, even on failure.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  DockerExecutor,
  type DockerExecutorOptions,
  ExecutorClosedError,
  isNotFound,
  LABEL_AGENT_ID,
  LABEL_APP_ID,
  LABEL_CPUS,
  LABEL_FRAMEWORK_ID,
  LABEL_MEM,
  LABEL_TASK_ID,
  type TaskLaunchSpec,
} from "@drover/runtime";
import { EventRecorder } from "@drover/runtime/conformance";
import Dockerode from "dockerode";

const run = promisify(execFile);
const DOCKER_CLI = "/usr/bin/docker";
const IMAGE = "drover/busybox:1";
const RUN_ID = randomUUID().slice(0, 8);
const TEST_LABELS = { "drover.test": "executor", "drover.test.run": RUN_ID };
const docker = new Dockerode();
const quiet = { debug: () => {}, warn: () => {} };

let agentSeq = 0;
let taskSeq = 0;
const newAgentId = () => `agent-${RUN_ID}-${++agentSeq}`;
const newTaskId = (name: string) => `${name}.${RUN_ID}.${++taskSeq}`;

/** Polls a condition (a Docker state) until it holds or the deadline passes. */
async function waitUntil(cond: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function containersOfTask(taskId: string): Promise<Dockerode.ContainerInfo[]> {
  return docker.listContainers({
    all: true,
    filters: { label: [`${LABEL_TASK_ID}=${taskId}`, "drover.test=executor"] },
  });
}

async function removeTestContainers(): Promise<void> {
  const list = await docker.listContainers({
    all: true,
    filters: { label: ["drover.test=executor", `drover.test.run=${RUN_ID}`] },
  });
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
}

const executors: DockerExecutor[] = [];
/** The executors' work dir (their task sandboxes), removed at the end. */
let workDir: string | undefined;
function newExecutor(opts: Partial<DockerExecutorOptions> = {}): {
  ex: DockerExecutor;
  rec: EventRecorder;
  agentId: string;
} {
  const agentId = opts.agentId ?? newAgentId();
  const ex = new DockerExecutor({ agentId, extraLabels: TEST_LABELS, logger: quiet, workDir, ...opts });
  executors.push(ex);
  const rec = new EventRecorder();
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

before(async () => {
  try {
    await docker.getImage(IMAGE).inspect();
  } catch {
    const script = fileURLToPath(new URL("../../../deploy/images/build.sh", import.meta.url));
    await run("bash", [script], { timeout: 300_000 });
    await docker.getImage(IMAGE).inspect();
  }
  workDir = await mkdtemp(join(tmpdir(), "drover-executor-test-"));
});

after(async () => {
  await Promise.allSettled(executors.map((e) => e.close()));
  await removeTestContainers();
  if (workDir) await rm(workDir, { recursive: true, force: true });
  const left = await docker.listContainers({ all: true, filters: { label: [`drover.test.run=${RUN_ID}`] } });
  assert.equal(left.length, 0, "test containers left behind");
});

describe("DockerExecutor (real Docker engine)", () => {
  test("launch → RUNNING with limits and labels; idempotent; outside `docker kill` → FAILED 137", async (t) => {
    const { ex, rec, agentId } = newExecutor();
    const spec = taskSpec(agentId, "sleeper", {
      cpus: 0.5,
      mem: 64,
      env: { GREETING: "hello world" },
      labels: { team: "platform" },
    });
    const t0 = performance.now();
    await ex.launch(spec);
    const running = await rec.waitFor(
      (e) => e.taskId === spec.taskId && e.state === "TASK_RUNNING",
      "RUNNING",
    );
    const launchMs = performance.now() - t0;
    t.diagnostic(`launch → RUNNING: ${launchMs.toFixed(0)} ms`);
    assert.deepEqual(
      rec.of(spec.taskId).map((e) => e.state),
      ["TASK_STARTING", "TASK_RUNNING"],
    );
    const containerId = running.containerId;
    assert.ok(containerId, "RUNNING carries the container id");

    const info = await docker.getContainer(containerId).inspect();
    assert.equal(info.Name, `/drover-${spec.taskId}`);
    assert.equal(info.State.Running, true);
    assert.equal(info.HostConfig.NanoCpus, 500_000_000);
    assert.equal(info.HostConfig.Memory, 67_108_864);
    assert.deepEqual(info.Config.Cmd, ["/bin/sh", "-c", "sleep 300"]);
    assert.ok(info.Config.Env.includes("GREETING=hello world"), JSON.stringify(info.Config.Env));
    const labels = info.Config.Labels;
    assert.equal(labels[LABEL_TASK_ID], spec.taskId);
    assert.equal(labels[LABEL_APP_ID], spec.appId);
    assert.equal(labels[LABEL_AGENT_ID], agentId);
    assert.equal(labels[LABEL_FRAMEWORK_ID], "fw-test");
    assert.equal(labels[LABEL_CPUS], "0.5");
    assert.equal(labels[LABEL_MEM], "64");
    assert.equal(labels.team, "platform");
    assert.equal(labels["drover.test"], "executor");

    // Idempotent launch: again, twice concurrently, and through a second executor of the same agent
    // (a restarted agent that has not recovered yet) — still one container, no new STARTING.
    await Promise.all([ex.launch(spec), ex.launch(spec)]);
    const other = newExecutor({ agentId });
    await other.ex.launch(spec);
    assert.equal((await containersOfTask(spec.taskId)).length, 1);
    assert.deepEqual(
      rec.of(spec.taskId).map((e) => e.state),
      ["TASK_STARTING", "TASK_RUNNING"],
    );
    assert.equal(
      other.rec.of(spec.taskId).find((e) => e.state === "TASK_RUNNING")?.containerId,
      containerId,
      "the second executor adopted the existing container",
    );
    await other.ex.close();

    assert.deepEqual(await ex.running(), new Map([[spec.taskId, containerId]]));

    await run(DOCKER_CLI, ["kill", containerId]);
    const failed = await rec.terminal(spec.taskId);
    assert.equal(failed.state, "TASK_FAILED");
    assert.equal(failed.exitCode, 137);
    assert.match(failed.message, /exited with code 137 \(OOMKilled=false\)/);
    await waitUntil(async () => (await containersOfTask(spec.taskId)).length === 0, "container removal");
    assert.equal(rec.terminals(spec.taskId).length, 1);
    assert.deepEqual(await ex.running(), new Map());
  });

  test('"exit 3" → FAILED with exitCode 3 after RUNNING', async () => {
    const { ex, rec, agentId } = newExecutor();
    const spec = taskSpec(agentId, "exit3", { cmd: "exit 3" });
    await ex.launch(spec);
    const failed = await rec.terminal(spec.taskId);
    assert.equal(failed.state, "TASK_FAILED");
    assert.equal(failed.exitCode, 3);
    assert.match(failed.message, /code 3/);
    assert.deepEqual(
      rec.of(spec.taskId).map((e) => e.state),
      ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"],
    );
    await waitUntil(async () => (await containersOfTask(spec.taskId)).length === 0, "container removal");
    assert.equal(rec.terminals(spec.taskId).length, 1);
  });

  test('"true" → FINISHED with exitCode 0, reported once', async () => {
    const { ex, rec, agentId } = newExecutor();
    const spec = taskSpec(agentId, "true", { cmd: "true" });
    await ex.launch(spec);
    const done = await rec.terminal(spec.taskId);
    assert.equal(done.state, "TASK_FINISHED");
    assert.equal(done.exitCode, 0);
    await waitUntil(async () => (await containersOfTask(spec.taskId)).length === 0, "container removal");
    assert.deepEqual(
      rec.of(spec.taskId).map((e) => e.state),
      ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
    );
    // Relaunching a finished task id does nothing (a task id runs at most once per agent).
    await ex.launch(spec);
    assert.equal((await containersOfTask(spec.taskId)).length, 0);
    assert.equal(rec.of(spec.taskId).length, 3);
  });

  test("kill() → KILLED within the grace period; repeated and unknown kills are idempotent", async () => {
    const { ex, rec, agentId } = newExecutor();
    const spec = taskSpec(agentId, "victim");
    await ex.launch(spec);
    await rec.waitFor((e) => e.taskId === spec.taskId && e.state === "TASK_RUNNING", "RUNNING");
    const t0 = performance.now();
    await ex.kill(spec.taskId, 1);
    const killMs = performance.now() - t0;
    const killed = await rec.terminal(spec.taskId);
    assert.equal(killed.state, "TASK_KILLED");
    assert.ok(killMs < 10_000, `kill took ${killMs} ms`);
    await ex.kill(spec.taskId, 1);
    assert.equal(rec.terminals(spec.taskId).length, 1);
    await waitUntil(async () => (await containersOfTask(spec.taskId)).length === 0, "container removal");

    const unknown = newTaskId("unknown");
    await ex.kill(unknown, 1);
    await ex.kill(unknown, 1);
    assert.deepEqual(
      rec.of(unknown).map((e) => [e.state, e.message]),
      [["TASK_KILLED", "unknown task"]],
    );
  });

  test("kill() while the launch is in flight never leaves a running container", async () => {
    const { ex, rec, agentId } = newExecutor();
    const spec = taskSpec(agentId, "racer");
    const launching = ex.launch(spec);
    await ex.kill(spec.taskId, 0);
    await launching;
    const end = await rec.terminal(spec.taskId);
    assert.equal(end.state, "TASK_KILLED");
    await waitUntil(async () => (await containersOfTask(spec.taskId)).length === 0, "container removal");
    assert.equal(rec.terminals(spec.taskId).length, 1);
  });

  test("an image that cannot be pulled → FAILED with Docker's reason, no container", async () => {
    const { ex, rec, agentId } = newExecutor();
    // A registry on a closed loopback port: the pull fails at once and no traffic leaves the machine.
    const image = "127.0.0.1:1/drover/does-not-exist:1";
    const spec = taskSpec(agentId, "noimage", { image });
    // What Docker itself says about this pull, to compare with.
    const dockerSays = await docker.pull(image).then(
      () => "",
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    await ex.launch(spec);
    const failed = await rec.terminal(spec.taskId);
    assert.equal(failed.state, "TASK_FAILED");
    assert.ok(failed.message.length > 0);
    assert.ok(dockerSays.includes(failed.message), `"${failed.message}" is not Docker's "${dockerSays}"`);
    assert.match(failed.message, /127\.0\.0\.1:1.*connection refused/i);
    assert.deepEqual(
      rec.of(spec.taskId).map((e) => e.state),
      ["TASK_STARTING", "TASK_FAILED"],
    );
    assert.equal((await containersOfTask(spec.taskId)).length, 0);
  });

  test("an invalid spec → FAILED naming the fields, nothing created", async () => {
    const { ex, rec, agentId } = newExecutor();
    const spec = taskSpec(agentId, "invalid", { cpus: -1 });
    await ex.launch(spec);
    const failed = await rec.terminal(spec.taskId);
    assert.equal(failed.state, "TASK_FAILED");
    assert.match(failed.message, /invalid launch spec: cpus/);
    assert.equal((await containersOfTask(spec.taskId)).length, 0);
  });

  test("a missed die event is caught by the periodic check", async () => {
    const blind = new Dockerode();
    // This executor never receives Docker events: only its periodic check can see exits.
    Object.assign(blind, { getEvents: () => Promise.reject(new Error("events disabled for this test")) });
    const { ex, rec, agentId } = newExecutor({ docker: blind, checkIntervalMs: 200 });
    const spec = taskSpec(agentId, "blind", { cmd: "exit 4" });
    await ex.launch(spec);
    const failed = await rec.terminal(spec.taskId, 10_000);
    assert.equal(failed.state, "TASK_FAILED");
    assert.equal(failed.exitCode, 4);
    await waitUntil(async () => (await containersOfTask(spec.taskId)).length === 0, "container removal");
  });

  test("recover() re-attaches running tasks, reports and removes exited ones, skips malformed labels", async () => {
    const first = newExecutor();
    const agentId = first.agentId;
    const alive = taskSpec(agentId, "alive");
    const dead = taskSpec(agentId, "dead");
    await first.ex.launch(alive);
    await first.ex.launch(dead);
    await first.ex.close(); // the agent goes away; its containers stay

    const deadId = (await containersOfTask(dead.taskId))[0]?.Id;
    assert.ok(deadId);
    await run(DOCKER_CLI, ["kill", deadId]); // dies while no agent watches
    await waitUntil(
      async () => (await docker.getContainer(deadId).inspect()).State.Running === false,
      "the killed container to stop",
    );
    // A container of this agent whose drover labels are malformed: skipped, not a crash.
    const malformed = await docker.createContainer({
      Image: IMAGE,
      Cmd: ["/bin/sh", "-c", "sleep 300"],
      Labels: {
        ...TEST_LABELS,
        [LABEL_AGENT_ID]: agentId,
        [LABEL_TASK_ID]: newTaskId("malformed"),
        [LABEL_CPUS]: "lots",
      },
    });

    const second = newExecutor({ agentId });
    const recovered = await second.ex.recover();
    const byTask = new Map(recovered.map((r) => [r.taskId, r]));
    assert.equal(recovered.length, 2, JSON.stringify(recovered));
    const r1 = byTask.get(alive.taskId);
    assert.equal(r1?.state, "TASK_RUNNING");
    assert.equal(r1?.appId, alive.appId);
    assert.equal(r1?.frameworkId, "fw-test");
    assert.equal(r1?.cpus, 0.1);
    assert.equal(r1?.mem, 32);
    assert.equal(r1?.image, IMAGE);
    const r2 = byTask.get(dead.taskId);
    assert.equal(r2?.state, "TASK_FAILED");
    assert.equal(r2?.exitCode, 137);
    assert.equal(r2?.containerId, deadId);
    const deadEvent = await second.rec.terminal(dead.taskId);
    assert.equal(deadEvent.exitCode, 137);
    await waitUntil(
      async () => (await containersOfTask(dead.taskId)).length === 0,
      "exited container removal",
    );
    assert.ok((await docker.getContainer(malformed.id).inspect()).Id, "malformed container left alone");

    // Recovering twice describes the same tasks without re-reporting.
    const again = await second.ex.recover();
    assert.deepEqual(
      again.map((r) => [r.taskId, r.state]),
      [[alive.taskId, "TASK_RUNNING"]],
    );
    assert.equal(second.rec.terminals(dead.taskId).length, 1);

    // The re-attached task is watched: an exit is reported by the new executor.
    const running = await second.ex.running();
    assert.equal(running.size, 1);
    const aliveId = running.get(alive.taskId);
    assert.ok(aliveId);
    await run(DOCKER_CLI, ["kill", aliveId]);
    const exit = await second.rec.terminal(alive.taskId);
    assert.equal(exit.state, "TASK_FAILED");
    assert.equal(exit.exitCode, 137);
  });

  test("a closed executor refuses work", async () => {
    const { ex, agentId } = newExecutor();
    await ex.close();
    await assert.rejects(ex.launch(taskSpec(agentId, "late")), ExecutorClosedError);
  });
});
