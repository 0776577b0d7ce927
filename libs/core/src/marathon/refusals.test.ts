import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { normalizeApp, normalizeMarathonApp } from "./app.js";
import { ALLOWED_DOCKER_PARAMETERS, REFUSED_FIELDS } from "./refusals.js";

const docker = (extra: Record<string, unknown> = {}, dockerExtra: Record<string, unknown> = {}) => ({
  id: "/app",
  container: { type: "DOCKER", docker: { image: "nginx", ...dockerExtra }, ...extra },
});

/**
 * One definition per row of REFUSED_FIELDS: Marathon accepts it (with its secrets declared, and so
 * on), Drover refuses it by the field's path.
 */
const CASES: Record<string, { input: unknown; path: string }> = {
  secrets: { input: { id: "a", cmd: "xx", secrets: { s: { source: "/db" } } }, path: "secrets" },
  "env.<NAME>": {
    input: { id: "a", cmd: "xx", env: { PW: { secret: "s" } }, secrets: { s: { source: "/db" } } },
    path: "env.PW",
  },
  "container.docker.pullConfig": {
    input: {
      id: "a",
      args: ["x"],
      container: { type: "MESOS", docker: { image: "i", pullConfig: { secret: "s" } } },
      secrets: { s: { source: "/cfg" } },
    },
    path: "container.docker.pullConfig",
  },
  "container.volumes[i].secret": {
    input: {
      ...docker({ volumes: [{ containerPath: "/s", secret: "s" }] }),
      secrets: { s: { source: "/x" } },
    },
    path: "container.volumes[0].secret",
  },
  "container.volumes[i].external": {
    input: docker({
      volumes: [
        {
          containerPath: "/d",
          external: { name: "v", provider: "dvdi", options: { "dvdi/driver": "rexray" } },
          mode: "RW",
        },
      ],
    }),
    path: "container.volumes[0].external",
  },
  "container.volumes[i].persistent.type": {
    input: docker({
      volumes: [{ containerPath: "data", mode: "RW", persistent: { type: "mount", size: 100 } }],
    }),
    path: "container.volumes[0].persistent.type",
  },
  "container.volumes[i].persistent.profileName": {
    input: docker({
      volumes: [{ containerPath: "data", mode: "RW", persistent: { size: 100, profileName: "fast" } }],
    }),
    path: "container.volumes[0].persistent.profileName",
  },
  "container.volumes[i].hostPath": {
    input: docker({ volumes: [{ containerPath: "/x", hostPath: "logs/../../etc", mode: "RO" }] }),
    path: "container.volumes[0].hostPath",
  },
  gpus: { input: { id: "a", cmd: "nvidia-smi", gpus: 1 }, path: "gpus" },
  executor: { input: { id: "a", cmd: "xx", executor: "/opt/custom-executor" }, path: "executor" },
  executorResources: {
    input: { id: "a", cmd: "xx", executorResources: { cpus: 0.1 } },
    path: "executorResources",
  },
  "container.appc": {
    input: { id: "a", cmd: "xx", container: { type: "MESOS", appc: { image: "coreos.com/etcd:v2" } } },
    path: "container.appc",
  },
  "container.linuxInfo": {
    input: { id: "a", cmd: "xx", container: { type: "MESOS", linuxInfo: { seccomp: { unconfined: true } } } },
    path: "container.linuxInfo",
  },
  "container.docker.parameters[i].key": {
    input: docker({}, { parameters: [{ key: "pid", value: "host" }] }),
    path: "container.docker.parameters[0].key",
  },
  "container.docker.parameters[i].value": {
    input: docker({}, { parameters: [{ key: "env", value: "AWS_SECRET_ACCESS_KEY" }] }),
    path: "container.docker.parameters[0].value",
  },
  "container.docker.privileged": {
    input: { id: "a", cmd: "xx", container: { type: "MESOS", docker: { image: "i", privileged: true } } },
    path: "container.docker.privileged",
  },
  "healthChecks[i].ipProtocol": {
    input: {
      ...docker(),
      networks: [{ mode: "container", name: "v6" }],
      healthChecks: [{ protocol: "MESOS_HTTP", ipProtocol: "IPv6" }],
    },
    path: "healthChecks[0].ipProtocol",
  },
  check: { input: { id: "a", cmd: "xx", check: { http: { portIndex: 0 } } }, path: "check" },
  cpus: { input: { id: "a", cmd: "xx", cpus: 0.005 }, path: "cpus" },
  mem: { input: { id: "a", cmd: "xx", mem: 4 }, path: "mem" },
  acceptedResourceRoles: {
    input: { id: "/dev/a", cmd: "xx", role: "dev", acceptedResourceRoles: ["dev"] },
    path: "acceptedResourceRoles",
  },
  role: { input: { id: "/dev/a", cmd: "xx", role: "dev" }, path: "role" },
};

describe("Drover's refusals", () => {
  it("every row of the table has a case, and every case is a row", () => {
    assert.deepEqual(Object.keys(CASES).sort(), REFUSED_FIELDS.map((r) => r.field).sort());
  });

  for (const [field, { input, path }] of Object.entries(CASES)) {
    it(`${field}: Marathon accepts it, Drover refuses it by name`, () => {
      const marathon = normalizeMarathonApp(input);
      assert.ok(
        marathon.ok,
        `Marathon should accept it: ${JSON.stringify(marathon.ok ? [] : marathon.issues)}`,
      );
      const r = normalizeApp(input);
      assert.equal(r.ok, false);
      if (r.ok) return;
      const refusal = r.issues.find((i) => i.path === path);
      assert.ok(refusal, `no issue at ${path}: ${JSON.stringify(r.issues)}`);
      assert.match(refusal.message, /^not supported: ./);
      for (const i of r.issues) assert.match(i.message, /^not supported: /, JSON.stringify(i));
    });
  }

  it("names every refused element (several docker parameters, several env secrets)", () => {
    const r = normalizeApp({
      ...docker(
        {},
        {
          parameters: [
            { key: "hostname", value: "a.corp.org" },
            { key: "volumes-from", value: "other" },
            { key: "lxc-conf", value: "..." },
            { key: "label", value: "drover.task_id=x" },
            { key: "env", value: "A=1" },
          ],
        },
      ),
      env: { A: { secret: "s" }, B: "plain", C: { secret: "s" } },
      secrets: { s: { source: "x" } },
    });
    assert.ok(!r.ok);
    if (r.ok) return;
    assert.deepEqual(
      r.issues.map((i) => i.path),
      [
        "secrets",
        "env.A",
        "env.C",
        "container.docker.parameters[1].key",
        "container.docker.parameters[2].key",
        "container.docker.parameters[3].value",
      ],
    );
    assert.match(r.issues[3]?.message ?? "", /"volumes-from": volumes come from container.volumes/);
  });

  it("accepts every allowed docker parameter, and what Drover can honour", () => {
    const parameters = ALLOWED_DOCKER_PARAMETERS.map((key) => ({ key, value: key === "env" ? "A=1" : "x" }));
    assert.ok(normalizeApp(docker({}, { parameters, privileged: true, forcePullImage: true })).ok);
    for (const ok of [
      { id: "a", cmd: "xx", executor: "//cmd" },
      { id: "a", cmd: "xx", gpus: 0 },
      { id: "a", cmd: "xx", residency: { taskLostBehavior: "WAIT_FOREVER" } },
      { id: "a", cmd: "xx", acceptedResourceRoles: ["*"] },
      { id: "a", cmd: "xx", role: "*" },
      { id: "a", cmd: "xx", tty: true, user: "nobody", taskKillGracePeriodSeconds: 30 },
      docker({ volumes: [{ containerPath: "/var/log/app", hostPath: "logs", mode: "RW" }] }),
      docker({ volumes: [{ containerPath: "/sock", hostPath: "/var/run/docker.sock", mode: "RW" }] }),
      { ...docker(), healthChecks: [{ protocol: "MESOS_HTTP", ipProtocol: "IPv4" }] },
    ])
      assert.ok(normalizeApp(ok).ok, JSON.stringify(ok));
  });

  it("a role is accepted when it is the scheduler's", () => {
    const input = { id: "/dev/a", cmd: "xx", role: "dev", acceptedResourceRoles: ["*", "dev"] };
    assert.ok(normalizeApp(input, { role: "dev" }).ok);
    assert.ok(normalizeApp({ id: "/a", cmd: "xx", role: "slave_public" }, { role: "slave_public" }).ok);
  });

  it("the README lists every refused field", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("## Marathon app definitions"));
    assert.ok(section.length > 100, "libs/core/README.md has a section 'Marathon app definitions'");
    for (const { field } of REFUSED_FIELDS) assert.ok(section.includes(`\`${field}\``), field);
  });
});
