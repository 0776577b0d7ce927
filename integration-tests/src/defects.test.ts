/**
 * Defects found by reading the code (../shared/REVIEW.md §4), each shown fixed end to end:
 * D6 agent port ranges are checked at start, D7 a retried CreateApp is not ALREADY_EXISTS,
 * D10 a scheduler without its subscription answers UNAVAILABLE for tasks, never an empty list.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { SchedulerClient } from "@drover/proto";
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { type Cluster, spawnService, startCluster, waitFor } from "./harness/index.js";

let cluster: Cluster | undefined;
let scheduler: SchedulerClient;

before(async () => {
  cluster = await startCluster({ agents: 0, waitReady: false });
  const c = cluster;
  const address = c.env.DROVER_SCHEDULERS?.split(",")[0];
  assert.ok(address);
  scheduler = new SchedulerClient(address, credentials.createInsecure());
  await waitFor("the scheduler answers", async () => (await c.cli(["app", "list"])).code === 0, {
    timeoutMs: 60_000,
  });
});

after(async () => {
  scheduler?.close();
  await cluster?.stop();
});

function call<Res>(
  method: (
    req: never,
    md: Metadata,
    opts: { deadline: Date },
    cb: (err: ServiceError | null, res: Res) => void,
  ) => unknown,
  req: unknown,
  md = new Metadata(),
): Promise<{ err: ServiceError | null; res: Res | undefined }> {
  return new Promise((resolve) =>
    method.call(scheduler, req as never, md, { deadline: new Date(Date.now() + 10_000) }, (err, res) =>
      resolve({ err, res }),
    ),
  );
}

test("D7: a CreateApp retried with its request id answers with the app it created, not ALREADY_EXISTS", async () => {
  const appJson = JSON.stringify({
    id: "d7",
    container: { docker: { image: "drover/busybox:1" } },
    instances: 0,
  });
  const md = new Metadata();
  md.set("drover-request-id", "d7-request-1");
  const first = await call(scheduler.createApp, { appJson }, md);
  assert.equal(first.err, null, first.err?.details);
  // The same request again (as LeaderClient retries after DEADLINE_EXCEEDED): the same answer.
  const retry = await call(scheduler.createApp, { appJson }, md);
  assert.equal(retry.err, null, retry.err?.details);
  assert.equal((retry.res as { app?: { id: string } }).app?.id, "/d7");
  // Another request for the same id is a real conflict.
  const other = new Metadata();
  other.set("drover-request-id", "d7-request-2");
  const conflict = await call(scheduler.createApp, { appJson }, other);
  assert.equal(conflict.err?.code, status.ALREADY_EXISTS);
});

test("D6: an agent with an impossible port range exits 2 at start, naming the field", async () => {
  const c = cluster;
  assert.ok(c);
  for (const ports of ["70000-70001", "32000-31000", "0-10"]) {
    const agent = spawnService(
      "agent",
      { ...c.env, DROVER_AGENT_PORTS: ports, DROVER_AGENT_WORK_DIR: "/tmp/drover-d6" },
      `d6-${ports}`,
    );
    const code = await agent.exited;
    assert.equal(code, 2, `DROVER_AGENT_PORTS=${ports}: exit ${code}\n${agent.logs()}`);
    assert.match(agent.logs(), /invalid configuration: ports/);
  }
});

test("D10: while the scheduler has no subscription, ListTasks is UNAVAILABLE, never an empty list", async () => {
  const c = cluster;
  const master = c?.masters[0];
  assert.ok(c && master);
  await master.stop();
  try {
    const seen = await waitFor(
      "ListTasks answers UNAVAILABLE without a master",
      async () => {
        const r = await call(scheduler.listTasks, {
          appId: "",
          includeTerminal: false,
          pageSize: 0,
          pageToken: "",
        });
        if (r.err === null) assert.fail(`ListTasks answered ${JSON.stringify(r.res)} without a master`);
        return r.err.code === status.UNAVAILABLE ? r.err : undefined;
      },
      { timeoutMs: 30_000 },
    );
    assert.match(seen.details, /not subscribed/);
  } finally {
    await c.restart(master);
  }
  await waitFor(
    "ListTasks answers again once the master is back",
    async () => {
      const r = await call(scheduler.listTasks, {
        appId: "",
        includeTerminal: false,
        pageSize: 0,
        pageToken: "",
      });
      return r.err === null;
    },
    { timeoutMs: 30_000 },
  );
});
