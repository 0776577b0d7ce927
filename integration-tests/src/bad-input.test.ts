/**
 * Bad input never crashes or corrupts (DESIGN.md invariant 7), end to end: wrong app definitions through
 * the CLI and through the scheduler's gRPC API are refused with their field paths and leave etcd untouched;
 * an image that cannot be pulled fails its tasks with Docker's reason and the app backs off.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { AppAggregate } from "@drover/core";
import { SchedulerClient } from "@drover/proto";
import { ELECTION_PREFIX, ROOT, stateKey } from "@drover/store";
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { Etcd3 } from "etcd3";
import { type CliResult, type Cluster, type ServiceProcess, startCluster, waitFor } from "./harness/index.js";

const VALID_APP = {
  id: "web",
  container: { docker: { image: "drover/busybox:1" } },
  cmd: "sleep 100000",
  instances: 3,
  cpus: 0.1,
  mem: 32,
};

interface BadCase {
  name: string;
  /** The file content / app_json, sent as is. */
  json: string;
  /** Field paths the error must name (an empty path is the document itself). */
  paths: string[];
  /** Text the one-line CLI error must contain besides the paths. */
  cliText: RegExp;
}

const variant = (patch: Record<string, unknown>): string => JSON.stringify({ ...VALID_APP, ...patch });

const BAD_CASES: BadCase[] = [
  {
    name: 'wrong type (instances: "3")',
    json: variant({ instances: "3" }),
    paths: ["instances"],
    cliText: /instances: expected number, got string/,
  },
  {
    name: "negative instance count",
    json: variant({ instances: -1 }),
    paths: ["instances"],
    cliText: /instances: must be >= 0/,
  },
  {
    name: "unknown top-level field (replicas)",
    json: variant({ replicas: 2 }),
    paths: ["replicas"],
    cliText: /replicas: unknown field/,
  },
  {
    name: "unknown nested field (container.docker.tag)",
    json: variant({ container: { docker: { image: "drover/busybox:1", tag: "1" } } }),
    paths: ["container.docker.tag"],
    cliText: /container\.docker\.tag: unknown field/,
  },
  {
    name: "not JSON",
    json: '{"id": "web", "instances": 3,',
    paths: [""],
    cliText: /invalid JSON/,
  },
  {
    name: "id with uppercase letters",
    json: variant({ id: "Web" }),
    paths: ["id"],
    cliText: /id: path segment "Web" is invalid: each segment must be lowercase/,
  },
];

/** More documents the gRPC API must refuse without harm (the CLI would never send them). */
const EXTRA_GRPC_CASES: { name: string; json: string; paths: string[] }[] = [
  { name: "empty app_json", json: "", paths: [""] },
  { name: "JSON null", json: "null", paths: [""] },
  { name: "JSON array", json: "[]", paths: [""] },
  { name: "too many instances", json: variant({ instances: 1001 }), paths: ["instances"] },
  { name: "fractional instances", json: variant({ instances: 1.5 }), paths: ["instances"] },
  { name: "image missing", json: variant({ container: { docker: {} } }), paths: ["container.docker.image"] },
  {
    name: "reserved label",
    json: variant({ labels: { "drover.app_id": "x" } }),
    paths: ["labels.drover.app_id"],
  },
];

let cluster: Cluster | undefined;
let etcd: Etcd3 | undefined;
let workDir: string | undefined;

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

function etcdClient(): Etcd3 {
  assert.ok(etcd, "etcd client not connected");
  return etcd;
}

before(async () => {
  workDir = await mkdtemp(join(tmpdir(), "drover-bad-input-"));
  cluster = await startCluster({ masters: 1, schedulers: 1, agents: 1 });
  etcd = new Etcd3({ hosts: cluster.infra.etcdEndpoint });
  const c = cluster;
  // startCluster waits for the master and the agent; the scheduler must lead before its answers mean much.
  await waitFor(
    "the scheduler to answer 'app list'",
    async () => Array.isArray(await c.cliJson(["app", "list", "--json"])),
    {
      timeoutMs: 60_000,
      intervalMs: 500,
    },
  );
});

after(async () => {
  etcd?.close();
  await cluster?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** Every key under /drover/ except the election candidates (their leases come and go), sorted. */
async function droverKeys(): Promise<string[]> {
  const keys = await etcdClient().getAll().prefix(`${ROOT}/`).keys();
  return keys.filter((k) => !k.startsWith(ELECTION_PREFIX)).sort();
}

/**
 * Waits until no deployment runs: a create's or a removal's deployment ends on its own a moment
 * after the change (a write of its own), which would show as a key changed by a refused command.
 */
async function deploymentsSettled(c: Cluster): Promise<void> {
  await waitFor("no deployment running", async () =>
    (await c.cliJson<unknown[]>(["deployment", "list", "--json"])).length === 0 ? true : undefined,
  );
}

/** The app's projection (state and version) and its mod revision: a refused command changes neither. */
async function appKeys(id: string): Promise<Record<string, string | null>> {
  const kv = (await etcdClient().kv.range({ key: Buffer.from(stateKey(AppAggregate.name, id)) })).kvs[0];
  return { state: kv ? kv.value.toString() : null, modRevision: kv ? kv.mod_revision : null };
}

async function writeAppFile(name: string, text: string): Promise<string> {
  assert.ok(workDir, "work dir not created");
  const file = join(workDir, `${name.replace(/[^a-z0-9]+/gi, "-")}.json`);
  await writeFile(file, text, "utf8");
  return file;
}

/** A refusal as the CLI promises it: non-zero exit, nothing on stdout, one "drover: error:" line, no stack. */
function assertOneLineError(r: CliResult, what: string): string {
  const detail = `${what}: exit ${r.code}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`;
  assert.notEqual(r.code, 0, `${detail} (expected a non-zero exit)`);
  assert.equal(r.stdout, "", `${detail} (expected nothing on stdout)`);
  assert.ok(r.stderr.endsWith("\n"), `${detail} (stderr does not end its line)`);
  const lines = r.stderr.slice(0, -1).split("\n");
  assert.equal(lines.length, 1, `${detail} (expected exactly one stderr line)`);
  const line = lines[0] ?? "";
  assert.match(line, /^drover: error: /, detail);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `${detail} (stack trace)`);
  assert.doesNotMatch(r.stderr, /\.(js|ts):\d+/, `${detail} (source location)`);
  return line;
}

/** The service processes that are no longer running (checked both ways the harness allows). */
async function exitedServices(c: Cluster): Promise<string[]> {
  const all: ServiceProcess[] = [...c.masters, ...c.schedulers, ...c.agents];
  const dead: string[] = [];
  for (const p of all) {
    // `exited` settles within a few microtasks if the process is gone; setImmediate runs after them all
    const settled = await Promise.race([
      p.exited.then(() => true),
      new Promise<boolean>((resolve) => setImmediate(() => resolve(false))),
    ]);
    let alive = true;
    try {
      process.kill(p.pid, 0);
    } catch {
      alive = false;
    }
    if (settled || !alive || !p.running) dead.push(p.name);
  }
  return dead;
}

function schedulerClient(c: Cluster): SchedulerClient {
  const address = c.env.DROVER_SCHEDULERS?.split(",")[0];
  assert.ok(address, "DROVER_SCHEDULERS is empty");
  return new SchedulerClient(address, credentials.createInsecure());
}

/** Calls a unary method and returns its error (the test fails if the call succeeds). */
function callError<Req>(
  call: (
    req: Req,
    md: Metadata,
    opts: { deadline: Date },
    cb: (err: ServiceError | null, res: unknown) => void,
  ) => unknown,
  req: Req,
): Promise<ServiceError> {
  return new Promise((resolve, reject) => {
    call(req, new Metadata(), { deadline: new Date(Date.now() + 15_000) }, (err, res) => {
      if (err) resolve(err);
      else reject(new Error(`expected an error, got ${JSON.stringify(res)}`));
    });
  });
}

function issuesOf(err: ServiceError): { path: string; message: string }[] {
  const raw = err.metadata.get("drover-issues");
  assert.equal(raw.length, 1, `expected one drover-issues trailer, got ${JSON.stringify(raw)}`);
  const text = raw[0];
  assert.equal(typeof text, "string");
  const parsed: unknown = JSON.parse(String(text));
  assert.ok(Array.isArray(parsed) && parsed.length > 0, `drover-issues is not a non-empty array: ${text}`);
  for (const i of parsed) {
    assert.equal(typeof (i as { path?: unknown }).path, "string", `issue without a path: ${text}`);
    assert.equal(typeof (i as { message?: unknown }).message, "string", `issue without a message: ${text}`);
    assert.notEqual((i as { message: string }).message, "", `issue with an empty message: ${text}`);
  }
  return parsed as { path: string; message: string }[];
}

test("CLI: bad app definitions are refused with their field path, and etcd is untouched", async () => {
  const c = current();
  await deploymentsSettled(c);
  const before = await droverKeys();
  console.log(`keys under ${ROOT}/ before (election excluded): ${before.join(", ")}`);
  for (const bad of BAD_CASES) {
    const file = await writeAppFile(bad.name, bad.json);
    const r = await c.cli(["app", "add", file]);
    const line = assertOneLineError(r, `app add (${bad.name})`);
    for (const path of bad.paths)
      if (path) assert.ok(line.includes(path), `${bad.name}: "${line}" names no ${path}`);
    assert.match(line, bad.cliText, `${bad.name}: "${line}"`);
    console.log(`app add (${bad.name}) → exit ${r.code}: ${line}`);
    // --json changes only the output of a success; the refusal stays one line
    const rj = await c.cli(["app", "add", file, "--json"]);
    assert.equal(assertOneLineError(rj, `app add --json (${bad.name})`), line);
  }
  assert.deepEqual(await droverKeys(), before, "a refused 'app add' changed the keys under /drover/");
  const apps = await c.cliJson<{ id: string }[]>(["app", "list", "--json"]);
  assert.deepEqual(apps, [], "a refused 'app add' created an app");
});

test("CLI: 'app scale' with a negative count or an unknown app is refused, and etcd is untouched", async () => {
  const c = current();
  // an existing app with no instances, so that the refusal of -1 cannot be a mere "not found"
  const file = await writeAppFile("web-zero", JSON.stringify({ ...VALID_APP, instances: 0 }));
  const created = await c.cli(["app", "add", file]);
  assert.equal(created.code, 0, `app add web: ${created.stderr}`);
  try {
    await scaleRefusals(c);
  } finally {
    const removed = await c.cli(["app", "remove", "web"]);
    assert.equal(removed.code, 0, `app remove web: ${removed.stderr}`);
  }
});

async function scaleRefusals(c: Cluster): Promise<void> {
  await deploymentsSettled(c);
  const keysBefore = await droverKeys();
  const webBefore = await appKeys("web");
  assert.notEqual(webBefore.state, null, "web has no projection in etcd");

  const negative = await c.cli(["app", "scale", "web", "-1"]);
  const negLine = assertOneLineError(negative, "app scale web -1");
  assert.match(negLine, /instances/, negLine);

  const tooMany = await c.cli(["app", "scale", "web", "1001"]);
  assert.match(assertOneLineError(tooMany, "app scale web 1001"), /instances/);

  const notNumber = await c.cli(["app", "scale", "web", "three"]);
  assert.match(assertOneLineError(notNumber, "app scale web three"), /instances/);

  const missing = await c.cli(["app", "scale", "nosuchapp", "2"]);
  const missLine = assertOneLineError(missing, "app scale nosuchapp 2");
  console.log(`app scale web -1 → ${negLine}\napp scale nosuchapp 2 → ${missLine}`);
  assert.match(missLine, /not found/, missLine);
  assert.match(missLine, /nosuchapp/, missLine);

  const missingNegative = await c.cli(["app", "scale", "nosuchapp", "-1"]);
  assertOneLineError(missingNegative, "app scale nosuchapp -1");

  assert.deepEqual(await droverKeys(), keysBefore, "a refused 'app scale' changed the keys under /drover/");
  assert.deepEqual(await appKeys("web"), webBefore, "a refused 'app scale' changed web's projection");
  const apps = await c.cliJson<{ id: string; instances: number }[]>(["app", "list", "--json"]);
  assert.deepEqual(
    apps.map((a) => [a.id, a.instances]),
    [["/web", 0]],
  );
}

test("gRPC: CreateApp with bad JSON → INVALID_ARGUMENT with field paths; etcd untouched; no service dies", async () => {
  const c = current();
  const client = schedulerClient(c);
  try {
    await deploymentsSettled(c);
    const before = await droverKeys();
    const seen: string[] = [];
    for (const bad of [...BAD_CASES, ...EXTRA_GRPC_CASES]) {
      const err = await callError(client.createApp.bind(client), { appJson: bad.json });
      assert.equal(err.code, status.INVALID_ARGUMENT, `${bad.name}: code ${err.code} (${err.details})`);
      const issues = issuesOf(err);
      const paths = issues.map((i) => i.path);
      for (const path of bad.paths)
        assert.ok(paths.includes(path), `${bad.name}: issues ${JSON.stringify(issues)} name no "${path}"`);
      seen.push(`${bad.name}: ${JSON.stringify(issues)}`);
    }
    console.log(`CreateApp refusals:\n  ${seen.join("\n  ")}`);

    // the other write methods validate too
    const scaleErr = await callError(client.scaleApp.bind(client), { id: "nosuchapp", instances: -1 });
    assert.equal(scaleErr.code, status.INVALID_ARGUMENT, `ScaleApp -1: ${scaleErr.details}`);
    assert.ok(issuesOf(scaleErr).some((i) => i.path === "instances"));
    const scaleMissing = await callError(client.scaleApp.bind(client), { id: "nosuchapp", instances: 2 });
    assert.equal(scaleMissing.code, status.NOT_FOUND, `ScaleApp nosuchapp: ${scaleMissing.details}`);
    const updateErr = await callError(client.updateApp.bind(client), {
      id: "web",
      appJson: variant({ replicas: 2 }),
      force: false,
      canaryInstances: 0,
    });
    assert.equal(updateErr.code, status.INVALID_ARGUMENT, `UpdateApp replicas: ${updateErr.details}`);
    assert.ok(issuesOf(updateErr).some((i) => i.path === "replicas"));
    const noId = await callError(client.deleteApp.bind(client), { id: "" });
    assert.equal(noId.code, status.INVALID_ARGUMENT, `DeleteApp "": ${noId.details}`);
    assert.ok(issuesOf(noId).some((i) => i.path === "id"));

    assert.deepEqual(await droverKeys(), before, "a refused gRPC call changed the keys under /drover/");
    assert.deepEqual(await exitedServices(c), [], `a service died:\n${c.describe()}`);
    // and the scheduler still serves
    const apps = await c.cliJson<unknown[]>(["app", "list", "--json"]);
    assert.deepEqual(apps, []);
  } finally {
    client.close();
  }
});

interface TaskRow {
  taskId: string;
  appId: string;
  agentId: string;
  state: string;
  message: string;
  exitCode?: number;
  createdAtMs: number;
  updatedAtMs: number;
}

test("an image that cannot be pulled: TASK_FAILED with Docker's reason, and the app backs off", async () => {
  const c = current();
  const file = await writeAppFile(
    "nopull",
    JSON.stringify({
      id: "nopull",
      container: { docker: { image: "drover/does-not-exist:1" } },
      instances: 1,
      cpus: 0.1,
      mem: 32,
      // The app's own launch backoff (Marathon's fields): 1 s doubling, so that 20 s show it.
      backoffSeconds: 1,
      backoffFactor: 2,
    }),
  );
  const added = await c.cli(["app", "add", file]);
  assert.equal(added.code, 0, `app add nopull: ${added.stderr}`);
  const windowStart = Date.now();
  const listFailed = async (): Promise<TaskRow[]> => {
    const tasks = await c.cliJson<TaskRow[]>(["task", "list", "--all", "--json", "--app", "nopull"]);
    return tasks.filter((t) => t.state === "TASK_FAILED");
  };

  const failed = await waitFor(
    "a TASK_FAILED task of nopull",
    async () => {
      const f = await listFailed();
      return f.length > 0 ? f : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${c.describe()}`);
  });
  const first = failed[0];
  assert.ok(first);
  console.log(`Docker's reason, as the task reports it: ${JSON.stringify(first.message)}`);
  assert.equal(first.appId, "/nopull");
  assert.ok(first.message.trim().length > 10, `message too short to be Docker's reason: "${first.message}"`);
  assert.doesNotMatch(first.message, /^(task )?failed\.?$/i, "a generic message instead of Docker's reason");
  assert.match(
    first.message,
    /registry|pull access denied|manifest unknown|not found|no such host|denied|does-not-exist|repository/i,
    `"${first.message}" does not look like a pull error`,
  );

  // the table shows the whole message too
  const table = await c.cli(["task", "list", "--all", "--app", "nopull"]);
  assert.equal(table.code, 0, table.stderr);
  const row = table.stdout.split("\n").find((l) => l.includes(first.taskId));
  assert.ok(row, `task ${first.taskId} not in the table:\n${table.stdout}`);
  const shown = first.message.replace(/\s+/g, " ");
  assert.ok(row.includes(shown), `table row does not show the message "${shown}":\n${row}`);
  assert.match(row, /TASK_FAILED|FAILED/);

  // watch for 20 s from the app's creation: attempts stay few, and the app reports its backoff
  let maxBackoffUntil = 0;
  let backoffSeen = 0;
  await waitFor(
    "the end of the 20 s observation window",
    async () => {
      const apps = await c.cliJson<{ id: string; backoffUntilMs?: number }[]>(["app", "list", "--json"]);
      const app = apps.find((a) => a.id === "/nopull");
      assert.ok(app, "nopull vanished from 'app list'");
      const until = Number(app.backoffUntilMs ?? 0);
      if (until > 0) backoffSeen++;
      maxBackoffUntil = Math.max(maxBackoffUntil, until);
      return Date.now() - windowStart >= 20_000;
    },
    { timeoutMs: 40_000, intervalMs: 300 },
  );
  const all = (await listFailed()).sort((a, b) => a.createdAtMs - b.createdAtMs);
  const inWindow = all.filter(
    (t) => t.createdAtMs >= windowStart - 1_000 && t.createdAtMs <= windowStart + 20_000,
  );
  const attempts = inWindow.map((t) => t.createdAtMs);
  const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] ?? t));
  console.log(
    `nopull attempts in the 20 s window: ${attempts.length}\n` +
      inWindow
        .map(
          (t, i) =>
            `  #${i + 1} created +${t.createdAtMs - windowStart} ms (${new Date(t.createdAtMs).toISOString()}), ` +
            `failed +${t.updatedAtMs - windowStart} ms${i > 0 ? `, gap ${gaps[i - 1]} ms` : ""}`,
        )
        .join("\n") +
      `\n  backoffUntilMs > 0 in ${backoffSeen} samples, latest ${maxBackoffUntil ? new Date(maxBackoffUntil).toISOString() : "-"}`,
  );
  assert.ok(attempts.length >= 2, `only ${attempts.length} attempt(s) in 20 s: the app does not retry`);
  assert.ok(attempts.length <= 8, `${attempts.length} attempts in 20 s: the app does not back off`);
  assert.ok(maxBackoffUntil > 0, "'app list --json' never showed backoffUntilMs > 0");
  for (const t of all) assert.ok(t.message.length > 0, `task ${t.taskId} failed without a message`);
  if (gaps.length >= 2) {
    const firstGap = gaps[0] ?? 0;
    const lastGap = gaps[gaps.length - 1] ?? 0;
    assert.ok(lastGap > firstGap, `gaps do not grow: ${gaps.join(", ")} ms`);
  }

  const removed = await c.cli(["app", "remove", "nopull"]);
  assert.equal(removed.code, 0, `app remove nopull: ${removed.stderr}`);
  assert.match(removed.stdout, /nopull/);
  const apps = await c.cliJson<{ id: string }[]>(["app", "list", "--json"]);
  assert.ok(!apps.some((a) => a.id === "nopull"), "nopull still listed after removal");
  await waitFor(
    "no active task of nopull",
    async () => (await c.cliJson<TaskRow[]>(["task", "list", "--json", "--app", "nopull"])).length === 0,
    { timeoutMs: 30_000, intervalMs: 500 },
  );
  assert.deepEqual(await exitedServices(c), [], `a service died:\n${c.describe()}`);
});

/**
 * Definitions that the app schema accepts although no task of them can ever start: the agent's launch-spec
 * check (env names) or Docker (memory below 6 MiB, CPU quota below 0.01 core) refuses every task, so the app
 * crash-loops instead of its author getting a field error. The schema refuses them with the field's path.
 * Sent with instances 0, so nothing would be launched.
 */
test("gRPC: definitions no task can run with (env name, mem < 6, cpus < 0.01) are refused at the boundary", async () => {
  const c = current();
  const client = schedulerClient(c);
  const cases = [
    { id: "env-empty", patch: { env: { "": "x" } }, path: "env." },
    { id: "env-equals", patch: { env: { "A=B": "x" } }, path: "env.A=B" },
    { id: "mem-four", patch: { mem: 4 }, path: "mem" },
    { id: "cpus-tiny", patch: { cpus: 0.001 }, path: "cpus" },
  ];
  const problems: string[] = [];
  try {
    for (const k of cases) {
      const json = JSON.stringify({ ...VALID_APP, id: k.id, instances: 0, ...k.patch });
      const outcome = await new Promise<ServiceError | null>((resolve) => {
        client.createApp(
          { appJson: json },
          new Metadata(),
          { deadline: new Date(Date.now() + 15_000) },
          (err) => resolve(err),
        );
      });
      if (outcome === null) {
        problems.push(`${k.id}: accepted ${json}`);
        const deleted = await new Promise<ServiceError | null>((resolve) => {
          client.deleteApp({ id: k.id }, new Metadata(), { deadline: new Date(Date.now() + 15_000) }, (err) =>
            resolve(err),
          );
        });
        assert.equal(deleted, null, `cleaning up ${k.id}: ${deleted?.details}`);
      } else if (outcome.code !== status.INVALID_ARGUMENT) {
        problems.push(`${k.id}: code ${outcome.code} (${outcome.details})`);
      } else if (!issuesOf(outcome).some((i) => i.path === k.path)) {
        problems.push(`${k.id}: issues ${JSON.stringify(issuesOf(outcome))} name no "${k.path}"`);
      }
    }
  } finally {
    client.close();
  }
  assert.deepEqual(
    problems,
    [],
    `accepted definitions whose tasks cannot start:\n  ${problems.join("\n  ")}`,
  );
});
