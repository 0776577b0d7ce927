import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@drover/common";
import { memoryStore } from "@drover/testing";
import Fastify from "fastify";
import { JobRunner } from "../jobs/runner.js";
import { JobStore } from "../jobs/store.js";
import { httpErrorOf } from "./errors.js";
import { jobsRoutes } from "./jobs.js";

const log = createLogger("test", "error");

async function server() {
  const mem = memoryStore({ service: "scheduler" });
  const store = new JobStore({ store: mem.store, leadership: mem.leadership, historyKept: 5 });
  const runner = new JobRunner({ store, log, changed: () => undefined });
  const app = Fastify();
  app.setErrorHandler((err, _req, reply) => {
    const { status, body } = httpErrorOf(err);
    void reply.code(status).send(body);
  });
  await app.register(jobsRoutes({ leader: () => ({ store, runner, tasks: { ofApp: () => [] } }) }));
  const call = async (method: "GET" | "POST" | "PUT" | "DELETE", url: string, payload?: unknown) => {
    const r = await app.inject({
      method,
      url,
      ...(payload !== undefined ? { payload: payload as object } : {}),
    });
    return {
      status: r.statusCode,
      json: (r.body ? JSON.parse(r.body) : {}) as Record<string, unknown>,
    };
  };
  return { app, call, store };
}

test("/v1/jobs: create (201, defaults), conflict (409), validation (422 naming the field), get with embeds", async () => {
  const { call } = await server();
  const created = await call("POST", "/v1/jobs", {
    id: "dev.backup",
    run: { cmd: "true" },
    schedules: [{ id: "nightly", cron: "0 3 * * *" }],
  });
  assert.equal(created.status, 201);
  assert.equal((created.json.run as { mem: number }).mem, 128);
  assert.equal((created.json.schedules as { timezone: string }[])[0]?.timezone, "UTC");
  assert.equal((await call("POST", "/v1/jobs", { id: "dev.backup", run: { cmd: "true" } })).status, 409);
  const bad = await call("POST", "/v1/jobs", { id: "x", run: { cmd: "true", ucr: {} } });
  assert.equal(bad.status, 422);
  assert.deepEqual(bad.json.details, [
    { path: "/run/ucr", errors: ["not supported: Drover runs Docker containers: use run.docker"] },
  ]);
  const got = await call("GET", "/v1/jobs/dev.backup?embed=activeRuns,schedules,history,historySummary");
  assert.equal(got.status, 200);
  assert.deepEqual(got.json.activeRuns, []);
  assert.deepEqual(got.json.historySummary, {
    successCount: 0,
    failureCount: 0,
    lastSuccessAt: null,
    lastFailureAt: null,
  });
  assert.equal(
    (got.json.schedules as { nextRunAt: string }[])[0]?.nextRunAt.endsWith("T03:00:00.000Z"),
    true,
  );
  assert.equal((await call("GET", "/v1/jobs?embed=bogus")).status, 400);
  assert.equal((await call("GET", "/v1/jobs/nope")).status, 404);
});

test("/v1/jobs runs: start (201, INITIAL), list, get, stop (FAILED, in the history); delete needs stopCurrentJobRuns", async () => {
  const { call } = await server();
  await call("POST", "/v1/jobs", { id: "j", run: { cmd: "true" } });
  const run = await call("POST", "/v1/jobs/j/runs");
  assert.equal(run.status, 201);
  assert.equal(run.json.status, "INITIAL");
  assert.equal(run.json.jobId, "j");
  const id = String(run.json.id);
  assert.match(id, /^\d{14}[A-Z0-9]{5}$/);
  assert.equal(((await call("GET", "/v1/jobs/j/runs")).json as unknown as unknown[]).length, 1);
  assert.equal((await call("DELETE", "/v1/jobs/j")).status, 409);
  const stopped = await call("POST", `/v1/jobs/j/runs/${id}/actions/stop`);
  assert.equal(stopped.status, 200);
  const after = await call("GET", `/v1/jobs/j/runs/${id}`);
  assert.equal(after.json.status, "FAILED");
  assert.equal(after.json.message, "stopped");
  assert.equal((await call("POST", `/v1/jobs/j/runs/${id}/actions/stop`)).status, 404);
  assert.equal((await call("DELETE", "/v1/jobs/j?stopCurrentJobRuns=true")).status, 200);
  assert.equal((await call("GET", "/v1/jobs/j")).status, 404);
});

test("/v1/jobs schedules: create (201), duplicate (409), update, delete; PUT of the job keeps its schedules", async () => {
  const { call } = await server();
  await call("POST", "/v1/jobs", { id: "j", run: { cmd: "true" } });
  const s = await call("POST", "/v1/jobs/j/schedules", {
    id: "every-five",
    cron: "*/5 * * * *",
    concurrencyPolicy: "FORBID",
  });
  assert.equal(s.status, 201);
  assert.equal(s.json.concurrencyPolicy, "FORBID");
  assert.equal(
    (await call("POST", "/v1/jobs/j/schedules", { id: "every-five", cron: "* * * * *" })).status,
    409,
  );
  const bad = await call("POST", "/v1/jobs/j/schedules", {
    id: "x1",
    cron: "* * * * *",
    timezone: "Mars/Base",
  });
  assert.equal(bad.status, 422);
  assert.equal((bad.json.details as { path: string }[])[0]?.path, "/timezone");
  const up = await call("PUT", "/v1/jobs/j/schedules/every-five", { cron: "0 * * * *", enabled: false });
  assert.equal(up.status, 200);
  assert.equal(up.json.enabled, false);
  const put = await call("PUT", "/v1/jobs/j", { id: "j", run: { cmd: "echo 2" }, schedules: [] });
  assert.equal(put.status, 200);
  assert.equal(((await call("GET", "/v1/jobs/j/schedules")).json as unknown as unknown[]).length, 1);
  assert.equal((await call("PUT", "/v1/jobs/j", { id: "k", run: { cmd: "x" } })).status, 422);
  assert.equal((await call("DELETE", "/v1/jobs/j/schedules/every-five")).status, 200);
  assert.equal((await call("GET", "/v1/jobs/j/schedules/every-five")).status, 404);
});

test("/v0/scheduled-jobs: create with schedules (201); PUT replaces the job and its schedules in one change", async () => {
  const { call, store } = await server();
  const created = await call("POST", "/v0/scheduled-jobs", {
    id: "v0",
    run: { cmd: "true" },
    schedules: [
      { id: "keep", cron: "0 3 * * *" },
      { id: "drop", cron: "0 4 * * *" },
    ],
  });
  assert.equal(created.status, 201);
  const keepDue = store.schedule("v0", "keep").nextDueMs;
  const put = await call("PUT", "/v0/scheduled-jobs/v0", {
    id: "v0",
    run: { cmd: "echo 2" },
    schedules: [
      { id: "keep", cron: "0 3 * * *" },
      { id: "new-one", cron: "*/10 * * * *", concurrencyPolicy: "FORBID" },
    ],
  });
  assert.equal(put.status, 200);
  assert.deepEqual(
    (put.json.schedules as { id: string }[]).map((x) => x.id),
    ["keep", "new-one"],
  );
  assert.equal(store.get("v0").spec.run.cmd, "echo 2");
  assert.equal(
    store.schedule("v0", "keep").nextDueMs,
    keepDue,
    "an unchanged schedule keeps its next due time",
  );
  assert.equal(
    (await call("PUT", "/v0/scheduled-jobs/v0", { run: { cmd: "x" }, schedules: [{ id: "b", cron: "*" }] }))
      .status,
    422,
  );
});
