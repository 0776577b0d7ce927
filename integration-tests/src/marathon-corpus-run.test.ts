/**
 * The Marathon corpus run for real (issue 8 item 10): every definition of
 * integration-tests/corpus/marathon either is accepted and runs, its health and readiness checks
 * passing, or is refused naming the field Drover does not take.
 *
 * Cluster: 3 agents (hostnames corpus-h1..h3, attribute rack_id:rack-1..3 for the constraint
 * definitions 31-37, host ports 33000-33299 in three ranges plus 7777 on the first agent for 46), whose
 * default task image is the stand-in drover/standin:1 (deploy/images/build.sh: busybox, node and a
 * server answering HTTP, HTTPS and TCP on the ports it is told), so command-only definitions run
 * there. Every definition Drover accepts is adapted as little as possible to run on this machine:
 *
 * - every docker image → drover/standin:1 (no registry here);
 * - cpus → 0.05, mem → 32 MiB (the stand-in needs about 10);
 * - every fetch URI (and the old `uris`) → the same path on a file server of the test (127.0.0.1),
 *   which serves the files the definitions expect (archives made in the test);
 * - and what PLANS says, one line per definition (commands → the stand-in on the ports the checks
 *   probe, fewer instances where three agents cannot hold more, ...).
 *
 * Each one is added, waited for until all its instances are TASK_RUNNING, healthy when it has health
 * checks and ready when it has readiness checks, and removed. Definitions that share an app id run one
 * after the other; the others run a few at a time. A refusal must name every field normalizeApp
 * names (a refusal by Drover's design) or be the scheduler's "not supported yet" (a feature not there
 * yet, counted apart). CANNOT_RUN_HERE lists what this machine cannot run whatever Drover does, with
 * the reason (a mount disk, a GPU, a privileged container where Docker refuses them): such a definition
 * must be refused naming it, or wait, `drover app why` or the message of a finished task naming it.
 * KNOWN_FAILURES lists definitions that fail because of a Drover bug, with the bug. The summary line
 * gives the counts, each refusal's fields and each definition's time to run.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { normalizeApp } from "@drover/core";
import Docker from "dockerode";
import { type Cluster, repoRoot, startCluster, waitFor, withClusterLogs } from "./harness/index.js";
import { type FileServer, serveFiles, tarGz, zip } from "./marathon-corpus-files.js";

const CORPUS = join(repoRoot, "integration-tests", "corpus", "marathon");
const STANDIN = "drover/standin:1";
/** Definitions run at the same time (each group of definitions sharing an id counts once). */
const PARALLEL = 5;
/** How long one definition may take from `app add` to all instances running and healthy. */
const READY_TIMEOUT_MS = 90_000;

const docker = new Docker({ socketPath: "/var/run/docker.sock" });

// biome-ignore lint/suspicious/noExplicitAny: a Marathon definition as JSON, edited in place
type Def = Record<string, any>;

interface Plan {
  /** How the definition is adapted beyond what every definition gets (see the header), one line. */
  how: string;
  edit?: (def: Def) => void;
  /** Instances to run when fewer than the definition asks: what three small agents hold. */
  instances?: number;
  /** The rack_id of each task's agent, sorted: where the constraint must place them. */
  racks?: string[];
  /** A Docker network the definition needs: created by the test if absent (removed after if so). */
  network?: string;
  /** Files the local server serves for its fetch URIs, by path. */
  files?: Record<string, Buffer>;
}

const setCmd = (cmd: string) => (d: Def) => {
  d.cmd = cmd;
};
const listen = (spec: string) => (d: Def) => {
  d.env = { ...d.env, STANDIN_LISTEN: spec };
};
const SANDBOX_SCRIPT = "#!/bin/sh\nexec standin\n";

/** How each definition Drover accepts is run here. */
const PLANS: Record<string, Plan> = {
  "01-simple.json": { how: "as it is (sleep 1000)" },
  "02-labels.json": {
    how: "cmd `python -m SimpleHTTPServer $PORT` → `exec standin http:$PORT`",
    edit: setCmd("exec standin http:$PORT"),
  },
  "03-hello-rails.json": {
    how: "RailsHello.tgz served locally (a hello/ directory); cmd `cd hello && bundle install && bundle exec unicorn -p $PORT` → `cd hello && exec standin http:$PORT`",
    edit: setCmd("cd hello && exec standin http:$PORT"),
    files: {
      "/tutorials/RailsHello.tgz": tarGz([
        { name: "hello/" },
        { name: "hello/Gemfile", content: "source 'https://rubygems.org'\n" },
      ]),
    },
  },
  "04-tomcat-docker.json": {
    how: "tomcat on 8080 → env STANDIN_LISTEN=http:8080",
    edit: listen("http:8080"),
  },
  "05-bridged-webapp-docker-network.json": {
    how: "cmd `python3 -m http.server 8080` → `exec standin http:8080 udp:161`; COMMAND check `curl -f -X GET http://$HOST:$PORT` → `wget -q -O /dev/null http://127.0.0.1:8080/` ($HOST is the agent's name, which no DNS knows here; the stand-in has busybox wget, not curl)",
    edit: (d) => {
      d.cmd = "exec standin http:8080 udp:161";
      d.healthChecks[1].command.value = "wget -q -O /dev/null http://127.0.0.1:8080/";
    },
  },
  "06-department-a-service-b.json": {
    how: "cmd `python -m SimpleHTTPServer $PORT0` → `exec standin http:$PORT0`",
    edit: setCmd("exec standin http:$PORT0"),
  },
  "07-department-1-mesos-docker.json": {
    how: "cmd `sleep 20 && python3 -m http.server $PORT0` → `exec standin http:$PORT0` (the first check comes at 5 s, the next at 65 s: after a 20 s sleep it would take a minute)",
    edit: setCmd("exec standin http:$PORT0"),
  },
  "09-tools-datadog-agent.json": {
    how: "5 instances → 3 (hostname UNIQUE, 3 agents); the datadog agent → the stand-in on its host port",
    instances: 3,
  },
  "11-my-app.json": {
    how: "cmd `env && python3 -m http.server $PORT0` → `env && exec standin http:$PORT0`",
    edit: setCmd("env && exec standin http:$PORT0"),
  },
  "12-https-readiness-checks.json": {
    how: "nginx on 80 and 443 → env STANDIN_LISTEN=http:80,https:443",
    edit: listen("http:80,https:443"),
  },
  "13-fake-framework.json": {
    how: "cmd `sleep 5 && /opt/mesosphere/bin/python -m http.server $PORT0` → `sleep 5 && exec standin http:$PORT0`",
    edit: setCmd("sleep 5 && exec standin http:$PORT0"),
  },
  "14-persistent-volume-app.json": {
    how: "cmd's `/opt/mesosphere/bin/python -m http.server $PORT_API` → `exec standin http:$PORT_API` (it still writes $MESOS_SANDBOX/data/foo first)",
    edit: setCmd("env && echo 'hello' >> $MESOS_SANDBOX/data/foo && exec standin http:$PORT_API"),
  },
  "15-resident-docker-app.json": {
    how: "nginx on 80 → env STANDIN_LISTEN=http:80; Docker network dcos",
    edit: listen("http:80"),
    network: "dcos",
  },
  "16-mysql-persistent.json": {
    how: "mysql on 3306 → env STANDIN_LISTEN=tcp:3306",
    edit: listen("tcp:3306"),
  },
  "20-bridge-net-new.json": { how: "nginx on 80 → env STANDIN_LISTEN=http:80", edit: listen("http:80") },
  "21-host-net-new.json": { how: "nginx → the stand-in on the task's host port ($PORTS)" },
  "22-user-net-new.json": {
    how: "nginx on 80 → env STANDIN_LISTEN=http:80; Docker network dcos",
    edit: listen("http:80"),
    network: "dcos",
  },
  "25-simple-docker-args.json": {
    how: "args [hello, from, docker] (for inky's ENTRYPOINT echo, which exits) → [sh, -c, echo hello from docker && exec standin]: the stand-in has no ENTRYPOINT",
    edit: (d) => {
      d.args = ["sh", "-c", "echo hello from docker && exec standin"];
    },
  },
  "28-toggle-tcp-health.json": {
    how: "toggle.tgz served locally (toggle.py); cmd `python toggle.py $PORT0` → `test -f toggle.py && exec standin tcp:$PORT0`",
    edit: setCmd("test -f toggle.py && exec standin tcp:$PORT0"),
    files: { "/misc/toggle.tgz": tarGz([{ name: "toggle.py", content: "# stand-in\n" }]) },
  },
  "29-foo-task-kill-grace-period.json": { how: "as it is (sleep 1000)" },
  "31-constraint-cluster.json": { how: "as it is (sleep 60)", racks: ["rack-1", "rack-1", "rack-1"] },
  "32-constraint-like.json": { how: "as it is (sleep 60)" },
  "33-constraint-unlike.json": { how: "as it is (sleep 60)" },
  "34-constraint-max-per.json": { how: "as it is (sleep 60)" },
  "35-constraint-group-by-value.json": { how: "as it is (sleep 60)", racks: ["rack-1", "rack-2", "rack-3"] },
  "36-constraint-group-by-no-value.json": { how: "as it is (sleep 60)" },
  "37-constraint-is.json": { how: "as it is (sleep 60)", racks: ["rack-1", "rack-1", "rack-1"] },
  "38-unreachable-disabled.json": {
    how: "cmd `foo` (no such command: every task fails at once) → `exec standin`",
    edit: setCmd("exec standin"),
  },
  "39-unreachable-strategy.json": { how: "cmd `foo` → `exec standin` (as 38)", edit: setCmd("exec standin") },
  "40-kill-selection.json": { how: "cmd `foo` → `exec standin` (as 38)", edit: setCmd("exec standin") },
  "43-mesos-tcp-health.json": {
    how: "cmd `/opt/mesosphere/bin/python -m http.server $PORT0` → `exec standin http:$PORT0`",
    edit: setCmd("exec standin http:$PORT0"),
  },
  "44-mesos-https-health.json": {
    how: "nginx on 80 and 443 → env STANDIN_LISTEN=http:80,https:443",
    edit: listen("http:80,https:443"),
  },
  "45-https-health.json": {
    how: "nginx on 80 and 443 → env STANDIN_LISTEN=http:80,https:443",
    edit: listen("http:80,https:443"),
  },
  "46-pinger-localhost-require-ports.json": {
    how: "pinger.py served locally; cmd `/opt/mesosphere/bin/python pinger.py 7777` → `test -f pinger.py && exec standin http:7777` (the first agent offers port 7777)",
    edit: setCmd("test -f pinger.py && exec standin http:7777"),
    files: { "/pinger.py": Buffer.from("# stand-in\n") },
  },
  "47-pinger-container-ip-address.json": {
    how: "pinger.py served locally; cmd as 46; Docker network dcos",
    edit: setCmd("test -f pinger.py && exec standin http:7777"),
    network: "dcos",
    files: { "/pinger.py": Buffer.from("# stand-in\n") },
  },
  "48-pg-backend-dotted-id.json": {
    how: "the archive served locally (start-postgres.sh execs the stand-in); cmd `tar -xf pg*.tgz && start-postgres.sh` → `tar -xzf pg*.tgz && ./start-postgres.sh` (busybox tar needs -z; the sandbox is not on PATH)",
    edit: setCmd("tar -xzf pg*.tgz && ./start-postgres.sh"),
    files: {
      "/product-a/pg-backend-2.5.7.tgz": tarGz([
        { name: "start-postgres.sh", content: SANDBOX_SCRIPT, mode: 0o755 },
      ]),
    },
  },
  "49-basic-1-fetch-executable.json": {
    how: "cool-script.sh served locally (it prints `exec standin`, which the backticks run); cmd as it is",
    files: { "/app/cool-script.sh": Buffer.from("#!/bin/sh\necho exec standin\n") },
  },
  "50-basic-3-fetch-cache.json": {
    how: "app.zip served locally (app/cool-script.sh execs the stand-in); cmd as it is",
    files: {
      "/app.zip": zip([
        { name: "app/" },
        { name: "app/cool-script.sh", content: SANDBOX_SCRIPT, mode: 0o755 },
      ]),
    },
  },
};

/**
 * What this machine cannot run whatever Drover does: the reason, and what the refusal must name; if
 * Drover accepts it, it must wait (`drover app why`), and `app why` or the message of one of its
 * finished tasks must name it. `applies` says whether this machine lacks it (default: always).
 */
const CANNOT_RUN_HERE: Record<string, { reason: string; named: RegExp; applies?: () => Promise<boolean> }> = {
  "09-tools-datadog-agent.json": {
    reason:
      "a privileged container: this machine's Docker refuses them (`docker run --privileged` fails: " +
      "unable to apply caps: operation not permitted)",
    named: /privileged|unable to apply caps/,
    applies: () => (privilegedRefused ??= refusesPrivileged()),
  },
  "17-postgres-residency.json": {
    reason:
      "a persistent volume on a Mesos mount disk of 512 GiB at /mnt/ssd-*: the agents have only their root disk",
    named: /container\.volumes\[0\]\.persistent\.type|disk/,
  },
  "42-gpu-test-docker.json": { reason: "a GPU: this machine has none", named: /gpus/ },
};

let privilegedRefused: Promise<boolean> | undefined;

/** True when Docker here cannot start a privileged container (some sandboxed hosts cannot). */
async function refusesPrivileged(): Promise<boolean> {
  const c = await docker.createContainer({
    Image: STANDIN,
    Cmd: ["true"],
    HostConfig: { Privileged: true },
    Labels: { "drover.test": "corpus-run" },
  });
  try {
    await c.start();
    await c.wait();
    return false;
  } catch {
    return true;
  } finally {
    await c.remove({ force: true });
  }
}

/**
 * Definitions that fail here because of a Drover bug, with what fails and whose area it is: the test
 * still runs them (for a shorter time), reports them apart, and fails once one of them runs (then
 * remove it from here).
 */
const KNOWN_FAILURES: Record<string, string> = {};

interface TaskJson {
  taskId: string;
  appId: string;
  agentId: string;
  state: string;
  health?: { healthy: boolean; consecutiveFailures?: number; lastFailureCause?: string };
  readiness?: { name: string; ready: boolean }[];
  lastFailureCause?: string;
  reason?: string;
}

interface AgentJson {
  agentId: string;
  attributes: Record<string, string> | { key: string; value: string }[];
}

let cluster: Cluster | undefined;
let files: FileServer | undefined;
let dir = "";
/** Networks this test created (removed after it). */
const createdNetworks: string[] = [];
const rackOf = new Map<string, string>();

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-corpus-run-"));
  const served = new Map<string, Buffer>();
  for (const p of Object.values(PLANS))
    for (const [path, body] of Object.entries(p.files ?? {})) served.set(path, body);
  files = await serveFiles(served);
  for (const name of new Set(Object.values(PLANS).flatMap((p) => (p.network ? [p.network] : [])))) {
    const exists = (await docker.listNetworks({ filters: { name: [name] } })).some((n) => n.Name === name);
    if (!exists) {
      await docker.createNetwork({ Name: name, Driver: "bridge", Labels: { "drover.test": "corpus-run" } });
      createdNetworks.push(name);
    }
  }
  cluster = await startCluster({
    agents: 3,
    agentEnv: (i) => ({
      DROVER_AGENT_HOSTNAME: `corpus-h${i + 1}`,
      DROVER_AGENT_ATTRIBUTES: `rack_id:rack-${i + 1}`,
      DROVER_AGENT_PORTS: `${33000 + i * 100}-${33099 + i * 100}${i === 0 ? ",7777-7777" : ""}`,
      DROVER_AGENT_CPUS: "2",
      DROVER_AGENT_MEM: "2048",
      DROVER_AGENT_DISK: "20000",
      DROVER_AGENT_DEFAULT_IMAGE: STANDIN,
    }),
  });
  for (const a of await cluster.cliJson<AgentJson[]>(["agent", "list", "--json"])) {
    const rack = Array.isArray(a.attributes)
      ? a.attributes.find((x) => x.key === "rack_id")?.value
      : a.attributes.rack_id;
    if (rack) rackOf.set(a.agentId, rack);
  }
  assert.equal(rackOf.size, 3, "every agent has its rack_id");
});

after(async () => {
  const id = cluster?.id;
  await cluster?.stop();
  await files?.close();
  if (id) {
    const { Volumes } = await docker.listVolumes({ filters: { label: [`drover.test.cluster=${id}`] } });
    for (const v of Volumes ?? []) await docker.getVolume(v.Name).remove({ force: true });
  }
  for (const name of createdNetworks) await docker.getNetwork(name).remove();
});

/** Every docker image → the stand-in; small resources; fetch URIs → the local server; then the plan. */
function adapt(original: Def, plan: Plan): { def: Def; instances: number } {
  const def = structuredClone(original);
  if (def.container?.docker?.image) def.container.docker.image = STANDIN;
  def.cpus = 0.05;
  def.mem = 32;
  const local = (uri: string) => {
    const u = new URL(uri);
    return `${files?.base}${u.pathname}`;
  };
  if (Array.isArray(def.uris)) def.uris = def.uris.map(local);
  if (Array.isArray(def.fetch)) for (const f of def.fetch) f.uri = local(f.uri);
  plan.edit?.(def);
  const instances = plan.instances ?? def.instances ?? 1;
  def.instances = instances;
  return { def, instances };
}

async function writeDef(file: string, def: Def): Promise<string> {
  const path = join(dir, file);
  await writeFile(path, JSON.stringify(def));
  return path;
}

/** "invalid input: a: x; b: y" → the field paths. */
function refusedFields(stderr: string): string[] {
  const text = stderr.trim().replace(/^drover: error: invalid input: /, "");
  return text
    .split(/; (?=[\w.[\]]+: )/)
    .map((part) => part.slice(0, part.indexOf(": ")))
    .filter((f) => f !== "");
}

interface Outcome {
  file: string;
  kind: "ran" | "refused" | "not-yet" | "cannot-run" | "known-failure" | "failed";
  detail: string;
  ms?: number;
  checked?: boolean;
}

async function tasksOf(id: string): Promise<TaskJson[]> {
  return current().cliJson<TaskJson[]>(["task", "list", "--app", id, "--json"]);
}

/** Until `n` tasks run (and no other is active), each healthy and ready when the app has such checks. */
async function untilReady(
  id: string,
  n: number,
  health: boolean,
  readiness: boolean,
  timeoutMs: number,
): Promise<TaskJson[]> {
  return waitFor(
    `${n} tasks of ${id} RUNNING${health ? ", healthy" : ""}${readiness ? ", ready" : ""}`,
    async () => {
      const all = await tasksOf(id);
      const running = all.filter((t) => t.state === "TASK_RUNNING");
      if (running.length !== n || all.length !== n) return undefined;
      if (health && !running.every((t) => t.health?.healthy === true)) return undefined;
      if (
        readiness &&
        !running.every((t) => (t.readiness ?? []).length > 0 && t.readiness?.every((r) => r.ready))
      )
        return undefined;
      return running;
    },
    { timeoutMs, intervalMs: 500 },
  );
}

/** What the app's tasks and `app why` say, for a failure message. */
async function stateOf(id: string): Promise<string> {
  const tasks = await tasksOf(id).catch((e: Error) => e.message);
  const why = await current()
    .cli(["app", "why", id, "--json"])
    .then((r) => r.stdout.trim() || r.stderr.trim());
  return `tasks: ${JSON.stringify(tasks)}; app why: ${why}`;
}

async function removeApp(id: string, waitGone: boolean): Promise<void> {
  const r = await current().cli(["app", "remove", id]);
  assert.equal(r.code, 0, `app remove ${id}: ${r.stderr}`);
  if (waitGone)
    await waitFor(
      `the tasks of ${id} gone`,
      async () => {
        const tasks = await current().cliJson<TaskJson[]>(["task", "list", "--json"]);
        return !tasks.some((t) => t.appId === id);
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
}

/** Runs one definition to its outcome; `reused` when a later definition has the same app id. */
async function runOne(file: string, original: Def, reused: boolean): Promise<Outcome> {
  const verdict = normalizeApp(original);
  const entry = CANNOT_RUN_HERE[file];
  const cannot = entry && (entry.applies === undefined || (await entry.applies())) ? entry : undefined;
  if (!verdict.ok) {
    // Refused by Drover's design (libs/core): the CLI must name every field normalizeApp names.
    assert.equal(PLANS[file], undefined, `${file}: Drover refuses it, yet PLANS has a plan for it`);
    const def = structuredClone(original);
    if (def.container?.docker?.image) def.container.docker.image = STANDIN;
    const r = await current().cli(["app", "add", await writeDef(file, def)]);
    assert.notEqual(r.code, 0, `${file}: normalizeApp refuses it, the cluster accepted it`);
    assert.match(r.stderr, /^drover: error: invalid input: [\w.[\]]*: /m, `${file}: ${r.stderr}`);
    for (const issue of verdict.issues)
      assert.ok(
        r.stderr.includes(`${issue.path}: `),
        `${file}: the refusal names ${issue.path}: ${r.stderr}`,
      );
    const fields = [...new Set(verdict.issues.map((i) => i.path))];
    if (cannot) {
      assert.match(r.stderr, cannot.named, `${file}: the refusal names what this machine lacks`);
      return { file, kind: "cannot-run", detail: `${cannot.reason}; refused: ${fields.join(", ")}` };
    }
    return { file, kind: "refused", detail: fields.join(", ") };
  }
  const plan = PLANS[file];
  assert.ok(plan, `${file}: Drover accepts it, but PLANS says nothing about how to run it here`);
  const { def, instances } = adapt(original, plan);
  const id = verdict.value.id;
  const started = Date.now();
  const added = await current().cli(["app", "add", await writeDef(file, def)]);
  if (added.code !== 0) {
    assert.match(added.stderr, /^drover: error: invalid input: [\w.[\]]*: /m, `${file}: ${added.stderr}`);
    const fields = refusedFields(added.stderr);
    if (/not supported yet/.test(added.stderr))
      return { file, kind: "not-yet", detail: `${fields.join(", ")} (${added.stderr.trim()})` };
    return { file, kind: "failed", detail: `the adapted definition was refused: ${added.stderr.trim()}` };
  }
  if (cannot) {
    // Accepted: it must wait, and `app why` or a finished task must say why.
    const why = await waitFor(
      `app ${id} waiting, ${cannot.named} named by app why or a finished task`,
      async () => {
        const q = await current().cliJson<{ waiting: number; reasons: { text: string }[] }>([
          "app",
          "why",
          id,
          "--json",
        ]);
        if (q.waiting === 0) return undefined;
        const texts = q.reasons.map((x) => x.text);
        if (texts.some((t) => cannot.named.test(t))) return texts.join("; ");
        const all = await current().cliJson<(TaskJson & { message?: string })[]>([
          "task",
          "list",
          "--app",
          id,
          "--all",
          "--json",
        ]);
        const failed = all.find((t) => cannot.named.test(t.message ?? ""));
        return failed ? `${texts.join("; ")}; a finished task: ${failed.state} ${failed.message}` : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    await removeApp(id, reused);
    return { file, kind: "cannot-run", detail: `${cannot.reason}; waiting: ${why}` };
  }
  const health = (def.healthChecks ?? []).length > 0;
  const readiness = (def.readinessChecks ?? []).length > 0;
  let outcome: Outcome;
  try {
    const known = KNOWN_FAILURES[file];
    const tasks = await untilReady(id, instances, health, readiness, known ? 30_000 : READY_TIMEOUT_MS);
    if (known) throw new Error(`${file} is in KNOWN_FAILURES but runs now: remove it from there`);
    const ms = Date.now() - started;
    for (const path of Object.keys(plan.files ?? {}))
      assert.ok((files?.hits.get(path) ?? 0) > 0, `${file}: the agent fetched ${path}`);
    if (plan.racks) {
      const racks = tasks.map((t) => rackOf.get(t.agentId) ?? "?").sort();
      assert.deepEqual(racks, plan.racks, `${file}: placed on ${racks}`);
    }
    const checks = [health ? "healthy" : "", readiness ? "ready" : ""].filter(Boolean).join(", ");
    outcome = {
      file,
      kind: "ran",
      detail: `${instances} running${checks ? ` ${checks}` : ""}`,
      ms,
      checked: health,
    };
  } catch (err) {
    const message = (err as Error).message.split("\n")[0];
    const known = KNOWN_FAILURES[file];
    outcome =
      known && message?.startsWith("timed out")
        ? { file, kind: "known-failure", detail: `${known}; ${message}` }
        : { file, kind: "failed", detail: `${message}; ${await stateOf(id)}` };
  }
  await removeApp(id, reused);
  return outcome;
}

test(
  "the corpus: each definition runs here (checks passing) or is refused naming the field",
  { timeout: 600_000 },
  () =>
    withClusterLogs(cluster, async () => {
      const names = readdirSync(CORPUS)
        .filter((f) => /^\d+-.*\.json$/.test(f))
        .sort();
      assert.equal(names.length, 50, "the corpus has its 50 definitions");
      for (const f of [
        ...Object.keys(PLANS),
        ...Object.keys(CANNOT_RUN_HERE),
        ...Object.keys(KNOWN_FAILURES),
      ])
        assert.ok(names.includes(f), `${f} is not in the corpus`);
      const defs = new Map(names.map((f) => [f, JSON.parse(readFileSync(join(CORPUS, f), "utf8")) as Def]));
      // Definitions sharing an app id run one after the other, in file order; the groups run side by side.
      const groups = new Map<string, string[]>();
      for (const f of names) {
        const v = normalizeApp(defs.get(f));
        const key = v.ok ? v.value.id : `refused:${f}`;
        groups.set(key, [...(groups.get(key) ?? []), f]);
      }
      const queue = [...groups.values()].sort((a, b) => b.length - a.length);
      const outcomes: Outcome[] = [];
      const worker = async () => {
        for (let group = queue.shift(); group; group = queue.shift()) {
          for (const [i, f] of group.entries()) {
            const def = defs.get(f);
            assert.ok(def);
            outcomes.push(
              await runOne(f, def, i < group.length - 1).catch(
                (err: Error): Outcome => ({ file: f, kind: "failed", detail: err.message }),
              ),
            );
          }
        }
      };
      const t0 = Date.now();
      await Promise.all(Array.from({ length: PARALLEL }, worker));
      outcomes.sort((a, b) => a.file.localeCompare(b.file));

      const of = (kind: Outcome["kind"]) => outcomes.filter((o) => o.kind === kind);
      const ran = of("ran");
      const lines = [
        `corpus run (${((Date.now() - t0) / 1000).toFixed(0)} s): accepted-and-running ${ran.length} ` +
          `(healthy with checks ${ran.filter((o) => o.checked).length}), refused ${of("refused").length}, ` +
          `not supported yet ${of("not-yet").length}, cannot run here ${of("cannot-run").length}, ` +
          `known Drover bugs ${of("known-failure").length}, failed ${of("failed").length}`,
        ...outcomes.map(
          (o) =>
            `  ${o.file}: ${o.kind}${o.ms !== undefined ? ` in ${(o.ms / 1000).toFixed(1)} s` : ""}: ${o.detail}` +
            (o.kind === "ran" ? ` [${PLANS[o.file]?.how}]` : ""),
        ),
      ];
      const hits = [...(files?.hits ?? [])].map(([p, n]) => `${p}×${n}`).join(", ");
      lines.push(`  files fetched from the test's server: ${hits || "none"}`);
      console.log(lines.join("\n"));
      assert.equal(outcomes.length, names.length, "every definition has an outcome");
      assert.deepEqual(
        of("failed").map((o) => `${o.file}: ${o.detail}`),
        [],
        "every definition Drover accepts runs here",
      );
    }),
);
