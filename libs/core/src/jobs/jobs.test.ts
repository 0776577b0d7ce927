import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { fold } from "../events/aggregate.js";
import { JobAggregate, type JobEvent } from "../events/job.js";
import { formatIssues } from "../validation.js";
import { cronIssue, nextCronAfter } from "./cron.js";
import { decideRun, emptyHistory, recordRun, retryDelayMs, runIdAt, taskEnded } from "./run.js";
import { decideConcurrency, decideSchedule, firstDue } from "./schedule.js";
import { parseJob, parseSchedule, type ScheduleSpec } from "./spec.js";
import { parseRunWorkloadId, runWorkloadId } from "./task.js";

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);

function schedule(over: Partial<ScheduleSpec> = {}): ScheduleSpec {
  const v = parseSchedule({ id: "every-minute", cron: "* * * * *", ...over });
  assert.ok(v.ok, v.ok ? "" : formatIssues(v.issues));
  return v.value;
}

function problems(input: unknown): string {
  const v = parseJob(input);
  assert.ok(!v.ok, "expected issues");
  return formatIssues(v.issues);
}

describe("job definitions (Metronome's JSON)", () => {
  it("accepts Metronome's example with its defaults", () => {
    const v = parseJob({
      id: "dev.batch.backup",
      description: "nightly",
      labels: { team: "ops" },
      run: {
        cmd: "echo hi",
        docker: { image: "busybox" },
        env: { A: "1" },
        placement: { constraints: [{ attribute: "rack", operator: "EQ", value: "a" }] },
        restart: { policy: "ON_FAILURE", activeDeadlineSeconds: 120 },
        artifacts: [{ uri: "http://x/y.tgz" }],
        volumes: [{ containerPath: "/data", hostPath: "/tmp", mode: "RW" }],
        user: "nobody",
        taskKillGracePeriodSeconds: 3,
      },
      schedules: [{ id: "nightly", cron: "0 3 * * *", timezone: "Europe/Berlin" }],
    });
    assert.ok(v.ok, v.ok ? "" : formatIssues(v.issues));
    assert.equal(v.value.spec.run.cpus, 1);
    assert.equal(v.value.spec.run.mem, 128);
    assert.equal(v.value.spec.run.maxLaunchDelay, 3600);
    assert.deepEqual(v.value.spec.run.artifacts[0], {
      uri: "http://x/y.tgz",
      executable: false,
      extract: true,
      cache: false,
    });
    assert.deepEqual(v.value.schedules[0], {
      id: "nightly",
      cron: "0 3 * * *",
      timezone: "Europe/Berlin",
      startingDeadlineSeconds: 900,
      concurrencyPolicy: "ALLOW",
      enabled: true,
    });
  });

  it("refuses unsupported fields by name and names wrong fields", () => {
    assert.match(problems({ id: "a", run: { cmd: "x", ucr: {} } }), /^run\.ucr: not supported: /);
    assert.match(problems({ id: "a", run: { cmd: "x", gpus: 1 } }), /run\.gpus: not supported/);
    assert.match(problems({ id: "a", dependencies: [], run: { cmd: "x" } }), /dependencies: not supported/);
    assert.match(
      problems({ id: "a", run: { cmd: "x", env: { S: { secret: "s" } } } }),
      /run\.env\.S: not supported/,
    );
    assert.match(problems({ id: "A_B", run: { cmd: "x" } }), /^id: /);
    assert.equal(
      problems({ id: "a", run: { cmd: "x", volumes: [{ containerPath: "/s", secret: "db" }] } }),
      "run.volumes[0].secret: not supported: secrets are not implemented yet",
    );
    assert.match(
      problems({ id: "a", run: { cmd: "x", cpus: "1" } }),
      /run\.cpus: expected number, got string/,
    );
    assert.match(
      problems({ id: "a", run: { cmd: "x", restart: { policy: "ALWAYS" } } }),
      /run\.restart\.policy/,
    );
    assert.match(problems({ id: "a", run: { cmd: "x", bogus: 1 } }), /run\.bogus: unknown field/);
    assert.match(problems({ id: "a", run: {} }), /run\.cmd: required/);
    assert.match(
      problems({ id: "a", run: { cmd: "x" }, schedules: [{ id: "s1", cron: "* * *" }] }),
      /schedules\[0\]\.cron: must have 5 fields/,
    );
  });

  it("checks cron expressions and time zones", () => {
    assert.equal(cronIssue("*/5 * * * *", "UTC"), undefined);
    assert.equal(cronIssue("0 3 * * 1-5", "America/New_York"), undefined);
    assert.equal(cronIssue("* * * * *", "Mars/Olympus")?.field, "timezone");
    assert.equal(cronIssue("61 * * * *", "UTC")?.field, "cron");
    assert.equal(cronIssue("* * * * * *", "UTC")?.field, "cron");
    assert.match(
      formatIssues((parseSchedule({ id: "s1", cron: "x y" }) as unknown as { issues: [] }).issues),
      /^cron: /,
    );
    assert.match(
      formatIssues(
        (
          parseSchedule({ id: "s1", cron: "* * * * *", concurrencyPolicy: "NONE" }) as unknown as {
            issues: [];
          }
        ).issues,
      ),
      /concurrencyPolicy/,
    );
  });

  it("evaluates cron in a time zone", () => {
    // 03:00 in Berlin (winter, UTC+1) is 02:00 UTC.
    const t = nextCronAfter("0 3 * * *", "Europe/Berlin", Date.UTC(2026, 0, 10, 0, 0));
    assert.equal(new Date(t ?? 0).toISOString(), "2026-01-10T02:00:00.000Z");
    assert.equal(nextCronAfter("* * * * *", "UTC", T0), T0 + MIN);
    assert.equal(nextCronAfter("* * * * *", "UTC", T0 + 1), T0 + MIN);
  });

  it("names run tasks so that a new leader finds their run", () => {
    assert.deepEqual(parseRunWorkloadId(runWorkloadId("dev.batch", "20261129120000ABCDE")), {
      jobId: "dev.batch",
      runId: "20261129120000ABCDE",
    });
    assert.equal(parseRunWorkloadId("/web"), undefined);
    assert.match(
      runIdAt(T0, () => 0.5),
      /^20261129120000[A-Z0-9]{5}$/,
    );
  });
});

describe("schedules: what is due, exactly once", () => {
  it("waits, then fires the due time once", () => {
    const s = schedule();
    const due = firstDue(s, T0 + 1) ?? 0;
    assert.deepEqual(decideSchedule(s, { nextDueMs: due }, due - 1), { kind: "wait", atMs: due });
    assert.deepEqual(decideSchedule(s, { nextDueMs: due }, due + 500), {
      kind: "fire",
      dueMs: due,
      missed: 0,
      nextDueMs: due + MIN,
    });
  });

  it("fires the latest due time within the deadline after a gap; past it, records the miss", () => {
    const s = schedule({ startingDeadlineSeconds: 90 });
    const due = T0 + MIN;
    const d = decideSchedule(s, { nextDueMs: due }, due + 5 * MIN + 10_000);
    assert.equal(d.kind, "fire");
    assert.equal(d.kind === "fire" && d.dueMs, due + 5 * MIN);
    assert.equal(d.kind === "fire" && d.missed, 5);
    const hourly = schedule({ cron: "0 * * * *", startingDeadlineSeconds: 60 });
    const m = decideSchedule(hourly, { nextDueMs: T0 }, T0 + 10 * MIN);
    assert.deepEqual(m, { kind: "missed", missed: 1, firstMs: T0, lastMs: T0, nextDueMs: T0 + 60 * MIN });
  });

  it("property: applying each decision never fires a due time twice and never skips one silently", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 30 * MIN }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 60, max: 600 }),
        fc.constantFrom("* * * * *", "*/5 * * * *", "0 * * * *", "7,37 * * * *"),
        (steps, deadline, cron) => {
          const s = schedule({ cron, startingDeadlineSeconds: deadline });
          let state: { nextDueMs?: number } = { nextDueMs: firstDue(s, T0) };
          const fired: number[] = [];
          let missed = 0;
          let now = T0;
          for (const step of steps) {
            now += step;
            const d = decideSchedule(s, state, now);
            if (d.kind === "wait") continue;
            if (d.kind === "fire") {
              assert.ok(d.dueMs <= now && now - d.dueMs <= deadline * 1000);
              fired.push(d.dueMs);
            }
            missed += d.missed;
            assert.ok((d.nextDueMs ?? 0) > now);
            state = d.nextDueMs !== undefined ? { nextDueMs: d.nextDueMs } : {};
            // Deciding again at the same time does nothing.
            assert.equal(decideSchedule(s, state, now).kind, "wait");
          }
          assert.equal(new Set(fired).size, fired.length);
          for (let i = 1; i < fired.length; i++) assert.ok((fired[i] ?? 0) > (fired[i - 1] ?? 0));
          // Every due time up to the last handled one is either fired or counted missed.
          let all = 0;
          const end = state.nextDueMs ?? now;
          for (let t = firstDue(s, T0); t !== undefined && t < end; t = nextCronAfter(cron, "UTC", t)) all++;
          assert.equal(fired.length + missed, all);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("applies the concurrency policy", () => {
    assert.deepEqual(decideConcurrency("ALLOW", ["r1"]), { start: true, stop: [] });
    assert.equal(decideConcurrency("FORBID", ["r1"]).start, false);
    assert.deepEqual(decideConcurrency("FORBID", []), { start: true, stop: [] });
    assert.deepEqual(decideConcurrency("REPLACE", ["r1", "r2"]), { start: true, stop: ["r1", "r2"] });
  });
});

describe("runs: lifecycle and history", () => {
  const run = { createdAtMs: T0, deadlineAtMs: T0 + 60_000 };

  it("launches one task, waits for a retry, fails and kills at the deadline", () => {
    assert.equal(decideRun(run, [], T0).launch, true);
    const t = { taskId: "t1", state: "TASK_RUNNING" as const, killRequested: false };
    assert.equal(decideRun(run, [t], T0 + 1).launch, false);
    assert.deepEqual(decideRun({ ...run, retryAtMs: T0 + 5000 }, [], T0 + 1), {
      launch: false,
      kill: [],
      wakeAtMs: T0 + 5000,
    });
    const late = decideRun(run, [t], T0 + 60_000);
    assert.deepEqual(late.kill, ["t1"]);
    assert.match(late.fail ?? "", /deadline/);
  });

  it("aborts a scheduled run that has had no task by its starting deadline", () => {
    const r = { createdAtMs: T0, startDeadlineAtMs: T0 + 60_000 };
    assert.deepEqual(decideRun(r, [], T0), { launch: true, kill: [], wakeAtMs: T0 + 60_000 });
    assert.match(decideRun(r, [], T0 + 60_000).fail ?? "", /startingDeadlineSeconds/);
    const staging = { taskId: "t", state: "TASK_STAGING" as const, killRequested: false };
    assert.equal(decideRun(r, [staging], T0 + 60_000).fail, undefined);
    assert.equal(decideRun({ ...r, endedTasks: 1 }, [], T0 + 60_000).fail, undefined);
  });

  it("ends on success, fails under NEVER, retries under ON_FAILURE with backoff within the deadline", () => {
    const base = { ...run, maxLaunchDelaySeconds: 3600 };
    const fail = { state: "TASK_FAILED" as const, exitCode: 1, message: "boom" };
    assert.deepEqual(
      taskEnded({ ...base, policy: "NEVER" }, { state: "TASK_FINISHED", message: "" }, 0, T0),
      {
        kind: "success",
      },
    );
    assert.match(
      (taskEnded({ ...base, policy: "NEVER" }, fail, 1, T0) as { message: string }).message,
      /exit code 1/,
    );
    assert.deepEqual(taskEnded({ ...base, policy: "ON_FAILURE" }, fail, 2, T0), {
      kind: "retry",
      atMs: T0 + 2000,
    });
    assert.equal(taskEnded({ ...base, policy: "ON_FAILURE" }, fail, 10, T0).kind, "failed");
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 7200 }), (n, max) => {
        const d = retryDelayMs(n, max);
        assert.ok(d >= 1000 || d === max * 1000);
        assert.ok(d <= max * 1000);
        assert.ok(retryDelayMs(n + 1, max) >= d);
      }),
    );
  });

  it("property: history keeps the newest N of each kind and counts all", () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 60 }), fc.integer({ min: 0, max: 8 }), (oks, keep) => {
        let h = emptyHistory();
        oks.forEach((ok, i) => {
          h = recordRun(
            h,
            {
              id: `r${i}`,
              status: ok ? "SUCCESS" : "FAILED",
              createdAtMs: i,
              finishedAtMs: i + 1,
              tasks: [],
            },
            keep,
          );
        });
        const succ = oks.filter(Boolean).length;
        assert.equal(h.successCount, succ);
        assert.equal(h.failureCount, oks.length - succ);
        assert.ok(h.successfulFinishedRuns.length <= keep && h.failedFinishedRuns.length <= keep);
        assert.equal(h.successfulFinishedRuns.length, Math.min(keep, succ));
        const ids = h.successfulFinishedRuns.map((r) => Number(r.id.slice(1)));
        assert.deepEqual(
          ids,
          [...ids].sort((a, b) => b - a),
        );
      }),
    );
  });

  it("the job aggregate folds schedule progress and history", () => {
    const job = parseJob({ id: "j", run: { cmd: "true" } });
    assert.ok(job.ok);
    const s = schedule();
    const events: JobEvent[] = [
      { type: "JobCreated", spec: job.value.spec, schedules: [{ spec: s, nextDueMs: T0 + MIN }] },
      {
        type: "ScheduleFired",
        scheduleId: s.id,
        dueMs: T0 + MIN,
        runId: "r1",
        missed: 0,
        nextDueMs: T0 + 2 * MIN,
      },
      {
        type: "ScheduleFired",
        scheduleId: s.id,
        dueMs: T0 + 2 * MIN,
        skipped: "FORBID",
        missed: 0,
        nextDueMs: T0 + 3 * MIN,
      },
      {
        type: "JobRunRecorded",
        run: { id: "r1", status: "SUCCESS", createdAtMs: T0, finishedAtMs: T0 + 5, tasks: ["t"] },
        keep: 5,
      },
    ];
    for (const e of events) JobAggregate.eventSchema.parse(e);
    const r = fold(
      JobAggregate,
      "j",
      events.map((event) => ({ event, atMs: T0 })),
    );
    assert.equal(r?.schedules[0]?.nextDueMs, T0 + 3 * MIN);
    assert.equal(r?.schedules[0]?.lastFiredMs, T0 + MIN);
    assert.equal(r?.schedules[0]?.skipped, 1);
    assert.equal(r?.history.successCount, 1);
    assert.ok(JobAggregate.stateSchema.safeParse(r).success);
  });
});
