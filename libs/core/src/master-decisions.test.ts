import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import type { TaskRecord } from "./events/task.js";
import {
  agentLiveness,
  awaitingReregistration,
  expiredFrameworks,
  expiredOffers,
  reconcileAgentReport,
} from "./master-decisions.js";
import { isTerminal, TASK_STATES, type TaskState } from "./task-state.js";

function record(taskId: string, agentId: string, state: TaskState): TaskRecord {
  return {
    info: {
      taskId,
      name: taskId,
      agentId,
      frameworkId: "fw",
      appId: "web",
      image: "busybox",
      resources: { cpus: 0.1, mem: 32, disk: 0, ports: [] },
      env: {},
      labels: {},
    },
    status: { state, message: "", timestampMs: 0, uuid: `${taskId}-${state}`, source: "master" },
    createdAtMs: 0,
    updatedAtMs: 0,
  };
}

const status = (state: TaskState) => ({
  state,
  message: "",
  timestampMs: 1,
  uuid: "u",
  source: "agent" as const,
});

test("reconcileAgentReport: every reported task is killed, applied or left alone; every expected one accounted for", () => {
  const stateArb = fc.constantFrom(...TASK_STATES);
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          id: fc.integer({ min: 0, max: 9 }),
          agent: fc.constantFrom("a1", "a2"),
          state: stateArb,
        }),
        {
          maxLength: 10,
        },
      ),
      fc.array(fc.record({ id: fc.integer({ min: 0, max: 12 }), state: stateArb }), { maxLength: 10 }),
      (known, reportedRaw) => {
        const records = new Map<string, TaskRecord>();
        for (const k of known) records.set(`t${k.id}`, record(`t${k.id}`, k.agent, k.state));
        const reported = [
          ...new Map(
            reportedRaw.map((r) => [`t${r.id}`, { taskId: `t${r.id}`, status: status(r.state) }]),
          ).values(),
        ];
        const expected = [...records.values()].filter((t) => t.info.agentId === "a1");
        const plan = reconcileAgentReport("a1", reported, expected, (id) => records.get(id));
        const reportedIds = new Set(reported.map((r) => r.taskId));
        for (const r of reported) {
          const k = records.get(r.taskId);
          const mustKill =
            !k || k.info.agentId !== "a1" || isTerminal(k.status.state) || k.status.state === "TASK_KILLING";
          assert.equal(plan.kill.includes(r.taskId), mustKill, `kill ${r.taskId}`);
          if (mustKill) assert.ok(!plan.apply.some((a) => a.task.info.taskId === r.taskId));
        }
        for (const t of expected) {
          const missing = plan.missing.find((m) => m.task.info.taskId === t.info.taskId);
          const shouldBeMissing = !reportedIds.has(t.info.taskId) && !isTerminal(t.status.state);
          assert.equal(missing !== undefined, shouldBeMissing, `missing ${t.info.taskId}`);
          if (missing)
            assert.equal(missing.state, t.status.state === "TASK_KILLING" ? "TASK_KILLED" : "TASK_LOST");
        }
        // Nothing of another agent is ever marked missing or applied.
        assert.ok(plan.missing.every((m) => m.task.info.agentId === "a1"));
        assert.ok(
          plan.apply.every((a) => a.task.info.agentId === "a1" && a.status.source === "reconciliation"),
        );
      },
    ),
    { numRuns: 500 },
  );
});

test("agentLiveness: silent sessions time out and are unreachable; gone agents are unreachable from their time, then removed, never both", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 100_000 }), { maxLength: 8 }),
      fc.array(
        fc.tuple(fc.integer({ min: 0, max: 2_000_000 }), fc.integer({ min: -100_000, max: 100_000 })),
        { maxLength: 8 },
      ),
      fc.integer({ min: 1000, max: 60_000 }),
      fc.integer({ min: 1000, max: 2_000_000 }),
      (silences, aways, hb, remove) => {
        const now = 10_000_000;
        const plan = agentLiveness({
          sessions: silences.map((s, i) => ({ agentId: `s${i}`, lastSeenMs: now - s })),
          gone: aways.map(([a, u], i) => ({ agentId: `g${i}`, sinceMs: now - a, unreachableAtMs: now + u })),
          nowMs: now,
          heartbeatTimeoutMs: hb,
          removeAfterMs: remove,
        });
        for (const [i, s] of silences.entries()) {
          assert.equal(plan.timedOut.includes(`s${i}`), s > hb);
          assert.equal(plan.unreachable.includes(`s${i}`), s > hb);
        }
        for (const [i, [a, u]] of aways.entries()) {
          const id = `g${i}`;
          assert.equal(plan.remove.includes(id), a >= remove);
          assert.equal(plan.unreachable.includes(id), a < remove && u <= 0);
        }
      },
    ),
  );
});

test("expiredFrameworks, expiredOffers and awaitingReregistration", () => {
  assert.deepEqual(
    expiredFrameworks(
      [
        { frameworkId: "a", sinceMs: 0, failoverTimeoutSeconds: 5 },
        { frameworkId: "b", sinceMs: 0, failoverTimeoutSeconds: 60 },
      ],
      5000,
    ),
    ["a"],
  );
  assert.deepEqual(
    expiredOffers(
      [
        { id: 1, expiresAtMs: 10 },
        { id: 2, expiresAtMs: 11 },
      ],
      10,
    ).map((o) => o.id),
    [1],
  );
  assert.equal(awaitingReregistration(0, 1000, 10_000, 3, 2), true);
  assert.equal(awaitingReregistration(0, 1000, 10_000, 3, 3), false);
  assert.equal(awaitingReregistration(0, 10_000, 10_000, 3, 0), false);
});
