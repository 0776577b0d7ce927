/**
 * `npm start` (deploy/local/start.sh) supervises its cluster: started on ports of its own with a fresh
 * DROVER_DATA_DIR, it restarts a scheduler killed with SIGKILL (reporting the exit and the backoff delay,
 * appending to the same log, rewriting $DROVER_DATA_DIR/run/scheduler.pid), and the new scheduler answers
 * the CLI; SIGINT then stops every process it started, in reverse order. A service that exits with status 2
 * (invalid configuration) is not restarted: the script reports it and stops the cluster with status 2.
 *
 * Needs what `npm start` needs (etcd, nats-server, Docker for the agent, the services built); the script
 * runs with DROVER_SKIP_DEPS=1, so it installs and builds nothing.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { freePort, repoRoot, runCli, StopWaiting, waitFor, withTimeout } from "./harness/index.js";

const PROCESSES = ["etcd", "nats", "master", "scheduler", "agent"] as const;
type ProcessName = (typeof PROCESSES)[number];

/** The script waits for etcd, NATS and a registered agent; on this small machine that takes ~5-10 s. */
const READY_MS = 45_000;
/** SIGINT → every process stopped (each gets SIGTERM; normally well under a second each). */
const STOP_MS = 45_000;

interface Script {
  readonly dir: string;
  /** Environment for the CLI against this cluster. */
  readonly cliEnv: Record<string, string>;
  readonly child: ChildProcess;
  /** Resolves with the script's exit status (128 + n when signal n ended it). */
  readonly exited: Promise<number>;
  readonly running: boolean;
  /** Everything the script printed (stdout and stderr). */
  output(): string;
  /** Every pid the script reported as started or restarted, with its process name. */
  pids(): Array<{ name: ProcessName; pid: number }>;
}

/** Scripts not yet cleaned up; killed (with what they started) if the test process exits early. */
const live = new Set<Script>();
process.on("exit", () => {
  for (const s of live) {
    if (s.running) s.child.kill("SIGKILL");
    for (const { pid } of s.pids()) killIfOurs(pid, s.dir, "SIGKILL");
  }
});

/** Running and not a zombie. */
function isAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
}

/** True if `pid` runs and was started by the script of `dir` (start.sh exports DROVER_DATA_DIR=<dir>). */
function isOurs(pid: number, dir: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(`DROVER_DATA_DIR=${dir}`);
  } catch {
    return false;
  }
}

function killIfOurs(pid: number, dir: string, signal: NodeJS.Signals): void {
  if (!isOurs(pid, dir)) return;
  try {
    process.kill(pid, signal);
  } catch {
    // exited meanwhile
  }
}

async function startScript(extraEnv: Record<string, string> = {}): Promise<Script> {
  const dir = await mkdtemp(join(tmpdir(), "drover-start-"));
  const [etcdPort, etcdPeerPort, natsPort, masterPort, schedulerPort, httpPort] = await Promise.all(
    Array.from({ length: 6 }, () => freePort()),
  );
  const master = `127.0.0.1:${masterPort}`;
  const scheduler = `127.0.0.1:${schedulerPort}`;
  const cliEnv = {
    DROVER_MASTERS: master,
    DROVER_SCHEDULERS: scheduler,
    DROVER_ETCD_ENDPOINTS: `http://127.0.0.1:${etcdPort}`,
    DROVER_NATS_SERVERS: `nats://127.0.0.1:${natsPort}`,
  };
  // The developer's own DROVER_* settings (a config file, an agent id, ...) must not leak into this cluster.
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith("DROVER_")) env[key] = value;
  Object.assign(env, {
    DROVER_SKIP_DEPS: "1",
    DROVER_DATA_DIR: dir,
    DROVER_ETCD_PORT: String(etcdPort),
    DROVER_ETCD_PEER_PORT: String(etcdPeerPort),
    DROVER_NATS_PORT: String(natsPort),
    DROVER_MASTER_LISTEN: master,
    DROVER_MASTER_ADVERTISE: master,
    DROVER_SCHEDULER_LISTEN: scheduler,
    DROVER_SCHEDULER_ADVERTISE: scheduler,
    DROVER_SCHEDULER_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
    DROVER_MASTERS: master,
    DROVER_SCHEDULERS: scheduler,
    // deploy/test.sh removes task containers with this label (this test starts none)
    DROVER_AGENT_EXTRA_LABELS: `drover.test.cluster=start-${randomBytes(4).toString("hex")}`,
    ...extraEnv,
  });
  const child = spawn("bash", [join(repoRoot, "deploy", "local", "start.sh")], {
    cwd: repoRoot,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  let running = true;
  const exited = new Promise<number>((resolve) => {
    child.once("error", (err) => {
      output += `[test] could not start start.sh: ${err.message}\n`;
      running = false;
      resolve(-1);
    });
    child.once("close", (code, signal) => {
      running = false;
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
  const script: Script = {
    dir,
    cliEnv,
    child,
    exited,
    get running() {
      return running;
    },
    output: () => output,
    pids() {
      const found: Array<{ name: ProcessName; pid: number }> = [];
      for (const m of output.matchAll(/^drover: (?:re)?started ([\w-]+) \(pid (\d+)/gm)) {
        found.push({ name: m[1] as ProcessName, pid: Number(m[2]) });
      }
      return found;
    },
  };
  live.add(script);
  return script;
}

/** The script's output and the end of each process's log, for failure messages. */
function describe(s: Script): string {
  const parts = [`--- start.sh output:\n${s.output()}`];
  for (const name of PROCESSES) {
    try {
      const log = readFileSync(join(s.dir, "logs", `${name}.log`), "utf8")
        .trimEnd()
        .split("\n");
      parts.push(`--- ${name}.log (last 15 lines):\n${log.slice(-15).join("\n")}`);
    } catch {
      // not started
    }
  }
  return parts.join("\n");
}

/**
 * Errors and warnings bash printed about the script ("start.sh: line N: ..."), leaving out its notices of
 * a process killed by a signal ("start.sh: line N: 1234 Killed setsid ..."), which are expected here.
 */
function bashComplaints(s: Script): string[] {
  return s
    .output()
    .split("\n")
    .filter((line) => /start\.sh: line \d+:/.test(line) && !/: line \d+: +\d+ Killed /.test(line));
}

/** Waits for `re` in the script's output (giving up at once if the script has exited) and returns the match. */
function waitForOutput(s: Script, what: string, re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return waitFor(
    what,
    async () => {
      const m = s.output().match(re);
      if (m) return m;
      if (!s.running) throw new StopWaiting(`start.sh exited\n${describe(s)}`);
      return undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

function readPidFile(s: Script, name: ProcessName): number | undefined {
  try {
    return Number(readFileSync(join(s.dir, "run", `${name}.pid`), "utf8").trim());
  } catch {
    return undefined;
  }
}

/** Stops the script if it still runs, kills whatever of its processes is left (by pid), removes its dir. */
async function cleanup(s: Script): Promise<void> {
  try {
    if (s.running) {
      s.child.kill("SIGTERM");
      await withTimeout("start.sh to stop after SIGTERM", s.exited, STOP_MS).catch(() => {
        s.child.kill("SIGKILL");
      });
    }
    for (const { pid } of s.pids()) killIfOurs(pid, s.dir, "SIGKILL");
    for (const name of PROCESSES) {
      const pid = readPidFile(s, name);
      if (pid) killIfOurs(pid, s.dir, "SIGKILL");
    }
    await waitFor("the script's processes to be gone", async () => s.pids().every((p) => !isAlive(p.pid)), {
      timeoutMs: 10_000,
    }).catch(() => undefined);
  } finally {
    live.delete(s);
    await rm(s.dir, { recursive: true, force: true });
  }
}

test("start.sh restarts a killed scheduler with backoff, and SIGINT stops everything it started", {
  timeout: 120_000,
}, async () => {
  const s = await startScript();
  try {
    await waitForOutput(s, "start.sh to print 'cluster ready'", /^drover: cluster ready/m, READY_MS);
    // The Marathon API's URL is printed, and it answers.
    const url = /^drover: Marathon +(http:\/\/\S+)\/v2\/apps/m.exec(s.output())?.[1];
    assert.ok(url, describe(s));
    assert.equal(await (await fetch(`${url}/ping`)).text(), "pong");

    // Every process was reported with its pid, and its pid file says the same.
    const first = new Map(s.pids().map((p) => [p.name, p.pid]));
    assert.deepEqual([...first.keys()].sort(), [...PROCESSES].sort(), describe(s));
    for (const name of PROCESSES) {
      const pid = first.get(name) ?? -1;
      assert.equal(readPidFile(s, name), pid, `run/${name}.pid`);
      assert.ok(isOurs(pid, s.dir), `${name} (pid ${pid}) runs, started by start.sh\n${describe(s)}`);
    }
    const oldPid = first.get("scheduler") ?? -1;
    await waitFor(
      "the first scheduler to answer 'app list'",
      async () => (await runCli(["app", "list"], s.cliEnv, { timeoutMs: 20_000 })).code === 0,
      { timeoutMs: 30_000, intervalMs: 500 },
    );

    process.kill(oldPid, "SIGKILL");
    const exitedLine = await waitForOutput(
      s,
      "start.sh to report the scheduler's exit",
      /^drover: scheduler exited \(status 137: SIGKILL\); restarting in (\d+) s \(restart 1\)$/m,
      10_000,
    );
    assert.equal(exitedLine[1], "1", "the first restart comes after the first delay, 1 s");
    const restarted = await waitForOutput(
      s,
      "start.sh to restart the scheduler",
      /^drover: restarted scheduler \(pid (\d+), restart 1\)$/m,
      10_000,
    );
    const newPid = Number(restarted[1]);
    assert.notEqual(newPid, oldPid);
    assert.ok(!isAlive(oldPid), "the killed scheduler is gone");
    assert.equal(readPidFile(s, "scheduler"), newPid, "run/scheduler.pid names the new scheduler");

    // The new scheduler answers (the old one is dead, so the answer is the new one's), once it leads.
    await waitFor(
      "the restarted scheduler to answer 'app list'",
      async () => {
        if (!isAlive(newPid))
          throw new StopWaiting(`the new scheduler (pid ${newPid}) exited\n${describe(s)}`);
        const res = await runCli(["app", "list"], s.cliEnv, { timeoutMs: 20_000 });
        if (res.code !== 0) throw new Error(`exit ${res.code}: ${res.stderr.trim()}`);
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );

    // One restart of one process: the others are untouched, and the log was appended to, not replaced.
    assert.equal(s.output().match(/ exited \(/g)?.length, 1, describe(s));
    for (const name of PROCESSES.filter((n) => n !== "scheduler")) {
      assert.ok(isOurs(first.get(name) ?? -1, s.dir), `${name} still runs as before\n${describe(s)}`);
    }
    const log = await readFile(join(s.dir, "logs", "scheduler.log"), "utf8");
    const header = log.indexOf("--- drover: restart 1 of scheduler");
    assert.ok(header > 0, `scheduler.log has the restart header after the first run's lines:\n${log}`);
    assert.match(log.slice(0, header), /scheduler listening/, "the first run's lines are kept");
    assert.match(log.slice(header), /scheduler listening/, "the new run's lines are appended");

    // SIGINT (Ctrl-C): every process stopped in reverse order of start, then the script exits.
    const all = s.pids();
    s.child.kill("SIGINT");
    const code = await withTimeout("start.sh to exit after SIGINT", s.exited, STOP_MS);
    assert.equal(code, 130, `start.sh exits 130 after SIGINT\n${describe(s)}`);
    const order = [...s.output().matchAll(/^drover: stopping (\w+) \(pid (\d+)\)$/gm)].map((m) => [
      m[1],
      Number(m[2]),
    ]);
    assert.deepEqual(
      order,
      [...PROCESSES].reverse().map((name) => [name, name === "scheduler" ? newPid : first.get(name)]),
      describe(s),
    );
    assert.match(s.output(), /^drover: stopped \(data and logs kept in /m);
    assert.deepEqual(bashComplaints(s), [], "no error or warning from bash");
    for (const { name, pid } of all) assert.ok(!isOurs(pid, s.dir), `${name} (pid ${pid}) is gone`);
    assert.deepEqual(readdirSync(join(s.dir, "run")), [], "no pid file is left");
  } finally {
    await cleanup(s);
  }
});

test("start.sh does not restart a service that exits with status 2 (bad configuration): it stops with status 2", {
  timeout: 90_000,
}, async () => {
  // A master-only setting out of range (min 1): the master exits 2 at start; scheduler and agent are fine.
  const s = await startScript({ DROVER_MASTER_OFFER_TIMEOUT_SECONDS: "0" });
  try {
    const code = await withTimeout("start.sh to exit", s.exited, READY_MS);
    assert.equal(code, 2, describe(s));
    const out = s.output();
    assert.match(
      out,
      /^drover: master \(pid \d+\) exited with status 2: invalid configuration \(.*offerTimeoutSeconds/m,
    );
    assert.match(
      out,
      /^drover: a restart cannot fix its configuration: not restarting master; stopping the cluster$/m,
    );
    assert.doesNotMatch(out, /restarting in|restarted /, "nothing was restarted");
    assert.deepEqual(bashComplaints(s), [], "no error or warning from bash");
    assert.doesNotMatch(out, /cluster ready/);
    const stopped = [...out.matchAll(/^drover: stopping (\w+) \(pid \d+\)$/gm)].map((m) => m[1]);
    assert.deepEqual(stopped, ["agent", "scheduler", "nats", "etcd"], describe(s));
    const all = s.pids();
    assert.deepEqual(all.map((p) => p.name).sort(), [...PROCESSES].sort(), describe(s));
    for (const { name, pid } of all) assert.ok(!isOurs(pid, s.dir), `${name} (pid ${pid}) is gone`);
  } finally {
    await cleanup(s);
  }
});

test("DROVER_LOCAL_AGENTS=3: three agents register, each with its own hostname, rack, ports and work dir; a bad count exits 2", {
  timeout: 120_000,
}, async () => {
  const bad = await startScript({ DROVER_LOCAL_AGENTS: "12" });
  try {
    assert.equal(await withTimeout("start.sh to refuse DROVER_LOCAL_AGENTS=12", bad.exited, 30_000), 2);
    assert.match(bad.output(), /DROVER_LOCAL_AGENTS must be a number from 1 to 9 \(got '12'\)/);
  } finally {
    await cleanup(bad);
  }
  const metrics = await freePort();
  const s = await startScript({
    DROVER_LOCAL_AGENTS: "3",
    DROVER_AGENT_METRICS_LISTEN: `127.0.0.1:${metrics}`,
  });
  try {
    await waitForOutput(s, "start.sh to print 'cluster ready'", /^drover: cluster ready/m, READY_MS);
    for (const k of [1, 2, 3])
      assert.match(s.output(), new RegExp(`^drover: started agent-${k} \\(pid \\d+\\)`, "m"));
    const listed = await runCli(["agent", "list", "--json"], s.cliEnv, { timeoutMs: 20_000 });
    assert.equal(listed.code, 0, listed.stderr);
    const agents = JSON.parse(listed.stdout) as {
      agentId: string;
      hostname: string;
      attributes: Record<string, string> | { key: string; value: string }[];
    }[];
    assert.equal(agents.length, 3, listed.stdout);
    assert.equal(new Set(agents.map((a) => a.agentId)).size, 3, "three agent ids");
    assert.equal(new Set(agents.map((a) => a.hostname)).size, 3, "three hostnames");
    const racks = agents
      .map((a) =>
        Array.isArray(a.attributes) ? a.attributes.find((x) => x.key === "rack")?.value : a.attributes.rack,
      )
      .sort();
    assert.deepEqual(racks, ["r1", "r2", "r3"], listed.stdout);
    for (const k of [1, 2, 3])
      assert.match(
        s.output(),
        new RegExp(`^drover: agent-${k} .*rack:r${k}, work dir .*agent-${k}, ports \\d+-\\d+$`, "m"),
      );
  } finally {
    await cleanup(s);
  }
});
