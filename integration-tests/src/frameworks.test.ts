/**
 * Two-level scheduling with several frameworks on one master: the example framework (five-tasks) runs
 * next to the Drover scheduler; both get their fair (DRF) share of a 2-cpu agent; one framework cannot
 * kill or see another's task; a framework's tasks survive a disconnection shorter than its failover
 * timeout and are killed after a longer one; frameworks declare a role that `framework list` shows.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { errorMessage, LeaderClient } from "@drover/common";
import { Framework, type FrameworkOffer, type TaskSpec, type TaskUpdate } from "@drover/framework";
import { MasterClient, type Task, taskStateToJSON } from "@drover/proto";
import Docker from "dockerode";
import {
  type Cluster,
  repoRoot,
  startCluster,
  TASK_IMAGE,
  waitFor,
  withClusterLogs,
  withTimeout,
} from "./harness/index.js";

const AGENT_CPUS = 2;
const SCHEDULER_NAME = "drover-scheduler";
const FIVE_TASKS = join(repoRoot, "examples", "five-tasks", "dist", "main.js");

const docker = new Docker({ socketPath: "/var/run/docker.sock" });
let cluster: Cluster | undefined;
let master: LeaderClient<MasterClient> | undefined;
let dir = "";
const probes: Probe[] = [];
const children: ChildProcess[] = [];

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

function masterClient(): LeaderClient<MasterClient> {
  assert.ok(master, "master client not connected");
  return master;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-frameworks-"));
  cluster = await startCluster({
    masters: 1,
    schedulers: 1,
    agents: 1,
    env: { DROVER_AGENT_CPUS: String(AGENT_CPUS), DROVER_AGENT_MEM: "2048" },
  });
  master = new LeaderClient(MasterClient, cluster.env.DROVER_MASTERS?.split(",") ?? []);
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
  await Promise.all(probes.map((p) => p.stop()));
  master?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  await cluster?.stop();
});

/** Runs a test body; a failure carries the processes' last log lines. */
const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

// ------------------------------------------------------------------ observations

interface FrameworkJson {
  frameworkId: string;
  name: string;
  role: string;
  connected: boolean;
  suppressed: boolean;
  allocated?: { cpus: number; mem: number };
  dominantShare: number;
  activeTasks: number;
}

interface TaskJson {
  taskId: string;
  appId: string;
  state: string;
}

async function frameworkList(): Promise<FrameworkJson[]> {
  return current().cliJson<FrameworkJson[]>(["framework", "list", "--json"]);
}

async function masterTasks(frameworkId = ""): Promise<Task[]> {
  const res = await masterClient().call((c) => c.listTasks.bind(c), {
    pageSize: 0,
    pageToken: "",
    frameworkId,
    appId: "",
    includeTerminal: true,
  });
  return res.tasks;
}

async function masterTask(taskId: string): Promise<{ state: string; message: string } | undefined> {
  const t = (await masterTasks()).find((x) => x.info?.taskId === taskId);
  return t?.status ? { state: taskStateToJSON(t.status.state), message: t.status.message } : undefined;
}

async function containersOf(taskId: string, all = false) {
  return docker.listContainers({
    all,
    filters: { label: [`drover.task_id=${taskId}`, `drover.test.cluster=${current().id}`] },
  });
}

async function appContainers(appId: string) {
  return docker.listContainers({
    all: true,
    filters: { label: [`drover.app_id=${appId}`, `drover.test.cluster=${current().id}`] },
  });
}

async function runningTasks(appId: string): Promise<TaskJson[]> {
  const tasks = await current().cliJson<TaskJson[]>(["task", "list", "--app", appId, "--json"]);
  return tasks.filter((t) => t.state === "TASK_RUNNING");
}

async function addApp(app: Record<string, unknown>): Promise<void> {
  const file = join(dir, `${String(app.id)}.json`);
  await writeFile(file, JSON.stringify({ container: { docker: { image: TASK_IMAGE } }, ...app }));
  const res = await current().cli(["app", "add", file]);
  assert.equal(res.code, 0, res.stderr);
}

async function removeApp(appId: string, ifPresent = false): Promise<void> {
  const res = await current().cli(["app", "remove", appId]);
  if (ifPresent && res.code !== 0 && /not found/.test(res.stderr)) return;
  assert.equal(res.code, 0, res.stderr);
  await waitFor(
    `no container and no active task of ${appId}`,
    async () => {
      const [cs, tasks] = await Promise.all([
        appContainers(appId),
        current().cliJson<TaskJson[]>(["task", "list", "--app", appId, "--json"]),
      ]);
      return cs.length === 0 && tasks.length === 0;
    },
    { timeoutMs: 30_000, intervalMs: 500 },
  );
}

/** The example framework as a child process; `lines()` is what it printed so far. */
function spawnFiveTasks(env: Record<string, string>) {
  let out = "";
  const child = spawn(process.execPath, [FIVE_TASKS], {
    cwd: repoRoot,
    env: { ...process.env, ...current().env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return {
    child,
    exited,
    output: () => out,
    /** task id → last state it printed */
    states(): Map<string, string> {
      const m = new Map<string, string>();
      for (const line of out.split("\n")) {
        const match = /^(\S+) (TASK_[A-Z_]+)/.exec(line);
        if (match?.[1] && match[2]) m.set(match[1], match[2]);
      }
      return m;
    },
  };
}

// ------------------------------------------------------------------ an SDK framework for the tests

/**
 * A framework that declines every offer (refuse 2 s) unless a test asked for one with `takeOffer`,
 * and records the status updates it receives.
 */
class Probe {
  fw: Framework;
  readonly updates: (TaskUpdate & { receivedAt: number })[] = [];
  private waiter: ((o: FrameworkOffer) => void) | undefined;
  private subscribed: Promise<string> = Promise.resolve("");
  private running: Promise<void> | undefined;

  constructor(
    readonly name: string,
    private readonly options: { role?: string; failoverTimeoutSeconds?: number; frameworkId?: string } = {},
  ) {
    this.fw = this.create(options.frameworkId);
  }

  private create(frameworkId: string | undefined): Framework {
    let resolveId: (id: string) => void = () => undefined;
    this.subscribed = new Promise((resolve) => {
      resolveId = resolve;
    });
    const fw: Framework = new Framework(
      {
        masters: current().env.DROVER_MASTERS?.split(",") ?? [],
        name: this.name,
        ...(this.options.role ? { role: this.options.role } : {}),
        ...(this.options.failoverTimeoutSeconds !== undefined
          ? { failoverTimeoutSeconds: this.options.failoverTimeoutSeconds }
          : {}),
        ...(frameworkId ? { frameworkId } : {}),
      },
      {
        subscribed: (id) => resolveId(id),
        offers: async (offers) => {
          for (const o of offers) {
            const w = this.waiter;
            if (w) {
              this.waiter = undefined;
              w(o);
            } else await fw.decline([o.offerId], 2);
          }
        },
        update: (u) => {
          this.updates.push({ ...u, receivedAt: Date.now() });
        },
      },
    );
    return fw;
  }

  async start(): Promise<string> {
    this.running = this.fw.run();
    return withTimeout(`${this.name} subscribed`, this.subscribed, 20_000);
  }

  /** Stops this connection, then subscribes again as the same framework (same id). */
  async reconnect(): Promise<string> {
    const id = this.id;
    this.fw = this.create(id);
    return this.start();
  }

  get id(): string {
    const id = this.fw.frameworkId;
    assert.ok(id, `${this.name} is not subscribed`);
    return id;
  }

  async stop(): Promise<void> {
    this.fw.stop();
    await this.running?.catch(() => undefined);
  }

  /** The next offer (revives first, in case a refusal filter is in the way). */
  async takeOffer(timeoutMs = 15_000): Promise<FrameworkOffer> {
    const got = new Promise<FrameworkOffer>((resolve) => {
      this.waiter = resolve;
    });
    await this.fw.revive();
    return withTimeout(`an offer to ${this.name}`, got, timeoutMs);
  }

  /** Launches one task on the next offer; resolves with the accept→TASK_RUNNING latency. */
  async launchRunning(spec: TaskSpec): Promise<number> {
    const offer = await this.takeOffer();
    const t0 = Date.now();
    assert.deepEqual(await this.fw.launch(offer, [spec]), [spec.taskId]);
    const running = await this.update(spec.taskId, "TASK_RUNNING");
    return running.receivedAt - t0;
  }

  async update(taskId: string, state: string, since = 0, timeoutMs = 30_000) {
    return waitFor(
      `${state} of ${taskId} at ${this.name}`,
      async () => this.updates.find((u) => u.taskId === taskId && u.state === state && u.receivedAt >= since),
      { timeoutMs, intervalMs: 20 },
    );
  }
}

async function newProbe(name: string, options: ConstructorParameters<typeof Probe>[1] = {}): Promise<Probe> {
  const p = new Probe(name, options);
  probes.push(p);
  await p.start();
  return p;
}

function longTask(taskId: string): TaskSpec {
  return { taskId, image: TASK_IMAGE, cmd: "sleep 100000", cpus: 0.1, mem: 32 };
}

// ------------------------------------------------------------------ tests

test("the example framework runs its 5 tasks to completion and exits 0 while the scheduler runs an app", () =>
  withLogs(async () => {
    await addApp({ id: "side", cmd: "sleep 100000", instances: 2, cpus: 0.2, mem: 32 });
    const side = await waitFor(
      "side at 2 running tasks",
      async () => {
        const r = await runningTasks("side");
        return r.length === 2 ? r : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );

    const five = spawnFiveTasks({ NAME: "five", ROLE: "batch" });
    const code = await withTimeout("five-tasks to exit", five.exited, 60_000).catch((err: unknown) => {
      throw new Error(`${errorMessage(err)}; its output:\n${five.output()}`);
    });
    assert.equal(code, 0, `five-tasks exit code; output:\n${five.output()}`);
    assert.match(five.output(), /all 5 tasks done: all finished/);
    const states = five.states();
    assert.equal(states.size, 5, `five distinct tasks: ${[...states.keys()].join(", ")}`);
    assert.ok(
      [...states.values()].every((s) => s === "TASK_FINISHED"),
      JSON.stringify(Object.fromEntries(states)),
    );

    // The master agrees: the framework's 5 tasks all finished; the framework shows its name and role.
    const fw = (await frameworkList()).find((f) => f.name === "five");
    assert.ok(fw, "the example framework is listed");
    assert.equal(fw.role, "batch");
    assert.equal(fw.activeTasks, 0);
    const tasks = await masterTasks(fw.frameworkId);
    assert.deepEqual(
      tasks.map((t) => [t.info?.taskId, t.status ? taskStateToJSON(t.status.state) : "?"]).sort(),
      [...states.keys()].sort().map((id) => [id, "TASK_FINISHED"]),
    );

    // The app next to it was left alone.
    const sideAfter = await runningTasks("side");
    assert.deepEqual(
      sideAfter.map((t) => t.taskId).sort(),
      side.map((t) => t.taskId).sort(),
      "the app kept its two tasks",
    );
    await removeApp("side");
  }));

test("fair share: the scheduler and the example framework share a 2-cpu agent by DRF, neither starves", () =>
  withLogs(async () => {
    // The example framework first: it takes the whole agent, and must give way to the app as its
    // short tasks finish (the app's tasks never end, so the reverse order would starve it for good).
    const five = spawnFiveTasks({
      NAME: "fair",
      TASKS: String(FAIR_TOTAL),
      CPUS: "0.2",
      MEM: "32",
      TASK_CMD: "sleep 3",
    });
    try {
      await fairShare(five);
    } finally {
      if (five.child.exitCode === null && five.child.signalCode === null) five.child.kill("SIGTERM");
      await removeApp("fair-app", true);
    }
  }));

const FAIR_TOTAL = 20;
const FAIR_APP_INSTANCES = 10;

async function fairShare(five: ReturnType<typeof spawnFiveTasks>): Promise<void> {
  const ONE_TASK = 0.2 / AGENT_CPUS; // dominant share of one task of either framework
  await waitFor(
    "the example framework running >= 3 tasks",
    async () =>
      ((await frameworkList()).find((f) => f.name === "fair" && f.connected)?.activeTasks ?? 0) >= 3,
    { timeoutMs: 30_000, intervalMs: 300 },
  );
  await addApp({ id: "fair-app", cmd: "sleep 100000", instances: FAIR_APP_INSTANCES, cpus: 0.2, mem: 32 });

  interface Sample {
    at: number;
    src: "cli" | "grpc";
    fair: FrameworkJson;
    sched: FrameworkJson;
  }
  const samples: Sample[] = [];
  let done = false;
  void five.exited.then(() => {
    done = true;
  });
  const started = Date.now();
  const record = (src: Sample["src"], list: FrameworkJson[]): boolean => {
    const fair = list.find((f) => f.name === "fair" && f.connected);
    const sched = list.find((f) => f.name === SCHEDULER_NAME);
    if (!fair || !sched) return false; // the example framework has finished
    samples.push({ at: Date.now() - started, src, fair, sched });
    return true;
  };
  // Shares move in steps of one task and can pass each other within a few commits, faster than the
  // CLI can sample (~400 ms a call): the master's ListFrameworks (what the CLI prints) is also sampled
  // every 50 ms in the background.
  const dense = (async () => {
    while (!done && Date.now() - started < 45_000) {
      const res = await masterClient()
        .call((c) => c.listFrameworks.bind(c), {}, 5_000)
        .catch(() => undefined);
      if (res && !record("grpc", res.frameworks as FrameworkJson[])) break;
      await delay(50);
    }
  })();
  let starvedSince: number | undefined;
  // Observe until the example framework is done (or has been starved for 10 s, or 45 s have passed).
  while (!done && Date.now() - started < 45_000) {
    const list = await frameworkList();
    if (!record("cli", list)) break;
    const fair = list.find((f) => f.name === "fair");
    const starved = fair?.activeTasks === 0 && !fair.suppressed;
    starvedSince = starved ? (starvedSince ?? Date.now()) : undefined;
    if (starvedSince !== undefined && Date.now() - starvedSince > 10_000) break;
  }
  done = true;
  await dense;
  samples.sort((x, y) => x.at - y.at);
  const line = (s: Sample) =>
    `fair ${s.fair.activeTasks} tasks share ${s.fair.dominantShare.toFixed(2)}${s.fair.suppressed ? " (suppressed)" : ""} | scheduler ${s.sched.activeTasks} tasks share ${s.sched.dominantShare.toFixed(2)}`;
  // The trace without repeats: each distinct state once, with when it was first seen.
  const trace = samples
    .filter((s, i) => i === 0 || line(s) !== line(samples[i - 1] as Sample))
    .map((s) => `+${s.at}ms ${s.src} ${line(s)}`)
    .join("\n");
  console.log(
    `fair share: ${samples.length} samples (${samples.filter((s) => s.src === "cli").length} through the CLI):\n${trace}`,
  );
  assert.ok(samples.filter((s) => s.src === "cli").length >= 5, "sampled through the CLI");

  // Demand: the example framework until it has launched all its tasks (it then suppresses); the
  // scheduler while its app has fewer than 10 tasks.
  const fairWants = (s: Sample) => !s.fair.suppressed;
  const schedWants = (s: Sample) => s.sched.activeTasks < FAIR_APP_INSTANCES;
  assert.ok(
    samples.some((s) => s.sched.activeTasks >= 3 && fairWants(s)),
    `the scheduler held >= 3 tasks while the example framework still wanted more:\n${trace}`,
  );
  assert.ok(
    samples.some((s) => s.fair.activeTasks >= 3 && schedWants(s)),
    `the example framework held >= 3 tasks while the scheduler still wanted more:\n${trace}`,
  );
  assert.ok(
    !samples.some(
      (s, i) =>
        fairWants(s) &&
        s.fair.activeTasks === 0 &&
        samples.slice(i).every((x) => x.at - s.at > 10_000 || (fairWants(x) && x.fair.activeTasks === 0)) &&
        (samples.at(-1)?.at ?? 0) - s.at >= 10_000,
    ),
    `the example framework was starved (no task for 10 s while it wanted some):\n${trace}`,
  );
  const both = samples.filter((s) => fairWants(s) && schedWants(s));
  assert.ok(both.length > 0, `no sample with both frameworks in demand:\n${trace}`);
  assert.ok(
    both.some((s) => Math.abs(s.fair.dominantShare - s.sched.dominantShare) <= ONE_TASK + 1e-6),
    `the dominant shares came within one task's share (${ONE_TASK}) of each other while both had demand:\n${trace}`,
  );
  const code = await withTimeout("the example framework to exit", five.exited, 60_000).catch(
    (err: unknown) => {
      throw new Error(`${errorMessage(err)}; samples:\n${trace}\noutput:\n${five.output()}`);
    },
  );
  assert.equal(code, 0, `the example framework's exit code; output:\n${five.output()}`);
  assert.equal(five.states().size, FAIR_TOTAL, "the example framework ran all its tasks");

  // Once the example framework is done, its share goes to the app.
  await waitFor(
    `fair-app at ${FAIR_APP_INSTANCES} running tasks`,
    async () => (await runningTasks("fair-app")).length === FAIR_APP_INSTANCES,
    { timeoutMs: 30_000, intervalMs: 500 },
  );
}

test("isolation: a framework cannot kill another's task, and reconciling it reports TASK_GONE", () =>
  withLogs(async () => {
    const a = await newProbe("iso-a", { role: "team-a" });
    const b = await newProbe("iso-b", { role: "team-b" });
    const taskId = `iso-a-${Date.now()}`;
    const latency = await a.launchRunning(longTask(taskId));
    console.log(`SDK accept → TASK_RUNNING update: ${latency} ms`);

    let killError: unknown;
    try {
      await b.fw.kill(taskId);
    } catch (err) {
      killError = err;
    }
    assert.ok(killError, "B's kill of A's task was refused");
    assert.equal((killError as { code?: string }).code, "NOT_FOUND", errorMessage(killError));

    // Watch for 2 s: A's task keeps running, in the master and in Docker.
    const until = Date.now() + 2_000;
    let samples = 0;
    while (Date.now() < until) {
      const [t, cs] = await Promise.all([masterTask(taskId), containersOf(taskId)]);
      assert.equal(t?.state, "TASK_RUNNING", `A's task after B's kill: ${JSON.stringify(t)}`);
      assert.equal(cs.length, 1, "A's container still runs");
      samples++;
      await delay(200);
    }
    assert.ok(samples >= 4, `sampled ${samples} times`);
    assert.deepEqual(
      a.updates
        .filter(
          (u) =>
            u.taskId === taskId &&
            u.state !== "TASK_STARTING" &&
            u.state !== "TASK_RUNNING" &&
            u.state !== "TASK_STAGING",
        )
        .map((u) => u.state),
      [],
      "A heard of no kill",
    );

    const t0 = Date.now();
    const answer = await b.fw.reconcile([taskId]);
    assert.deepEqual(answer, [{ taskId, state: "TASK_GONE" }], "B's reconcile answers TASK_GONE");
    const gone = await b.update(taskId, "TASK_GONE", t0, 5_000);
    assert.equal(gone.taskId, taskId);
    assert.ok(
      !b.updates.some((u) => u.taskId === taskId && u.state !== "TASK_GONE"),
      "B learns nothing of A's task but that it is gone (for B)",
    );
    // The owner's reconcile reports the truth.
    assert.deepEqual(await a.fw.reconcile([taskId]), [{ taskId, state: "TASK_RUNNING" }]);
    await a.update(taskId, "TASK_RUNNING", t0, 5_000);

    // And the owner can kill it.
    await a.fw.kill(taskId);
    await a.update(taskId, "TASK_KILLED", t0, 20_000);
    await waitFor("A's container removed", async () => (await containersOf(taskId, true)).length === 0, {
      timeoutMs: 20_000,
    });
  }));

test("roles: frameworks declare a role at subscription and `framework list` shows it", () =>
  withLogs(async () => {
    const analytics = await newProbe("roles-analytics", { role: "analytics" });
    const plain = await newProbe("roles-default");
    const list = await frameworkList();
    const byId = new Map(list.map((f) => [f.frameworkId, f]));
    assert.equal(byId.get(analytics.id)?.role, "analytics");
    assert.equal(byId.get(analytics.id)?.name, "roles-analytics");
    assert.equal(byId.get(analytics.id)?.connected, true);
    assert.equal(byId.get(plain.id)?.role, "*", "no role declared: the default role");
    const isoA = list.find((f) => f.name === "iso-a" && f.connected);
    const isoB = list.find((f) => f.name === "iso-b" && f.connected);
    assert.equal(isoA?.role, "team-a");
    assert.equal(isoB?.role, "team-b");
    assert.equal(list.find((f) => f.name === SCHEDULER_NAME)?.role, "*", "the scheduler's role");
    const text = await current().cli(["framework", "list"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /roles-analytics\s+analytics/, "the table shows name and role");
    await Promise.all([analytics.stop(), plain.stop()]);
  }));

test("failover timeout: tasks survive a short disconnection and are killed after a longer one", () =>
  withLogs(async () => {
    const TIMEOUT_S = 3;
    const f = await newProbe("failover", { failoverTimeoutSeconds: TIMEOUT_S });
    const id = f.id;
    const taskId = `fo-${Date.now()}`;
    await f.launchRunning(longTask(taskId));

    // Disconnect, come back after 1 s with the same id: the task stays, well past the timeout.
    await f.stop();
    const t0 = Date.now();
    await waitFor(
      "the master to see the framework disconnected",
      async () => (await frameworkList()).some((x) => x.frameworkId === id && !x.connected),
      { timeoutMs: 5_000, intervalMs: 100 },
    );
    await delay(Math.max(0, 1_000 - (Date.now() - t0)));
    assert.equal(await f.reconnect(), id, "re-subscribed with the same framework id");
    const back = Date.now() - t0;
    assert.ok(back < TIMEOUT_S * 1000, `reconnected ${back} ms after disconnecting`);
    const watchUntil = t0 + TIMEOUT_S * 1000 + 3_000;
    let samples = 0;
    while (Date.now() < watchUntil) {
      const [t, cs] = await Promise.all([masterTask(taskId), containersOf(taskId)]);
      assert.equal(
        t?.state,
        "TASK_RUNNING",
        `the task after a ${back} ms disconnection: ${JSON.stringify(t)}`,
      );
      assert.equal(cs.length, 1, "its container runs");
      samples++;
      await delay(250);
    }
    assert.ok(samples >= 8, `sampled ${samples} times`);
    const listed = (await frameworkList()).find((x) => x.frameworkId === id);
    assert.equal(listed?.connected, true);
    assert.equal(listed?.activeTasks, 1);

    // Disconnect for longer than the timeout: the task is killed, not before the timeout.
    await f.stop();
    const t1 = Date.now();
    let firstChange: { at: number; state: string; message: string } | undefined;
    const killed = await waitFor(
      "the task killed after the failover timeout",
      async () => {
        const t = await masterTask(taskId);
        if (t && t.state !== "TASK_RUNNING" && !firstChange) firstChange = { at: Date.now() - t1, ...t };
        return t?.state === "TASK_KILLED" ? t : undefined;
      },
      { timeoutMs: TIMEOUT_S * 1000 + 20_000, intervalMs: 100 },
    );
    const killedAfter = Date.now() - t1;
    console.log(
      `failover timeout ${TIMEOUT_S} s: task left RUNNING ${firstChange?.at} ms after the disconnection (${firstChange?.state}), TASK_KILLED seen at ${killedAfter} ms`,
    );
    assert.ok(
      firstChange && firstChange.at >= TIMEOUT_S * 1000 - 200,
      `not killed before the timeout: ${JSON.stringify(firstChange)}`,
    );
    assert.equal(killed.state, "TASK_KILLED");
    const masterLog = current().masters[0]?.logs() ?? "";
    assert.ok(
      masterLog.split("\n").some((l) => l.includes("framework failover timeout") && l.includes(id)),
      "the master logged the failover timeout of this framework",
    );
    await waitFor(
      "the task's container removed",
      async () => (await containersOf(taskId, true)).length === 0,
      {
        timeoutMs: 20_000,
      },
    );
    await waitFor(
      "the framework removed from the master",
      async () => !(await frameworkList()).some((x) => x.frameworkId === id),
      { timeoutMs: 10_000, intervalMs: 250 },
    );
  }));
