import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type FieldIssue, validate } from "../validation.js";
import {
  MarathonAppSchema,
  normalizeApp,
  normalizeMarathonApp,
  parseMarathonAppJson,
  toMarathonJson,
} from "./app.js";
import type { AppDefinition } from "./types.js";

function ok(input: unknown): AppDefinition {
  const r = normalizeApp(input);
  if (!r.ok) assert.fail(`expected the input to be accepted, got ${JSON.stringify(r.issues)}`);
  return r.value;
}

function issues(input: unknown, normalize = normalizeApp): FieldIssue[] {
  const r = normalize(input);
  assert.equal(r.ok, false, "expected the input to be rejected");
  return r.ok ? [] : r.issues;
}

function paths(input: unknown, normalize = normalizeApp): string[] {
  return issues(input, normalize).map((i) => i.path);
}

/** The canonical form of `{id, cmd}` with every Marathon default. */
function commandApp(id: string, cmd: string): AppDefinition {
  return {
    id,
    backoffFactor: 1.15,
    backoffSeconds: 1,
    cmd,
    constraints: [],
    cpus: 1,
    dependencies: [],
    disk: 0,
    env: {},
    executor: "",
    fetch: [],
    healthChecks: [],
    instances: 1,
    labels: {},
    maxLaunchDelaySeconds: 300,
    mem: 128,
    gpus: 0,
    networks: [{ mode: "host", labels: {} }],
    portDefinitions: [{ port: 0, labels: {}, name: "default", protocol: "tcp" }],
    readinessChecks: [],
    requirePorts: false,
    secrets: {},
    upgradeStrategy: { maximumOverCapacity: 1, minimumHealthCapacity: 1 },
    killSelection: "YOUNGEST_FIRST",
    unreachableStrategy: { inactiveAfterSeconds: 0, expungeAfterSeconds: 0 },
  };
}

describe("normalizeApp: defaults", () => {
  it("fills in every Marathon default for a minimal command-only app", () => {
    assert.deepEqual(ok({ id: "sleepy", cmd: "sleep 100" }), commandApp("/sleepy", "sleep 100"));
  });

  it("prints it as Marathon does, in Marathon's field order", () => {
    const json = toMarathonJson(ok({ id: "sleepy", cmd: "sleep 100" }));
    assert.deepEqual(Object.keys(json), [
      "id",
      "backoffFactor",
      "backoffSeconds",
      "cmd",
      "cpus",
      "disk",
      "executor",
      "instances",
      "labels",
      "maxLaunchDelaySeconds",
      "mem",
      "gpus",
      "networks",
      "portDefinitions",
      "requirePorts",
      "upgradeStrategy",
      "killSelection",
      "unreachableStrategy",
    ]);
    assert.deepEqual(json.networks, [{ mode: "host" }]);
    assert.deepEqual(json.portDefinitions, [{ port: 0, name: "default", protocol: "tcp" }]);
  });

  it("a Docker app on host networking: type DOCKER by default, no portMappings, image's own command", () => {
    const def = ok({ id: "/web", container: { docker: { image: "nginx:1.27" } } });
    assert.deepEqual(def.container, {
      type: "DOCKER",
      docker: { forcePullImage: false, image: "nginx:1.27", parameters: [], privileged: false },
      volumes: [],
    });
    assert.equal(def.cmd, undefined);
    assert.equal(def.args, undefined);
    assert.deepEqual(toMarathonJson(def).container, {
      type: "DOCKER",
      docker: { forcePullImage: false, image: "nginx:1.27", parameters: [], privileged: false },
      volumes: [],
    });
  });

  it("keeps given values and fills health and readiness check defaults", () => {
    const def = ok({
      id: "/api",
      cmd: "serve",
      portDefinitions: [{ port: 0, name: "http-api" }],
      healthChecks: [{}, { protocol: "MESOS_TCP" }, { protocol: "COMMAND", command: { value: "true" } }],
      readinessChecks: [{}],
    });
    assert.deepEqual(def.healthChecks, [
      {
        gracePeriodSeconds: 300,
        ignoreHttp1xx: false,
        intervalSeconds: 60,
        maxConsecutiveFailures: 3,
        portIndex: 0,
        protocol: "HTTP",
        ipProtocol: "IPv4",
        timeoutSeconds: 20,
        delaySeconds: 15,
      },
      {
        gracePeriodSeconds: 300,
        intervalSeconds: 60,
        maxConsecutiveFailures: 3,
        portIndex: 0,
        protocol: "MESOS_TCP",
        ipProtocol: "IPv4",
        timeoutSeconds: 20,
        delaySeconds: 15,
      },
      {
        command: { value: "true" },
        gracePeriodSeconds: 300,
        intervalSeconds: 60,
        maxConsecutiveFailures: 3,
        protocol: "COMMAND",
        ipProtocol: "IPv4",
        timeoutSeconds: 20,
        delaySeconds: 15,
      },
    ]);
    assert.deepEqual(def.readinessChecks, [
      {
        name: "readinessCheck",
        protocol: "HTTP",
        path: "/",
        portName: "http-api",
        intervalSeconds: 30,
        timeoutSeconds: 10,
        httpStatusCodesForReady: [200],
        preserveLastResponse: false,
      },
    ]);
  });

  it("Marathon-level checks keep neither delaySeconds nor a path for TCP; duplicates count once", () => {
    const def = ok({
      id: "/api",
      cmd: "serve",
      healthChecks: [
        { protocol: "TCP", path: "/x", delaySeconds: 99 },
        { protocol: "TCP", path: "/y" },
      ],
    });
    assert.equal(def.healthChecks.length, 1);
    assert.equal(def.healthChecks[0]?.path, undefined);
    assert.equal(def.healthChecks[0]?.delaySeconds, 15);
  });

  it("resident apps (persistent volumes) default to upgrade 0.5/0 and unreachable disabled", () => {
    const r = normalizeMarathonApp({
      id: "/db",
      cmd: "run-db",
      container: {
        type: "MESOS",
        volumes: [{ containerPath: "data", mode: "RW", persistent: { size: 10 } }],
      },
    });
    assert.ok(r.ok);
    assert.deepEqual(r.value.upgradeStrategy, { maximumOverCapacity: 0, minimumHealthCapacity: 0.5 });
    assert.equal(r.value.unreachableStrategy, "disabled");
    assert.deepEqual(r.value.residency, {
      relaunchEscalationTimeoutSeconds: 3600,
      taskLostBehavior: "WAIT_FOREVER",
    });
    assert.deepEqual(r.value.container?.volumes, [
      { containerPath: "data", mode: "RW", persistent: { type: "root", size: 10, constraints: [] } },
    ]);
  });

  it("unreachableStrategy: an object gets 0 for a missing value; 'disabled' stays", () => {
    assert.deepEqual(
      ok({ id: "a", cmd: "xx", unreachableStrategy: { expungeAfterSeconds: 60 } }).unreachableStrategy,
      {
        inactiveAfterSeconds: 0,
        expungeAfterSeconds: 60,
      },
    );
    assert.equal(ok({ id: "a", cmd: "xx", unreachableStrategy: "disabled" }).unreachableStrategy, "disabled");
  });

  it("treats null properties as absent and ignores the read-only fields of GET /v2/apps", () => {
    const def = ok({
      id: "/x",
      cmd: "sleep 1",
      args: null,
      container: null,
      user: null,
      version: "2015-08-26T22:33:24.225Z",
      versionInfo: {
        lastScalingAt: "2015-08-26T22:33:24.225Z",
        lastConfigChangeAt: "2015-05-19T13:59:18.899Z",
      },
      tasksRunning: 2,
      tasks: [],
      deployments: [],
    });
    assert.deepEqual(def, commandApp("/x", "sleep 1"));
  });

  it("parses JSON text within the size limit", () => {
    const r = parseMarathonAppJson('\uFEFF{"id":"a","cmd":"sleep 1"}');
    assert.ok(r.ok);
    const bad = parseMarathonAppJson("{nope");
    assert.ok(!bad.ok && bad.issues[0]?.path === "" && /^invalid JSON/.test(bad.issues[0].message));
    const big = parseMarathonAppJson(JSON.stringify({ id: "a", cmd: "x".repeat(600 * 1024) }));
    assert.ok(!big.ok && /at most 524288/.test(big.issues[0]?.message ?? ""));
  });
});

describe("normalizeApp: command-only and Drover's old app JSON", () => {
  it("accepts a command-only app (no container)", () => {
    const def = ok({ id: "/simple", instances: 2, cmd: "sleep 1000", cpus: 0.1, disk: 0, mem: 16 });
    assert.equal(def.container, undefined);
    assert.equal(def.instances, 2);
    assert.equal(def.cpus, 0.1);
  });

  it("accepts args without a container, as Marathon does (args[0] is the program)", () => {
    assert.deepEqual(ok({ id: "a", args: ["sleep", "10"] }).args, ["sleep", "10"]);
  });

  it("accepts Drover's AppSpec JSON unchanged", () => {
    const def = ok({
      id: "hello",
      container: { docker: { image: "drover/busybox:1" } },
      cmd: "echo hello; sleep 3600",
      instances: 2,
      cpus: 0.1,
      mem: 32,
      disk: 0,
      env: { GREETING: "hello" },
      labels: { team: "platform" },
    });
    assert.equal(def.id, "/hello");
    assert.equal(def.container?.docker?.image, "drover/busybox:1");
    assert.deepEqual(def.env, { GREETING: "hello" });
    assert.deepEqual(def.labels, { team: "platform" });
  });

  it("old Drover ports with a fixed port keep their meaning: requirePorts true", () => {
    const def = ok({ id: "web", container: { docker: { image: "nginx" } }, ports: [8080, 0] });
    assert.equal(def.requirePorts, true);
    assert.deepEqual(def.portDefinitions, [
      { port: 8080, labels: {}, protocol: "tcp" },
      { port: 0, labels: {}, protocol: "tcp" },
    ]);
    // Only zeros: nothing to keep fixed; an explicit requirePorts: Marathon's meaning (service ports).
    assert.equal(ok({ id: "web", cmd: "xx", ports: [0, 0] }).requirePorts, false);
    assert.equal(ok({ id: "web", cmd: "xx", ports: [10018], requirePorts: false }).requirePorts, false);
  });
});

describe("normalizeApp: old formats", () => {
  it("ports → portDefinitions (an empty list means no ports)", () => {
    assert.deepEqual(ok({ id: "a", cmd: "xx", ports: [0] }).portDefinitions, [
      { port: 0, labels: {}, protocol: "tcp" },
    ]);
    assert.deepEqual(ok({ id: "a", cmd: "xx", ports: [] }).portDefinitions, []);
    assert.deepEqual(ok({ id: "a", cmd: "xx", portDefinitions: [] }).portDefinitions, []);
    // Both given: fine when they say the same.
    assert.deepEqual(
      ok({ id: "a", cmd: "xx", ports: [0], portDefinitions: [{ port: 0, name: "p" }] }).portDefinitions,
      [{ port: 0, labels: {}, name: "p", protocol: "tcp" }],
    );
    assert.deepEqual(paths({ id: "a", cmd: "xx", ports: [1], portDefinitions: [{ port: 2 }] }), ["ports"]);
  });

  it("uris → fetch, extracting archives by extension", () => {
    const def = ok({
      id: "a",
      cmd: "xx",
      uris: ["http://x.org/app.tgz", "https://x.org/run.sh?v=1.zip", "http://host.gz", "s3://b/k.tar.gz"],
    });
    assert.deepEqual(def.fetch, [
      { uri: "http://x.org/app.tgz", extract: true, executable: false, cache: false },
      { uri: "https://x.org/run.sh?v=1.zip", extract: false, executable: false, cache: false },
      { uri: "http://host.gz", extract: false, executable: false, cache: false },
      { uri: "s3://b/k.tar.gz", extract: true, executable: false, cache: false },
    ]);
    assert.deepEqual(paths({ id: "a", cmd: "xx", uris: ["http://a"], fetch: [{ uri: "http://b" }] }), [
      "uris",
    ]);
    assert.deepEqual(paths({ id: "a", cmd: "xx", uris: ["http://a b"] }), ["uris[0]"]);
  });

  it("container.docker.network BRIDGE + docker.portMappings → networks + container.portMappings", () => {
    const def = ok({
      id: "tomcat",
      container: {
        type: "DOCKER",
        docker: {
          image: "tomcat:8.0",
          network: "BRIDGE",
          portMappings: [
            { containerPort: 8080, hostPort: 0, servicePort: 10000, protocol: "tcp" },
            { containerPort: 9090 },
          ],
        },
      },
    });
    assert.deepEqual(def.networks, [{ mode: "container/bridge", labels: {} }]);
    assert.equal(def.portDefinitions, undefined);
    assert.deepEqual(def.container?.portMappings, [
      { containerPort: 8080, hostPort: 0, labels: {}, protocol: "tcp", servicePort: 10000, networkNames: [] },
      // Bridge: a missing hostPort is 0.
      { containerPort: 9090, hostPort: 0, labels: {}, protocol: "tcp", servicePort: 0, networkNames: [] },
    ]);
    assert.equal(JSON.stringify(toMarathonJson(def)).includes('"network"'), false);
  });

  it("docker.network HOST → host networking (port mappings dropped); USER needs a network name", () => {
    const host = ok({
      id: "a",
      container: { docker: { image: "x", network: "HOST", portMappings: [{ containerPort: 1 }] } },
    });
    assert.deepEqual(host.networks, [{ mode: "host", labels: {} }]);
    assert.equal(host.container?.portMappings, undefined);
    assert.deepEqual(host.portDefinitions, [{ port: 0, labels: {}, name: "default", protocol: "tcp" }]);
    assert.deepEqual(paths({ id: "a", container: { docker: { image: "x", network: "USER" } } }), [
      "container.docker.network",
    ]);
    assert.deepEqual(paths({ id: "a", container: { docker: { image: "x", network: "NONE" } } }), [
      "container.docker.network",
    ]);
  });

  it("docker.network USER + ipAddress.networkName → a named container network", () => {
    const def = ok({
      id: "a",
      container: { docker: { image: "nginx", network: "USER" } },
      ipAddress: { networkName: "dcos", labels: { a: "b" }, groups: ["ignored"] },
    });
    assert.deepEqual(def.networks, [{ name: "dcos", mode: "container", labels: { a: "b" } }]);
    // Default port mapping on a container network: no host port.
    assert.deepEqual(def.container?.portMappings, [
      { containerPort: 0, labels: {}, name: "default", protocol: "tcp", servicePort: 0, networkNames: [] },
    ]);
  });

  it("ipAddress without a container → MESOS container; discovery.ports → portMappings", () => {
    const def = ok({
      id: "/pinger",
      cmd: "python pinger.py",
      ipAddress: {
        networkName: "dcos",
        discovery: { ports: [{ name: "my-port", number: 7777, protocol: "tcp" }] },
      },
    });
    assert.deepEqual(def.networks, [{ name: "dcos", mode: "container", labels: {} }]);
    assert.deepEqual(def.container, {
      type: "MESOS",
      volumes: [],
      portMappings: [
        {
          containerPort: 7777,
          labels: {},
          name: "my-port",
          protocol: "tcp",
          servicePort: 0,
          networkNames: [],
        },
      ],
    });
    // ipAddress.networkName = the Mesos bridge's name means bridge networking.
    assert.deepEqual(ok({ id: "a", cmd: "xx", ipAddress: { networkName: "mesos-bridge" } }).networks, [
      { mode: "container/bridge", labels: {} },
    ]);
  });

  it("refuses mixing deprecated and canonical networking, and ipAddress with ports", () => {
    assert.deepEqual(
      paths({
        id: "a",
        container: { docker: { image: "x", network: "BRIDGE" } },
        networks: [{ mode: "host" }],
      }),
      ["container.docker.network"],
    );
    assert.deepEqual(paths({ id: "a", cmd: "xx", ipAddress: {}, networks: [{ mode: "container/bridge" }] }), [
      "ipAddress",
    ]);
    assert.deepEqual(paths({ id: "a", cmd: "xx", ipAddress: { networkName: "n" }, ports: [0] }), [
      "ipAddress",
    ]);
    assert.deepEqual(
      paths({
        id: "a",
        container: { docker: { image: "x" } },
        ipAddress: { networkName: "n", discovery: { ports: [{ name: "p" }] } },
      }),
      ["ipAddress.discovery"],
    );
    assert.deepEqual(
      paths({
        id: "a",
        container: {
          docker: { image: "x", portMappings: [{ containerPort: 1 }] },
          portMappings: [{ containerPort: 2 }],
        },
        networks: [{ mode: "container/bridge" }],
      }),
      ["container.docker.portMappings"],
    );
  });

  it("container.type defaults to DOCKER; MESOS with a docker image keeps no Docker-only settings", () => {
    assert.equal(ok({ id: "a", container: { docker: { image: "x" } } }).container?.type, "DOCKER");
    assert.deepEqual(
      ok({ id: "a", cmd: "xx", container: { type: "MESOS", docker: { image: "python:3" } } }).container,
      {
        type: "MESOS",
        docker: { forcePullImage: false, image: "python:3", parameters: [], privileged: false },
        volumes: [],
      },
    );
    assert.deepEqual(
      paths(
        {
          id: "a",
          container: { type: "MESOS", docker: { image: "x", parameters: [{ key: "k", value: "v" }] } },
        },
        normalizeMarathonApp,
      ),
      ["container.docker.parameters"],
    );
    assert.deepEqual(paths({ id: "a", container: { type: "DOCKER" } }), ["container.docker", "cmd"]);
  });

  it("bridge networks get the default port mapping and one mapping per port definition", () => {
    const def = ok({
      id: "a",
      container: { docker: { image: "x" } },
      networks: [{ mode: "container/bridge" }],
      ports: [0, 0],
    });
    assert.deepEqual(def.container?.portMappings, [
      {
        containerPort: 0,
        hostPort: 0,
        labels: {},
        name: "default",
        protocol: "tcp",
        servicePort: 0,
        networkNames: [],
      },
      { containerPort: 0, hostPort: 0, labels: {}, protocol: "tcp", servicePort: 0, networkNames: [] },
    ]);
    assert.equal(def.portDefinitions, undefined);
    assert.equal(def.requirePorts, false);
  });

  it("non-host networking without a container: an empty MESOS container with the default mapping", () => {
    const def = ok({ id: "a", cmd: "xx", networks: [{ mode: "container/bridge" }] });
    assert.deepEqual(def.container, {
      type: "MESOS",
      volumes: [],
      portMappings: [
        {
          containerPort: 0,
          hostPort: 0,
          labels: {},
          name: "default",
          protocol: "tcp",
          servicePort: 0,
          networkNames: [],
        },
      ],
    });
  });

  it("constraints: both syntaxes, operator upper-cased, duplicates once", () => {
    const def = ok({
      id: "a",
      cmd: "xx",
      constraints: [["hostname", "unique"], "rack:GROUP_BY:3", ["hostname", "UNIQUE"], "zone:like:z-[12]"],
    });
    assert.deepEqual(def.constraints, [
      ["hostname", "UNIQUE"],
      ["rack", "GROUP_BY", "3"],
      ["zone", "LIKE", "z-[12]"],
    ]);
  });
});

describe("normalizeApp: unknown fields and types", () => {
  it("never throws, whatever the input", () => {
    const key = fc.constantFrom(
      "id",
      "cmd",
      "args",
      "container",
      "ports",
      "portDefinitions",
      "requirePorts",
      "networks",
      "ipAddress",
      "healthChecks",
      "readinessChecks",
      "env",
      "secrets",
      "labels",
      "uris",
      "fetch",
      "constraints",
      "upgradeStrategy",
      "unreachableStrategy",
      "residency",
      "dependencies",
      "role",
      "acceptedResourceRoles",
    );
    const value = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.constant({ docker: { image: "x", network: "BRIDGE" } }),
    );
    fc.assert(
      fc.property(fc.dictionary(key, value), (extra) => {
        const r = normalizeApp({ id: "a", cmd: "xx", ...extra });
        if (!r.ok) for (const i of r.issues) assert.equal(typeof i.message, "string");
      }),
      { numRuns: 500 },
    );
  });

  it("MarathonAppSchema is normalizeApp as a zod schema", () => {
    const input = { id: "a", cmd: "xx", secrets: { s: { source: "x" } }, gpus: 1 };
    assert.deepEqual(validate(MarathonAppSchema, input), normalizeApp(input));
    assert.deepEqual(
      validate(MarathonAppSchema, { id: "a", cmd: "xx" }),
      normalizeApp({ id: "a", cmd: "xx" }),
    );
  });

  it("names each unknown field, at the root and nested", () => {
    assert.deepEqual(
      issues({
        id: "a",
        cmd: "xx",
        replicas: 2,
        container: { docker: { image: "x", tag: "1" } },
        healthChecks: [{ protocl: "HTTP" }],
      }),
      [
        { path: "container.docker.tag", message: "unknown field" },
        { path: "healthChecks[0].protocl", message: "unknown field" },
        { path: "replicas", message: "unknown field" },
      ],
    );
  });

  it("names wrong types and values by path", () => {
    assert.deepEqual(issues({ id: "a", cmd: "xx", instances: "3" }), [
      { path: "instances", message: "expected number, got string" },
    ]);
    assert.deepEqual(paths({ id: "a", cmd: "xx", killSelection: "RANDOM" }), ["killSelection"]);
    assert.deepEqual(paths({ id: 5 }), ["id"]);
    assert.deepEqual(paths({ cmd: "xx" }), ["id"]);
    assert.deepEqual(paths("nope"), [""]);
    assert.deepEqual(paths({ id: "a", cmd: "xx", labels: { "drover.task_id": "x" } }), [
      "labels.drover.task_id",
    ]);
    assert.deepEqual(paths({ id: "a", cmd: "xx", env: { "A=B": "x" } }), ["env.A=B"]);
  });

  it("treats __proto__ as an unknown field", () => {
    assert.deepEqual(issues(JSON.parse('{"id":"a","cmd":"xx","__proto__":{"instances":5}}')), [
      { path: "__proto__", message: "unknown field" },
    ]);
  });
});

describe("normalizeApp: Marathon's validation rules", () => {
  it("id: relative ids resolve against /, bad ids are named", () => {
    assert.equal(ok({ id: "a/b/../c", cmd: "xx" }).id, "/a/c");
    for (const id of ["/My_App", "/-app", "/app-", "/x/tasks", "/", "./a"])
      assert.deepEqual(paths({ id, cmd: "xx" }), ["id"], id);
  });

  it("dependencies are made absolute against /, once each", () => {
    assert.deepEqual(
      ok({ id: "/p/s/a", cmd: "xx", dependencies: ["../../db", "/db", "/p/x"] }).dependencies,
      ["/db", "/p/x"],
    );
    assert.deepEqual(paths({ id: "a", cmd: "xx", dependencies: ["/A"] }), ["dependencies[0]"]);
  });

  it("cmd, args and container: one of cmd or args, or an image", () => {
    assert.deepEqual(paths({ id: "a" }), ["cmd"]);
    assert.deepEqual(paths({ id: "a", cmd: "xx", args: ["y"] }), ["args"]);
    assert.deepEqual(paths({ id: "a", cmd: "xx", args: ["y"], container: { docker: { image: "x" } } }), [
      "args",
    ]);
    assert.ok(ok({ id: "a", args: ["y"], container: { docker: { image: "x" } } }));
    assert.ok(ok({ id: "a", cmd: "xx", container: { docker: { image: "x" } } }));
    assert.deepEqual(paths({ id: "a", container: { type: "MESOS" } }), ["cmd"]);
    assert.deepEqual(paths({ id: "a", cmd: "x" }), ["cmd"]);
  });

  it("backoffFactor >= 1, upgradeStrategy within [0, 1]", () => {
    assert.deepEqual(paths({ id: "a", cmd: "xx", backoffFactor: 0.5 }), ["backoffFactor"]);
    assert.deepEqual(
      paths({ id: "a", cmd: "xx", upgradeStrategy: { minimumHealthCapacity: 1.5, maximumOverCapacity: -1 } }),
      ["upgradeStrategy.maximumOverCapacity", "upgradeStrategy.minimumHealthCapacity"],
    );
    // A missing value is 1, as Marathon <= 1.4 read it (the 1.11 RAML requires both).
    assert.deepEqual(
      ok({ id: "a", cmd: "xx", upgradeStrategy: { minimumHealthCapacity: 0.5 } }).upgradeStrategy,
      {
        maximumOverCapacity: 1,
        minimumHealthCapacity: 0.5,
      },
    );
  });

  it("resident apps need maximumOverCapacity 0 and unreachable disabled (also with residency alone)", () => {
    const resident = {
      id: "/db",
      cmd: "db",
      container: { type: "MESOS", volumes: [{ containerPath: "data", mode: "RW", persistent: { size: 1 } }] },
    };
    assert.deepEqual(
      paths(
        {
          ...resident,
          upgradeStrategy: { minimumHealthCapacity: 0.5, maximumOverCapacity: 0.5 },
          unreachableStrategy: { inactiveAfterSeconds: 1, expungeAfterSeconds: 2 },
        },
        normalizeMarathonApp,
      ),
      ["upgradeStrategy.maximumOverCapacity", "unreachableStrategy"],
    );
    assert.deepEqual(
      paths(
        {
          id: "a",
          cmd: "xx",
          residency: {},
          upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 1 },
        },
        normalizeMarathonApp,
      ),
      ["upgradeStrategy.maximumOverCapacity"],
    );
    // residency without persistent volumes and without strategies: accepted, no effect.
    assert.equal(
      ok({ id: "a", cmd: "xx", residency: { taskLostBehavior: "WAIT_FOREVER" } }).residency,
      undefined,
    );
    assert.deepEqual(paths({ ...resident, acceptedResourceRoles: ["*", "x"] }, normalizeMarathonApp), [
      "acceptedResourceRoles",
      "acceptedResourceRoles",
    ]);
  });

  it("unreachableStrategy: inactiveAfterSeconds <= expungeAfterSeconds", () => {
    assert.deepEqual(
      issues({
        id: "a",
        cmd: "xx",
        unreachableStrategy: { inactiveAfterSeconds: 600, expungeAfterSeconds: 300 },
      }),
      [
        {
          path: "unreachableStrategy.inactiveAfterSeconds",
          message: "inactiveAfterSeconds (600) must be less or equal to expungeAfterSeconds, which is 300",
        },
      ],
    );
  });

  it("port names and fixed ports are unique; port mapping names too", () => {
    assert.deepEqual(
      paths({
        id: "a",
        cmd: "xx",
        portDefinitions: [{ name: "h" }, { name: "h" }, { port: 80 }, { port: 80 }],
      }),
      ["portDefinitions[1].name", "portDefinitions[3]"],
    );
    assert.deepEqual(paths({ id: "a", cmd: "xx", ports: [80, 80] }), ["ports"]);
    assert.ok(ok({ id: "a", cmd: "xx", portDefinitions: [{ port: 0 }, { port: 0 }] }));
    assert.deepEqual(
      paths({
        id: "a",
        container: { docker: { image: "x" }, portMappings: [{ name: "p" }, { name: "p" }] },
        networks: [{ mode: "container/bridge" }],
      }),
      ["container.portMappings[1].name"],
    );
  });

  it("health checks: portIndex within the ports, COMMAND needs a command, one Mesos check", () => {
    assert.deepEqual(paths({ id: "a", cmd: "xx", healthChecks: [{ portIndex: 1 }] }), [
      "healthChecks[0].portIndex",
    ]);
    assert.deepEqual(paths({ id: "a", cmd: "xx", portDefinitions: [], healthChecks: [{}] }), [
      "healthChecks[0].port",
    ]);
    assert.ok(ok({ id: "a", cmd: "xx", portDefinitions: [], healthChecks: [{ port: 8080 }] }));
    assert.ok(ok({ id: "a", cmd: "xx", ports: [0, 0], healthChecks: [{ portIndex: 1, protocol: "TCP" }] }));
    assert.deepEqual(paths({ id: "a", cmd: "xx", healthChecks: [{ protocol: "COMMAND" }] }), [
      "healthChecks[0].command",
    ]);
    assert.deepEqual(paths({ id: "a", cmd: "xx", healthChecks: [{ command: { value: "true" } }] }), [
      "healthChecks[0].protocol",
    ]);
    assert.deepEqual(
      paths({ id: "a", cmd: "xx", healthChecks: [{ protocol: "MESOS_HTTP" }, { protocol: "MESOS_TCP" }] }),
      ["healthChecks"],
    );
    assert.deepEqual(
      paths({ id: "a", cmd: "xx", healthChecks: [{ protocol: "HTTP", ipProtocol: "IPv6" }] }),
      ["healthChecks[0].ipProtocol"],
    );
  });

  it("readiness checks: at most one, on a named port, timeout below interval", () => {
    const base = { id: "a", cmd: "xx", portDefinitions: [{ name: "http-api" }] };
    assert.deepEqual(paths({ ...base, readinessChecks: [{}, { name: "b" }] }), ["readinessChecks"]);
    assert.deepEqual(paths({ ...base, readinessChecks: [{ portName: "other" }] }), [
      "readinessChecks[0].portName",
    ]);
    assert.deepEqual(paths({ ...base, readinessChecks: [{ timeoutSeconds: 30 }] }), [
      "readinessChecks[0].timeoutSeconds",
    ]);
  });

  it("networks: no mixing, named container networks, one container network for Docker", () => {
    const docker = { id: "a", container: { docker: { image: "x" } } };
    assert.deepEqual(paths({ ...docker, networks: [{ mode: "host" }, { mode: "container/bridge" }] }), [
      "networks",
    ]);
    assert.deepEqual(paths({ ...docker, networks: [{ mode: "container" }] }), ["networks"]);
    assert.deepEqual(
      paths({
        ...docker,
        networks: [
          { mode: "container", name: "a" },
          { mode: "container", name: "b" },
        ],
      }),
      ["networks"],
    );
    assert.deepEqual(paths({ ...docker, networks: [{ mode: "host", name: "x" }] }), ["networks"]);
    assert.ok(ok({ ...docker, networks: [{ name: "dcos" }] }));
  });

  it("constraints are checked as Marathon checks them", () => {
    const bad = [
      ["hostname", "UNIQUE", "x"],
      ["rack", "MAX_PER"],
      ["rack", "GROUP_BY", "two"],
      ["rack", "LIKE"],
      ["rack", "LIKE", "("],
      ["rack", "IS", "a b"],
      ["rack", "NEAR", "x"],
      ["rack"],
      "rack",
      ["", "UNIQUE"],
    ];
    for (const c of bad)
      assert.deepEqual(paths({ id: "a", cmd: "xx", constraints: [c] }), ["constraints[0]"], String(c));
    assert.ok(
      ok({
        id: "a",
        cmd: "xx",
        constraints: [
          ["rack", "CLUSTER"],
          ["rack", "GROUP_BY"],
          ["r", "IS", "rack-1"],
        ],
      }),
    );
  });

  it("single instance apps: at most one instance, upgrade 0/0", () => {
    const labels = { MARATHON_SINGLE_INSTANCE_APP: "true" };
    assert.deepEqual(paths({ id: "a", cmd: "xx", labels, instances: 2 }), ["instances", "upgradeStrategy"]);
    assert.ok(
      ok({
        id: "a",
        cmd: "xx",
        labels,
        upgradeStrategy: { minimumHealthCapacity: 0, maximumOverCapacity: 0 },
      }),
    );
  });

  it("resource limits are at least the request; env secrets must be declared", () => {
    assert.deepEqual(
      paths({ id: "a", cmd: "xx", mem: 256, resourceLimits: { mem: 128, cpus: "unlimited" } }),
      ["resourceLimits.mem"],
    );
    assert.deepEqual(paths({ id: "a", cmd: "xx", env: { A: { secret: "nope" } } }, normalizeMarathonApp), [
      "env.A.secret",
    ]);
  });

  it("keeps Drover's size limits", () => {
    assert.deepEqual(paths({ id: "a", cmd: "x".repeat(32 * 1024 + 1) }), ["cmd"]);
    assert.deepEqual(paths({ id: "a", container: { docker: { image: "x".repeat(513) } } }), [
      "container.docker.image",
    ]);
    assert.deepEqual(paths({ id: "a", cmd: "xx", instances: 1001 }), ["instances"]);
    const env = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`V${i}`, "x"]));
    assert.deepEqual(paths({ id: "a", cmd: "xx", env }), ["env"]);
    assert.deepEqual(paths({ id: "a", cmd: "xx", labels: { k: "v".repeat(4097) } }), ["labels.k"]);
    assert.deepEqual(paths({ id: "a", cmd: "xx", ports: Array(33).fill(0) }), ["ports"]);
  });
});
