/**
 * Marathon's unreachableStrategy and taskKillGracePeriodSeconds on a real cluster of two agents
 * (the master's heartbeat every 500 ms, its heartbeat timeout 3 s). An agent is stopped with
 * SIGSTOP (its process only: its containers keep running, as on a partitioned VM):
 * - {inactiveAfterSeconds 0}: its task becomes TASK_UNREACHABLE and a replacement runs on the
 *   other agent; after expungeAfterSeconds the task is gone from `drover task list`; when the
 *   agent comes back (SIGCONT) the old container is killed and the app has no duplicate;
 * - {inactiveAfterSeconds 5}: replaced 5 s later; the task that comes back after its replacement
 *   is killed, the replacement kept;
 * - "disabled": never replaced; the task comes back RUNNING, no duplicate.
 * The time from the agent stopping to its tasks RUNNING elsewhere is printed for 0 and 5.
 * A kill of a task of an app with taskKillGracePeriodSeconds waits that long before SIGKILL.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import Docker from "dockerode";
import {
  type Cluster,
  type ServiceProcess,
  startCluster,
  TASK_IMAGE,
  waitFor,
  withClusterLogs,
} from "./harness/index.js";

const docker = new Docker({ socketPath: "/var/run/docker.sock" });
let cluster: Cluster | undefined;
let dir = "";
/** Agents stopped by a test and not resumed yet (resumed before the cluster stops). */
const stopped = new Set<ServiceProcess>();

interface TaskJson {
  taskId: string;
  appId: string;
  agentId: string;
  state: string;
  message: string;
  createdAtMs: number;
  updatedAtMs: number;
}

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-unreachable-"));
  cluster = await startCluster({
    agents: 2,
    env: {
      DROVER_MASTER_HEARTBEAT_INTERVAL_MS: "500",
      DROVER_MASTER_AGENT_HEARTBEAT_TIMEOUT_SECONDS: "3",
      // The master offers nothing while a known agent is missing in the first
      // agentReregisterTimeoutSeconds after its election (a failover's wait): short, so the first
      // test measures the steady state, not that wait.
      DROVER_MASTER_AGENT_REREGISTER_TIMEOUT_SECONDS: "1",
    },
    agentEnv: (i) => ({
      DROVER_AGENT_HOSTNAME: `drover-u${i + 1}`,
      DROVER_AGENT_PORTS: `${32000 + i * 100}-${32000 + i * 100 + 99}`,
      DROVER_AGENT_CPUS: "2",
      DROVER_AGENT_MEM: "2048",
    }),
  });
});

after(async () => {
  for (const p of stopped) p.kill("SIGCONT");
  await cluster?.stop();
});

const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

async function addApp(id: string, instances: number, extra: Record<string, unknown>): Promise<void> {
  const file = join(dir, `${id.replace(/\//g, "_")}.json`);
  await writeFile(
    file,
    JSON.stringify({
      id,
      container: { type: "DOCKER", docker: { image: TASK_IMAGE } },
      cmd: "sleep 100000",
      instances,
      cpus: 0.05,
      mem: 16,
      portDefinitions: [],
      ...extra,
    }),
  );
  const r = await current().cli(["app", "add", file]);
  assert.equal(r.code, 0, r.stderr);
}

async function removeApp(id: string): Promise<void> {
  const r = await current().cli(["app", "remove", id]);
  assert.equal(r.code, 0, r.stderr);
  await waitFor(`${id} has no task left`, async () => (await tasks(id)).length === 0, {
    timeoutMs: 60_000,
    intervalMs: 500,
  });
}

/** The app's active tasks (`drover task list`), or with `all` the terminal ones too. */
function tasks(id: string, all = false): Promise<TaskJson[]> {
  return current().cliJson<TaskJson[]>(["task", "list", "--app", id, "--json", ...(all ? ["--all"] : [])]);
}

/** The app's running containers of this cluster, by task id. */
async function containers(id: string): Promise<string[]> {
  const cs = await docker.listContainers({
    all: false,
    filters: { label: [`drover.app_id=${id}`, `drover.test.cluster=${current().id}`] },
  });
  return cs.map((c) => c.Labels["drover.task_id"] ?? "").sort();
}

/** Waits until exactly `n` tasks of the app are listed, all RUNNING, with as many containers. */
async function converged(id: string, n: number): Promise<TaskJson[]> {
  return waitFor(
    `${id}: ${n} tasks RUNNING, ${n} containers`,
    async () => {
      const ts = await tasks(id);
      if (ts.length !== n || ts.some((t) => t.state !== "TASK_RUNNING")) return undefined;
      const cs = await containers(id);
      return cs.length === n ? ts : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 500 },
  );
}

/** The agent process whose agent id is `agentId` (from the ids the agents wrote in their work dirs). */
async function agentProcess(agentId: string): Promise<ServiceProcess> {
  const c = current();
  for (const [i, d] of c.agentWorkDirs.entries()) {
    const id = (await readFile(join(d, "agent-id"), "utf8").catch(() => "")).trim();
    const p = c.agents[i];
    if (id === agentId && p) return p;
  }
  throw new Error(`no agent process for ${agentId}`);
}

/**
 * Stops (SIGSTOP) the agent of one of the app's tasks. Returns the agent, its tasks of the app,
 * and when it was stopped.
 */
async function stopAgentOf(running: TaskJson[]) {
  const victim = running[0];
  assert.ok(victim);
  const agentId = victim.agentId;
  const proc = await agentProcess(agentId);
  const onIt = running.filter((t) => t.agentId === agentId).map((t) => t.taskId);
  const stoppedAtMs = Date.now();
  proc.kill("SIGSTOP");
  stopped.add(proc);
  return { agentId, proc, onIt, stoppedAtMs };
}

function resume(proc: ServiceProcess): void {
  proc.kill("SIGCONT");
  stopped.delete(proc);
}

/**
 * Waits until the stopped agent's tasks are UNREACHABLE and as many replacements RUNNING on the
 * other agent; returns when each happened (the master's record times).
 */
async function replaced(id: string, agentId: string, onIt: string[], instances: number) {
  return waitFor(
    `${id}: ${onIt.length} replacement(s) RUNNING off ${agentId}`,
    async () => {
      const all = await tasks(id);
      const away = all.filter((t) => onIt.includes(t.taskId));
      const elsewhere = all.filter((t) => t.agentId !== agentId && t.state === "TASK_RUNNING");
      if (away.some((t) => t.state !== "TASK_UNREACHABLE") || elsewhere.length !== instances)
        return undefined;
      const fresh = elsewhere.filter((t) => !onIt.includes(t.taskId));
      return {
        unreachableAtMs: Math.max(...away.map((t) => t.updatedAtMs)),
        launchedAtMs: Math.max(...fresh.map((t) => t.createdAtMs)),
        runningAtMs: Math.max(...fresh.map((t) => t.updatedAtMs)),
        replacements: fresh.map((t) => t.taskId),
      };
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
}

function report(label: string, stoppedAtMs: number, r: Awaited<ReturnType<typeof replaced>>): number {
  const s = (ms: number) => `${((ms - stoppedAtMs) / 1000).toFixed(2)} s`;
  const total = r.runningAtMs - stoppedAtMs;
  console.log(
    `[unreachable] ${label}: agent stopped → tasks UNREACHABLE ${s(r.unreachableAtMs)}, ` +
      `replacement launched ${s(r.launchedAtMs)}, RUNNING elsewhere ${s(r.runningAtMs)}`,
  );
  return total;
}

test(
  "inactiveAfterSeconds 0: replaced at once on the other agent, gone after expungeAfterSeconds, killed when its agent comes back",
  { timeout: 240_000 },
  () =>
    withLogs(async () => {
      const id = "/unr/fast";
      await addApp(id, 2, { unreachableStrategy: { inactiveAfterSeconds: 0, expungeAfterSeconds: 15 } });
      const before = await converged(id, 2);
      const { agentId, proc, onIt, stoppedAtMs } = await stopAgentOf(before);
      const r = await replaced(id, agentId, onIt, 2);
      const total = report("inactiveAfterSeconds 0", stoppedAtMs, r);
      // Heartbeat timeout 3 s, checked every second; then a launch on a live agent.
      assert.ok(r.unreachableAtMs - stoppedAtMs >= 2_500, "not unreachable before the heartbeat timeout");
      assert.ok(total < 20_000, `replaced within 20 s (${total} ms)`);

      // Expunged after 15 s: off `task list`, TASK_GONE with --all; its container still runs (its agent is stopped).
      const goneAtMs = await waitFor(
        `${onIt.join(",")} gone from task list`,
        async () => {
          const listed = (await tasks(id)).map((t) => t.taskId);
          return onIt.every((t) => !listed.includes(t)) ? Date.now() : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      console.log(
        `[unreachable] expungeAfterSeconds 15: gone from task list ${((goneAtMs - r.unreachableAtMs) / 1000).toFixed(1)} s after UNREACHABLE`,
      );
      assert.ok(goneAtMs - r.unreachableAtMs >= 14_000, "not expunged before expungeAfterSeconds");
      const all = await tasks(id, true);
      for (const t of onIt) assert.equal(all.find((x) => x.taskId === t)?.state, "TASK_GONE", t);
      for (const t of onIt)
        assert.ok((await containers(id)).includes(t), `${t}'s container outlives its agent's stop`);

      // The agent comes back: the expunged task is killed there; the replacements stay.
      resume(proc);
      const after = await converged(id, 2);
      assert.deepEqual(after.map((t) => t.taskId).sort(), [...r.replacements].sort());
      assert.deepEqual(await containers(id), [...r.replacements].sort(), "no duplicate container");
      await removeApp(id);
    }),
);

test(
  "inactiveAfterSeconds 5: replaced 5 s later; the task that comes back after its replacement is killed",
  { timeout: 240_000 },
  () =>
    withLogs(async () => {
      const id = "/unr/slow";
      await addApp(id, 2, { unreachableStrategy: { inactiveAfterSeconds: 5, expungeAfterSeconds: 300 } });
      const before = await converged(id, 2);
      const { agentId, proc, onIt, stoppedAtMs } = await stopAgentOf(before);
      const r = await replaced(id, agentId, onIt, 2);
      report("inactiveAfterSeconds 5", stoppedAtMs, r);
      assert.ok(
        r.launchedAtMs - r.unreachableAtMs >= 4_900,
        `no replacement before inactiveAfterSeconds (${r.launchedAtMs - r.unreachableAtMs} ms)`,
      );

      // Back after it was replaced: it is killed (not its replacement), and no duplicate remains.
      resume(proc);
      const after = await converged(id, 2);
      assert.deepEqual(after.map((t) => t.taskId).sort(), [...r.replacements].sort());
      const all = await tasks(id, true);
      for (const t of onIt) assert.equal(all.find((x) => x.taskId === t)?.state, "TASK_KILLED", t);
      await removeApp(id);
    }),
);

test(
  '"disabled": an unreachable task is never replaced, and comes back RUNNING with no duplicate',
  { timeout: 240_000 },
  () =>
    withLogs(async () => {
      const id = "/unr/kept";
      await addApp(id, 2, { unreachableStrategy: "disabled" });
      const before = await converged(id, 2);
      const ids = before.map((t) => t.taskId).sort();
      const { agentId, proc, onIt } = await stopAgentOf(before);
      await waitFor(
        `${onIt.join(",")} UNREACHABLE`,
        async () =>
          (await tasks(id))
            .filter((t) => onIt.includes(t.taskId))
            .every((t) => t.state === "TASK_UNREACHABLE"),
        { timeoutMs: 30_000, intervalMs: 250 },
      );
      // Well past the heartbeat timeout: still no replacement.
      await new Promise((r) => setTimeout(r, 8_000));
      const during = await tasks(id);
      assert.deepEqual(during.map((t) => t.taskId).sort(), ids, `no replacement while ${agentId} is away`);

      resume(proc);
      const after = await converged(id, 2);
      assert.deepEqual(after.map((t) => t.taskId).sort(), ids, "the same tasks, RUNNING again");
      assert.deepEqual(await containers(id), ids, "no duplicate container");
      await removeApp(id);
    }),
);

/** Scales the app (1 task that ignores SIGTERM) to 0; how long until its container stopped. */
async function timeKill(id: string, extra: Record<string, unknown>): Promise<number> {
  // The task ignores SIGTERM (tini, the container's init, passes it on to the shell): only the
  // SIGKILL at the end of the grace period stops it.
  await addApp(id, 1, { cmd: "trap '' TERM; while true; do sleep 1; done", ...extra });
  const [t] = await converged(id, 1);
  assert.ok(t);
  const started = Date.now();
  const r = await current().cli(["app", "scale", id, "0"]);
  assert.equal(r.code, 0, r.stderr);
  await waitFor(`${t.taskId}'s container stopped`, async () => (await containers(id)).length === 0, {
    timeoutMs: 60_000,
    intervalMs: 250,
  });
  const tookMs = Date.now() - started;
  await removeApp(id);
  return tookMs;
}

test(
  "taskKillGracePeriodSeconds: a kill waits that long before SIGKILL (the task ignores SIGTERM); without it, 5 s",
  { timeout: 120_000 },
  () =>
    withLogs(async () => {
      const graced = await timeKill("/unr/grace", { taskKillGracePeriodSeconds: 12 });
      const plain = await timeKill("/unr/nograce", {});
      console.log(
        `[unreachable] kill of a task ignoring SIGTERM: container stopped ${(graced / 1000).toFixed(1)} s after the scale to 0 ` +
          `with taskKillGracePeriodSeconds 12, ${(plain / 1000).toFixed(1)} s without`,
      );
      assert.ok(graced >= 11_500, `not killed before the grace period (${graced} ms)`);
      assert.ok(graced < 25_000, `killed once the grace period is over (${graced} ms)`);
      assert.ok(plain >= 4_500 && plain < 11_000, `the default grace of 5 s (${plain} ms)`);
    }),
);
