import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidArgumentError } from "@drover/common";
import { loadAgentConfig, loadMasterConfig } from "./index.js";

test("defaults are embedded", () => {
  const c = loadMasterConfig({ env: {}, argv: [] });
  assert.equal(c.listen, "0.0.0.0:5050");
  assert.equal(c.leaderTtlSeconds, 3);
  assert.deepEqual(c.etcdEndpoints, ["http://127.0.0.1:2379"]);
});

test("environment overrides defaults", () => {
  const c = loadAgentConfig({
    env: { DROVER_AGENT_CPUS: "2.5", DROVER_AGENT_ATTRIBUTES: "rack:r1,zone:a", DROVER_MASTERS: "a:1, b:2" },
    argv: [],
  });
  assert.equal(c.cpus, 2.5);
  assert.deepEqual(c.attributes, { rack: "r1", zone: "a" });
  assert.deepEqual(c.masters, ["a:1", "b:2"]);
});

test("a bad value names the field", () => {
  assert.throws(
    () => loadMasterConfig({ env: { DROVER_LEADER_TTL_SECONDS: "abc" }, argv: [] }),
    (err: unknown) => err instanceof InvalidArgumentError && err.issues[0]?.path === "leaderTtlSeconds",
  );
});
