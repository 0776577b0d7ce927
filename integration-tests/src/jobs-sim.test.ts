/**
 * Runs on demand at scale, with simulated agents (drover-sim: tasks are timers) against a real
 * etcd, NATS, master and scheduler: JOBS jobs × RUNS runs each (default 100 × 10) started through
 * POST /v1/jobs/{id}/runs; every run must end SUCCESS exactly once (the history counts), and the
 * throughput is printed: runs started per second (POSTs answered) and runs finished per second.
 * DROVER_JOBS_SIM=JOBSxRUNS sets the shape.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, test } from "node:test";
import {
  type Cluster,
  httpUrlOf,
  repoRoot,
  startCluster,
  waitFor,
  withClusterLogs,
} from "./harness/index.js";

const [JOBS, RUNS] = (process.env.DROVER_JOBS_SIM ?? "100x10").split("x").map(Number) as [number, number];
const AGENTS = 20;
let cluster: Cluster | undefined;
let sim: ReturnType<typeof spawn> | undefined;

function base(): string {
  const url = cluster && httpUrlOf(cluster.schedulers[0] as NonNullable<Cluster["schedulers"][0]>);
  assert.ok(url);
  return url;
}

async function call(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${base()}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

before(async () => {
  cluster = await startCluster({ masters: 1, schedulers: 1, agents: 0 });
  sim = spawn(
    process.execPath,
    [
      `${repoRoot}/services/agent/bin/drover-sim.js`,
      "--agents",
      String(AGENTS),
      "--cpus",
      "8",
      "--ports",
      "32500-32560",
      "--start-latency-ms",
      "10-50",
      "--stats-interval-s",
      "0",
    ],
    { env: { ...process.env, ...cluster.env }, stdio: "ignore" },
  );
  await waitFor(
    `${AGENTS} simulated agents registered`,
    async () => {
      const r = await cluster?.cliJson<unknown[]>(["agent", "list", "--json"]);
      return (r?.length ?? 0) >= AGENTS;
    },
    { timeoutMs: 60_000 },
  );
});

after(async () => {
  sim?.kill("SIGTERM");
  await cluster?.stop();
});

test(`${JOBS} jobs × ${RUNS} runs on demand on ${AGENTS} simulated agents`, { timeout: 600_000 }, () =>
  withClusterLogs(cluster, async () => {
    for (let j = 0; j < JOBS; j++) {
      const r = await call("POST", "/v1/jobs", {
        id: `sim-${j}`,
        run: { cmd: "sleep 0.2", cpus: 0.01, mem: 32 },
      });
      assert.equal(r.status, 201, JSON.stringify(r.json));
    }
    const started = Date.now();
    // 64 requests in flight; a 503 (a leader change under load: nothing committed) is retried.
    const queue: string[] = [];
    for (let r = 0; r < RUNS; r++) for (let j = 0; j < JOBS; j++) queue.push(`sim-${j}`);
    let retried = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        for (let id = queue.shift(); id !== undefined; id = queue.shift())
          for (;;) {
            const x = await call("POST", `/v1/jobs/${id}/runs`);
            if (x.status === 503) {
              retried++;
              await new Promise((resolve) => setTimeout(resolve, 200));
              continue;
            }
            assert.equal(x.status, 201, JSON.stringify(x.json));
            break;
          }
      }),
    );
    const postedMs = Date.now() - started;
    const total = JOBS * RUNS;
    let done = 0;
    await waitFor(
      `${total} runs to succeed`,
      async () => {
        const jobs = (await call("GET", "/v1/jobs?embed=historySummary")).json as {
          historySummary: { successCount: number; failureCount: number };
        }[];
        done = jobs.reduce((n, x) => n + x.historySummary.successCount, 0);
        const failed = jobs.reduce((n, x) => n + x.historySummary.failureCount, 0);
        assert.equal(failed, 0);
        return done >= total;
      },
      { timeoutMs: 480_000, intervalMs: 500 },
    );
    const finishedMs = Date.now() - started;
    assert.equal(done, total, "every run succeeded exactly once");
    process.stdout.write(
      `[jobs-sim] ${total} runs: started (201) in ${postedMs} ms = ${Math.round((total * 1000) / postedMs)}/s; ` +
        `all SUCCESS in ${finishedMs} ms = ${Math.round((total * 1000) / finishedMs)} runs/s end to end; 503s retried: ${retried}\n`,
    );
  }),
);
