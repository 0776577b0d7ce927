import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TaskRunSchema } from "../events/task.js";
import { normalizeApp } from "./app.js";
import { taskRunOf } from "./run.js";
import { hostPortsByIndex } from "./task.js";
import type { AppDefinition } from "./types.js";

function def(input: unknown): AppDefinition {
  const r = normalizeApp(input);
  if (!r.ok) assert.fail(JSON.stringify(r.issues));
  return r.value;
}

describe("taskRunOf", () => {
  it("a host-networked app without extras needs nothing of the runtime", () => {
    const app = def({ id: "/a", cmd: "sleep 1" });
    assert.deepEqual(taskRunOf(app, { hostPorts: hostPortsByIndex(app, [31000]) }), {});
  });

  it("bridge: each mapping gets the host port of its index; containerPort 0 is that host port", () => {
    const app = def({
      id: "/web",
      container: {
        type: "DOCKER",
        docker: { image: "nginx" },
        portMappings: [
          { containerPort: 80, hostPort: 0, name: "http" },
          { containerPort: 0, hostPort: 0, protocol: "udp" },
          { containerPort: 9000, hostPort: 31555 },
        ],
      },
      networks: [{ mode: "container/bridge" }],
    });
    const hostPorts = hostPortsByIndex(app, [31555, 31001, 31002]);
    const run = taskRunOf(app, { hostPorts, appVersion: "2026-11-29T19:13:37.123Z" });
    assert.equal(run.appVersion, "2026-11-29T19:13:37.123Z");
    assert.deepEqual(run.network, { mode: "bridge" });
    assert.deepEqual(run.portMappings, [
      { containerPort: 80, hostPort: 31001, protocol: "tcp", name: "http" },
      { containerPort: 31002, hostPort: 31002, protocol: "udp" },
      { containerPort: 9000, hostPort: 31555, protocol: "tcp" },
    ]);
    assert.ok(TaskRunSchema.safeParse(run).success);
  });

  it("a named container network: mappings without a host port are not published", () => {
    const app = def({
      id: "/db",
      container: { type: "DOCKER", docker: { image: "pg" }, portMappings: [{ containerPort: 5432 }] },
      networks: [{ mode: "container", name: "backend" }],
    });
    const run = taskRunOf(app, { hostPorts: hostPortsByIndex(app, []) });
    assert.deepEqual(run.network, { mode: "container", name: "backend" });
    assert.deepEqual(run.portMappings, [{ containerPort: 5432, hostPort: 0, protocol: "tcp" }]);
  });

  it("health checks probe the host port of their index; COMMAND checks carry no port", () => {
    const app = def({
      id: "/svc",
      cmd: "serve",
      portDefinitions: [{ port: 0 }, { port: 0 }],
      healthChecks: [
        { protocol: "HTTP", portIndex: 1, path: "/health", intervalSeconds: 2 },
        { protocol: "TCP" },
        { protocol: "COMMAND", command: { value: "true" } },
        { protocol: "MESOS_HTTP", port: 8080 },
      ],
    });
    const run = taskRunOf(app, { hostPorts: hostPortsByIndex(app, [31000, 31001]) });
    const checks = run.healthChecks ?? [];
    assert.equal(checks.length, 4);
    assert.equal(checks[0]?.port, 31001);
    assert.equal(checks[0]?.portIndex, undefined);
    assert.equal(checks[0]?.path, "/health");
    assert.equal(checks[0]?.intervalSeconds, 2);
    assert.equal(checks[1]?.port, 31000);
    assert.equal(checks[2]?.port, undefined);
    assert.deepEqual(checks[2]?.command, { value: "true" });
    assert.equal(checks[3]?.port, 8080);
    assert.ok(TaskRunSchema.safeParse(run).success);
  });

  it("on bridge networking a check keeps its index (the agent reads the port mappings)", () => {
    const app = def({
      id: "/web",
      container: {
        type: "DOCKER",
        docker: { image: "nginx" },
        portMappings: [{ containerPort: 80, hostPort: 0 }],
      },
      networks: [{ mode: "container/bridge" }],
      healthChecks: [{ protocol: "HTTP", portIndex: 0 }],
    });
    const run = taskRunOf(app, { hostPorts: hostPortsByIndex(app, [31000]) });
    assert.equal(run.healthChecks?.[0]?.port, undefined);
    assert.equal(run.healthChecks?.[0]?.portIndex, 0);
    assert.equal(run.portMappings?.[0]?.hostPort, 31000);
  });

  it("a check whose index has no host port keeps the index (the agent probes the container)", () => {
    const app = def({
      id: "/db",
      container: { type: "DOCKER", docker: { image: "pg" }, portMappings: [{ containerPort: 5432 }] },
      networks: [{ mode: "container", name: "backend" }],
      healthChecks: [{ protocol: "MESOS_TCP", portIndex: 0 }],
    });
    const run = taskRunOf(app, { hostPorts: hostPortsByIndex(app, []) });
    assert.equal(run.healthChecks?.[0]?.port, undefined);
    assert.equal(run.healthChecks?.[0]?.portIndex, 0);
  });

  it("volumes, fetch, docker options, user and kill grace", () => {
    const app = def({
      id: "/x",
      cmd: "run",
      user: "nobody",
      taskKillGracePeriodSeconds: 30,
      fetch: [
        { uri: "http://h/a.tgz", extract: true },
        { uri: "http://h/b", executable: true, destPath: "bin/b" },
      ],
      container: {
        type: "DOCKER",
        docker: {
          image: "busybox",
          privileged: true,
          forcePullImage: true,
          parameters: [{ key: "label", value: "a=b" }],
        },
        volumes: [{ containerPath: "/data", hostPath: "/srv/data", mode: "RW" }],
      },
    });
    // A persistent volume, as the definition holds it once the scheduler honours them.
    app.container?.volumes.push({
      containerPath: "state",
      mode: "RW",
      persistent: { type: "root", size: 100, constraints: [] },
    });
    const run = taskRunOf(app, {
      hostPorts: hostPortsByIndex(app, [31000]),
      persistentVolumeName: (p) => `vol-${p}`,
    });
    assert.deepEqual(run.volumes, [
      { containerPath: "/data", hostPath: "/srv/data", mode: "RW" },
      { containerPath: "state", mode: "RW", persistent: { name: "vol-state", sizeMib: 100 } },
    ]);
    assert.deepEqual(run.fetch, [
      { uri: "http://h/a.tgz", extract: true, executable: false, cache: false },
      { uri: "http://h/b", extract: true, executable: true, cache: false, outputFile: "bin/b" },
    ]);
    assert.equal(run.privileged, true);
    assert.equal(run.forcePullImage, true);
    assert.deepEqual(run.dockerParameters, [{ key: "label", value: "a=b" }]);
    assert.equal(run.user, "nobody");
    assert.equal(run.killGracePeriodSeconds, 30);
    assert.ok(TaskRunSchema.safeParse(run).success);
  });

  it("tty and resourceLimits", () => {
    const app = def({
      id: "/t",
      cmd: "top",
      tty: true,
      cpus: 0.5,
      mem: 64,
      resourceLimits: { cpus: 2, mem: "unlimited" },
    });
    const run = taskRunOf(app, { hostPorts: [] });
    assert.equal(run.tty, true);
    assert.deepEqual(run.limits, { cpus: 2, mem: "unlimited" });
    assert.ok(TaskRunSchema.safeParse(run).success);
  });

  it("a relative hostPath naming a persistent volume mounts the same volume again", () => {
    const app = def({
      id: "/mysql",
      container: {
        type: "DOCKER",
        docker: { image: "mysql" },
        volumes: [{ containerPath: "/var/lib/mysql", hostPath: "mysqldata", mode: "RW" }],
      },
    });
    app.container?.volumes.unshift({
      containerPath: "mysqldata",
      mode: "RW",
      persistent: { type: "root", size: 1000, constraints: [] },
    });
    const run = taskRunOf(app, { hostPorts: [], persistentVolumeName: (p) => `v-${p}` });
    assert.deepEqual(run.volumes, [
      { containerPath: "mysqldata", mode: "RW", persistent: { name: "v-mysqldata", sizeMib: 1000 } },
      { containerPath: "/var/lib/mysql", mode: "RW", persistent: { name: "v-mysqldata", sizeMib: 1000 } },
    ]);
  });
});
