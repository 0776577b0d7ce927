#!/usr/bin/env node
// Runs `node --test` on the compiled test files (`*.test.js`) found under the given folders.
//
//   node deploy/lib/run-tests.mjs [NODE --test FLAGS...] -- FOLDER...
//
// FOLDER is a path relative to the current directory; its segments may hold `*`, `?` and `{a,b}`
// (e.g. 'libs/*/dist' 'services/{master,scheduler,cli}/dist'). Each folder is searched recursively for
// `*.test.js`, skipping node_modules. The files are handed to `node --test` by name: since Node 22,
// `node --test FOLDER` runs no test in FOLDER and still succeeds.
//
// Fails (exit status 1, with a message) when a folder pattern matches no folder, when no test file is
// found, or when node's summary reports zero tests run (or no summary at all); otherwise it exits with
// node's status. Every flag before `--` goes to `node --test`; without a --test-reporter it uses spec.
// A TAP copy of the results goes to a temporary file, only to read the summary. With --list (before --) it
// only prints the test files it would run.
//
// Environment: DROVER_TEST_NODE, the node binary that runs the tests (default: the one running this
// script), e.g. the pinned Node 24 of `bash deploy/lib/node24.sh`.

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { constants, tmpdir } from "node:os";
import path from "node:path";

const log = (message) => process.stderr.write(`run-tests: ${message}\n`);

function fail(message) {
  log(message);
  process.exit(1);
}

function parseArgs(argv) {
  const sep = argv.indexOf("--");
  if (sep < 0) fail("usage: node deploy/lib/run-tests.mjs [NODE --test FLAGS...] -- FOLDER...");
  const folders = argv.slice(sep + 1);
  if (folders.length === 0) fail("no folder given after --");
  return { flags: argv.slice(0, sep), folders };
}

// One path segment with `*`, `?` and `{a,b}` → a RegExp matching a whole directory entry name.
function segmentRegExp(segment) {
  let source = "";
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else if (c === "{") {
      const end = segment.indexOf("}", i);
      if (end < 0) fail(`unbalanced { in ${segment}`);
      const options = segment.slice(i + 1, end).split(",");
      source += `(?:${options.map((o) => o.replace(/[.+^$()|[\]\\]/g, "\\$&")).join("|")})`;
      i = end;
    } else source += c.replace(/[.+^$()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

const isDir = (p) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

// The folders a pattern names, in sorted order.
function expandFolder(pattern) {
  let bases = [path.isAbsolute(pattern) ? path.sep : "."];
  for (const segment of pattern.split("/").filter((s) => s !== "" && s !== ".")) {
    const next = [];
    for (const base of bases) {
      if (!/[*?{]/.test(segment)) {
        const p = path.join(base, segment);
        if (isDir(p)) next.push(p);
        continue;
      }
      const re = segmentRegExp(segment);
      const names = readdirSync(base, { withFileTypes: true })
        .filter(
          (e) =>
            (e.isDirectory() || (e.isSymbolicLink() && isDir(path.join(base, e.name)))) && re.test(e.name),
        )
        .map((e) => e.name)
        .sort();
      for (const name of names) next.push(path.join(base, name));
    }
    bases = next;
  }
  return bases;
}

function findTestFiles(dir, out) {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "node_modules") findTestFiles(p, out);
    } else if (entry.name.endsWith(".test.js") && (entry.isFile() || entry.isSymbolicLink())) out.push(p);
  }
}

// Normalize `--test-reporter X` to `--test-reporter=X` (same for the destination) and add the TAP reporter.
function nodeArgs(flags, tapFile) {
  const out = [];
  for (let i = 0; i < flags.length; i++) {
    const f = flags[i];
    if ((f === "--test-reporter" || f === "--test-reporter-destination") && i + 1 < flags.length) {
      out.push(`${f}=${flags[++i]}`);
    } else out.push(f);
  }
  const reporters = out.filter((f) => f.startsWith("--test-reporter=")).length;
  const destinations = out.filter((f) => f.startsWith("--test-reporter-destination=")).length;
  if (reporters === 0) out.push("--test-reporter=spec", "--test-reporter-destination=stdout");
  else if (destinations === 0)
    for (let i = 0; i < reporters; i++) out.push("--test-reporter-destination=stdout");
  out.push("--test-reporter=tap", `--test-reporter-destination=${tapFile}`);
  return ["--test", ...out];
}

// The top-level summary at the end of a TAP stream (`# tests 12`, `# pass 12`, …), and the test files
// reported as a passing test of their own: node does that for a file that ran no test.
function tapSummary(text, files) {
  const summary = {};
  const byPath = new Map(files.map((f) => [path.resolve(f), f]));
  const empty = [];
  for (const line of text.split("\n")) {
    const m = /^# (tests|suites|pass|fail|cancelled|skipped|todo) (\d+)$/.exec(line);
    if (m) summary[m[1]] = Number(m[2]);
    const point = /^ok \d+ - (.*)$/.exec(line);
    if (point && byPath.has(point[1])) empty.push(byPath.get(point[1]));
  }
  return "tests" in summary ? { ...summary, empty } : undefined;
}

function main() {
  const { flags, folders } = parseArgs(process.argv.slice(2));
  const dirs = [];
  for (const pattern of folders) {
    const matched = expandFolder(pattern);
    if (matched.length === 0) fail(`no folder matches ${pattern} (did you run npm run build?)`);
    for (const d of matched) if (!dirs.includes(d)) dirs.push(d);
  }
  const files = [];
  for (const d of dirs) findTestFiles(d, files);
  if (files.length === 0) {
    fail(`no test file (*.test.js) under ${dirs.join(" ")} (did you run npm run build?)`);
  }

  if (flags.includes("--list")) {
    for (const f of files) process.stdout.write(`${f}\n`);
    return;
  }

  const node = process.env.DROVER_TEST_NODE || process.execPath;
  const version = spawnSync(node, ["--version"], { encoding: "utf8" });
  if (version.status !== 0) fail(`${node} --version failed: ${version.error?.message ?? version.stderr}`);
  const tmp = mkdtempSync(path.join(tmpdir(), "drover-run-tests-"));
  const tapFile = path.join(tmp, "results.tap");
  const perDir = dirs
    .map((d) => [d, files.filter((f) => f.startsWith(`${d}${path.sep}`)).length])
    .filter(([, n]) => n > 0)
    .map(([d, n]) => `${d} (${n})`);
  log(`${files.length} test file(s): ${perDir.join(", ")}; node ${version.stdout.trim()} (${node})`);

  const child = spawn(node, [...nodeArgs(flags, tapFile), ...files], { stdio: "inherit" });
  const forward = (signal) => child.kill(signal);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, forward);
  child.on("error", (err) => {
    rmSync(tmp, { recursive: true, force: true });
    fail(`could not run ${node}: ${err.message}`);
  });
  child.on("exit", (code, signal) => {
    let tap = "";
    try {
      tap = readFileSync(tapFile, "utf8");
    } catch {}
    rmSync(tmp, { recursive: true, force: true });
    if (signal) {
      log(`node --test was killed by ${signal}`);
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
    const summary = tapSummary(tap, files);
    if (!summary) fail(`node --test printed no summary (exit status ${code})`);
    for (const f of summary.empty) log(`no test in ${f}`);
    const skipped = summary.skipped ?? 0;
    const todo = summary.todo ?? 0;
    const ran = summary.tests - skipped - todo - summary.empty.length;
    if (ran <= 0) {
      fail(
        `zero tests run in ${files.length} file(s) (tests ${summary.tests}, skipped ${skipped}, todo ${todo}, ` +
          `files without tests ${summary.empty.length}): failing`,
      );
    }
    if (code !== 0)
      fail(`node --test failed (exit status ${code}; ${summary.fail ?? "?"} failed of ${summary.tests})`);
    log(
      `${summary.pass} of ${summary.tests} tests passed (${summary.skipped ?? 0} skipped, ${summary.todo ?? 0} todo)`,
    );
  });
}

main();
