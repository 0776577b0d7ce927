/** drover-sim's flags: when TASK_STARTING is reported. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseSimArgs } from "./config.js";

test("--starting: with-running by default, at-launch on request, anything else refused by name", () => {
  const def = parseSimArgs(["--agents", "2"]);
  assert.ok(def.ok);
  assert.equal(def.config.starting, "with-running");
  const at = parseSimArgs(["--agents", "2", "--starting", "at-launch"]);
  assert.ok(at.ok);
  assert.equal(at.config.starting, "at-launch");
  const bad = parseSimArgs(["--agents", "2", "--starting", "later"]);
  assert.ok(!bad.ok);
  assert.match(bad.error, /--starting/);
});
