/**
 * TaskLifecycle on the in-process master: launches of any size within etcd's 128-operation limit
 * (D1), partial launches when the store fails part-way, the expunge sweep of any backlog (D2),
 * and status updates (group commit, state order, KILLING + FAILED → KILLED, foreign agents).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TaskRecord } from "@drover/core";
import { verifyLog } from "@drover/store";
import { anAgent, aTask, TEST_EPOCH_MS } from "@drover/testing";
import {
  acceptOf,
  keepAlive,
  type Master,
  nextOffers,
  registerAgent,
  seedTasks,
  startMaster,
  stateOf,
  statusOf,
  storedTasks,
  subscribe,
  updateState,
} from "./harness.test.js";

const isLaunch = (c: { command?: { $case: string } | undefined }) => c.command?.$case === "launch";

/** A master with agent a1 (4 cpus, 8 GiB) registered, a framework subscribed, and its first offer. */
async function withOffer(config: Parameters<typeof startMaster>[0] = {}) {
  const m = await startMaster(config);
  const agent = await registerAgent(m, anAgent().id("a1"));
  keepAlive(m, "a1", agent);
  const fw = await subscribe(m);
  const offers = await nextOffers(m, fw);
  const offer = offers.find((o) => o.agentId === "a1");
  assert.ok(offer, "a1 is offered");
  m.kv.resetStats();
  return { m, agent, fw, offer };
}

const smallTasks = (n: number, prefix = "web") =>
  Array.from({ length: n }, (_, i) => aTask().id(`${prefix}.${i}`).app(prefix).on("a1").cpus(0.01).mem(16));

function assertWithinEtcdLimits(m: Master): void {
  assert.ok(m.kv.transactions.length > 0);
  for (const t of m.kv.transactions)
    assert.ok(
      t.compares <= 128 && t.success <= 128 && t.failure <= 128,
      `a transaction over 128 ops: ${JSON.stringify(t)}`,
    );
  assert.deepEqual(
    m.kv.failures.filter((f) => f.why === "refused"),
    [],
    "etcd refused nothing",
  );
}

test("D1: one Accept of 150 tasks on one agent commits whole, no transaction over 128 ops, every launch reaches the agent", async () => {
  const { m, agent, fw, offer } = await withOffer();
  const tasks = smallTasks(150);
  const ids = tasks.map((t) => t.info().taskId);

  const launched = await m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId], tasks));

  assert.deepEqual([...launched].sort(), [...ids].sort());
  assertWithinEtcdLimits(m);
  assert.ok(m.kv.transactions.every((t) => t.succeeded));
  // Group commit: 2 operations per TaskLaunched, packed into a few transactions, not 150.
  assert.ok(
    m.kv.writeTxnCount >= Math.ceil((150 * 2) / 128) && m.kv.writeTxnCount <= 6,
    `${m.kv.writeTxnCount}`,
  );

  const sent = await agent.waitForCount(150, isLaunch, { timeoutMs: 5000 });
  assert.deepEqual(
    sent.map((c) => (c.command?.$case === "launch" ? c.command.value.task?.taskId : "")).sort(),
    [...ids].sort(),
  );
  const stored = await storedTasks(m.store);
  assert.equal(stored.size, 150);
  for (const t of stored.values()) assert.equal(t.status.state, "TASK_STAGING");
  assert.equal((await verifyLog(m.store)).ok, true);
  // What the launch took is in use on the agent.
  assert.ok(Math.abs(m.leader.usedOn("a1").cpus - 1.5) < 1e-9);
  assert.equal(m.leader.usedOn("a1").mem, 150 * 16);
  await m.leader.stop();
});

test("D1: an Accept whose store fails part-way returns exactly the task ids launched; the others are nowhere", async () => {
  const { m, agent, fw, offer } = await withOffer();
  const tasks = smallTasks(100);
  // The first transaction lands; the one after it fails (etcd unavailable), the rest land.
  const off = m.kv.onWrite(() => {
    off();
    m.kv.failNext(1, undefined, { only: "txn" });
  });

  const launched = await m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId], tasks));

  assert.equal(m.kv.failures.filter((f) => f.why === "injected").length, 1);
  assert.ok(launched.length > 0 && launched.length < 100, `partial: ${launched.length} of 100`);
  assertWithinEtcdLimits(m);
  const stored = await storedTasks(m.store);
  assert.deepEqual([...stored.keys()].sort(), [...launched].sort(), "etcd holds exactly the launched tasks");
  const sentIds = agent.launches().map((t) => t.taskId);
  assert.deepEqual([...sentIds].sort(), [...launched].sort(), "the agent was asked to launch exactly those");
  const launchedSet = new Set(launched);
  for (const t of tasks) {
    const id = t.info().taskId;
    if (launchedSet.has(id)) assert.equal(stateOf(m, id), "TASK_STAGING");
    else assert.equal(stateOf(m, id), undefined, `${id} is not in the leader's state`);
  }
  // Only the launched tasks' resources are in use.
  assert.equal(m.leader.usedOn("a1").mem, launched.length * 16);
  await m.leader.stop();
});

test("D1: an Accept in which every commit fails is an error, and launches nothing", async () => {
  const { m, agent, fw, offer } = await withOffer();
  m.kv.failNext(10, undefined, { only: "txn" });
  await assert.rejects(
    m.leader.accept(acceptOf(fw.frameworkId, [offer.offerId], smallTasks(50))),
    (err: Error) => /UNAVAILABLE|unavailable/i.test(`${(err as { code?: string }).code} ${err.message}`),
  );
  assert.equal(agent.launches().length, 0);
  assert.equal((await storedTasks(m.store)).size, 0);
  await m.leader.stop();
});

test("D2: a backlog of 150 terminal tasks is expunged by one sweep once past terminalTaskRetentionSeconds", async () => {
  const finished: TaskRecord[] = Array.from({ length: 150 }, (_, i) =>
    aTask().id(`done.${i}`).app("done").on("a1").state("TASK_FINISHED", { exitCode: 0 }).build(),
  );
  const m = await startMaster({
    config: { terminalTaskRetentionSeconds: 600 },
    seed: (_kv, store, leadership) => seedTasks(store, leadership, finished, TEST_EPOCH_MS),
  });
  assert.equal(m.leader.state.tasks.size, 150);
  assert.equal(m.leader.index.terminal.size, 150);

  // Sweeps run every 15 s; until the retention has passed they leave the tasks alone.
  await m.clock.advance(600_000);
  assert.equal((await storedTasks(m.store)).size, 150);
  assert.equal(m.kv.writeTxnCount, 0);

  // The next sweep (at 615 s) takes all 150 at once.
  await m.clock.advance(15_000);
  assert.equal((await storedTasks(m.store)).size, 0, "every terminal task is expunged");
  assert.equal(m.leader.index.terminal.size, 0);
  for (const t of finished) assert.equal(stateOf(m, t.info.taskId), undefined);
  assertWithinEtcdLimits(m);
  assert.ok(m.kv.transactions.every((t) => t.succeeded));
  assert.ok(
    m.kv.writeTxnCount >= Math.ceil((150 * 2) / 128) && m.kv.writeTxnCount <= 6,
    `${m.kv.writeTxnCount}`,
  );
  // Expunged tasks leave tombstones (their versions, until retention removes their events).
  assert.ok(Object.values(m.kv.dump("/drover/state/task/")).every((v) => JSON.parse(v).d === true));
  assert.equal((await verifyLog(m.store)).ok, true);
  await m.leader.stop();
});

/** A master with `n` tasks launched on a1 (TASK_STAGING). */
async function withTasks(n: number) {
  const ctx = await withOffer();
  const tasks = smallTasks(n);
  const ids = await ctx.m.leader.accept(acceptOf(ctx.fw.frameworkId, [ctx.offer.offerId], tasks));
  assert.equal(ids.length, n);
  ctx.m.kv.resetStats();
  ctx.m.reports.length = 0;
  return { ...ctx, ids };
}

test("status updates applied concurrently share transactions (group commit)", async () => {
  const { m, fw, ids } = await withTasks(100);
  await Promise.all(ids.map((id) => m.leader.tasks.onStatus(statusOf(m, "a1", id, "TASK_RUNNING"))));
  for (const id of ids) assert.equal(stateOf(m, id), "TASK_RUNNING");
  assert.ok(
    m.kv.writeTxnCount < ids.length / 10,
    `${m.kv.writeTxnCount} transactions for ${ids.length} updates`,
  );
  assert.equal(
    m.reports.reduce((n, r) => n + r.units, 0),
    100,
  );
  assertWithinEtcdLimits(m);
  assert.equal(fw.conn.updates().filter((u) => updateState(u) === "TASK_RUNNING").length, 100);
  await m.leader.stop();
});

test("out-of-order and duplicate status updates are harmless: state order wins, terminal is final", async () => {
  const { m, fw, ids } = await withTasks(2);
  const [a, b] = ids as [string, string];

  // One at a time, in a bad order.
  for (const s of [
    "TASK_RUNNING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_FINISHED",
    "TASK_RUNNING",
    "TASK_FAILED",
  ] as const)
    await m.leader.tasks.onStatus(statusOf(m, "a1", a, s));
  assert.equal(stateOf(m, a), "TASK_FINISHED");
  assert.deepEqual(fw.conn.updatesOf(a).map(updateState), ["TASK_RUNNING", "TASK_FINISHED"]);
  assert.equal(m.kv.keys(`/drover/log/task/${a}/`).length, 3, "launched, running, finished");

  // Concurrently: all four pass the first check against STAGING; the guards in commit order keep only FINISHED.
  await Promise.all(
    (["TASK_FINISHED", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"] as const).map((s) =>
      m.leader.tasks.onStatus(statusOf(m, "a1", b, s)),
    ),
  );
  assert.equal(stateOf(m, b), "TASK_FINISHED");
  assert.deepEqual(fw.conn.updatesOf(b).map(updateState), ["TASK_FINISHED"]);
  assert.equal(m.kv.keys(`/drover/log/task/${b}/`).length, 2);
  assert.equal((await verifyLog(m.store)).ok, true);
  // The tasks-by-state count (metrics) is kept incrementally and agrees with the tasks.
  assert.deepEqual(Object.fromEntries(m.leader.tasksByState()), { TASK_FINISHED: 2 });
  // And the index by app (a query for one app's tasks) holds both, under their framework.
  assert.deepEqual([...m.leader.index.tasksOfApp(fw.frameworkId, "web")].sort(), [a, b].sort());
  assert.equal(m.leader.index.tasksOfApp("another-framework", "web").size, 0);
  await m.leader.stop();
});

test("a task being killed that its agent reports FAILED is recorded KILLED", async () => {
  const { m, agent, fw, ids } = await withTasks(1);
  const id = ids[0] as string;
  await m.leader.tasks.onStatus(statusOf(m, "a1", id, "TASK_RUNNING"));
  await m.leader.kill(fw.frameworkId, id);
  assert.equal(stateOf(m, id), "TASK_KILLING");
  const kill = await agent.waitForKill(id, { timeoutMs: 5000 });
  assert.equal(kill.taskId, id);

  await m.leader.tasks.onStatus(statusOf(m, "a1", id, "TASK_FAILED", { exitCode: 137 }));
  assert.equal(stateOf(m, id), "TASK_KILLED");
  assert.equal(updateState(fw.conn.updatesOf(id).at(-1)), "TASK_KILLED");
  assert.equal((await storedTasks(m.store)).get(id)?.status.state, "TASK_KILLED");
  await m.leader.stop();
});

test("a RUNNING update that changes the task's health is stored and forwarded; a duplicate or an older one is not", async () => {
  const { m, fw, ids } = await withTasks(1);
  const id = ids[0] as string;
  const t0 = m.clock.now();
  await m.leader.tasks.onStatus(statusOf(m, "a1", id, "TASK_RUNNING", { timestampMs: t0 }));
  const healthy = { healthy: true, lastSuccessMs: t0 + 1000, consecutiveFailures: 0 };
  const up = statusOf(m, "a1", id, "TASK_RUNNING", { timestampMs: t0 + 1000, health: healthy });
  await m.leader.tasks.onStatus(up);
  await m.leader.tasks.onStatus(up); // redelivered
  const down = statusOf(m, "a1", id, "TASK_RUNNING", {
    timestampMs: t0 + 3000,
    health: {
      ...healthy,
      healthy: false,
      lastFailureMs: t0 + 3000,
      consecutiveFailures: 1,
      lastFailureCause: "503",
    },
    reason: "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
  });
  await m.leader.tasks.onStatus(down);
  // An update overtaken by a newer one, and a plain RUNNING without health: ignored.
  await m.leader.tasks.onStatus(
    statusOf(m, "a1", id, "TASK_RUNNING", { timestampMs: t0 + 2000, health: healthy }),
  );
  await m.leader.tasks.onStatus(statusOf(m, "a1", id, "TASK_RUNNING", { timestampMs: t0 + 4000 }));

  const stored = m.leader.state.task(id)?.status;
  assert.equal(stored?.uuid, down.status.uuid);
  assert.equal(stored?.health?.lastFailureCause, "503");
  assert.equal((await storedTasks(m.store)).get(id)?.status.health?.healthy, false);
  const updates = fw.conn.updatesOf(id);
  assert.deepEqual(
    updates.map((u) => [updateState(u), u.status?.health?.healthy]),
    [
      ["TASK_RUNNING", undefined],
      ["TASK_RUNNING", true],
      ["TASK_RUNNING", false],
    ],
  );
  assert.equal(updates.at(-1)?.status?.reason, "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED");
  assert.equal(m.kv.keys(`/drover/log/task/${id}/`).length, 4, "launched, running, healthy, unhealthy");
  await m.leader.stop();
});

test("a task's ipAddresses reported at RUNNING are kept by later statuses without any (health, KILLING, the terminal one)", async () => {
  const { m, fw, ids } = await withTasks(1);
  const id = ids[0] as string;
  const t0 = m.clock.now();
  const addresses = ["172.17.0.5", "fd00::5"];
  await m.leader.tasks.onStatus(
    statusOf(m, "a1", id, "TASK_RUNNING", { timestampMs: t0, ipAddresses: addresses }),
  );
  assert.deepEqual(m.leader.state.task(id)?.status.ipAddresses, addresses);
  assert.deepEqual(
    fw.conn.updatesOf(id).at(-1)?.status?.ipAddresses,
    addresses,
    "the framework is told them",
  );
  // A health-only update from an agent that did not repeat them (an agent restarted before it knew them).
  const healthy = { healthy: true, lastSuccessMs: t0 + 1000, consecutiveFailures: 0 };
  await m.leader.tasks.onStatus(
    statusOf(m, "a1", id, "TASK_RUNNING", { timestampMs: t0 + 1000, health: healthy }),
  );
  assert.equal(m.leader.state.task(id)?.status.health?.healthy, true);
  assert.deepEqual(m.leader.state.task(id)?.status.ipAddresses, addresses);
  // The master's own KILLING, then the agent's terminal status, keep them too.
  await m.leader.kill(fw.frameworkId, id);
  assert.equal(stateOf(m, id), "TASK_KILLING");
  assert.deepEqual(m.leader.state.task(id)?.status.ipAddresses, addresses);
  const killed = statusOf(m, "a1", id, "TASK_KILLED", { timestampMs: t0 + 3000 }).status;
  await m.leader.tasks.onStatuses({ agentId: "a1", taskId: id, statuses: [killed] });
  assert.equal(stateOf(m, id), "TASK_KILLED");
  assert.deepEqual(m.leader.state.task(id)?.status.ipAddresses, addresses);
  assert.deepEqual((await storedTasks(m.store)).get(id)?.status.ipAddresses, addresses, "as committed");
  assert.deepEqual(
    fw.conn.updatesOf(id).map((u) => [updateState(u), u.status?.ipAddresses]),
    [
      ["TASK_RUNNING", addresses],
      ["TASK_RUNNING", addresses],
      ["TASK_KILLING", addresses],
      ["TASK_KILLED", addresses],
    ],
  );
  assert.equal((await verifyLog(m.store)).ok, true);
  await m.leader.stop();
});

test("a status update from an agent that does not run the task is ignored", async () => {
  const { m, fw, ids } = await withTasks(1);
  const id = ids[0] as string;
  const mark = fw.conn.mark();
  await m.leader.tasks.onStatus(statusOf(m, "a2", id, "TASK_FINISHED"));
  assert.equal(stateOf(m, id), "TASK_STAGING");
  assert.equal(m.kv.writeTxnCount, 0);
  assert.deepEqual(
    fw.conn.where(() => true, mark),
    [],
  );
  // Its own agent's update still applies.
  await m.leader.tasks.onStatus(statusOf(m, "a1", id, "TASK_FINISHED"));
  assert.equal(stateOf(m, id), "TASK_FINISHED");
  await m.leader.stop();
});

test("a status update for an unknown task writes nothing and is acknowledged while leading", async () => {
  const { m } = await withTasks(1);
  await m.leader.tasks.onStatus(statusOf(m, "a1", "nobody.1", "TASK_RUNNING"));
  assert.equal(m.kv.writeTxnCount, 0);
  assert.equal(stateOf(m, "nobody.1"), undefined);
  await m.leader.stop();
});

test("a task's STARTING and RUNNING from one status message are applied in order as one change of one transaction; the framework is told the latest", async () => {
  const { m, fw, ids } = await withTasks(1);
  const id = ids[0] as string;
  const version = () => m.leader.state.tasks.get(id)?.version ?? 0;
  const before = version();
  const starting = statusOf(m, "a1", id, "TASK_STARTING").status;
  const running = statusOf(m, "a1", id, "TASK_RUNNING").status;
  await m.leader.tasks.onStatuses({ agentId: "a1", taskId: id, statuses: [starting, running] });
  assert.equal(stateOf(m, id), "TASK_RUNNING");
  assert.equal(version(), before + 2, "one event per change");
  assert.equal(m.kv.writeTxnCount, 1);
  assert.deepEqual(
    m.reports.map((r) => [r.units, r.changes, r.ops]),
    [[1, 1, 3]],
    "one unit: two events and one projection",
  );
  // The log has both; the framework is told the latest (STARTING is superseded already).
  assert.deepEqual(
    fw.conn.updatesOf(id).map((u) => updateState(u)),
    ["TASK_RUNNING"],
  );
  assert.equal((await verifyLog(m.store)).ok, true);
  // Redelivered: nothing applies again.
  await m.leader.tasks.onStatuses({ agentId: "a1", taskId: id, statuses: [starting, running] });
  assert.equal(version(), before + 2);
  await m.leader.stop();
});

test("a batch is decided update by update: an older update in it is skipped, KILLING + FAILED is KILLED", async () => {
  const { m, fw, ids } = await withTasks(2);
  const [a, b] = ids as [string, string];
  const t0 = m.clock.now();
  // a: RUNNING, then a STARTING (older: out of state order) and FINISHED.
  await m.leader.tasks.onStatuses({
    agentId: "a1",
    taskId: a,
    statuses: [
      statusOf(m, "a1", a, "TASK_RUNNING", { timestampMs: t0 }).status,
      statusOf(m, "a1", a, "TASK_STARTING", { timestampMs: t0 + 1 }).status,
      statusOf(m, "a1", a, "TASK_FINISHED", { timestampMs: t0 + 2, exitCode: 0 }).status,
    ],
  });
  assert.deepEqual(
    fw.conn.updatesOf(a).map((u) => updateState(u)),
    ["TASK_FINISHED"],
  );
  const events = (await m.store.keys("/drover/log/task/")).filter((k) => k.includes(`/${a}/`));
  assert.equal(events.length, 3, "launched, RUNNING, FINISHED: the older STARTING is not applied");
  // b: killed, then the agent's RUNNING and FAILED arrive together.
  await m.leader.kill(fw.frameworkId, b);
  assert.equal(stateOf(m, b), "TASK_KILLING");
  await m.leader.tasks.onStatuses({
    agentId: "a1",
    taskId: b,
    statuses: [
      statusOf(m, "a1", b, "TASK_RUNNING").status,
      statusOf(m, "a1", b, "TASK_FAILED", { exitCode: 137 }).status,
    ],
  });
  assert.equal(stateOf(m, b), "TASK_KILLED");
  assert.equal(updateState(fw.conn.updatesOf(b).at(-1)), "TASK_KILLED");
  await m.leader.stop();
});

test("a batch whose task changed before its commit is applied one update at a time (each checked again)", async () => {
  const { m, fw, ids } = await withTasks(1);
  const id = ids[0] as string;
  // A kill is queued first: when the batch's turn comes the task is KILLING, not what it decided on.
  const kill = m.leader.kill(fw.frameworkId, id);
  const batch = m.leader.tasks.onStatuses({
    agentId: "a1",
    taskId: id,
    statuses: [
      statusOf(m, "a1", id, "TASK_STARTING").status,
      statusOf(m, "a1", id, "TASK_FAILED", { exitCode: 137 }).status,
    ],
  });
  await Promise.all([kill, batch]);
  assert.equal(stateOf(m, id), "TASK_KILLED", "FAILED of a KILLING task is KILLED");
  assert.equal((await verifyLog(m.store)).ok, true);
  await m.leader.stop();
});
