import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type AppSpec, AppSpecSchema, appResources } from "./app.js";
import { type FieldIssue, validate } from "./validation.js";

const minimal = { id: "web", container: { docker: { image: "nginx:1.27" } } };

function issuesOf(input: unknown): FieldIssue[] {
  const r = validate(AppSpecSchema, input);
  assert.equal(r.ok, false, "expected the input to be rejected");
  return r.ok ? [] : r.issues;
}

function pathsOf(input: unknown): string[] {
  return issuesOf(input).map((i) => i.path);
}

describe("AppSpecSchema", () => {
  it("applies the defaults", () => {
    const r = validate(AppSpecSchema, minimal);
    assert.ok(r.ok);
    const expected: AppSpec = {
      id: "web",
      container: { docker: { image: "nginx:1.27" } },
      instances: 1,
      cpus: 0.1,
      mem: 32,
      disk: 0,
      env: {},
      labels: {},
    };
    assert.deepEqual(r.value, expected);
  });

  it("keeps every given field", () => {
    const full = {
      ...minimal,
      cmd: "nginx -g 'daemon off;'",
      instances: 3,
      cpus: 0.5,
      mem: 256,
      disk: 100,
      env: { FOO: "bar" },
      labels: { team: "platform" },
    };
    const r = validate(AppSpecSchema, full);
    assert.ok(r.ok);
    assert.deepEqual(r.value, full);
    assert.deepEqual(appResources(r.value), { cpus: 0.5, mem: 256, disk: 100, ports: [] });
  });

  it("accepts ids of 1 and 63 chars and rejects bad ids", () => {
    for (const id of ["a", "a1-b2", "9", "x".repeat(63)]) {
      assert.ok(validate(AppSpecSchema, { ...minimal, id }).ok, id);
    }
    for (const id of ["", "-a", "a-", "Web", "a_b", "a.b", "x".repeat(64), "a b"]) {
      assert.deepEqual(pathsOf({ ...minimal, id }), ["id"], JSON.stringify(id));
    }
  });

  it("rejects empty images or images with whitespace", () => {
    assert.deepEqual(issuesOf({ ...minimal, container: { docker: { image: "" } } }), [
      { path: "container.docker.image", message: "must not be empty" },
    ]);
    assert.deepEqual(issuesOf({ ...minimal, container: { docker: { image: "nginx latest" } } }), [
      { path: "container.docker.image", message: "must not contain whitespace" },
    ]);
  });

  it("reports the exact path for a wrong type", () => {
    assert.deepEqual(issuesOf({ ...minimal, instances: "3" }), [
      { path: "instances", message: "expected number, got string" },
    ]);
    assert.deepEqual(issuesOf({ ...minimal, env: { FOO: 1 } }), [
      { path: "env.FOO", message: "expected string, got number" },
    ]);
    assert.deepEqual(issuesOf({ ...minimal, container: { docker: { image: null } } }), [
      { path: "container.docker.image", message: "expected string, got null" },
    ]);
  });

  it("reports missing required fields", () => {
    assert.deepEqual(issuesOf({ id: "web" }), [{ path: "container", message: "required" }]);
    assert.deepEqual(issuesOf({ ...minimal, container: { docker: {} } }), [
      { path: "container.docker.image", message: "required" },
    ]);
  });

  it("enforces the numeric limits", () => {
    assert.deepEqual(issuesOf({ ...minimal, instances: -1 }), [
      { path: "instances", message: "must be >= 0" },
    ]);
    assert.deepEqual(issuesOf({ ...minimal, instances: 1001 }), [
      { path: "instances", message: "must be <= 1000" },
    ]);
    assert.deepEqual(issuesOf({ ...minimal, instances: 1.5 }), [
      { path: "instances", message: "must be an integer" },
    ]);
    assert.deepEqual(issuesOf({ ...minimal, cpus: 0.005 }), [{ path: "cpus", message: "must be >= 0.01" }]);
    assert.deepEqual(issuesOf({ ...minimal, cpus: 65 }), [{ path: "cpus", message: "must be <= 64" }]);
    assert.deepEqual(issuesOf({ ...minimal, mem: 5 }), [{ path: "mem", message: "must be >= 6" }]);
    assert.deepEqual(issuesOf({ ...minimal, mem: 1048577 }), [
      { path: "mem", message: "must be <= 1048576" },
    ]);
    assert.deepEqual(issuesOf({ ...minimal, disk: -1 }), [{ path: "disk", message: "must be >= 0" }]);
    assert.deepEqual(pathsOf({ ...minimal, cpus: Number.NaN }), ["cpus"]);
    assert.ok(validate(AppSpecSchema, { ...minimal, instances: 0, cpus: 64, mem: 6 }).ok);
  });

  it("rejects an empty cmd", () => {
    assert.deepEqual(issuesOf({ ...minimal, cmd: "" }), [{ path: "cmd", message: "must not be empty" }]);
  });

  it("rejects unknown fields at every level, one issue per key", () => {
    assert.deepEqual(issuesOf({ ...minimal, foo: 1 }), [{ path: "foo", message: "unknown field" }]);
    assert.deepEqual(issuesOf({ ...minimal, container: { docker: { image: "x", tag: "1" } } }), [
      { path: "container.docker.tag", message: "unknown field" },
    ]);
    assert.deepEqual(
      pathsOf({ ...minimal, foo: 1, bar: 2, container: { docker: { image: "x" }, volumes: [] } }),
      ["container.volumes", "foo", "bar"],
    );
  });

  it("reserves labels starting with drover.", () => {
    assert.deepEqual(pathsOf({ ...minimal, labels: { "drover.app": "x", ok: "y" } }), ["labels.drover.app"]);
    assert.ok(validate(AppSpecSchema, { ...minimal, labels: { "x.drover.app": "x" } }).ok);
  });

  it("rejects a non-object root", () => {
    assert.deepEqual(issuesOf([]), [{ path: "", message: "expected object, got array" }]);
    assert.deepEqual(issuesOf(null), [{ path: "", message: "expected object, got null" }]);
  });

  it("does not share default records between parses", () => {
    const a = AppSpecSchema.parse(minimal);
    const b = AppSpecSchema.parse(minimal);
    a.env.X = "1";
    assert.deepEqual(b.env, {});
  });
});
