/**
 * Listing at size (COMPLAINTS.md 7): GET /v2/apps?embed=apps.tasks and GET /v2/tasks with 1,000
 * apps and 10,000 tasks, over a real socket, read from the leader's memory. Prints p50/p99; asserts
 * the p50 is well under a second (the bound leaves room for a loaded CI machine).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@drover/common";
import { SchedulerConfigSchema } from "@drover/config";
import { AppSpecSchema } from "@drover/core";
import { memoryStore } from "@drover/testing";
import { AppService, type SchedulerLeader } from "../app-service.js";
import { AppStore } from "../apps.js";
import { DeploymentStore } from "../deployments.js";
import { FrameworkDriver } from "../framework.js";
import { createHttpServer } from "./server.js";

const APPS = 1000;
const TASKS_PER_APP = 10;
const ROUNDS = 20;

test(`listing ${APPS} apps and ${APPS * TASKS_PER_APP} tasks answers well under a second`, {
  timeout: 120_000,
}, async () => {
  const log = createLogger("test", "error");
  const m = memoryStore({ service: "scheduler" });
  const apps = new AppStore(m.store, m.leadership);
  const deployments = new DeploymentStore(m.store, m.leadership, log);
  const framework = new FrameworkDriver({
    config: SchedulerConfigSchema.parse({}),
    log,
    apps: () => apps.records(),
    deployments,
    loadFrameworkId: async () => undefined,
    saveFrameworkId: async () => {},
  });
  const leader: SchedulerLeader = { apps, deployments, framework, changed: () => {} };
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
    service: new AppService({ current: () => leader, leaderAddress: async () => "a:1", self: "a:1" }),
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
      const p99 = times[ROUNDS - 1] ?? 0;
      console.log(`GET ${path}: p50 ${p50.toFixed(0)} ms, p99 (max of ${ROUNDS}) ${p99.toFixed(0)} ms`);
      assert.ok(p50 < 1000, `GET ${path} p50 ${p50.toFixed(0)} ms`);
    }
  } finally {
    await http.close();
  }
});
