/**
 * The app names the rest of Drover uses (AppSpec, parseAppSpecJson, appResources, appPortDemand)
 * are Marathon's app definition: the Marathon module's own tests (marathon/*.test.ts) cover the
 * model; these cover what Drover's earlier app JSON becomes and the size limit of a definition.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { appPortDemand, appResources, parseAppSpecJson } from "./app.js";
import { LIMITS } from "./limits.js";

describe("app definitions", () => {
  it("Drover's earlier app JSON is a Marathon app: id made absolute, Marathon's defaults for the rest", () => {
    const r = parseAppSpecJson(
      JSON.stringify({
        id: "web",
        container: { docker: { image: "nginx:1.27" } },
        cmd: "nginx -g 'daemon off;'",
        instances: 3,
        cpus: 0.5,
        mem: 256,
        disk: 100,
        env: { FOO: "bar" },
        labels: { team: "platform" },
      }),
    );
    assert.ok(r.ok, JSON.stringify(!r.ok && r.issues));
    assert.equal(r.value.id, "/web");
    assert.equal(r.value.container?.type, "DOCKER");
    assert.equal(r.value.container?.docker?.image, "nginx:1.27");
    assert.deepEqual(r.value.env, { FOO: "bar" });
    assert.equal(r.value.upgradeStrategy.minimumHealthCapacity, 1);
    assert.deepEqual(appResources(r.value), { cpus: 0.5, mem: 256, disk: 100, ports: [] });
    // Marathon's default for host networking: one port per task, any free one.
    assert.deepEqual(appPortDemand(r.value), { ports: 1, requestedPorts: [] });
  });

  it("Drover's earlier fixed host ports stay fixed (requirePorts), 0 stays any", () => {
    const r = parseAppSpecJson('{"id":"web","container":{"docker":{"image":"nginx"}},"ports":[0,8080]}');
    assert.ok(r.ok, JSON.stringify(!r.ok && r.issues));
    assert.equal(r.value.requirePorts, true);
    assert.deepEqual(appPortDemand(r.value), { ports: 1, requestedPorts: [8080] });
  });

  it("a command-only app needs no container", () => {
    const r = parseAppSpecJson('{"id":"/batch/sleeper","cmd":"sleep 60","cpus":0.1,"mem":32}');
    assert.ok(r.ok, JSON.stringify(!r.ok && r.issues));
    assert.equal(r.value.container, undefined);
    assert.equal(r.value.cmd, "sleep 60");
  });

  it("a definition over LIMITS.definitionBytes is refused before it is parsed", () => {
    const big = JSON.stringify({ id: "web", cmd: "x", labels: { a: "b".repeat(LIMITS.definitionBytes) } });
    const r = parseAppSpecJson(big);
    assert.equal(r.ok, false);
    assert.match(!r.ok ? (r.issues[0]?.message ?? "") : "", /bytes; at most/);
  });
});
