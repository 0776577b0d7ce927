import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger, InvalidArgumentError, NotFoundError } from "@drover/common";
import type { FastifyInstance } from "fastify";
import { AppLockedError, AppService } from "../app-service.js";
import type { TaskEntry } from "../framework.js";
import { memoryLeader } from "../memory-leader.js";
import { BadJsonError, httpErrorOf, marathonPath } from "./errors.js";
import { bool, embeds, matchesLabels, parseLabelSelector, taskStatuses } from "./query.js";
import { parseAppPath } from "./routes.js";
import { createHttpServer, FORWARDED_HEADER } from "./server.js";
import { rejectSummary } from "./views.js";

const log = createLogger("test", "error");

const registry = { metrics: async () => "drover_test_metric 1\n", contentType: "text/plain; version=0.0.4" };

const info = {
  frameworkName: "drover-scheduler",
  frameworkId: () => "fw-1",
  masters: ["127.0.0.1:5050"],
  role: "*",
  failoverTimeoutSeconds: 60,
  httpPort: 8080,
};

/** A leader on the in-memory store (no master: the task view is filled by the test). */
const leaderSetup = () => memoryLeader({ log });

async function leaderServer(): Promise<ReturnType<typeof leaderSetup> & { http: FastifyInstance }> {
  const s = leaderSetup();
  const http = await createHttpServer({
    service: s.service,
    log,
    registry,
    selfHttp: "127.0.0.1:8080",
    leaderHttp: async () => "127.0.0.1:8080",
    info,
  });
  return { ...s, http };
}

const task = (appId: string, n: number, over: Partial<TaskEntry> = {}): TaskEntry => ({
  taskId: `${appId.slice(1).replace(/\//g, "_")}.t${n}`,
  appId,
  agentId: `agent-${n}`,
  state: "TASK_RUNNING",
  createdAtMs: Date.parse("2026-11-29T10:00:00.000Z"),
  runningSinceMs: Date.parse("2026-11-29T10:00:01.000Z"),
  killRequested: false,
  ports: [31000 + n],
  ...over,
});

const APP = {
  id: "/prod/web",
  cmd: "sleep 1000",
  cpus: 0.1,
  mem: 32,
  instances: 2,
  labels: { tier: "front" },
};

test("query parsing: booleans in any case, embeds (apps.* and app.*), label selectors, task statuses", () => {
  assert.equal(bool({ force: "True" }, "force", false), true);
  assert.equal(bool({ force: "FALSE" }, "force", true), false);
  assert.equal(bool({ force: "" }, "force", false), true);
  assert.equal(bool({}, "partialUpdate", true), true);
  assert.throws(() => bool({ force: "yes" }, "force", false), /force: must be true or false/);
  assert.deepEqual([...embeds({ embed: ["apps.tasks", "app.counts,apps.failures"] })].sort(), [
    "counts",
    "lastTaskFailure",
    "tasks",
  ]);
  assert.throws(() => embeds({ embed: "apps.pods" }), /embed: unknown 'apps.pods'/);
  const sel = parseLabelSelector("tier==front, env in (prod, stage),canary notin (true),owner, x!=y");
  assert.deepEqual(sel[0], { key: "tier", op: "==", value: "front" });
  assert.deepEqual(sel[1], { key: "env", op: "in", values: ["prod", "stage"] });
  assert.equal(matchesLabels({ tier: "front", env: "prod", owner: "a" }, sel), true);
  assert.equal(matchesLabels({ tier: "front", env: "dev", owner: "a" }, sel), false);
  assert.equal(matchesLabels({ tier: "front", env: "prod" }, sel), false, "owner must exist");
  assert.throws(() => parseLabelSelector("a b c"), /label: cannot read/);
  assert.deepEqual([...(taskStatuses({ "status[]": ["running", "Staging"] }) ?? [])].sort(), [
    "TASK_RUNNING",
    "TASK_STAGING",
  ]);
  assert.equal(taskStatuses({}), undefined);
  assert.throws(() => taskStatuses({ status: "finished" }), /status: 'finished'/);
});

test("paths below /v2/apps: ids with slashes, and the reserved segments", () => {
  assert.deepEqual(parseAppPath("prod/web"), { kind: "app", id: "/prod/web" });
  assert.deepEqual(parseAppPath("prod/web/tasks"), { kind: "tasks", id: "/prod/web" });
  assert.deepEqual(parseAppPath("prod/web/tasks/prod_web.abc"), {
    kind: "task",
    id: "/prod/web",
    taskId: "prod_web.abc",
  });
  assert.deepEqual(parseAppPath("web/versions/2026-11-29T10:00:00.000Z"), {
    kind: "version",
    id: "/web",
    version: "2026-11-29T10:00:00.000Z",
  });
  assert.deepEqual(parseAppPath("web/restart"), { kind: "restart", id: "/web" });
  assert.deepEqual(parseAppPath("prod/*"), { kind: "group", id: "/prod" });
  assert.throws(() => parseAppPath("web/restart/now"), NotFoundError);
  assert.throws(() => parseAppPath("Bad_Id"), InvalidArgumentError);
});

test("error table: statuses from ERROR_STATUS, Marathon's bodies", () => {
  assert.equal(
    marathonPath("upgradeStrategy.minimumHealthCapacity"),
    "/upgradeStrategy/minimumHealthCapacity",
  );
  assert.equal(marathonPath("portDefinitions[0].port"), "/portDefinitions(0)/port");
  assert.equal(marathonPath(""), "/");
  const invalid = httpErrorOf(
    new InvalidArgumentError([
      { path: "cpus", message: "must be >= 0" },
      { path: "cpus", message: "too small" },
    ]),
  );
  assert.deepEqual(invalid, {
    status: 422,
    body: {
      message: "Object is not valid",
      details: [{ path: "/cpus", errors: ["must be >= 0", "too small"] }],
    },
  });
  const locked = httpErrorOf(new AppLockedError("/web", ["d-1"]));
  assert.equal(locked.status, 409);
  assert.deepEqual(locked.body.deployments, [{ id: "d-1" }]);
  assert.match(
    String(locked.body.message),
    /App is locked by one or more deployments\. Override with the option '\?force=true'/,
  );
  assert.deepEqual(httpErrorOf(new NotFoundError("x", { message: "App '/x' does not exist" })), {
    status: 404,
    body: { message: "App '/x' does not exist" },
  });
  assert.equal(httpErrorOf(new BadJsonError("Unexpected token")).status, 400);
  assert.equal(httpErrorOf(new Error("boom")).status, 500);
});

test("apps: POST 201 with Location, GET with embeds and selectors, PUT partial, 422/400/404/409", async () => {
  const { http, framework, deployments } = await leaderServer();
  try {
    const created = await http.inject({ method: "POST", url: "/v2/apps", payload: APP });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.headers.location, "/v2/apps/prod/web");
    assert.ok(created.headers["marathon-deployment-id"]);
    const app = created.json();
    assert.equal(app.id, "/prod/web");
    assert.equal(app.tasksRunning, 0);
    assert.equal(app.deployments.length, 1);

    const again = await http.inject({ method: "POST", url: "/v2/apps", payload: APP });
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().message, "An app with id [/prod/web] already exists.");

    for (const n of [1, 2]) framework.tasks.set(task("/prod/web", n).taskId, task("/prod/web", n));
    const list = await http.inject({ method: "GET", url: "/v2/apps?embed=apps.tasks&embed=apps.taskStats" });
    assert.equal(list.statusCode, 200);
    const [listed] = list.json().apps;
    assert.equal(listed.tasksRunning, 2);
    // The create's deployment: listed until the instances run healthy (nothing converges here).
    assert.deepEqual(listed.deployments, [{ id: created.headers["marathon-deployment-id"] }]);
    assert.equal(listed.tasks.length, 2);
    assert.deepEqual(Object.keys(listed.tasks[0]).sort(), [
      "appId",
      "host",
      "id",
      "ipAddresses",
      "localVolumes",
      "ports",
      "servicePorts",
      "slaveId",
      "stagedAt",
      "startedAt",
      "state",
    ]);
    assert.deepEqual(listed.tasks[0].ports, [31001]);
    assert.equal(listed.taskStats.totalSummary.stats.counts.running, 2);
    assert.equal((await http.inject("/v2/apps?label=tier==back")).json().apps.length, 0);
    assert.equal((await http.inject("/v2/apps?id=WEB")).json().apps.length, 1);
    assert.equal((await http.inject("/v2/apps?cmd=nope")).json().apps.length, 0);

    assert.deepEqual(
      (await http.inject("/v2/apps/prod/*")).json()["*"].map((a: { id: string }) => a.id),
      ["/prod/web"],
    );
    assert.deepEqual((await http.inject("/v2/apps/staging/*")).json(), { "*": [] });
    const one = (await http.inject("/v2/apps/prod/web")).json().app;
    assert.equal(one.tasks.length, 2, "GET one app embeds its tasks");

    const text = await http.inject({ url: "/v2/apps/prod/web/tasks", headers: { accept: "text/plain" } });
    assert.equal(String(text.headers["content-type"]).split(";")[0], "text/plain");
    assert.match(text.body, /^prod_web\t\d+\tagent-1:31001\tagent-2:31002\n$/);

    // Scale by PUT {"instances"} (a partial update): no deployment, 200 with a DeploymentResult.
    const scaled = await http.inject({ method: "PUT", url: "/v2/apps/prod/web", payload: { instances: 3 } });
    assert.equal(scaled.statusCode, 200, scaled.body);
    assert.ok(scaled.json().deploymentId && scaled.json().version);
    assert.equal((await http.inject("/v2/apps/prod/web")).json().app.instances, 3);

    // A config change starts a deployment; a second change without force is 409 naming it.
    const changed = await http.inject({
      method: "PUT",
      url: "/v2/apps/prod/web",
      payload: { cmd: "sleep 2000" },
    });
    assert.equal(changed.statusCode, 200, changed.body);
    const depId = changed.json().deploymentId;
    assert.equal(changed.headers["marathon-deployment-id"], depId);
    assert.equal(deployments.runningFor("/prod/web")?.id, depId);
    const blocked = await http.inject({
      method: "PATCH",
      url: "/v2/apps/prod/web",
      payload: { instances: 1 },
    });
    assert.equal(blocked.statusCode, 409);
    assert.deepEqual(blocked.json().deployments, [{ id: depId }]);
    const deps = (await http.inject("/v2/deployments")).json();
    assert.equal(deps.length, 1);
    assert.equal(deps[0].id, depId);
    assert.deepEqual(deps[0].affectedApps, ["/prod/web"]);
    assert.deepEqual(deps[0].steps, [{ actions: [{ action: "RestartApplication", app: "/prod/web" }] }]);
    assert.equal(deps[0].currentStep, 1);
    assert.equal(deps[0].totalSteps, 1);
    assert.deepEqual(deps[0].currentActions, [
      { action: "RestartApplication", app: "/prod/web", readinessCheckResults: [] },
    ]);
    const forced = await http.inject({
      method: "PATCH",
      url: "/v2/apps/prod/web?force=true",
      payload: { instances: 1 },
    });
    assert.equal(forced.statusCode, 200, forced.body);

    const cancelled = await http.inject({ method: "DELETE", url: `/v2/deployments/${depId}?force=true` });
    assert.equal(cancelled.statusCode, 202);
    assert.equal((await http.inject("/v2/deployments")).json().length, 0);
    const gone = await http.inject({ method: "DELETE", url: `/v2/deployments/${depId}` });
    assert.equal(gone.statusCode, 404);
    assert.equal(gone.json().message, `DeploymentPlan ${depId} does not exist`);

    const bad = await http.inject({
      method: "PUT",
      url: "/v2/apps/prod/web",
      payload: { upgradeStrategy: { minimumHealthCapacity: 2 } },
    });
    assert.equal(bad.statusCode, 422);
    assert.equal(bad.json().message, "Object is not valid");
    assert.equal(bad.json().details[0].path, "/upgradeStrategy/minimumHealthCapacity");
    assert.ok(bad.json().details[0].errors.length > 0);

    const refused = await http.inject({
      method: "POST",
      url: "/v2/apps",
      payload: { ...APP, id: "/pods/x", executor: "/opt/exec" },
    });
    assert.equal(refused.statusCode, 422, refused.body);

    const notJson = await http.inject({
      method: "POST",
      url: "/v2/apps",
      headers: { "content-type": "application/json" },
      payload: "{ nope",
    });
    assert.equal(notJson.statusCode, 400);
    assert.equal(notJson.json().message, "Invalid JSON");

    const missing = await http.inject("/v2/apps/nope");
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().message, "App '/nope' does not exist");
    assert.equal((await http.inject("/v2/apps/nope/tasks")).statusCode, 404);
    assert.equal((await http.inject({ method: "DELETE", url: "/v2/apps/nope" })).statusCode, 404);

    const versions = (await http.inject("/v2/apps/prod/web/versions")).json().versions;
    assert.ok(versions.length >= 3);
    const first = (await http.inject(`/v2/apps/prod/web/versions/${versions[versions.length - 1]}`)).json();
    assert.equal(first.cmd, "sleep 1000");
    assert.equal(first.instances, 2);
    // PUT {"version"} alone rolls back to that version (python-marathon's rollback_app).
    const rolled = await http.inject({
      method: "PUT",
      url: "/v2/apps/prod/web?force=true",
      payload: { version: versions[versions.length - 1] },
    });
    assert.equal(rolled.statusCode, 200, rolled.body);
    const back = (await http.inject("/v2/apps/prod/web")).json().app;
    assert.equal(back.cmd, "sleep 1000");
    assert.equal(back.instances, 2);

    const deep = `/${"g".repeat(28)}/${"a".repeat(30)}`;
    const long = await http.inject({ method: "POST", url: "/v2/apps", payload: { ...APP, id: deep } });
    assert.equal(long.statusCode, 201, long.body);
    const taskId = `${deep.slice(1).replace("/", "_")}.${"0".repeat(36)}`;
    const beyond = await http.inject({ method: "DELETE", url: `/v2/apps${deep}/tasks/${taskId}` });
    assert.equal(
      beyond.json().message,
      `Task '${taskId}' does not exist`,
      "a path beyond 100 characters is routed",
    );

    const removed = await http.inject({ method: "DELETE", url: "/v2/apps/prod/web" });
    assert.equal(removed.statusCode, 200);
    assert.equal((await http.inject("/v2/apps/prod/web")).statusCode, 404);
  } finally {
    await http.close();
  }
});

test("tasks: GET /v2/tasks with status, kill without a subscription is 503, bad task id 400", async () => {
  const { http, framework } = await leaderServer();
  try {
    await http.inject({ method: "POST", url: "/v2/apps", payload: APP });
    framework.tasks.set(task("/prod/web", 1).taskId, task("/prod/web", 1));
    framework.tasks.set(
      task("/prod/web", 2).taskId,
      task("/prod/web", 2, { state: "TASK_STAGING", runningSinceMs: undefined }),
    );
    assert.equal((await http.inject("/v2/tasks")).json().tasks.length, 2);
    const running = (await http.inject("/v2/tasks?status=running")).json().tasks;
    assert.deepEqual(
      running.map((t: { id: string }) => t.id),
      ["prod_web.t1"],
    );
    assert.equal((await http.inject("/v2/tasks?status=bogus")).statusCode, 400);
    const badId = await http.inject({
      method: "POST",
      url: "/v2/tasks/delete",
      payload: { ids: ["no-dot"] },
    });
    assert.equal(badId.statusCode, 400);
    assert.equal(badId.json().message, "Invalid task id no-dot");
    const notSubscribed = await http.inject({ method: "DELETE", url: "/v2/apps/prod/web/tasks/prod_web.t1" });
    assert.equal(notSubscribed.statusCode, 503);
    assert.equal(
      (await http.inject({ method: "DELETE", url: "/v2/apps/prod/web/tasks/prod_web.none" })).statusCode,
      404,
    );
  } finally {
    await http.close();
  }
});

test("system: ping, metrics, info, leader, pods 501, queue", async () => {
  const { http } = await leaderServer();
  try {
    const ping = await http.inject("/ping");
    assert.equal(ping.body, "pong");
    assert.match((await http.inject("/metrics")).body, /drover_test_metric 1/);
    const i = (await http.inject("/v2/info")).json();
    assert.equal(i.elected, true);
    assert.equal(i.leader, "127.0.0.1:8080");
    assert.equal(i.frameworkId, "fw-1");
    assert.deepEqual((await http.inject("/v2/leader")).json(), { leader: "127.0.0.1:8080" });
    for (const method of ["HEAD", "GET"] as const) {
      const pods = await http.inject({ method, url: "/v2/pods" });
      assert.equal(pods.statusCode, 501, method);
    }
    assert.match((await http.inject("/v2/pods")).json().message, /Pods are not supported/);
    await http.inject({ method: "POST", url: "/v2/apps", payload: APP });
    const queue = (await http.inject("/v2/queue")).json().queue;
    assert.equal(queue.length, 1);
    assert.equal(queue[0].count, 2);
    assert.equal(queue[0].app.id, "/prod/web");
    assert.ok(Array.isArray(queue[0].processedOffersSummary.rejectSummaryLastOffers));
    assert.equal((await http.inject({ method: "DELETE", url: "/v2/queue/prod/web/delay" })).statusCode, 204);
    const notQueued = await http.inject({ method: "DELETE", url: "/v2/queue/nope/delay" });
    assert.equal(notQueued.statusCode, 404);
    assert.equal(notQueued.json().message, "Application /nope not found in tasks queue.");
  } finally {
    await http.close();
  }
});

test("a follower forwards to the leader's HTTP address, and answers 503 when it knows none", async () => {
  const { http: leader } = await leaderServer();
  await leader.listen({ host: "127.0.0.1", port: 0 });
  const address = leader.server.address();
  assert.ok(address && typeof address === "object");
  const leaderAddr = `127.0.0.1:${address.port}`;
  let known: string | undefined = leaderAddr;
  const follower = await createHttpServer({
    service: new AppService({ current: () => undefined, leaderAddress: async () => "x:1", self: "y:1" }),
    log,
    registry,
    selfHttp: "127.0.0.1:1",
    leaderHttp: async () => known,
    info,
  });
  try {
    const created = await follower.inject({ method: "POST", url: "/v2/apps", payload: APP });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.headers.location, "/v2/apps/prod/web");
    assert.equal(created.headers["x-marathon-leader"], `http://${leaderAddr}`);
    const got = await follower.inject("/v2/apps/prod/web");
    assert.equal(got.json().app.id, "/prod/web");
    const bad = await follower.inject({
      method: "POST",
      url: "/v2/apps",
      headers: { "content-type": "application/json" },
      payload: "{",
    });
    assert.equal(bad.statusCode, 400, "the leader's answer, status and body");
    // Local on every replica.
    assert.equal((await follower.inject("/ping")).body, "pong");
    assert.equal((await follower.inject("/v2/info")).json().elected, false);
    // A request forwarded once is not forwarded again.
    const loop = await follower.inject({ url: "/v2/apps", headers: { [FORWARDED_HEADER]: "other:1" } });
    assert.equal(loop.statusCode, 503);
    known = undefined;
    const none = await follower.inject("/v2/apps");
    assert.equal(none.statusCode, 503);
    assert.match(none.json().message, /Could not determine the current leader/);
    assert.equal((await follower.inject("/v2/leader")).statusCode, 404);
  } finally {
    await follower.close();
    await leader.close();
  }
});

test("the reject summary is Marathon's funnel: each reason processes what the ones before it let through", () => {
  const rows = rejectSummary(10, { constraint: 3, cpus: 1, mem: 2, disk: 0, ports: 4 });
  const by = new Map(rows.map((r) => [r.reason, [r.declined, r.processed]]));
  assert.deepEqual(by.get("UnfulfilledRole"), [0, 10]);
  assert.deepEqual(by.get("UnfulfilledConstraint"), [3, 10]);
  assert.deepEqual(by.get("InsufficientCpus"), [1, 7]);
  assert.deepEqual(by.get("InsufficientMemory"), [2, 6]);
  assert.deepEqual(by.get("InsufficientDisk"), [0, 4]);
  assert.deepEqual(by.get("InsufficientPorts"), [4, 4]);
  assert.deepEqual(by.get("DeclinedScarceResources"), [0, 0]);
  assert.equal(rows.length, 10);
  // No offers yet: every row zero.
  assert.ok(rejectSummary(0, undefined).every((r) => r.declined === 0 && r.processed === 0));
});
