import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@drover/common";
import { parseJob, runWorkloadId, type TaskState } from "@drover/core";
import type { TaskUpdate } from "@drover/framework";
import { memoryLeadership, memoryStore } from "@drover/testing";
import type { TaskEntry } from "../framework.js";
import { JobRunner } from "./runner.js";
import { JobStore } from "./store.js";

const log = createLogger("test", "error");
const T0 = Date.UTC(2026, 10, 29, 12, 0, 10);
const MIN = 60_000;

/** A task view the tests fill by hand (what the framework driver would hold). */
class View {
  readonly byApp = new Map<string, TaskEntry[]>();
  appIds() {
    return this.byApp.keys();
  }
  ofApp(id: string) {
    return this.byApp.get(id) ?? [];
  }
  add(appId: string, taskId: string, state: TaskState = "TASK_RUNNING"): TaskEntry {
    const t: TaskEntry = { taskId, appId, agentId: "a1", state, createdAtMs: T0, killRequested: false };
    this.byApp.set(appId, [...(this.byApp.get(appId) ?? []), t]);
    return t;
  }
  drop(appId: string): void {
    this.byApp.delete(appId);
  }
}

function setup() {
  const mem = memoryStore({ service: "scheduler" });
  let now = T0;
  const clock = { now: () => now, set: (t: number) => (now = t) };
  const leader = (leadership = mem.leadership) => {
    const store = new JobStore({ store: mem.store, leadership, historyKept: 3, now: clock.now });
    const runner = new JobRunner({ store, log, changed: () => undefined, now: clock.now });
    return { store, runner };
  };
  return { mem, clock, leader };
}

function spec(id: string, run: Record<string, unknown> = {}) {
  const v = parseJob({ id, run: { cmd: "true", cpus: 0.1, mem: 32, ...run } });
  assert.ok(v.ok);
  return v.value.spec;
}

const schedule = (policy: "ALLOW" | "FORBID" | "REPLACE") => ({
  id: "every-minute",
  cron: "* * * * *",
  timezone: "UTC",
  startingDeadlineSeconds: 60,
  concurrencyPolicy: policy,
  enabled: true,
});

const update = (taskId: string, state: TaskState, exitCode?: number): TaskUpdate => ({
  taskId,
  agentId: "a1",
  appId: "",
  state,
  message: state === "TASK_FINISHED" ? "" : "failed",
  ...(exitCode !== undefined ? { exitCode } : {}),
  timestampMs: 0,
  uuid: "u",
});

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

test("a due time fires once; a new leader loading the state does not fire it again", async () => {
  const { mem, clock, leader } = setup();
  const a = leader();
  await a.store.create(spec("j"), [schedule("ALLOW")]);
  const due = Math.ceil(T0 / MIN) * MIN;
  assert.equal(a.store.get("j").schedules[0]?.nextDueMs, due);
  clock.set(due + 1500);
  await a.runner.tick();
  await a.runner.tick();
  assert.equal(a.store.runs("j").length, 1);
  assert.equal(a.store.runs("j")[0]?.trigger.kind, "schedule");
  // The first leader dies; another (a new term) loads what it committed.
  mem.leadership.depose();
  const b = leader(memoryLeadership(mem.kv, "scheduler"));
  await b.store.load();
  await b.runner.tick();
  assert.equal(b.store.runs("j").length, 1);
  assert.equal(b.store.get("j").schedules[0]?.nextDueMs, due + MIN);
});

test("a stale decision cannot fire a due time twice (the persisted next due is checked in the commit)", async () => {
  const { clock, leader } = setup();
  const { store } = leader();
  await store.create(spec("j"), [schedule("ALLOW")]);
  const due = Math.ceil(T0 / MIN) * MIN;
  clock.set(due + 10);
  const fired = {
    type: "ScheduleFired" as const,
    scheduleId: "every-minute",
    dueMs: due,
    missed: 0,
    nextDueMs: due + MIN,
  };
  await store.startRun("j", { kind: "schedule", scheduleId: "every-minute", dueMs: due }, { fired });
  await assert.rejects(
    store.startRun("j", { kind: "schedule", scheduleId: "every-minute", dueMs: due }, { fired }),
    /already handled/,
  );
  assert.equal(store.runs("j").length, 1);
});

test("after a gap: fire within startingDeadlineSeconds, else record as missed", async () => {
  const { clock, leader } = setup();
  const { store, runner } = leader();
  await store.create(spec("j"), [schedule("ALLOW")]);
  const due = Math.ceil(T0 / MIN) * MIN;
  clock.set(due + 3 * MIN + 5000);
  await runner.tick();
  assert.equal(store.runs("j").length, 1);
  assert.equal(store.get("j").schedules[0]?.missed, 3);
  // An hourly schedule whose due time passed 2 minutes ago, beyond its 60 s deadline: missed.
  await store.updateSchedule("j", { ...schedule("ALLOW"), cron: "0 * * * *" });
  const hour = store.get("j").schedules[0]?.nextDueMs ?? 0;
  clock.set(hour + 2 * MIN);
  await runner.tick();
  assert.equal(store.runs("j").length, 1, "a due time past the deadline starts nothing");
  assert.equal(store.get("j").schedules[0]?.missed, 4);
  assert.equal(store.get("j").schedules[0]?.nextDueMs, hour + 60 * MIN);
});

test("FORBID skips while a run is active, REPLACE ends it in the same commit, ALLOW starts next to it", async () => {
  const { clock, leader } = setup();
  const { store, runner } = leader();
  for (const p of ["ALLOW", "FORBID", "REPLACE"] as const)
    await store.create(spec(`j-${p.toLowerCase()}`), [schedule(p)]);
  const due = Math.ceil(T0 / MIN) * MIN;
  clock.set(due + 100);
  await runner.tick();
  clock.set(due + MIN + 100);
  await runner.tick();
  assert.equal(store.runs("j-allow").length, 2);
  assert.equal(store.runs("j-forbid").length, 1);
  assert.equal(store.get("j-forbid").schedules[0]?.skipped, 1);
  assert.equal(store.runs("j-replace").length, 1);
  const h = store.get("j-replace").history;
  assert.equal(h.failureCount, 1);
  assert.match(h.failedFinishedRuns[0]?.message ?? "", /replaced by run/);
});

test("runs: demands placed once, ON_FAILURE retried after backoff, SUCCESS into the history", async () => {
  const { clock, leader } = setup();
  const { store, runner } = leader();
  await store.create(spec("j", { restart: { policy: "ON_FAILURE", activeDeadlineSeconds: 60 } }), []);
  const run = await runner.startNow("j");
  const id = runWorkloadId("j", run.runId);
  const view = new View();
  let p = runner.plan(clock.now(), view);
  assert.equal(p.demands.length, 1);
  assert.deepEqual(p.demands[0]?.resources, { cpus: 0.1, mem: 32, disk: 0, ports: [] });
  const t1 = view.add(id, "t1", "TASK_STAGING");
  assert.equal(runner.plan(clock.now(), view).demands.length, 0);
  view.drop(id);
  runner.ended(t1, update("t1", "TASK_FAILED", 1));
  assert.equal(runner.plan(clock.now(), view).demands.length, 0, "no launch while the end commits");
  await settle();
  p = runner.plan(clock.now(), view);
  assert.equal(p.demands.length, 0, "a retry waits for its backoff");
  assert.equal(p.wakeAtMs, T0 + 1000);
  clock.set(T0 + 1000);
  assert.equal(runner.plan(clock.now(), view).demands.length, 1);
  const t2 = view.add(id, "t2");
  view.drop(id);
  runner.ended(t2, update("t2", "TASK_FINISHED", 0));
  await settle();
  assert.equal(store.runs("j").length, 0);
  const h = store.get("j").history;
  assert.equal(h.successCount, 1);
  assert.deepEqual(h.successfulFinishedRuns[0]?.tasks, ["t1", "t2"]);
});

test("a run past its deadline: its task is killed and it ends FAILED; a stopped run's task is killed", async () => {
  const { clock, leader } = setup();
  const { store, runner } = leader();
  await store.create(spec("j", { restart: { policy: "NEVER", activeDeadlineSeconds: 10 } }), []);
  const run = await runner.startNow("j");
  const view = new View();
  view.add(runWorkloadId("j", run.runId), "t1");
  clock.set(T0 + 10_000);
  const p = runner.plan(clock.now(), view);
  assert.deepEqual(p.kill, ["t1"]);
  await settle();
  assert.equal(store.runs("j").length, 0);
  assert.match(store.get("j").history.failedFinishedRuns[0]?.message ?? "", /deadline/);
  // The task of a run that is not active any more is killed (stop, replace, delete).
  const r2 = await runner.startNow("j");
  view.add(runWorkloadId("j", r2.runId), "t2");
  await runner.stopRun("j", r2.runId);
  assert.ok(runner.plan(clock.now(), view).kill.includes("t2"));
});

test("history keeps the newest N of each kind", async () => {
  const { leader } = setup();
  const { store, runner } = leader();
  await store.create(spec("j"), []);
  for (let i = 0; i < 5; i++) {
    const r = await runner.startNow("j");
    await store.finishRun("j", r.runId, { status: "SUCCESS" });
  }
  const h = store.get("j").history;
  assert.equal(h.successCount, 5);
  assert.equal(h.successfulFinishedRuns.length, 3);
});

test("a new leader reconciles a run whose task ended while no leader listened: recorded once, not launched again", async () => {
  const { mem, clock, leader } = setup();
  const a = leader();
  await a.store.create(spec("j"), []);
  const run = await a.runner.startNow("j");
  const id = runWorkloadId("j", run.runId);
  // The leader dies; the task finishes before the next one lists the tasks.
  mem.leadership.depose();
  const b = leader(memoryLeadership(mem.kv, "scheduler"));
  await b.store.load();
  const finished = { ...update("t1", "TASK_FINISHED", 0), appId: id, timestampMs: T0 + 5 };
  await b.runner.reconcile(async (appId) => (appId === id ? [finished] : []));
  assert.equal(b.runner.plan(clock.now(), new View()).demands.length, 0, "no launch while its end commits");
  await settle();
  assert.equal(b.store.runs("j").length, 0);
  assert.equal(b.store.get("j").history.successCount, 1);
  // The master resends the update: nothing more happens.
  b.runner.ended(
    { taskId: "t1", appId: id, agentId: "a1", state: "TASK_FINISHED", createdAtMs: 0, killRequested: false },
    finished,
  );
  await settle();
  assert.equal(b.store.get("j").history.successCount, 1);
});
