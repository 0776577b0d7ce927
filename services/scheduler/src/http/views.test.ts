import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TaskEntry } from "../framework.js";
import { taskJson, type ViewContext } from "./views.js";

const ctx: ViewContext = {
  nowMs: Date.parse("2026-11-30T00:00:00.000Z"),
  tasksOf: () => [],
  deploymentOf: () => undefined,
  lastFailure: () => undefined,
  hostOf: (agentId) => (agentId === "agent-1" ? "node-a" : undefined),
};
const entry = (extra: Partial<TaskEntry> = {}): TaskEntry => ({
  taskId: "web.1",
  appId: "/web",
  agentId: "agent-1",
  state: "TASK_RUNNING",
  createdAtMs: ctx.nowMs - 5000,
  runningSinceMs: ctx.nowMs - 4000,
  killRequested: false,
  ...extra,
});

describe("taskJson ipAddresses", () => {
  it("lists the task's addresses as Marathon does: ipAddress and protocol, after servicePorts", () => {
    const json = taskJson(entry({ ipAddresses: ["172.17.0.5", "fd00::5"] }), undefined, ctx);
    assert.deepEqual(json.ipAddresses, [
      { ipAddress: "172.17.0.5", protocol: "IPv4" },
      { ipAddress: "fd00::5", protocol: "IPv6" },
    ]);
    const keys = Object.keys(json);
    assert.equal(keys.indexOf("ipAddresses"), keys.indexOf("servicePorts") + 1);
  });

  it("is an empty list while none is known", () => {
    assert.deepEqual(taskJson(entry({ state: "TASK_STAGING" }), undefined, ctx).ipAddresses, []);
  });
});
