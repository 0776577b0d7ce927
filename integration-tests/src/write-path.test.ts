/**
 * The write path holds at size, on a real master, etcd and NATS: one accept of 150 tasks commits
 * whole (etcd takes 128 operations per transaction, a launch costs 2), 150 status updates commit
 * in groups, and the sweep expunges a backlog of 150 terminal tasks. The agent is a recording
 * connection speaking the agent protocol (no Docker): what is measured is the master's write path.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type Bus, connectBus, publishStatus } from "@drover/bus";
import { createLogger } from "@drover/common";
import { Framework, type FrameworkOffer } from "@drover/framework";
import { type AgentCommand, type AgentMessage, MasterClient, toWireResources } from "@drover/proto";
import { connectEtcd, EventStore, verifyLog } from "@drover/store";
import { type ClientDuplexStream, credentials, Metadata } from "@grpc/grpc-js";
import { type Cluster, metricsUrlOf, startCluster, waitFor } from "./harness/index.js";

const N = 150;
const AGENT_ID = "fake-agent-1";

let cluster: Cluster | undefined;
let master: MasterClient;
let session: ClientDuplexStream<AgentMessage, AgentCommand> | undefined;
let heartbeat: NodeJS.Timeout | undefined;
let bus: Bus | undefined;
const launches: string[] = [];

before(async () => {
  cluster = await startCluster({
    agents: 0,
    waitReady: false,
    env: { DROVER_MASTER_TERMINAL_TASK_RETENTION_SECONDS: "0" },
  });
  const address = cluster.env.DROVER_MASTERS?.split(",")[0];
  assert.ok(address);
  master = new MasterClient(address, credentials.createInsecure());
  bus = await connectBus([cluster.infra.natsUrl], "write-path-test", createLogger("test", "warn"));
  await waitFor(
    "the fake agent is registered",
    async () => {
      session?.cancel();
      const s = master.agentSession(new Metadata());
      session = s;
      const registered = new Promise<boolean>((resolve) => {
        s.on("data", (cmd: AgentCommand) => {
          const c = cmd.command;
          if (c?.$case === "registered") resolve(true);
          if (c?.$case === "launch" && c.value.task) launches.push(c.value.task.taskId);
        });
        s.on("error", () => resolve(false));
      });
      s.write({
        message: {
          $case: "register",
          value: {
            agentId: AGENT_ID,
            hostname: "fake",
            resources: toWireResources({ cpus: 64, mem: 262_144, disk: 0, ports: [] }),
            attributes: [],
            tasks: [],
            version: "test",
          },
        },
      });
      return registered;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  heartbeat = setInterval(
    () => session?.write({ message: { $case: "heartbeat", value: { timestampMs: Date.now() } } }),
    1000,
  );
});

after(async () => {
  clearInterval(heartbeat);
  session?.cancel();
  master?.close();
  await bus?.close();
  await cluster?.stop();
});

async function masterTasks(includeTerminal: boolean): Promise<{ taskId: string; state: string }[]> {
  const res = await new Promise<{ tasks: { info?: { taskId: string }; status?: { state: number } }[] }>(
    (resolve, reject) =>
      master.listTasks(
        { frameworkId: "", appId: "bulk", includeTerminal, pageSize: 0, pageToken: "" },
        new Metadata(),
        { deadline: new Date(Date.now() + 10_000) },
        (err, r) => (err ? reject(err) : resolve(r)),
      ),
  );
  return res.tasks.map((t) => ({ taskId: t.info?.taskId ?? "", state: String(t.status?.state ?? "") }));
}

test(`one accept of ${N} tasks commits whole, ${N} status updates commit in groups, and the sweep expunges them all`, async () => {
  const c = cluster;
  const b = bus;
  assert.ok(c && b);
  let launched: string[] | undefined;
  let launchError: unknown;
  const fw = new Framework(
    { masters: c.env.DROVER_MASTERS?.split(",") ?? [], name: "bulk", failoverTimeoutSeconds: 30 },
    {
      offers: async (offers: FrameworkOffer[]) => {
        const offer = offers.find((o) => o.agentId === AGENT_ID);
        if (!offer || launched || launchError) {
          await fw.decline(
            offers.map((o) => o.offerId),
            1,
          );
          return;
        }
        const tasks = Array.from({ length: N }, (_, i) => ({
          taskId: `bulk.${i}`,
          appId: "bulk",
          image: "drover/busybox:1",
          cpus: 0.1,
          mem: 32,
        }));
        try {
          launched = await fw.launch(offer, tasks);
        } catch (err) {
          launchError = err;
        }
      },
    },
  );
  const running = fw.run();
  try {
    await waitFor(
      "the accept of 150 tasks answers",
      async () => launched ?? (launchError ? true : undefined),
      {
        timeoutMs: 60_000,
      },
    );
    assert.equal(launchError, undefined, `the accept failed: ${String(launchError)}`);
    assert.equal(launched?.length, N, "every task of the accept was launched");
    await waitFor("the agent received every launch", async () => launches.length >= N, { timeoutMs: 20_000 });
    assert.equal(new Set(launches).size, N);

    const send = (state: "TASK_RUNNING" | "TASK_FINISHED") =>
      Promise.all(
        (launched ?? []).map((taskId, i) =>
          publishStatus(
            b,
            {
              agentId: AGENT_ID,
              taskId,
              status: {
                state,
                message: state === "TASK_FINISHED" ? "exited 0" : "",
                ...(state === "TASK_FINISHED" ? { exitCode: 0 } : {}),
                timestampMs: Date.now(),
                uuid: `${state}-${i}-${taskId}`,
                source: "agent",
              },
            },
            createLogger("test", "warn"),
          ),
        ),
      );
    await send("TASK_RUNNING");
    await waitFor(
      `${N} tasks RUNNING at the master`,
      async () => (await masterTasks(false)).filter((t) => t.state === "3").length === N,
      { timeoutMs: 30_000 },
    );
    await send("TASK_FINISHED");
    await waitFor(
      `all ${N} tasks expunged by the sweep (retention 0 s)`,
      async () => (await masterTasks(true)).length === 0,
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
  } finally {
    fw.stop();
    await running.catch(() => undefined);
  }
  const etcd = connectEtcd([c.infra.etcdEndpoint]);
  try {
    const report = await verifyLog(new EventStore(etcd));
    assert.ok(report.ok, JSON.stringify(report.mismatches.slice(0, 5)));
    assert.ok(report.events >= 3 * N, `expected at least ${3 * N} events, got ${report.events}`);
  } finally {
    etcd.close();
  }
  const dead = [...c.masters, ...c.schedulers].filter((p) => !p.running).map((p) => p.name);
  assert.deepEqual(dead, [], c.describe(40));

  // Group commit, as the master's metrics tell it: fewer transactions than changes, none over 128 operations.
  const url = c.masters[0] ? metricsUrlOf(c.masters[0]) : undefined;
  assert.ok(url, "the master serves metrics");
  const text = await (await fetch(url)).text();
  const value = (name: string) =>
    Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, "m").exec(text)?.[1] ?? "NaN");
  const txns = value('drover_master_etcd_transactions_total\\{[^}]*result="ok"[^}]*\\}');
  const changes = value("drover_master_changes_committed_total");
  const overLimit = value('drover_master_etcd_transaction_ops_bucket\\{[^}]*le="128"[^}]*\\}');
  const all = value('drover_master_etcd_transaction_ops_bucket\\{[^}]*le="\\+Inf"[^}]*\\}');
  console.log(
    `[write-path] ${changes} changes in ${txns} transactions (${(changes / txns).toFixed(1)} per transaction)`,
  );
  assert.ok(changes >= 3 * N, `changes committed: ${changes}`);
  assert.ok(txns < changes / 2, `group commit: ${txns} transactions for ${changes} changes`);
  assert.equal(overLimit, all, "no transaction over 128 operations");
});
