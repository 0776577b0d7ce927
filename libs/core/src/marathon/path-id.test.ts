import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  appIdToKey,
  canonicalId,
  checkAppId,
  checkPathId,
  keyToAppId,
  taskIdPrefix,
  taskIdToAppId,
} from "./path-id.js";

describe("Marathon ids", () => {
  it("accepts Marathon's valid ids and makes them absolute", () => {
    const cases: [string, string][] = [
      ["/prod/web-1", "/prod/web-1"],
      ["/a.b/c", "/a.b/c"],
      ["nginx", "/nginx"],
      ["/test/product-a/pg-backend-2.5.7", "/test/product-a/pg-backend-2.5.7"],
      ["//a//b/", "/a/b"],
      ["9", "/9"],
      ["a-b/c--d", "/a-b/c--d"],
    ];
    for (const [raw, id] of cases) assert.deepEqual(checkAppId(raw), { ok: true, id }, raw);
  });

  it("resolves '..' against the root, never above it", () => {
    assert.deepEqual(checkAppId("/a/b/../c"), { ok: true, id: "/a/c" });
    assert.deepEqual(checkAppId("../db"), { ok: true, id: "/db" });
    assert.deepEqual(checkAppId("/../../x"), { ok: true, id: "/x" });
    assert.equal(canonicalId("../database", "/product/service"), "/product/database");
    assert.equal(canonicalId("/abs", "/product/service"), "/abs");
  });

  it("refuses bad ids with a reason", () => {
    const bad = [
      "",
      "/",
      "/My_App",
      "/-app",
      "/app-",
      "/x/tasks",
      "/x/restart",
      "versions",
      "./a",
      "a/./b",
      "a..b",
      ".a",
      "/a b",
      "/..",
      "a/..",
      "UPPER",
      "é",
    ];
    for (const raw of bad) {
      const r = checkAppId(raw);
      assert.equal(r.ok, false, raw);
      if (!r.ok) assert.ok(r.message.length > 0);
    }
    const r = checkAppId("/x/tasks");
    assert.ok(!r.ok && /reserved keywords: restart, tasks, versions/.test(r.message));
  });

  it("limits the key of an app id to LIMITS.appIdChars (63), not a dependency's", () => {
    const long = `/${"a".repeat(30)}/${"b".repeat(32)}`; // key: 30 + 1 + 32 = 63
    assert.ok(checkAppId(long).ok);
    assert.equal(checkAppId(`${long}c`).ok, false);
    assert.ok(checkPathId(`${long}c`).ok);
  });

  it("maps ids to keys and back", () => {
    assert.equal(appIdToKey("/product/service/frontend"), "product_service_frontend");
    assert.equal(keyToAppId("product_service_frontend"), "/product/service/frontend");
    assert.equal(appIdToKey("/web"), "web");
    assert.equal(taskIdPrefix("/a.b/c"), "a.b_c.");
    assert.equal(taskIdToAppId("a.b_c.5f0e7b43-8c1d-4b0a-9a55-0a8e4d3c2b1a"), "/a.b/c");
    assert.equal(taskIdToAppId("nodot"), undefined);
  });

  it("keys are reversible for every valid id", () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?$/);
    const segment = fc.array(label, { minLength: 1, maxLength: 3 }).map((l) => l.join("."));
    const id = fc
      .array(segment, { minLength: 1, maxLength: 4 })
      .map((s) => `/${s.join("/")}`)
      .filter((s) => checkAppId(s).ok);
    fc.assert(
      fc.property(id, (raw) => {
        assert.equal(keyToAppId(appIdToKey(raw)), raw);
        assert.ok(!appIdToKey(raw).includes("/"));
        const taskId = `${taskIdPrefix(raw)}0b6c1e5e-4a0f-4e55-8e8f-3f1d2c3b4a5d`;
        assert.equal(taskIdToAppId(taskId), raw);
      }),
    );
  });
});
