import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { z } from "zod";
import { AppSpecSchema, parseAppSpecJson } from "./app.js";
import { MarathonAppInputSchema } from "./marathon/schema.js";
import { formatIssues, formatPath, validate, validateJson } from "./validation.js";

describe("formatPath and formatIssues", () => {
  it("joins keys with dots and indices in brackets", () => {
    assert.equal(formatPath([]), "");
    assert.equal(formatPath(["container", "docker", "image"]), "container.docker.image");
    assert.equal(formatPath(["ports", 0, "begin"]), "ports[0].begin");
  });

  it("formats issues on one line", () => {
    assert.equal(
      formatIssues([
        { path: "instances", message: "must be >= 0" },
        { path: "foo", message: "unknown field" },
      ]),
      "instances: must be >= 0; foo: unknown field",
    );
    assert.equal(
      formatIssues([{ path: "", message: "invalid JSON: oops\nmore" }]),
      "invalid JSON: oops more",
    );
    assert.equal(formatIssues([]), "");
  });
});

describe("validate with other schemas", () => {
  const schema = z.strictObject({
    ports: z.array(z.number().int()).max(2),
    kind: z.enum(["a", "b"]).optional(),
    name: z.string().max(3).optional(),
    when: z.union([z.number(), z.strictObject({ at: z.string() })]).optional(),
  });

  it("maps arrays, enums, unions and sizes", () => {
    const r = validate(schema, { ports: [1, "x"], kind: "c", name: "long", when: { at: 1 } });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.deepEqual(r.issues, [
      { path: "ports[1]", message: "expected number, got string" },
      { path: "kind", message: 'must be one of: "a", "b"' },
      { path: "name", message: "must be at most 3 characters" },
      { path: "when.at", message: "expected string, got number" },
    ]);
    assert.deepEqual(validate(schema, { ports: [1, 2, 3], when: "x" }), {
      ok: false,
      issues: [
        { path: "ports", message: "must have at most 2 items" },
        { path: "when", message: "expected number, got string" },
      ],
    });
  });

  it("reports a missing field as required, even when its name is on Object.prototype", () => {
    assert.deepEqual(validate(z.strictObject({ constructor: z.string() }), {}), {
      ok: false,
      issues: [{ path: "constructor", message: "required" }],
    });
  });

  it("returns the parsed value on success", () => {
    assert.deepEqual(validate(schema, { ports: [1] }), { ok: true, value: { ports: [1] } });
  });
});

describe("parseAppSpecJson", () => {
  it("parses a valid app", () => {
    const r = parseAppSpecJson('{"id":"web","container":{"docker":{"image":"nginx"}},"instances":2}');
    assert.ok(r.ok);
    assert.equal(r.value.instances, 2);
    assert.equal(r.value.mem, 128, "Marathon's default");
    assert.equal(r.value.id, "/web", "ids are absolute paths");
  });

  it("turns a syntax error into a root issue", () => {
    const r = parseAppSpecJson("{not json");
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(r.issues.length, 1);
    assert.equal(r.issues[0]?.path, "");
    assert.match(r.issues[0]?.message ?? "", /^invalid JSON: /);
  });

  it("reports schema issues with paths", () => {
    const r = parseAppSpecJson(
      '{"id":"web","container":{"docker":{"image":"nginx","tag":"x"}},"instances":"3","foo":1}',
    );
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.equal(
      formatIssues(r.issues),
      "container.docker.tag: unknown field; instances: expected number, got string; foo: unknown field",
    );
  });

  it("treats __proto__ as an unknown field, not a prototype", () => {
    const r = validateJson(
      AppSpecSchema,
      '{"id":"web","container":{"docker":{"image":"x"}},"__proto__":{"instances":5}}',
    );
    assert.deepEqual(r, { ok: false, issues: [{ path: "__proto__", message: "unknown field" }] });
  });
});

describe("validate properties", () => {
  const base = { id: "web", container: { docker: { image: "nginx" } } };
  // Every field Marathon knows, at the root and in container.docker (a random key must be unknown).
  const knownKeys = new Set([
    ...Object.keys(MarathonAppInputSchema.out.shape),
    "image",
    "forcePullImage",
    "parameters",
    "privileged",
    "credential",
    "pullConfig",
    "network",
    "portMappings",
  ]);
  const unknownKey = fc
    .string({ minLength: 1, maxLength: 12 })
    .filter((k) => !knownKeys.has(k) && k !== "__proto__");

  it("a wrongly typed field is reported at exactly its path", () => {
    const field = fc.constantFrom("instances", "cpus", "mem", "disk");
    // (null is not among them: Marathon reads a null field as absent.)
    const wrong = fc.oneof(fc.string(), fc.boolean(), fc.array(fc.integer(), { maxLength: 2 }));
    fc.assert(
      fc.property(field, wrong, (key, value) => {
        const r = validate(AppSpecSchema, { ...base, [key]: value });
        assert.equal(r.ok, false);
        if (!r.ok)
          assert.deepEqual(
            r.issues.map((i) => i.path),
            [key],
          );
      }),
    );
  });

  it("negative instances are reported at instances", () => {
    fc.assert(
      fc.property(fc.integer({ min: -1_000_000, max: -1 }), (n) => {
        assert.deepEqual(validate(AppSpecSchema, { ...base, instances: n }), {
          ok: false,
          issues: [{ path: "instances", message: "must be >= 0" }],
        });
      }),
    );
  });

  it("every unknown field is reported at its own path, at the root and nested", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(unknownKey, { minLength: 1, maxLength: 4 }),
        unknownKey,
        (rootKeys, nestedKey) => {
          const input: Record<string, unknown> = {
            ...base,
            container: { docker: { image: "nginx", [nestedKey === "image" ? "tag" : nestedKey]: 1 } },
          };
          for (const k of rootKeys) input[k] = 1;
          const r = validate(AppSpecSchema, input);
          assert.equal(r.ok, false);
          if (r.ok) return;
          const nested = `container.docker.${nestedKey === "image" ? "tag" : nestedKey}`;
          assert.deepEqual(new Set(r.issues.map((i) => i.path)), new Set([nested, ...rootKeys]));
          for (const i of r.issues) assert.equal(i.message, "unknown field");
        },
      ),
    );
  });
});
