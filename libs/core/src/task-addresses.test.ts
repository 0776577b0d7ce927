import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TaskEventSchema, type TaskStatus, TaskStatusSchema } from "./events/task.js";
import { ipProtocolOf, keepIpAddresses, marathonIpAddresses } from "./task-addresses.js";
import { formatIssues, validate } from "./validation.js";

const status = (state: TaskStatus["state"], extra: Partial<TaskStatus> = {}): TaskStatus => ({
  state,
  message: state,
  timestampMs: 1000,
  uuid: `u-${state}`,
  source: "agent",
  ...extra,
});

describe("task ipAddresses", () => {
  it("the status schema takes IPv4 and IPv6 addresses, at most 8", () => {
    const ok = validate(
      TaskStatusSchema,
      status("TASK_RUNNING", { ipAddresses: ["172.17.0.5", "fd00::1:5"] }),
    );
    assert.equal(ok.ok, true);
    const many = Array.from({ length: 9 }, (_, i) => `10.0.0.${i}`);
    const tooMany = validate(TaskStatusSchema, status("TASK_RUNNING", { ipAddresses: many }));
    assert.equal(tooMany.ok, false);
    if (!tooMany.ok) assert.match(formatIssues(tooMany.issues), /^ipAddresses: /);
    // An empty list is not "none known": absent is.
    assert.equal(validate(TaskStatusSchema, status("TASK_RUNNING", { ipAddresses: [] })).ok, false);
  });

  it("a bad address is refused, naming the field's path", () => {
    for (const bad of ["172.17.0.256", "localhost", "", "1.2.3.4/24", "fd00::1::2"]) {
      const r = validate(TaskEventSchema, {
        type: "TaskStatusUpdated",
        status: status("TASK_RUNNING", { ipAddresses: ["10.0.0.1", bad] }),
      });
      assert.equal(r.ok, false, bad);
      if (!r.ok)
        assert.equal(formatIssues(r.issues), "status.ipAddresses[1]: must be an IPv4 or IPv6 address");
    }
  });

  it("Marathon's shape: ipAddress and protocol IPv4 or IPv6, in order", () => {
    assert.equal(ipProtocolOf("10.1.2.3"), "IPv4");
    assert.equal(ipProtocolOf("::1"), "IPv6");
    assert.deepEqual(marathonIpAddresses(["10.1.2.3", "2001:db8::7"]), [
      { ipAddress: "10.1.2.3", protocol: "IPv4" },
      { ipAddress: "2001:db8::7", protocol: "IPv6" },
    ]);
    assert.deepEqual(marathonIpAddresses(undefined), []);
  });

  it("a later status without addresses keeps the known ones; one with addresses replaces them", () => {
    const running = status("TASK_RUNNING", { ipAddresses: ["172.17.0.5"] });
    const health = status("TASK_RUNNING", {
      health: { healthy: true, consecutiveFailures: 0 },
      timestampMs: 2000,
    });
    assert.deepEqual(keepIpAddresses(running, health), { ...health, ipAddresses: ["172.17.0.5"] });
    const killing = status("TASK_KILLING", { source: "master" });
    assert.deepEqual(keepIpAddresses(running, killing).ipAddresses, ["172.17.0.5"]);
    const moved = status("TASK_RUNNING", { ipAddresses: ["10.9.0.2"] });
    assert.equal(keepIpAddresses(running, moved), moved);
    const plain = status("TASK_STARTING");
    assert.equal(keepIpAddresses(undefined, plain), plain);
    assert.equal(keepIpAddresses(status("TASK_STAGING"), plain), plain);
  });
});
