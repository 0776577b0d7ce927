import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@drover/common";
import { memoryLeader } from "../memory-leader.js";
import { groupEmbeds, parseGroupPath } from "./groups.js";
import { createHttpServer } from "./server.js";

const log = createLogger("test", "error");

async function server() {
  const m = memoryLeader({ log });
  const http = await createHttpServer({
    service: m.service,
    log,
    registry: { metrics: async () => "", contentType: "text/plain" },
    selfHttp: "127.0.0.1:8080",
    leaderHttp: async () => "127.0.0.1:8080",
    info: {
      frameworkName: "drover-scheduler",
      frameworkId: () => "fw-1",
      masters: [],
      role: "*",
      failoverTimeoutSeconds: 60,
      httpPort: 8080,
    },
  });
  return { http, apps: m.apps, deployments: m.deployments, kv: m.kv };
}

const app = (id: string, over: Record<string, unknown> = {}) => ({
  id,
  cmd: "sleep 1000",
  instances: 1,
  cpus: 0.1,
  mem: 32,
  ...over,
});

const SHOP = {
  id: "/shop",
  apps: [app("db"), app("web", { dependencies: ["db"] })],
  groups: [{ id: "jobs", apps: [app("mail")] }],
};

test("paths and embeds of /v2/groups are read, and refused by name when unknown", () => {
  assert.deepEqual(parseGroupPath("shop/jobs"), { kind: "group", id: "/shop/jobs" });
  assert.deepEqual(parseGroupPath("shop/apps"), { kind: "apps", id: "/shop" });
  assert.deepEqual(parseGroupPath(""), { kind: "group", id: "/" });
  assert.deepEqual(parseGroupPath("shop/versions/2026-01-01T00:00:00.000Z"), {
    kind: "version",
    id: "/shop",
    version: "2026-01-01T00:00:00.000Z",
  });
  const d = groupEmbeds({});
  assert.equal(d.apps && d.groups && d.pods, true);
  const e = groupEmbeds({ embed: "group.apps.tasks,group.groups" });
  assert.deepEqual([e.apps, e.groups, e.pods, [...e.app]], [true, true, false, ["tasks"]]);
  assert.throws(() => groupEmbeds({ embed: "group.nope" }), /embed: unknown 'group.nope'/);
});

test("POST /v2/groups creates every app as one deployment; GET shows the tree; dryRun, scaleBy, DELETE", async () => {
  const { http, apps, deployments } = await server();
  const created = await http.inject({ method: "POST", url: "/v2/groups", payload: SHOP });
  assert.equal(created.statusCode, 201, created.body);
  assert.equal(created.headers.location, "/v2/groups/shop");
  const result = created.json() as { deploymentId: string; version: string };
  assert.equal(created.headers["marathon-deployment-id"], result.deploymentId);
  assert.deepEqual(
    deployments
      .get(result.deploymentId)
      .apps.map((a) => a.appId)
      .sort(),
    ["/shop/db", "/shop/jobs/mail", "/shop/web"],
  );
  assert.equal(apps.records().size, 3);

  const again = await http.inject({ method: "POST", url: "/v2/groups", payload: SHOP });
  assert.equal(again.statusCode, 409);
  assert.match((again.json() as { message: string }).message, /Group \/shop is already created/);

  const tree = (await http.inject({ url: "/v2/groups/shop" })).json() as {
    id: string;
    apps: { id: string }[];
    groups: { id: string; apps: { id: string }[] }[];
    pods: unknown[];
  };
  assert.equal(tree.id, "/shop");
  assert.deepEqual(
    tree.apps.map((a) => a.id),
    ["/shop/db", "/shop/web"],
  );
  assert.deepEqual(
    tree.groups.map((g) => [g.id, g.apps.map((a) => a.id)]),
    [["/shop/jobs", ["/shop/jobs/mail"]]],
  );
  assert.deepEqual(tree.pods, []);
  const root = (await http.inject({ url: "/v2/groups?embed=group.groups" })).json() as Record<
    string,
    unknown
  >;
  assert.equal(root.apps, undefined, "only what embed asks for");
  assert.equal((await http.inject({ url: "/v2/groups/nothing" })).statusCode, 404);

  // A change while the creation's deployment runs: 409 naming it, unless forced.
  const changed = {
    ...SHOP,
    groups: [],
    apps: [app("db", { env: { V: "2" } }), app("web", { dependencies: ["db"] })],
  };
  const locked = await http.inject({ method: "PUT", url: "/v2/groups/shop", payload: changed });
  assert.equal(locked.statusCode, 409, locked.body);
  assert.deepEqual((locked.json() as { deployments: { id: string }[] }).deployments, [
    { id: result.deploymentId },
  ]);

  const dry = await http.inject({
    method: "PUT",
    url: "/v2/groups/shop?dryRun=true&force=true",
    payload: changed,
  });
  assert.equal(dry.statusCode, 200, dry.body);
  assert.deepEqual(dry.json(), {
    steps: [
      { actions: [{ action: "StopApplication", app: "/shop/jobs/mail" }] },
      { actions: [{ action: "RestartApplication", app: "/shop/db" }] },
    ],
  });
  assert.equal(apps.records().size, 3, "a dry run changes nothing");

  const put = await http.inject({ method: "PUT", url: "/v2/groups/shop?force=true", payload: changed });
  assert.equal(put.statusCode, 200, put.body);
  assert.equal(apps.record("/shop/jobs/mail"), undefined, "left out of the definition: removed");
  assert.equal(apps.record("/shop/db")?.spec.env.V, "2");

  const scaled = await http.inject({
    method: "PUT",
    url: "/v2/groups/shop?force=true",
    payload: { scaleBy: 3 },
  });
  assert.equal(scaled.statusCode, 200, scaled.body);
  assert.equal(apps.record("/shop/web")?.spec.instances, 3);

  // Versions: the group's are its apps'; the group as of its first one is the creation; a PUT of
  // {"version"} takes the apps back (the scale and the update undone; /shop/jobs/mail, removed since,
  // cannot come back).
  const versions = (await http.inject({ url: "/v2/groups/shop/versions" })).json() as string[];
  assert.ok(versions.length >= 3, JSON.stringify(versions));
  const first = versions.at(-1) ?? "";
  const then = (await http.inject({ url: `/v2/groups/shop/versions/${first}` })).json() as {
    apps: { id: string; instances: number; env?: Record<string, string> }[];
  };
  assert.deepEqual(
    then.apps.map((a) => [a.id, a.instances, a.env?.V ?? null]),
    [
      ["/shop/db", 1, null],
      ["/shop/web", 1, null],
    ],
  );
  const dryBack = await http.inject({
    method: "PUT",
    url: "/v2/groups/shop?force=true&dryRun=true",
    payload: { version: first },
  });
  assert.deepEqual(dryBack.json(), {
    steps: [
      { actions: [{ action: "RestartApplication", app: "/shop/db" }] },
      { actions: [{ action: "ScaleApplication", app: "/shop/web" }] },
    ],
  });
  const back = await http.inject({
    method: "PUT",
    url: "/v2/groups/shop?force=true",
    payload: { version: first },
  });
  assert.equal(back.statusCode, 200, back.body);
  assert.equal(apps.record("/shop/db")?.spec.env.V, undefined);
  assert.equal(apps.record("/shop/db")?.spec.instances, 1);
  assert.equal(apps.record("/shop/web")?.spec.instances, 1);
  assert.equal(apps.record("/shop/jobs/mail"), undefined);
  // The same through PUT /v2/groups/{id}/versions/{version} (python3-marathon's rollback_group).
  const byPath = await http.inject({ method: "PUT", url: `/v2/groups/shop/versions/${first}?force=true` });
  assert.equal(byPath.statusCode, 200, byPath.body);
  assert.equal(apps.record("/shop/db")?.spec.env.V, undefined);
  const tooEarly = await http.inject({
    method: "PUT",
    url: "/v2/groups/shop",
    payload: { version: "2000-01-01T00:00:00Z" },
  });
  assert.equal(tooEarly.statusCode, 404, tooEarly.body);
  const notTime = await http.inject({
    method: "PUT",
    url: "/v2/groups/shop",
    payload: { version: "yesterday" },
  });
  assert.equal(notTime.statusCode, 422);
  assert.match(notTime.body, /version/);

  const bad = await http.inject({
    method: "POST",
    url: "/v2/groups",
    payload: { id: "/bad", apps: [app("a", { cpus: "many" })] },
  });
  assert.equal(bad.statusCode, 422);
  assert.equal((bad.json() as { details: { path: string }[] }).details[0]?.path, "/apps(0)/cpus");

  const deleted = await http.inject({ method: "DELETE", url: "/v2/groups/shop?force=true" });
  assert.equal(deleted.statusCode, 200, deleted.body);
  assert.equal(apps.records().size, 0);
  await http.close();
});

test("PUT /v2/apps of several apps is one transaction and one deployment, in dependency order", async () => {
  const { http, apps, deployments, kv } = await server();
  const first = await http.inject({ method: "POST", url: "/v2/apps", payload: app("/db") });
  assert.equal(first.statusCode, 201, first.body);
  const before = kv.txnCount;
  const put = await http.inject({
    method: "PUT",
    url: "/v2/apps",
    payload: [app("/web", { dependencies: ["/db"] }), app("/db", { env: { V: "2" } })],
  });
  assert.equal(put.statusCode, 200, put.body);
  assert.equal(kv.txnCount - before, 1, "both apps and their deployment in one transaction");
  const { deploymentId } = put.json() as { deploymentId: string };
  const d = deployments.get(deploymentId);
  assert.deepEqual(
    (d.steps ?? []).map((s) => s.actions.map((a) => `${a.action} ${a.appId}`)),
    [["StartApplication /web"], ["RestartApplication /db"], ["ScaleApplication /web"]],
  );
  assert.equal(apps.record("/db")?.spec.env.V, "2");
  const twice = await http.inject({
    method: "PUT",
    url: "/v2/apps?force=true",
    payload: [app("/x"), app("/x")],
  });
  assert.equal(twice.statusCode, 422, twice.body);
  assert.match(twice.body, /given twice/);
  await http.close();
});
