import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { TaskLaunchSpec } from "../executor.js";
import { validateLaunchSpec } from "../launch-spec.js";
import { classifyExit } from "../outcome.js";
import { dockerErrorMessage, dockerStatusCode } from "./docker-errors.js";
import { JsonLineDecoder, parseDockerEvent } from "./docker-events.js";
import {
  buildLabels,
  containerName,
  LABEL_AGENT_ID,
  LABEL_APP_ID,
  LABEL_CPUS,
  LABEL_FRAMEWORK_ID,
  LABEL_MEM,
  LABEL_TASK_ID,
  parseDroverLabels,
} from "./labels.js";
import { containerCmd, memoryBytes, nanoCpus } from "./spec.js";

const spec = (over: Partial<TaskLaunchSpec> = {}): TaskLaunchSpec => ({
  taskId: "web.1",
  appId: "/web",
  frameworkId: "fw-1",
  agentId: "agent-1",
  image: "drover/busybox:1",
  cpus: 0.5,
  mem: 64,
  env: {},
  labels: {},
  ...over,
});

describe("labels", () => {
  test("drover labels win over spec and extra labels and round-trip through parse", () => {
    const labels = buildLabels(spec({ labels: { [LABEL_TASK_ID]: "evil", team: "a" } }), "agent-1", {
      [LABEL_AGENT_ID]: "other",
      "drover.test": "x",
    });
    assert.equal(labels[LABEL_TASK_ID], "web.1");
    assert.equal(labels[LABEL_AGENT_ID], "agent-1");
    assert.equal(labels.team, "a");
    assert.equal(labels["drover.test"], "x");
    assert.deepEqual(parseDroverLabels(labels), {
      ok: true,
      labels: { taskId: "web.1", appId: "/web", frameworkId: "fw-1", agentId: "agent-1", cpus: 0.5, mem: 64 },
    });
  });

  test("malformed labels are rejected with the field named, never thrown", () => {
    const good = buildLabels(spec(), "agent-1");
    for (const bad of [
      { ...good, [LABEL_CPUS]: "abc" },
      { ...good, [LABEL_MEM]: "" },
      { ...good, [LABEL_MEM]: "-1" },
      { ...good, [LABEL_TASK_ID]: "" },
      { [LABEL_AGENT_ID]: "agent-1" },
      null,
      "labels",
    ]) {
      const r = parseDroverLabels(bad);
      assert.equal(r.ok, false, JSON.stringify(bad));
    }
    const r = parseDroverLabels({ ...good, [LABEL_CPUS]: "abc" });
    assert.ok(!r.ok && r.error.includes(LABEL_CPUS), JSON.stringify(r));
    const missing = parseDroverLabels({ [LABEL_TASK_ID]: "t", [LABEL_AGENT_ID]: "a" });
    assert.ok(
      !missing.ok && missing.error.includes(LABEL_APP_ID) && missing.error.includes(LABEL_FRAMEWORK_ID),
    );
  });

  test("container names stay in Docker's charset and distinct task ids get distinct names", () => {
    assert.equal(containerName("web.1_a-b"), "drover-web.1_a-b");
    const a = containerName("app/x:1");
    const b = containerName("app_x_1");
    assert.match(a, /^drover-[a-zA-Z0-9_.-]+$/);
    assert.notEqual(a, b);
    assert.ok(containerName("x".repeat(500)).length < 230);
    assert.match(containerName("ümlaut task"), /^drover-[a-zA-Z0-9_.-]+$/);
  });
});

describe("spec", () => {
  test("resources convert to Docker units", () => {
    assert.equal(nanoCpus(0.5), 500_000_000);
    assert.equal(nanoCpus(0.1), 100_000_000);
    assert.equal(memoryBytes(64), 67_108_864);
    assert.deepEqual(containerCmd("sleep 300"), ["/bin/sh", "-c", "sleep 300"]);
    assert.equal(containerCmd(undefined), undefined);
    assert.equal(containerCmd(""), undefined);
    assert.deepEqual(containerCmd(undefined, ["--port", "80"]), ["--port", "80"], "args: no shell");
    assert.deepEqual(containerCmd("ignored", ["a"]), ["a"], "args win over cmd");
  });

  test("invalid specs name the offending fields", () => {
    assert.equal(validateLaunchSpec(spec()), undefined);
    const msg = validateLaunchSpec(spec({ cpus: -1, image: "", env: { "A=B": "x" } }));
    assert.ok(msg?.includes("cpus") && msg.includes("image") && msg.includes("env"), msg);
  });
});

describe("classifyExit", () => {
  test("exit codes and requested kills map to terminal states", () => {
    assert.deepEqual(classifyExit({ ExitCode: 0 }, false), {
      state: "TASK_FINISHED",
      message: "exited with code 0",
      exitCode: 0,
    });
    const failed = classifyExit({ ExitCode: 137, OOMKilled: true, Error: "" }, false);
    assert.equal(failed.state, "TASK_FAILED");
    assert.equal(failed.exitCode, 137);
    assert.equal(failed.message, "exited with code 137 (OOMKilled=true)");
    assert.match(classifyExit({ ExitCode: 127, Error: "exec failed" }, false).message, /: exec failed$/);
    assert.equal(classifyExit({ ExitCode: 143 }, true).state, "TASK_KILLED");
    assert.equal(classifyExit({ ExitCode: 0 }, true).state, "TASK_KILLED");
  });
});

describe("JsonLineDecoder and parseDockerEvent", () => {
  test("split, joined and malformed lines", () => {
    const d = new JsonLineDecoder();
    const ev = {
      Type: "container",
      Action: "die",
      Actor: { ID: "abc", Attributes: { exitCode: "3" } },
      time: 5,
    };
    const line = JSON.stringify(ev);
    assert.deepEqual(d.push(line.slice(0, 10)), []);
    assert.deepEqual(d.push(`${line.slice(10)}\n{not json}\n\n${line}\n${line.slice(0, 3)}`), [ev, ev]);
    assert.equal(d.dropped, 1);
    assert.deepEqual(d.push(`${line.slice(3)}\r\n`), [ev]);
    assert.deepEqual(parseDockerEvent(ev), {
      type: "container",
      action: "die",
      actorId: "abc",
      attributes: { exitCode: "3" },
      time: 5,
    });
    assert.equal(parseDockerEvent({ Action: "die" }), undefined);
    assert.equal(parseDockerEvent(42), undefined);
  });

  test("an endless line is dropped instead of growing without bound", () => {
    const d = new JsonLineDecoder(16);
    assert.deepEqual(d.push("x".repeat(100)), []);
    assert.equal(d.dropped, 1);
    assert.deepEqual(d.push('{"a":1}\n'), [{ a: 1 }]);
  });
});

describe("docker errors", () => {
  test("Docker's reason is read from json.message, else from the message without dockerode's prefix", () => {
    const withJson = Object.assign(new Error("(HTTP code 404) no such image - x "), {
      statusCode: 404,
      json: { message: "No such image: x" },
    });
    assert.equal(dockerErrorMessage(withJson), "No such image: x");
    assert.equal(dockerStatusCode(withJson), 404);
    const stream = Object.assign(
      new Error("(HTTP code 500) server error - Get https://r/v2/: no such host "),
      {
        statusCode: 500,
        json: null,
      },
    );
    assert.equal(dockerErrorMessage(stream), "Get https://r/v2/: no such host");
    assert.equal(
      dockerErrorMessage(new Error("connect ECONNREFUSED /x.sock")),
      "connect ECONNREFUSED /x.sock",
    );
    assert.equal(dockerStatusCode(new Error("x")), undefined);
  });
});
