import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseJob } from "../jobs/spec.js";
import { EventContextMaps, MARATHON_EVENT_SLOT, marathonEventsOf } from "./events.js";

describe("Metronome's events on /v2/events", () => {
  const spec = (() => {
    const v = parseJob({ id: "dev.backup", run: { cmd: "true" } });
    assert.ok(v.ok);
    return v.value.spec;
  })();
  const at = (aggregate: string, id: string, event: { type: string; [k: string]: unknown }) =>
    marathonEventsOf(
      { aggregate, id, version: 1, atMs: Date.UTC(2026, 10, 29), event },
      new EventContextMaps(),
    );

  it("maps job and run events to Metronome's names", () => {
    assert.deepEqual(
      at("job", "dev_backup", { type: "JobCreated", spec, schedules: [] }).map((e) => e.eventType),
      ["job_created"],
    );
    const started = at("job-run", "dev_backup_20261129000000ABCDE", {
      type: "JobRunCreated",
      jobId: "dev.backup",
      runId: "20261129000000ABCDE",
      run: spec.run,
      trigger: { kind: "manual" },
    });
    assert.equal(started[0]?.eventType, "job_run_started");
    const failed = at("job-run", "dev_backup_20261129000000ABCDE", {
      type: "JobRunFinished",
      status: "FAILED",
      message: "stopped",
    });
    assert.equal(failed[0]?.eventType, "job_run_failed");
    assert.deepEqual(
      (failed[0] as unknown as { jobRun: { jobId: string; id: string } }).jobRun.jobId,
      "dev.backup",
    );
    const ok = at("job-run", "dev_backup_20261129000000ABCDE", { type: "JobRunFinished", status: "SUCCESS" });
    assert.equal(ok[0]?.eventType, "job_run_finished");
    assert.deepEqual(at("job", "dev_backup", { type: "ScheduleDeleted", scheduleId: "s" }), []);
    assert.ok(MARATHON_EVENT_SLOT.job_run_failed > MARATHON_EVENT_SLOT.deployment_failed);
  });
});
