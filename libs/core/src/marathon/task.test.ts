import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { normalizeApp } from "./app.js";
import {
  appResourcesOf,
  hostPortDemand,
  hostPortsByIndex,
  javaDouble,
  portEnv,
  taskCommand,
  taskEnv,
  taskImage,
} from "./task.js";
import type { AppDefinition } from "./types.js";

function def(input: unknown): AppDefinition {
  const r = normalizeApp(input);
  if (!r.ok) assert.fail(JSON.stringify(r.issues));
  return r.value;
}

describe("task helpers", () => {
  it("appResourcesOf: cpus, mem, disk", () => {
    assert.deepEqual(appResourcesOf(def({ id: "a", cmd: "xx", cpus: 0.5, mem: 64, disk: 10 })), {
      cpus: 0.5,
      mem: 64,
      disk: 10,
      ports: [],
    });
    assert.deepEqual(appResourcesOf(def({ id: "a", cmd: "xx" })), { cpus: 1, mem: 128, disk: 0, ports: [] });
  });

  it("hostPortDemand: host networking, with and without requirePorts", () => {
    assert.deepEqual(hostPortDemand(def({ id: "a", cmd: "xx" })), { ports: 1, requestedPorts: [] });
    assert.deepEqual(hostPortDemand(def({ id: "a", cmd: "xx", portDefinitions: [] })), {
      ports: 0,
      requestedPorts: [],
    });
    assert.deepEqual(hostPortDemand(def({ id: "a", cmd: "xx", ports: [10018], requirePorts: false })), {
      ports: 1,
      requestedPorts: [],
    });
    assert.deepEqual(
      hostPortDemand(
        def({ id: "a", cmd: "xx", portDefinitions: [{ port: 7777 }, { port: 0 }], requirePorts: true }),
      ),
      { ports: 1, requestedPorts: [7777] },
    );
    // Drover's old `ports`: fixed host ports.
    assert.deepEqual(hostPortDemand(def({ id: "a", cmd: "xx", ports: [80, 0] })), {
      ports: 1,
      requestedPorts: [80],
    });
  });

  it("hostPortDemand: bridge hostPorts, container networks without host ports", () => {
    const bridge = def({
      id: "a",
      container: {
        docker: { image: "x" },
        portMappings: [{ containerPort: 80 }, { containerPort: 443, hostPort: 8443 }],
      },
      networks: [{ mode: "container/bridge" }],
    });
    assert.deepEqual(hostPortDemand(bridge), { ports: 1, requestedPorts: [8443] });
    const user = def({
      id: "a",
      container: {
        docker: { image: "x" },
        portMappings: [{ containerPort: 80 }, { containerPort: 81, hostPort: 0 }],
      },
      networks: [{ mode: "container", name: "dcos" }],
    });
    assert.deepEqual(hostPortDemand(user), { ports: 1, requestedPorts: [] });
  });

  it("hostPortsByIndex: fixed ports keep their place, the others take the assigned ones in order", () => {
    const d = def({
      id: "a",
      cmd: "xx",
      portDefinitions: [{ port: 0 }, { port: 7777 }, { port: 0 }],
      requirePorts: true,
    });
    assert.deepEqual(hostPortsByIndex(d, [7777, 31000, 31001]), [31000, 7777, 31001]);
    assert.deepEqual(hostPortsByIndex(d, [7777]), [undefined, 7777, undefined]);
  });

  it("taskImage and taskCommand", () => {
    const shell = def({ id: "a", cmd: "echo hi && sleep 1" });
    assert.equal(taskImage(shell, "drover/busybox:1"), "drover/busybox:1");
    assert.deepEqual(taskCommand(shell), { entrypoint: ["/bin/sh", "-c"], cmd: ["echo hi && sleep 1"] });
    const args = def({
      id: "a",
      container: { docker: { image: "mesosphere/inky" } },
      args: ["hello", "from"],
    });
    assert.equal(taskImage(args, "drover/busybox:1"), "mesosphere/inky");
    assert.deepEqual(taskCommand(args), { cmd: ["hello", "from"] });
    assert.deepEqual(taskCommand(def({ id: "a", args: ["sleep", "10"] })), {
      entrypoint: ["sleep"],
      cmd: ["10"],
    });
    assert.deepEqual(taskCommand(def({ id: "a", container: { docker: { image: "nginx" } } })), {});
    const mesos = def({
      id: "a",
      cmd: "python3 -m http.server",
      container: { type: "MESOS", docker: { image: "python:3" } },
    });
    assert.equal(taskImage(mesos, "d"), "python:3");
  });

  it("portEnv: host networking", () => {
    const d = def({
      id: "a",
      cmd: "xx",
      portDefinitions: [{ port: 0, name: "http" }, { port: 10018 }, { port: 9000, name: "admin" }],
    });
    assert.deepEqual(portEnv(d, [31000, 31001, 31002], "agent-1"), {
      PORT0: "31000",
      PORT1: "31001",
      PORT2: "31002",
      PORT_31000: "31000",
      PORT_10018: "31001",
      PORT_9000: "31002",
      PORT_HTTP: "31000",
      PORT_ADMIN: "31002",
      PORT: "31000",
      PORTS: "31000,31001,31002",
      HOST: "agent-1",
    });
    assert.deepEqual(portEnv(def({ id: "a", cmd: "xx", portDefinitions: [] }), [], "h"), { HOST: "h" });
  });

  it("portEnv: bridge and container networks", () => {
    const bridge = def({
      id: "a",
      container: {
        docker: { image: "x" },
        portMappings: [{ containerPort: 8080, name: "web" }, { containerPort: 0 }],
      },
      networks: [{ mode: "container/bridge" }],
    });
    assert.deepEqual(portEnv(bridge, [31000, 31001]), {
      PORT0: "31000",
      PORT1: "31001",
      PORT_8080: "31000",
      PORT_31001: "31001",
      PORT_WEB: "31000",
      PORT: "31000",
      PORTS: "31000,31001",
    });
    const user = def({
      id: "a",
      container: {
        docker: { image: "x" },
        portMappings: [{ containerPort: 80, name: "web" }, { containerPort: 0 }],
      },
      networks: [{ mode: "container", name: "dcos" }],
    });
    // No host ports: the container port, and a port of its own for containerPort 0 (lowest free above 1024).
    assert.deepEqual(portEnv(user, [undefined, undefined]), {
      PORT0: "80",
      PORT1: "1025",
      PORT_80: "80",
      PORT_1025: "1025",
      PORT_WEB: "80",
      PORT: "1025",
      PORTS: "1025",
    });
  });

  it("taskEnv: Marathon's task variables, ports, then the app's own env", () => {
    const d = def({
      id: "/product/web",
      container: { docker: { image: "nginx" } },
      cpus: 0.5,
      mem: 64,
      labels: { "team.name": "platform" },
      env: { PORT0: "override", A: "1" },
    });
    assert.deepEqual(taskEnv(d, { taskId: "product_web.1", host: "h1", hostPorts: [31000], version: "v1" }), {
      MESOS_TASK_ID: "product_web.1",
      MARATHON_APP_ID: "/product/web",
      MARATHON_APP_VERSION: "v1",
      MARATHON_APP_DOCKER_IMAGE: "nginx",
      MARATHON_APP_RESOURCE_CPUS: "0.5",
      MARATHON_APP_RESOURCE_MEM: "64.0",
      MARATHON_APP_RESOURCE_DISK: "0.0",
      MARATHON_APP_RESOURCE_GPUS: "0",
      MARATHON_APP_LABELS: "TEAM_NAME",
      MARATHON_APP_LABEL_TEAM_NAME: "platform",
      PORT0: "override",
      PORT_31000: "31000",
      PORT_DEFAULT: "31000",
      PORT: "31000",
      PORTS: "31000",
      HOST: "h1",
      A: "1",
    });
  });

  it("javaDouble writes numbers as Java's Double.toString", () => {
    assert.equal(javaDouble(1), "1.0");
    assert.equal(javaDouble(0.1), "0.1");
    assert.equal(javaDouble(128), "128.0");
    assert.equal(javaDouble(0), "0.0");
    assert.equal(javaDouble(1e7), "1.0E7");
    assert.equal(javaDouble(1.5e12), "1.5E12");
  });
});
