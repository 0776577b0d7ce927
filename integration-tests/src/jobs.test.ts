/**
 * Jobs and cron as Metronome did them, on a real cluster (etcd, NATS, master, two scheduler
 * replicas, one agent, Docker): a run that succeeds; one that fails and is retried under ON_FAILURE
 * until it succeeds; one killed at its active deadline; a schedule every minute under FORBID (the due
 * time while a run is active is skipped), REPLACE (the active run is stopped, a new one starts) and
 * ALLOW (both run); a leader kill -9 just before a schedule is due (exactly one run); placement
 * constraints; jobs and apps on one agent; the CLI (`drover job ...`, `run --follow`) and the events.
 *
 * Every wait is on a condition with a deadline. The agent has a host port range of its own.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  type Cluster,
  httpUrlOf,
  repoRoot,
  type ServiceProcess,
  startCluster,
  TASK_IMAGE,
  waitFor,
  withClusterLogs,
} from "./harness/index.js";

let cluster: Cluster | undefined;
let dir = "";

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

/** The HTTP addresses of every scheduler replica (any forwards to the leader). */
function httpAddrs(): string {
  return current()
    .schedulers.map((p) => httpUrlOf(p)?.replace("http://", ""))
    .filter(Boolean)
    .join(",");
}

async function api<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: T }> {
  let last: unknown;
  for (const p of current().schedulers) {
    const base = httpUrlOf(p);
    if (!base || !p.running) continue;
    try {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { "content-type": "application/json" },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      if (res.status === 503) {
        last = new Error(`503 ${text}`);
        continue;
      }
      return { status: res.status, json: (text ? JSON.parse(text) : undefined) as T };
    } catch (err) {
      last = err;
    }
  }
  throw last instanceof Error ? last : new Error(String(last));
}

interface RunJson {
  id: string;
  jobId: string;
  status: string;
  tasks: { id: string; status: string }[];
}
interface HistoryEntry {
  id: string;
  message?: string;
  exitCode?: number;
  tasks: string[];
}
interface JobJson {
  id: string;
  activeRuns?: RunJson[];
  history?: {
    successCount: number;
    failureCount: number;
    successfulFinishedRuns: HistoryEntry[];
    failedFinishedRuns: HistoryEntry[];
  };
  schedules?: { id: string; nextRunAt: string | null }[];
}

async function job(id: string): Promise<JobJson> {
  const r = await api<JobJson>("GET", `/v1/jobs/${id}?embed=activeRuns,history,schedules`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json;
}

async function createJob(def: unknown): Promise<void> {
  const r = await api("POST", "/v1/jobs", def);
  assert.equal(r.status, 201, JSON.stringify(r.json));
}

const run = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  run: { cmd: "true", docker: { image: TASK_IMAGE }, cpus: 0.05, mem: 32, ...extra },
});

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-jobs-"));
  cluster = await startCluster({
    schedulers: 2,
    agentEnv: () => ({ DROVER_AGENT_PORTS: "32500-32560", DROVER_AGENT_CPUS: "2", DROVER_AGENT_MEM: "2048" }),
  });
});

after(async () => {
  await cluster?.stop();
});

interface TaskJson {
  taskId: string;
  appId: string;
  agentId: string;
  state: string;
}

async function tasks(all = true): Promise<TaskJson[]> {
  return current().cliJson<TaskJson[]>(["task", "list", ...(all ? ["--all"] : []), "--json"]);
}

/** Runs the CLI with the schedulers' HTTP addresses. */
function cli(args: string[], timeoutMs = 60_000) {
  return current().cli(args, { env: { DROVER_SCHEDULERS_HTTP: httpAddrs() }, timeoutMs });
}

async function file(name: string, value: unknown): Promise<string> {
  const f = join(dir, name);
  await writeFile(f, JSON.stringify(value));
  return f;
}

/** Where the scheduler leader serves HTTP now. */
async function leaderProcess(): Promise<ServiceProcess> {
  const r = await api<{ leader: string }>("GET", "/v2/leader");
  const p = current().schedulers.find((s) => httpUrlOf(s) === `http://${r.json.leader}` && s.running);
  assert.ok(p, `no scheduler serves ${JSON.stringify(r.json)}`);
  return p;
}

test(
  "a job that succeeds: added and run with the CLI, followed live, SUCCESS in the history",
  { timeout: 90_000 },
  () =>
    withLogs(async () => {
      const add = await cli(["job", "add", await file("ok.json", run("ok", { cmd: "echo hello; exit 0" }))]);
      assert.equal(add.code, 0, add.stderr);
      const r = await cli(["job", "run", "ok", "--follow"]);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /: SUCCESS/);
      const j = await job("ok");
      assert.equal(j.activeRuns?.length, 0);
      assert.equal(j.history?.successCount, 1);
      const done = j.history?.successfulFinishedRuns[0];
      assert.equal(done?.tasks.length, 1);
      const one = await api<RunJson>("GET", `/v1/jobs/ok/runs/${done?.id}`);
      assert.equal(one.json.status, "SUCCESS");
      const list = await cli(["job", "list"]);
      assert.match(list.stdout, /^ok\s+0\s+1\s+0\s/m);
      const runs = await cli(["job", "runs", "ok"]);
      assert.equal(runs.code, 0, runs.stderr);
      assert.match(runs.stdout, new RegExp(`^${done?.id}\\s+SUCCESS\\s`, "m"));
      const show = await cli(["job", "show", "ok", "--json"]);
      assert.equal((JSON.parse(show.stdout) as JobJson).history?.successCount, 1);
      // Schedules through the CLI: add (its next run printed), list, remove.
      const nightly = await file("nightly.json", {
        id: "nightly",
        cron: "0 3 * * *",
        timezone: "Europe/Berlin",
      });
      const sched = await cli(["job", "schedule", "add", "ok", nightly]);
      assert.equal(sched.code, 0, sched.stderr);
      assert.match(sched.stdout, /next run 20\d\d-\d\d-\d\dT0[12]:00:00\.000Z/);
      const listed = await cli(["job", "schedule", "list", "ok"]);
      assert.match(listed.stdout, /^nightly\s+0 3 \* \* \*\s+Europe\/Berlin\s+ALLOW\s+true\s/m);
      const removed = await cli(["job", "schedule", "remove", "ok", "nightly"]);
      assert.equal(removed.code, 0, removed.stderr);
      assert.deepEqual((await job("ok")).schedules, []);
    }),
);

test("wrong and unsupported fields are refused naming the field, in one line", { timeout: 60_000 }, () =>
  withLogs(async () => {
    const bad = await cli([
      "job",
      "add",
      await file("bad.json", { id: "bad", run: { cmd: "x", ucr: {}, cpus: "1" } }),
    ]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
    assert.match(bad.stderr, /run\.ucr: not supported: .*run\.cpus: expected number/);
    const viaApi = await api<{ details: { path: string; errors: string[] }[] }>("POST", "/v1/jobs", {
      id: "bad",
      run: { cmd: "x", restart: { policy: "SOMETIMES" } },
    });
    assert.equal(viaApi.status, 422);
    assert.equal(viaApi.json.details[0]?.path, "/run/restart/policy");
    const cron = await cli([
      "job",
      "schedule",
      "add",
      "ok",
      await file("s.json", { id: "s1", cron: "* * *" }),
    ]);
    assert.equal(cron.code, 1);
    assert.match(cron.stderr, /cron: must have 5 fields/);
    const missing = await cli(["job", "run", "nope"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Job 'nope' does not exist/);
  }),
);

test("ON_FAILURE: a failing task is retried with backoff until it succeeds", { timeout: 120_000 }, () =>
  withLogs(async () => {
    // The task fails twice, then succeeds (a counter on a host volume).
    await createJob(
      run("flaky", {
        cmd: 'n=$(cat /state/n 2>/dev/null || echo 0); echo $((n+1)) > /state/n; [ "$n" -ge 2 ]',
        volumes: [{ containerPath: "/state", hostPath: dir, mode: "RW" }],
        restart: { policy: "ON_FAILURE", activeDeadlineSeconds: 90 },
      }),
    );
    const r = await cli(["job", "run", "flaky", "--follow", "--json"], 100_000);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const j = await job("flaky");
    assert.equal(j.history?.successCount, 1);
    assert.equal(j.history?.failureCount, 0);
    assert.equal(j.history?.successfulFinishedRuns[0]?.tasks.length, 3, JSON.stringify(j.history));
  }),
);

test(
  "a run past its active deadline is killed and FAILED; a failing NEVER run fails at once",
  { timeout: 120_000 },
  () =>
    withLogs(async () => {
      await createJob(
        run("slow", { cmd: "sleep 600", restart: { policy: "ON_FAILURE", activeDeadlineSeconds: 6 } }),
      );
      await createJob(run("fails", { cmd: "exit 3" }));
      const [slow, fails] = await Promise.all([
        cli(["job", "run", "slow", "--follow"], 100_000),
        cli(["job", "run", "fails", "--follow"]),
      ]);
      assert.equal(slow.code, 1, slow.stdout);
      assert.equal(fails.code, 1, fails.stdout);
      const j = await job("slow");
      const failed = j.history?.failedFinishedRuns[0];
      assert.match(failed?.message ?? "", /active deadline of 6 s exceeded/);
      const taskId = failed?.tasks[0];
      assert.ok(taskId);
      await waitFor("the deadline run's task to be killed", async () => {
        const t = (await tasks()).find((x) => x.taskId === taskId);
        return t === undefined || t.state === "TASK_KILLED";
      });
      const f = await job("fails");
      assert.equal(f.history?.failedFinishedRuns[0]?.exitCode, 3);
      assert.match(f.history?.failedFinishedRuns[0]?.message ?? "", /exit code 3/);
    }),
);

test(
  "placement constraints: a run no agent matches waits in /v1/queue; one that matches runs",
  { timeout: 90_000 },
  () =>
    withLogs(async () => {
      const [agent] = await current().cliJson<{ hostname: string }[]>(["agent", "list", "--json"]);
      assert.ok(agent);
      await createJob(
        run("pinned-nowhere", {
          placement: { constraints: [{ attribute: "hostname", operator: "LIKE", value: "no-such-host" }] },
        }),
      );
      await createJob(
        run("pinned-here", {
          placement: { constraints: [{ attribute: "hostname", operator: "EQ", value: agent.hostname }] },
        }),
      );
      const nowhere = await api<RunJson>("POST", "/v1/jobs/pinned-nowhere/runs");
      const here = await cli(["job", "run", "pinned-here", "--follow"]);
      assert.equal(here.code, 0, here.stdout + here.stderr);
      // The run that no agent matches is still waiting after the other one's offers were used.
      const queue = await api<{ jobId: string; runs: { runId: string }[] }[]>("GET", "/v1/queue");
      assert.deepEqual(
        queue.json.find((q) => q.jobId === "pinned-nowhere")?.runs.map((r) => r.runId),
        [nowhere.json.id],
      );
      const still = await api<RunJson>("GET", `/v1/jobs/pinned-nowhere/runs/${nowhere.json.id}`);
      assert.equal(still.json.status, "INITIAL");
      assert.equal(still.json.tasks.length, 0);
      const stop = await cli(["job", "stop", "pinned-nowhere", nowhere.json.id]);
      assert.equal(stop.code, 0, stop.stderr);
      const stopped = await api<RunJson & { message?: string }>(
        "GET",
        `/v1/jobs/pinned-nowhere/runs/${nowhere.json.id}`,
      );
      assert.equal(stopped.json.status, "FAILED");
      assert.equal(stopped.json.message, "stopped");
    }),
);

test(
  "jobs and apps share one agent: the app keeps its instances while runs come and go",
  { timeout: 120_000 },
  () =>
    withLogs(async () => {
      const app = await file("web.json", {
        id: "/web",
        container: { type: "DOCKER", docker: { image: TASK_IMAGE } },
        cmd: "sleep 100000",
        instances: 2,
        cpus: 0.1,
        mem: 32,
      });
      const added = await current().cli(["app", "add", app]);
      assert.equal(added.code, 0, added.stderr);
      await createJob(run("batch", { cmd: "sleep 1" }));
      const runs = await Promise.all([1, 2, 3].map(() => api<RunJson>("POST", "/v1/jobs/batch/runs")));
      for (const r of runs) assert.equal(r.status, 201);
      await waitFor(
        "three runs to succeed and the app to run 2 instances",
        async () => {
          const j = await job("batch");
          const running = (await tasks(false)).filter(
            (t) => t.appId === "/web" && t.state === "TASK_RUNNING",
          );
          return j.history?.successCount === 3 && running.length === 2;
        },
        { timeoutMs: 90_000 },
      );
      const all = await tasks(false);
      assert.equal(new Set(all.map((t) => t.agentId)).size, 1);
      const rm = await current().cli(["app", "remove", "/web"]);
      assert.equal(rm.code, 0, rm.stderr);
    }),
);

test(
  "a schedule every minute: FORBID skips while a run is active, REPLACE stops it, ALLOW runs both",
  { timeout: 240_000 },
  () =>
    withLogs(async () => {
      for (const policy of ["FORBID", "REPLACE", "ALLOW"]) {
        await createJob({
          ...run(`cron-${policy.toLowerCase()}`, { cmd: "sleep 600" }),
          schedules: [{ id: "every-minute", cron: "* * * * *", concurrencyPolicy: policy }],
        });
      }
      const first = (await job("cron-forbid")).schedules?.[0]?.nextRunAt;
      assert.ok(first);
      const firstMs = Date.parse(first);
      // First due time: one run each; measure due → RUNNING.
      const delays: number[] = [];
      for (const id of ["cron-forbid", "cron-replace", "cron-allow"]) {
        const r = await waitFor(
          `${id}: its first scheduled run running`,
          async () => {
            const x = (await job(id)).activeRuns?.[0];
            return x?.tasks.some((t) => t.status === "TASK_RUNNING") ? x : undefined;
          },
          { timeoutMs: firstMs - Date.now() + 60_000 },
        );
        const one = await api<RunJson & { dueAt: string; tasks: { startedAt: string }[] }>(
          "GET",
          `/v1/jobs/${id}/runs/${r.id}`,
        );
        assert.equal(one.json.dueAt, first);
        delays.push(Date.parse(one.json.tasks[0]?.startedAt ?? "") - firstMs);
      }
      process.stdout.write(`[jobs] due → TASK_RUNNING (ms): ${delays.join(", ")}\n`);
      const firstRun = (await job("cron-replace")).activeRuns?.[0]?.id;
      // Second due time: FORBID skipped (still one run), REPLACE (a new run, the old FAILED), ALLOW (two).
      await waitFor(
        "the second due time to be handled by all three",
        async () => {
          const [f, r, a] = await Promise.all([job("cron-forbid"), job("cron-replace"), job("cron-allow")]);
          const next = firstMs + 60_000;
          return (
            Date.now() > next &&
            f.schedules?.[0]?.nextRunAt === new Date(next + 60_000).toISOString() &&
            r.history?.failureCount === 1 &&
            a.activeRuns?.length === 2
          );
        },
        { timeoutMs: firstMs + 120_000 - Date.now() },
      );
      const [f, r, a] = await Promise.all([job("cron-forbid"), job("cron-replace"), job("cron-allow")]);
      assert.equal(f.activeRuns?.length, 1, "FORBID: no second run");
      assert.equal(r.activeRuns?.length, 1, "REPLACE: one run");
      assert.notEqual(r.activeRuns?.[0]?.id, firstRun);
      assert.match(r.history?.failedFinishedRuns[0]?.message ?? "", /replaced by run/);
      assert.equal(r.history?.failedFinishedRuns[0]?.id, firstRun);
      assert.equal(a.activeRuns?.length, 2, "ALLOW: both run");
      // The replaced run's task is killed.
      const oldTask = r.history?.failedFinishedRuns[0]?.tasks[0];
      await waitFor("the replaced run's task to end", async () => {
        const t = (await tasks()).find((x) => x.taskId === oldTask);
        return t === undefined || t.state === "TASK_KILLED";
      });
      for (const id of ["cron-forbid", "cron-replace", "cron-allow"]) {
        const del = await api("DELETE", `/v1/jobs/${id}?stopCurrentJobRuns=true`);
        assert.equal(del.status, 200);
      }
    }),
);

test(
  "scheduler leader kill -9 just before a schedule is due: exactly one run for that due time",
  { timeout: 240_000 },
  () =>
    withLogs(async () => {
      await createJob({
        ...run("cron-failover", { cmd: "sleep 600" }),
        schedules: [{ id: "every-minute", cron: "* * * * *" }],
      });
      // The schedule's next due time at least 15 s away (else the one after), the leader killed 2 s before it.
      const first = Date.parse((await job("cron-failover")).schedules?.[0]?.nextRunAt ?? "");
      assert.ok(Number.isFinite(first));
      const due = first - Date.now() >= 15_000 ? first : first + 60_000;
      const dueIso = new Date(due).toISOString();
      const before = await leaderProcess();
      await waitFor("2 s before the due time", async () => Date.now() >= due - 2000, {
        timeoutMs: 90_000,
        intervalMs: 50,
      });
      before.kill("SIGKILL");
      await before.exited;
      const dueOf = async (): Promise<string[]> => {
        const j = await job("cron-failover");
        return Promise.all(
          (j.activeRuns ?? []).map((x) =>
            api<RunJson & { dueAt?: string }>("GET", `/v1/jobs/cron-failover/runs/${x.id}`).then(
              (y) => y.json.dueAt ?? "manual",
            ),
          ),
        );
      };
      await waitFor(
        "a run for the due time, from the new leader",
        async () => (await dueOf()).includes(dueIso),
        {
          timeoutMs: 60_000,
        },
      );
      const after = await waitFor("the new leader", async () => {
        const l = await leaderProcess().catch(() => undefined);
        return l !== before ? l : undefined;
      });
      assert.notEqual(after, before);
      // Nothing else may start for it (a second leader's retry, a replay of the due time).
      await waitFor("10 s after the due time", async () => Date.now() >= due + 10_000, { timeoutMs: 60_000 });
      const dues = await dueOf();
      const forDue = dues.filter((d) => d === dueIso).length;
      process.stdout.write(
        `[jobs] failover: runs for the due time ${dueIso}: ${forDue} (duplicates ${Math.max(0, forDue - 1)}, missed ${forDue === 0 ? 1 : 0})\n`,
      );
      assert.equal(forDue, 1, JSON.stringify(dues));
      // Every due time handled so far has exactly one run.
      assert.equal(new Set(dues).size, dues.length, JSON.stringify(dues));
      // Bring the killed replica back for the tests that follow.
      await current().restart(before);
      const del = await api("DELETE", "/v1/jobs/cron-failover?stopCurrentJobRuns=true");
      assert.equal(del.status, 200);
    }),
);

test(
  "a run's task that ends during a scheduler leader failover is recorded once and not run again",
  { timeout: 120_000 },
  () =>
    withLogs(async () => {
      await createJob(run("gap", { cmd: "sleep 3" }));
      const started = await api<RunJson>("POST", "/v1/jobs/gap/runs");
      assert.equal(started.status, 201);
      await waitFor("the run's task running", async () => {
        const r = await api<RunJson>("GET", `/v1/jobs/gap/runs/${started.json.id}`);
        return r.json.tasks.some((t) => t.status === "TASK_RUNNING");
      });
      const before = await leaderProcess();
      before.kill("SIGKILL");
      await before.exited;
      const j = await waitFor(
        "the run to be recorded SUCCESS by the new leader",
        async () => {
          const x = await job("gap");
          return x.history?.successCount === 1 ? x : undefined;
        },
        { timeoutMs: 60_000 },
      );
      assert.equal(j.activeRuns?.length, 0);
      assert.deepEqual(
        j.history?.successfulFinishedRuns.map((r) => r.id),
        [started.json.id],
      );
      assert.equal(j.history?.successfulFinishedRuns[0]?.tasks.length, 1);
      const gapTasks = (await tasks()).filter((t) => t.appId.startsWith("/.jobs/gap/"));
      assert.equal(gapTasks.length, 1, JSON.stringify(gapTasks));
      await current().restart(before);
    }),
);

test(
  "job and run events are in the log (drover events), on /v2/events with Metronome's names, and the log replays",
  { timeout: 60_000 },
  () =>
    withLogs(async () => {
      const verify = await current().cli(["admin", "verify-log"]);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      const child = spawn(
        process.execPath,
        [join(repoRoot, "services", "cli", "bin", "drover.js"), "events", "--from-start"],
        {
          env: { ...process.env, ...current().env },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let out = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
      });
      try {
        await waitFor(
          "job and run events in `drover events`",
          async () =>
            /job\/ok v\d+\s+JobCreated/.test(out) &&
            /job-run\/ok_\w+ v\d+\s+JobRunCreated/.test(out) &&
            /job-run\/ok_\w+ v\d+\s+JobRunFinished/.test(out) &&
            // The schedules' events, when the schedule tests ran before.
            (!/job\/cron-forbid /.test(out) || /job\/cron-forbid v\d+\s+ScheduleFired/.test(out)),
          { timeoutMs: 30_000 },
        );
      } finally {
        child.kill("SIGTERM");
      }
      // /v2/events: Metronome's names for a run that starts and succeeds.
      const base = httpUrlOf(current().schedulers[0] as ServiceProcess);
      let text = "";
      const req = http.get(
        `${base}/v2/events?event_type=event_stream_attached&event_type=job_run_started&event_type=job_run_finished`,
        { headers: { Accept: "text/event-stream" } },
        (res) => {
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            text += chunk;
          });
        },
      );
      try {
        await waitFor("the event stream to attach", async () => text.includes("event_stream_attached"), {
          timeoutMs: 60_000,
        });
        const started = await api<RunJson>("POST", "/v1/jobs/ok/runs");
        assert.equal(started.status, 201);
        await waitFor(
          "job_run_started and job_run_finished on /v2/events",
          async () =>
            new RegExp(`event: job_run_started\ndata: .*"id":"${started.json.id}"`).test(text) &&
            new RegExp(`event: job_run_finished\ndata: .*"id":"${started.json.id}"`).test(text),
          { timeoutMs: 60_000 },
        );
      } finally {
        req.destroy();
      }
    }),
);
