/**
 * The seeded fuzz run of CI (DESIGN.md: "boundaries that no input can crash, with a fuzz suite in CI"):
 * a few thousand hostile inputs, over every boundary of a real master and scheduler (gRPC, the framework
 * calls and the agent session, raw bytes on every method, NATS status messages, config loading), must
 * bring no violation: no process exits, no INTERNAL or UNKNOWN, no answer slower than the bound, no
 * echo of the input, every app stored valid, `drover admin verify-log` passing. Then the CLI's input
 * files: hostile app files given to the real `drover app add|update` are refused with one line that
 * names the field (or says invalid JSON), without a stack trace.
 *
 * A failure prints each kind of violation with examples and the command that replays one input
 * (`npm run fuzz -- --seed S --replay I`); `npm run fuzz -- --count N --seed S` runs a long campaign.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseAppSpecJson } from "@drover/core";
import fc from "fast-check";
import { type CliInput, cliFileContent, TARGETS } from "./fuzz/arbitraries.js";
import { runFuzz } from "./fuzz/run.js";
import { cliFileText, judgeCliRefusal, writeCliFile } from "./fuzz/targets.js";
import { type Cluster, startCluster, withClusterLogs } from "./harness/index.js";

/** The CI run: fixed, so that a failure here replays exactly with `npm run fuzz -- --seed … --replay …`. */
const SEED = 20_261_129;
const COUNT = 3000;
/** The CLI is covered by its own test below (spawning a process per input is too slow for thousands). */
const CI_TARGETS = TARGETS.filter((t) => t !== "cli");

let cluster: Cluster | undefined;
let dir = "";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-fuzz-test-"));
  cluster = await startCluster({
    masters: 1,
    schedulers: 1,
    agents: 0,
    env: { DROVER_MASTER_AGENT_REREGISTER_TIMEOUT_SECONDS: "2" },
  });
});

after(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

test(`seeded fuzz: ${COUNT} hostile inputs over every boundary bring no violation`, {
  timeout: 150_000,
}, async () => {
  const c = current();
  const report = await runFuzz({
    seed: SEED,
    count: COUNT,
    concurrency: 8,
    boundMs: 5_000,
    targets: CI_TARGETS,
    cluster: c,
    log: (line) => console.log(`fuzz: ${line}`),
  });
  console.log(report.text);
  await withClusterLogs(c, async () => {
    assert.equal(
      report.stoppedEarly,
      undefined,
      `the run stopped early: ${report.stoppedEarly}\n${report.text}`,
    );
    assert.equal(report.ran, COUNT, `only ${report.ran} of ${COUNT} inputs were sent\n${report.text}`);
    for (const t of CI_TARGETS)
      assert.ok(
        (report.byTarget[t] ? Object.values(report.byTarget[t]).length : 0) > 0,
        `no input reached ${t}`,
      );
    assert.equal(
      report.violations.length,
      0,
      `${report.violations.length} violations (seed ${SEED}):\n${report.text}`,
    );
  });
});

/** Hostile app files (each refused by the app schema) and a few that are always worth a try. */
function hostileFiles(): CliInput["file"][] {
  const generated = fc.sample(
    cliFileContent.filter((f) => !parseAppSpecJson(cliFileText(f)).ok),
    { seed: SEED, numRuns: 24 },
  );
  const valid = { id: "fz-cli", container: { docker: { image: "drover/busybox:1" } }, instances: 0 };
  const text = (s: string) => ({ text: s });
  const curated: CliInput["file"][] = [
    text(""),
    text(`\uFEFF${JSON.stringify({ ...valid, id: "Web" })}`),
    text(JSON.stringify({ ...valid, instances: "NaN" }).replace('"NaN"', "NaN")),
    text(JSON.stringify({ ...valid, cmd: "x".repeat(1024 * 1024) })),
    text(`${"[".repeat(100_000)}${"]".repeat(100_000)}`),
    text(`{"id":"fz-cli","__proto__":{"instances":5},"container":{"docker":{"image":"drover/busybox:1"}}}`),
    text(JSON.stringify({ ...valid, "\x1b[2J\x1b[31mred": 1 })),
    text(JSON.stringify({ ...valid, "line\nbreak": 1, "\u202Eevil": 2 })),
    text(JSON.stringify({ ...valid, id: "\uD800" })),
    { bytes: Uint8Array.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]) },
  ];
  return [...curated, ...generated];
}

test("CLI: hostile app files are refused with one line naming the field, no stack trace", {
  timeout: 120_000,
}, async () => {
  const c = current();
  const files = hostileFiles();
  const problems: string[] = [];
  const seen: string[] = [];
  // a few CLI processes at a time (each is a Node start)
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < files.length; i = next++) {
      const file = files[i];
      if (!file) continue;
      const text = cliFileText(file);
      assert.equal(parseAppSpecJson(text).ok, false, `file #${i} is valid: not a hostile input`);
      const path = await writeCliFile(dir, file);
      const args = i % 4 === 3 ? ["app", "update", "fzanchor-0", path] : ["app", "add", path];
      const r = await c.cli(args, { timeoutMs: 30_000 });
      const shown = `#${i} drover ${args.slice(0, -1).join(" ")} FILE (${JSON.stringify(text.slice(0, 80))}${text.length > 80 ? `… ${text.length} chars` : ""})`;
      if (r.code === 0) {
        problems.push(
          `${shown}: exit 0 for a file the app schema refuses; stdout ${JSON.stringify(r.stdout.slice(0, 200))}`,
        );
        continue;
      }
      for (const v of judgeCliRefusal(r, text)) problems.push(`${shown}: ${v.kind}: ${v.detail}`);
      seen.push(`${shown} → exit ${r.code}: ${r.stderr.trimEnd().slice(0, 200)}`);
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  console.log(`CLI refusals (${seen.length} of ${files.length}):\n  ${seen.join("\n  ")}`);
  assert.deepEqual(problems, [], `CLI input-file violations:\n  ${problems.join("\n  ")}`);
});
