/**
 * One bad request never takes the control plane down: hostile single requests (non-ASCII field
 * names, a byte-order mark, huge inputs, undecodable protobuf) are refused with the right status
 * and a safe, bounded answer, on a channel that keeps working; size limits are refused by field;
 * framework calls prove their caller; a frozen etcd answers UNAVAILABLE within a bound; one
 * request that etcd refuses does not block the others; verify-log reads a log of any size.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { AppAggregate, type AppEvent, AppSpecSchema, appIdToKey } from "@drover/core";
import { type FrameworkEvent, MasterClient, SchedulerClient } from "@drover/proto";
import { connectEtcd, EventStore, verifyLog } from "@drover/store";
import { type Client, credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import Docker from "dockerode";
import { type Cluster, StopWaiting, startCluster, waitFor } from "./harness/index.js";

const STORE_TIMEOUT_MS = 1000;
/** The slowest answer to a refused request that counts as "not a hang" (far above the store timeout). */
const ANSWER_BOUND_MS = 8000;
const ALLOWED_REFUSALS = new Set<number>([
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.FAILED_PRECONDITION,
  status.PERMISSION_DENIED,
  status.RESOURCE_EXHAUSTED,
]);

let cluster: Cluster | undefined;
let scheduler: SchedulerClient;
let master: MasterClient;

before(async () => {
  cluster = await startCluster({
    agents: 0,
    waitReady: false,
    env: { DROVER_STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS) },
  });
  const s = cluster.env.DROVER_SCHEDULERS?.split(",")[0];
  const m = cluster.env.DROVER_MASTERS?.split(",")[0];
  assert.ok(s && m);
  scheduler = new SchedulerClient(s, credentials.createInsecure());
  master = new MasterClient(m, credentials.createInsecure());
  await waitFor(
    "the scheduler and the master lead",
    async () => {
      await unary(scheduler, "listApps", {});
      await unary(master, "listAgents", {});
      return true;
    },
    { timeoutMs: 60_000 },
  );
});

after(async () => {
  scheduler?.close();
  master?.close();
  await cluster?.stop();
});

type Outcome = { ok: true; value: unknown; ms: number } | { ok: false; err: ServiceError; ms: number };

/** Calls `method` on `client` with a deadline and returns the outcome (never rejects). */
function unaryOutcome(
  client: Client,
  method: string,
  req: unknown,
  md = new Metadata(),
  deadlineMs = ANSWER_BOUND_MS,
): Promise<Outcome> {
  const started = Date.now();
  type Unary = (
    req: unknown,
    md: Metadata,
    opts: { deadline: Date },
    cb: (err: ServiceError | null, res: unknown) => void,
  ) => unknown;
  const fn = (client as unknown as Record<string, Unary | undefined>)[method];
  assert.ok(typeof fn === "function", `no method ${method}`);
  return new Promise((resolve) => {
    fn.call(
      client,
      req,
      md,
      { deadline: new Date(Date.now() + deadlineMs) },
      (err: ServiceError | null, res: unknown) =>
        resolve(
          err
            ? { ok: false, err, ms: Date.now() - started }
            : { ok: true, value: res, ms: Date.now() - started },
        ),
    );
  });
}

async function unary(client: Client, method: string, req: unknown, md?: Metadata): Promise<unknown> {
  const o = await unaryOutcome(client, method, req, md);
  if (!o.ok) throw o.err;
  return o.value;
}

/** Asserts a refusal that is safe to deliver: an allowed code, bounded details, an ASCII JSON trailer. */
function assertSafeRefusal(what: string, o: Outcome): ServiceError {
  assert.ok(
    !o.ok,
    `${what}: expected a refusal, got ${JSON.stringify((o as { value: unknown }).value)?.slice(0, 200)}`,
  );
  const err = o.err;
  assert.ok(
    ALLOWED_REFUSALS.has(err.code),
    `${what}: status ${status[err.code]} (${err.details.slice(0, 300)})`,
  );
  assert.ok(err.details.length <= 1024, `${what}: details of ${err.details.length} chars`);
  for (const raw of err.metadata.get("drover-issues")) {
    const text = String(raw);
    assert.match(text, /^[\x20-\x7e]*$/, `${what}: drover-issues is not printable ASCII`);
    assert.ok(text.length <= 6 * 1024, `${what}: drover-issues of ${text.length} bytes`);
    const issues: unknown = JSON.parse(text);
    assert.ok(Array.isArray(issues) && issues.length > 0, `${what}: drover-issues is not a non-empty array`);
  }
  return err;
}

const app = (patch: Record<string, unknown>) =>
  JSON.stringify({ id: "web", container: { docker: { image: "drover/busybox:1" } }, instances: 0, ...patch });
const MiB = "x".repeat(1024 * 1024);

test("hostile single requests are refused safely and never take a process down", async () => {
  const c = cluster;
  assert.ok(c);
  const cases: { what: string; client: Client; method: string; req: unknown }[] = [
    { what: "unknown field é", client: scheduler, method: "createApp", req: { appJson: app({ é: 1 }) } },
    {
      what: "JSON with a byte-order mark and an unknown field",
      client: scheduler,
      method: "createApp",
      req: { appJson: `\uFEFF${app({ ü: 1 })}` },
    },
    {
      what: "env name A=é",
      client: scheduler,
      method: "createApp",
      req: { appJson: app({ env: { "A=é": "1" } }) },
    },
    {
      what: "id with an emoji",
      client: scheduler,
      method: "createApp",
      req: { appJson: app({ id: "web😀" }) },
    },
    {
      what: "lone surrogate and RTL override",
      client: scheduler,
      method: "createApp",
      req: { appJson: app({ id: "\ud800\u202e" }) },
    },
    {
      what: "combining marks in an unknown field",
      client: scheduler,
      method: "createApp",
      req: { appJson: app({ "a\u0301\u0301": "v" }) },
    },
    {
      what: "control characters in cmd",
      client: scheduler,
      method: "createApp",
      req: { appJson: app({ cmd: "\u0000\u0007", é: 2 }) },
    },
    {
      what: "an unknown field named by 300 KiB",
      client: scheduler,
      method: "createApp",
      req: { appJson: app({ ["k".repeat(300 * 1024)]: 1 }) },
    },
    { what: "a 1 MiB id", client: scheduler, method: "getApp", req: { id: MiB } },
    { what: "a 1 MiB app_json", client: scheduler, method: "createApp", req: { appJson: MiB } },
    {
      what: "an app of about 1 MB",
      client: scheduler,
      method: "createApp",
      req: { appJson: app({ cmd: MiB }) },
    },
    {
      what: "scale with a non-ASCII id",
      client: scheduler,
      method: "scaleApp",
      req: { id: "é", instances: 1 },
    },
    { what: "queue of a non-ASCII app", client: scheduler, method: "getQueue", req: { appId: "é" } },
    {
      what: "framework id é (Accept)",
      client: master,
      method: "accept",
      req: { frameworkId: "é", offerIds: ["o"], operations: [] },
    },
    {
      what: "framework id é (Decline)",
      client: master,
      method: "decline",
      req: { frameworkId: "é", offerIds: ["é"] },
    },
    { what: "framework id é (Revive)", client: master, method: "revive", req: { frameworkId: "é" } },
    { what: "framework id é (Kill)", client: master, method: "kill", req: { frameworkId: "é", taskId: "é" } },
    {
      what: "framework id é (Acknowledge)",
      client: master,
      method: "acknowledge",
      req: { frameworkId: "é", taskId: "t", uuid: "u", acks: [] },
    },
    {
      what: "framework id é (Reconcile)",
      client: master,
      method: "reconcile",
      req: { frameworkId: "é", taskIds: [] },
    },
    { what: "a 1 MiB framework id", client: master, method: "suppress", req: { frameworkId: MiB } },
  ];
  for (const k of cases) {
    const o = await unaryOutcome(k.client, k.method, k.req);
    const err = assertSafeRefusal(k.what, o);
    assert.notEqual(
      err.code,
      status.RESOURCE_EXHAUSTED,
      `${k.what}: a request within the message limits is not RESOURCE_EXHAUSTED`,
    );
    // The same channel answers the next call at once: an undeliverable answer would leave it hanging.
    await unary(k.client, k.client === scheduler ? "listApps" : "listAgents", {});
  }
  const dead = [...c.masters, ...c.schedulers].filter((p) => !p.running).map((p) => p.name);
  assert.deepEqual(dead, [], `processes exited:\n${c.describe(40)}`);
});

test("undecodable protobuf is INVALID_ARGUMENT, not INTERNAL", async () => {
  const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a, 0x05, 0x01]);
  for (const [client, path] of [
    [scheduler, "/drover.v1.Scheduler/CreateApp"],
    [master, "/drover.v1.Master/Accept"],
    [master, "/drover.v1.Master/Acknowledge"],
  ] as const) {
    const err = await new Promise<ServiceError | null>((resolve) => {
      client.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        garbage,
        new Metadata(),
        { deadline: new Date(Date.now() + ANSWER_BOUND_MS) },
        (e) => resolve(e),
      );
    });
    assert.ok(err, `${path}: garbage was accepted`);
    assert.equal(err.code, status.INVALID_ARGUMENT, `${path}: ${status[err.code]} ${err.details}`);
    assert.match(err.details, /not a valid request/);
  }
});

test("size limits are refused by the field that is too large, and nothing is stored", async () => {
  const cases: { json: string; path: string; text: RegExp }[] = [
    { json: app({ env: { BIG: "v".repeat(40 * 1024) } }), path: "env.BIG", text: /at most 32768 characters/ },
    { json: app({ cmd: "c".repeat(40 * 1024) }), path: "cmd", text: /at most 32768 characters/ },
    {
      json: app({ container: { docker: { image: "i".repeat(600) } } }),
      path: "container.docker.image",
      text: /at most 512/,
    },
    {
      json: app({ labels: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, "v"])) }),
      path: "labels",
      text: /at most 128 labels/,
    },
    {
      json: app({
        env: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`E${i}`, "v".repeat(30 * 1024)])),
      }),
      path: "",
      text: /at most 524288/,
    },
  ];
  for (const k of cases) {
    const err = assertSafeRefusal(k.path, await unaryOutcome(scheduler, "createApp", { appJson: k.json }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    const issues = JSON.parse(String(err.metadata.get("drover-issues")[0])) as {
      path: string;
      message: string;
    }[];
    assert.ok(
      issues.some((i) => i.path === k.path && k.text.test(i.message)),
      `expected ${k.path} ${k.text}, got ${JSON.stringify(issues)}`,
    );
  }
  const listed = (await unary(scheduler, "listApps", {})) as { apps: unknown[] };
  assert.equal(listed.apps.length, 0);
});

test("framework calls verify the caller and the task's framework", async () => {
  const stream = master.subscribe({
    frameworkId: "",
    name: "boundaries",
    role: "*",
    failoverTimeoutSeconds: 5,
  });
  try {
    const subscribed = await new Promise<{ frameworkId: string; streamId: string }>((resolve, reject) => {
      stream.on("data", (ev: FrameworkEvent) => {
        if (ev.event?.$case === "subscribed") resolve(ev.event.value);
      });
      stream.on("error", reject);
    });
    assert.ok(subscribed.streamId.length > 0, "subscribed carries a stream id");
    const { frameworkId } = subscribed;
    const good = new Metadata();
    good.set("drover-stream-id", subscribed.streamId);
    const wrong = new Metadata();
    wrong.set("drover-stream-id", "not-the-stream");

    for (const [what, md] of [
      ["no stream id", new Metadata()],
      ["a wrong stream id", wrong],
    ] as const) {
      for (const method of ["revive", "suppress"]) {
        const err = assertSafeRefusal(
          `${method} with ${what}`,
          await unaryOutcome(master, method, { frameworkId }, md),
        );
        assert.equal(err.code, status.PERMISSION_DENIED, `${method} with ${what}: ${err.details}`);
      }
      const ack = await unaryOutcome(
        master,
        "acknowledge",
        { frameworkId, taskId: "t-1", uuid: "u", acks: [] },
        md,
      );
      assert.equal(assertSafeRefusal(`acknowledge with ${what}`, ack).code, status.PERMISSION_DENIED);
    }
    await unary(master, "revive", { frameworkId }, good);
    const ack = await unaryOutcome(
      master,
      "acknowledge",
      { frameworkId, taskId: "no-such-task", uuid: "u", acks: [] },
      good,
    );
    assert.equal(assertSafeRefusal("acknowledge of an unknown task", ack).code, status.NOT_FOUND);
    const kill = await unaryOutcome(master, "kill", { frameworkId, taskId: "no-such-task" }, good);
    assert.equal(assertSafeRefusal("kill of an unknown task", kill).code, status.NOT_FOUND);
    const unknown = await unaryOutcome(master, "revive", { frameworkId: "fw-unknown" }, good);
    assert.equal(assertSafeRefusal("revive of an unknown framework", unknown).code, status.NOT_FOUND);
  } finally {
    stream.cancel();
  }
});

test("a refusal by etcd of one request never blocks the other requests", async () => {
  const c = cluster;
  assert.ok(c);
  const etcd = connectEtcd([c.infra.etcdEndpoint], { timeoutMs: 3000 });
  try {
    // Larger than etcd takes (1.5 MiB): etcd refuses it. etcd3's default circuit breaker opened
    // after three such refusals and failed every call for 5 s.
    const big = Buffer.alloc(3 * 1024 * 1024, 0x61);
    for (let i = 0; i < 4; i++)
      await assert.rejects(async () => etcd.put("/drover-test/too-big").value(big).exec());
    const started = Date.now();
    await etcd.put("/drover-test/small").value("ok");
    assert.equal(await etcd.get("/drover-test/small").string(), "ok");
    const ms = Date.now() - started;
    console.log(`[boundaries] a small write right after 4 refused ones took ${ms} ms`);
    await unary(scheduler, "listApps", {});
  } finally {
    await etcd
      .delete()
      .prefix("/drover-test/")
      .catch(() => undefined);
    etcd.close();
  }
});

test("verify-log pages through a log larger than one gRPC message", async () => {
  const c = cluster;
  assert.ok(c);
  const etcd = connectEtcd([c.infra.etcdEndpoint]);
  try {
    const store = new EventStore(etcd);
    const spec = AppSpecSchema.parse({
      id: "big-log",
      container: { docker: { image: "drover/busybox:1" } },
      instances: 0,
      cpus: 0.1,
      mem: 32,
      env: Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`E${i}`, "v".repeat(30 * 1024)])),
    });
    let state: unknown;
    let version = 0;
    let modRevision = "0";
    // 16 events of ~370 KB: a ~6 MB log, above gRPC's default 4 MiB message.
    for (let i = 0; i < 16; i++) {
      const events: AppEvent[] = [
        i === 0 ? { type: "AppCreated", spec } : { type: "AppUpdated", spec: { ...spec, cmd: `v${i}` } },
      ];
      const res = await store.commit(
        undefined,
        [
          {
            def: AppAggregate,
            id: appIdToKey(spec.id),
            expectedVersion: version,
            expectedModRevision: modRevision,
            state,
            events,
          },
        ],
        Date.now(),
      );
      version = res.results[0]?.version ?? 0;
      modRevision = res.results[0]?.modRevision ?? "0";
      state = res.results[0]?.state;
    }
    const report = await verifyLog(store);
    assert.ok(report.ok, JSON.stringify(report.mismatches));
    assert.ok(report.events >= 16, `events ${report.events}`);
    const cli = await c.cli(["admin", "verify-log"]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /log verified/);
    await store.commit(
      undefined,
      [
        {
          def: AppAggregate,
          id: appIdToKey(spec.id),
          expectedVersion: version,
          expectedModRevision: modRevision,
          state,
          events: [{ type: "AppDeleted" }],
        },
      ],
      Date.now(),
    );
  } finally {
    etcd.close();
  }
});

test("a frozen etcd makes calls answer UNAVAILABLE within the bound, and the cluster recovers", async () => {
  const c = cluster;
  assert.ok(c);
  await unary(scheduler, "createApp", { appJson: app({ id: "steady" }) });
  const container = new Docker({ socketPath: "/var/run/docker.sock" }).getContainer(
    c.infra.etcdContainer.getId(),
  );
  await container.pause();
  try {
    for (const [client, method, req] of [
      [scheduler, "createApp", { appJson: app({ id: "frozen" }) }],
      [scheduler, "scaleApp", { id: "steady", instances: 2 }],
    ] as const) {
      const o = await unaryOutcome(client, method, req);
      assert.ok(!o.ok, `${method} succeeded on a frozen store`);
      assert.equal(
        o.err.code,
        status.UNAVAILABLE,
        `${method}: ${status[o.err.code]} after ${o.ms} ms: ${o.err.details}`,
      );
      console.log(
        `[boundaries] ${method} on a frozen store: UNAVAILABLE after ${o.ms} ms (${o.err.details})`,
      );
    }
  } finally {
    await container.unpause();
  }
  await waitFor(
    "the scheduler answers again after etcd is back",
    async () => {
      const o = await unaryOutcome(scheduler, "createApp", { appJson: app({ id: "after-freeze" }) });
      if (o.ok) return true;
      if (o.err.code === status.UNAVAILABLE) return false;
      throw new StopWaiting(`unexpected ${status[o.err.code]}: ${o.err.details}`);
    },
    { timeoutMs: 30_000 },
  );
  const dead = [...c.masters, ...c.schedulers].filter((p) => !p.running).map((p) => p.name);
  assert.deepEqual(dead, [], `processes exited:\n${c.describe(40)}`);
  const etcd = connectEtcd([c.infra.etcdEndpoint]);
  try {
    const report = await verifyLog(new EventStore(etcd));
    assert.ok(report.ok, JSON.stringify(report.mismatches));
  } finally {
    etcd.close();
  }
});
