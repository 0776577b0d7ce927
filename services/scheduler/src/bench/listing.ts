/**
 * `npm run bench` (listing at size, COMPLAINTS.md 7): GET /v2/apps?embed=apps.tasks and GET /v2/tasks
 * with 1,000 apps and 10,000 tasks, over a real socket, read from the leader's memory (the in-memory
 * store; no master). Prints p50 and p99 per path; a wrong answer (status, counts) fails it, a slow one
 * does not (figures, not assertions).
 *
 *   node services/scheduler/dist/bench/listing.js [--apps 1000] [--tasks-per-app 10] [--rounds 50]
 */
import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { AppSpecSchema } from "@drover/core";
import { createHttpServer } from "../http/server.js";
import { memoryLeader } from "../memory-leader.js";

const { values: args } = parseArgs({
  options: {
    apps: { type: "string", default: "1000" },
    "tasks-per-app": { type: "string", default: "10" },
    rounds: { type: "string", default: "50" },
  },
});
const APPS = Number(args.apps);
const TASKS_PER_APP = Number(args["tasks-per-app"]);
const ROUNDS = Number(args.rounds);

async function main(): Promise<void> {
  const { apps, framework, service, log } = memoryLeader();
  const now = Date.now();
  for (let i = 0; i < APPS; i++) {
    const id = `/bench/g${i % 20}/app${i}`;
    await apps.create(
      AppSpecSchema.parse({
        id,
        cmd: "sleep 1000",
        instances: TASKS_PER_APP,
        cpus: 0.01,
        mem: 8,
        portDefinitions: [{ port: 0 }],
        labels: { n: String(i) },
      }),
    );
    for (let k = 0; k < TASKS_PER_APP; k++) {
      const taskId = `${id.slice(1).replace(/\//g, "_")}.t${k}`;
      framework.tasks.set(taskId, {
        taskId,
        appId: id,
        agentId: `agent-${k}`,
        state: "TASK_RUNNING",
        createdAtMs: now,
        runningSinceMs: now,
        killRequested: false,
        ports: [31000 + k],
        appVersion: new Date(now).toISOString(),
      });
    }
  }
  const http = await createHttpServer({
    service,
    log,
    registry: { metrics: async () => "", contentType: "text/plain" },
    selfHttp: "127.0.0.1:1",
    leaderHttp: async () => "127.0.0.1:1",
    info: {
      frameworkName: "x",
      frameworkId: () => "f",
      masters: [],
      role: "*",
      failoverTimeoutSeconds: 1,
      httpPort: 1,
    },
  });
  await http.listen({ host: "127.0.0.1", port: 0 });
  try {
    const address = http.server.address();
    assert.ok(address && typeof address === "object");
    for (const path of ["/v2/apps?embed=apps.tasks", "/v2/tasks"]) {
      const times: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        const start = performance.now();
        const res = await fetch(`http://127.0.0.1:${address.port}${path}`);
        const body = (await res.json()) as { apps?: { tasks: unknown[] }[]; tasks?: unknown[] };
        times.push(performance.now() - start);
        assert.equal(res.status, 200);
        if (body.apps) {
          assert.equal(body.apps.length, APPS);
          assert.equal(
            body.apps.reduce((n, a) => n + a.tasks.length, 0),
            APPS * TASKS_PER_APP,
          );
        } else assert.equal(body.tasks?.length, APPS * TASKS_PER_APP);
      }
      times.sort((a, b) => a - b);
      const p50 = times[Math.floor(ROUNDS / 2)] ?? 0;
      const p99 = times[Math.min(ROUNDS - 1, Math.ceil(ROUNDS * 0.99) - 1)] ?? 0;
      console.log(
        `bench listing: GET ${path} at ${APPS} apps / ${APPS * TASKS_PER_APP} tasks: p50 ${p50.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms (${ROUNDS} requests)`,
      );
    }
  } finally {
    await http.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
