import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type TaskStatus as DomainTaskStatus, TaskStatusSchema } from "@drover/core";
import { TaskStatus } from "./gen/drover/v1/common.js";
import { fromWireStatus, toWireStatus } from "./mappers.js";

const running: DomainTaskStatus = {
  state: "TASK_RUNNING",
  message: "running",
  timestampMs: 1_700_000_000_000,
  uuid: "u-1",
  containerId: "c1",
  source: "agent",
  ipAddresses: ["172.17.0.5", "fd00::5"],
};

describe("status mappers: ipAddresses", () => {
  it("go over the wire and back, in order", () => {
    const wire = TaskStatus.decode(TaskStatus.encode(toWireStatus("web.1", "agent-1", running)).finish());
    assert.deepEqual(wire.ipAddresses, ["172.17.0.5", "fd00::5"]);
    assert.deepEqual(TaskStatusSchema.parse(fromWireStatus(wire)), running);
  });

  it("none is an empty repeated field on the wire and absent in the domain", () => {
    const { ipAddresses: _, ...plain } = running;
    const wire = TaskStatus.decode(TaskStatus.encode(toWireStatus("web.1", "agent-1", plain)).finish());
    assert.deepEqual(wire.ipAddresses, []);
    assert.equal("ipAddresses" in fromWireStatus(wire), false);
    assert.deepEqual(TaskStatusSchema.parse(fromWireStatus(wire)), plain);
  });
});
