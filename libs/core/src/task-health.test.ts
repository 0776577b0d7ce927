import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { ReadinessResult, TaskHealth, TaskStatus } from "./events/task.js";
import { type HealthState, initialHealth, initialReadiness } from "./health.js";
import {
  readinessResultsOf,
  sameHealth,
  sameReadiness,
  shouldApplyTaskStatus,
  taskHealthOf,
} from "./task-health.js";
import { shouldApplyStatus, TASK_STATES, type TaskState } from "./task-state.js";

const T0 = 1_700_000_000_000;

function status(state: TaskState, timestampMs: number, extra: Partial<TaskStatus> = {}): TaskStatus {
  return { state, message: "", timestampMs, uuid: `u-${state}-${timestampMs}`, source: "agent", ...extra };
}

const healthy: TaskHealth = { healthy: true, lastSuccessMs: T0, consecutiveFailures: 0 };
const unhealthy: TaskHealth = {
  healthy: false,
  lastSuccessMs: T0,
  lastFailureMs: T0 + 3000,
  consecutiveFailures: 1,
  lastFailureCause: "404 Not Found",
};

describe("taskHealthOf", () => {
  const alive = (at: number): HealthState => ({
    alive: true,
    firstSuccessMs: at,
    lastSuccessMs: at,
    consecutiveFailures: 0,
  });
  const failing = (at: number, n: number, cause: string): HealthState => ({
    alive: false,
    lastFailureMs: at,
    lastFailureCause: cause,
    consecutiveFailures: n,
  });

  it("is unknown without checks, and while some checks have not counted a result and none fails", () => {
    assert.equal(taskHealthOf([]), undefined);
    assert.equal(taskHealthOf([initialHealth()]), undefined);
    assert.equal(taskHealthOf([alive(T0), initialHealth()]), undefined);
  });

  it("is healthy when every check is alive, with the latest success", () => {
    assert.deepEqual(taskHealthOf([alive(T0), alive(T0 + 5)]), {
      healthy: true,
      lastSuccessMs: T0 + 5,
      consecutiveFailures: 0,
    });
  });

  it("is unhealthy as soon as one check fails (even if another has not answered), with its cause and count", () => {
    assert.deepEqual(taskHealthOf([initialHealth(), failing(T0, 2, "connection refused")]), {
      healthy: false,
      lastFailureMs: T0,
      consecutiveFailures: 2,
      lastFailureCause: "connection refused",
    });
    const h = taskHealthOf([failing(T0, 3, "old"), alive(T0 + 1), failing(T0 + 2, 1, "new")]);
    assert.equal(h?.healthy, false);
    assert.equal(h?.lastFailureCause, "new");
    assert.equal(h?.consecutiveFailures, 3);
  });
});

describe("readinessResultsOf", () => {
  it("one result per check that has answered; the last answer only when kept", () => {
    const response = { status: 503, contentType: "text/plain", body: "warming up" };
    assert.deepEqual(
      readinessResultsOf([
        initialReadiness(),
        {
          ready: false,
          checks: 1,
          result: { name: "r", ready: false, checkedAtMs: T0, lastResponse: response },
        },
        { ready: true, checks: 2, result: { name: "s", ready: true, checkedAtMs: T0 + 1 } },
      ]),
      [
        { name: "r", ready: false, checkedAtMs: T0, lastResponse: JSON.stringify(response) },
        { name: "s", ready: true, checkedAtMs: T0 + 1 },
      ],
    );
  });
});

describe("shouldApplyTaskStatus", () => {
  it("between different states decides as shouldApplyStatus", () => {
    for (const a of TASK_STATES)
      for (const b of TASK_STATES) {
        if (a === b) continue;
        assert.equal(
          shouldApplyTaskStatus(status(a, T0), status(b, T0 + 1, { health: healthy })),
          shouldApplyStatus(a, b),
          `${a} -> ${b}`,
        );
      }
    for (const s of TASK_STATES) assert.equal(shouldApplyTaskStatus(undefined, status(s, T0)), true);
  });

  it("applies a newer RUNNING → RUNNING update that carries a changed health or readiness", () => {
    const running = status("TASK_RUNNING", T0);
    assert.equal(shouldApplyTaskStatus(running, status("TASK_RUNNING", T0 + 1, { health: healthy })), true);
    const withHealth = status("TASK_RUNNING", T0 + 1, { health: healthy });
    assert.equal(
      shouldApplyTaskStatus(withHealth, status("TASK_RUNNING", T0 + 2, { health: unhealthy })),
      true,
    );
    const ready: ReadinessResult[] = [{ name: "r", ready: true, checkedAtMs: T0 + 2 }];
    assert.equal(
      shouldApplyTaskStatus(
        withHealth,
        status("TASK_RUNNING", T0 + 2, { health: healthy, readiness: ready }),
      ),
      true,
    );
    // The same for the other non-terminal states (a task being killed may still report its health).
    assert.equal(
      shouldApplyTaskStatus(
        status("TASK_UNREACHABLE", T0),
        status("TASK_UNREACHABLE", T0 + 1, { health: healthy }),
      ),
      true,
    );
  });

  it("ignores duplicates, older updates, same-state updates without health, and anything after a terminal state", () => {
    const stored = status("TASK_RUNNING", T0 + 5, { health: healthy });
    assert.equal(shouldApplyTaskStatus(stored, stored), false);
    assert.equal(shouldApplyTaskStatus(stored, status("TASK_RUNNING", T0 + 4, { health: unhealthy })), false);
    assert.equal(shouldApplyTaskStatus(stored, status("TASK_RUNNING", T0 + 9)), false);
    const failed = status("TASK_FAILED", T0);
    assert.equal(shouldApplyTaskStatus(failed, status("TASK_FAILED", T0 + 1, { health: unhealthy })), false);
  });

  it("property: after any reordering and duplication of an agent's updates the stored status is the newest", () => {
    // What the agent sends of one task: STARTING, RUNNING, then RUNNING with health changes (A, B, A…).
    const healthArb = fc.record({
      healthy: fc.boolean(),
      consecutiveFailures: fc.nat({ max: 5 }),
    });
    fc.assert(
      fc.property(
        fc.array(healthArb, { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        fc.array(fc.nat(), { minLength: 1, maxLength: 40 }),
        (healths, ends, picks) => {
          const sent: TaskStatus[] = [status("TASK_STARTING", T0), status("TASK_RUNNING", T0 + 1)];
          for (const [i, h] of healths.entries())
            sent.push(status("TASK_RUNNING", T0 + 2 + i, { health: h }));
          if (ends) sent.push(status("TASK_KILLED", T0 + 2 + healths.length, { health: healths.at(-1) }));
          // Delivery: every update at least once (in sent order), plus duplicates picked at random,
          // then the whole list shuffled by the picks.
          const delivered = [...sent, ...picks.map((p) => sent[p % sent.length] as TaskStatus)];
          for (let i = delivered.length - 1; i > 0; i--) {
            const j = (picks[i % picks.length] ?? 0) % (i + 1);
            [delivered[i], delivered[j]] = [delivered[j] as TaskStatus, delivered[i] as TaskStatus];
          }
          let stored: TaskStatus | undefined;
          for (const u of delivered) if (shouldApplyTaskStatus(stored, u)) stored = u;
          assert.ok(stored);
          const last = sent.at(-1) as TaskStatus;
          if (ends) {
            // A terminal update always lands and is final.
            assert.equal(stored.state, "TASK_KILLED");
            return;
          }
          // Unless a stale STARTING came after RUNNING (ignored by state order), the newest health wins
          // — whichever RUNNING update arrived first.
          assert.equal(stored.state, "TASK_RUNNING");
          assert.ok(sameHealth(stored.health, last.health), "the newest health is stored");
          // And applying again changes nothing (idempotent).
          assert.equal(shouldApplyTaskStatus(stored, stored), false);
        },
      ),
    );
  });

  it("sameReadiness compares every field in order", () => {
    const a: ReadinessResult[] = [{ name: "r", ready: false, checkedAtMs: T0 }];
    assert.equal(sameReadiness(a, [{ name: "r", ready: false, checkedAtMs: T0 }]), true);
    assert.equal(sameReadiness(a, [{ name: "r", ready: true, checkedAtMs: T0 }]), false);
    assert.equal(sameReadiness(undefined, []), true);
    assert.equal(sameReadiness(a, undefined), false);
  });
});
