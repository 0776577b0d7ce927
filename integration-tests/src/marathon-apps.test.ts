/**
 * Marathon app definitions on a real cluster. Every definition of the corpus
 * (integration-tests/corpus/marathon, taken from Marathon's documentation and fixtures) is given
 * to `drover app add` with its image swapped for a local one and 0 instances: it is either
 * accepted and comes back from `app show --json` in Marathon's shape, or refused with an error
 * that names the field. A command-only app runs in the agent's default image with Marathon's
 * environment; an app with `args` runs them without a shell.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseAppSpecJson } from "@drover/core";
import Docker from "dockerode";
import {
  type Cluster,
  repoRoot,
  startCluster,
  TASK_IMAGE,
  waitFor,
  withClusterLogs,
} from "./harness/index.js";

const CORPUS = join(repoRoot, "integration-tests", "corpus", "marathon");
const docker = new Docker({ socketPath: "/var/run/docker.sock" });
let cluster: Cluster | undefined;
let dir = "";

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-marathon-"));
  cluster = await startCluster({ agents: 1 });
});

after(async () => {
  await cluster?.stop();
});

const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

/** The definition with every docker image replaced by the local task image (no registry here). */
function localImage(def: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(def);
  const docker = (copy.container as { docker?: { image?: string } } | undefined)?.docker;
  if (docker?.image) docker.image = TASK_IMAGE;
  return copy;
}

test(
  "the corpus: each definition is accepted and shown in Marathon's shape, or refused naming a field",
  {
    timeout: 300_000,
  },
  () =>
    withLogs(async () => {
      const files = readdirSync(CORPUS).filter((f) => /^\d+-.*\.json$/.test(f));
      assert.ok(files.length >= 20, `the corpus has ${files.length} definitions`);
      const accepted: string[] = [];
      const refused: string[] = [];
      for (const f of files) {
        const def = localImage(JSON.parse(readFileSync(join(CORPUS, f), "utf8")) as Record<string, unknown>);
        def.instances = 0;
        const file = join(dir, f);
        await writeFile(file, JSON.stringify(def));
        const added = await current().cli(["app", "add", file, "--json"]);
        if (added.code !== 0) {
          // One line naming at least one field: "drover: error: invalid input: <path>: <why>; ...".
          assert.match(added.stderr, /^drover: error: invalid input: [\w.[\]]*: /m, `${f}: ${added.stderr}`);
          refused.push(`${f}: ${added.stderr.trim().replace(/^drover: error: invalid input: /, "")}`);
          continue;
        }
        const { id } = JSON.parse(added.stdout) as { id: string };
        const shown = await current().cliJson<Record<string, unknown>>(["app", "show", id, "--json"]);
        const { tasksRunning, tasksStaged, ...definition } = shown;
        assert.equal(tasksRunning, 0, f);
        assert.equal(tasksStaged, 0, f);
        // What the API shows is a Marathon definition that means the same app again.
        const again = parseAppSpecJson(JSON.stringify(definition));
        const original = parseAppSpecJson(JSON.stringify(def));
        assert.ok(again.ok && original.ok, `${f}: shown definition does not parse`);
        assert.deepEqual(again.value, original.value, `${f}: the shown definition differs`);
        assert.equal(definition.cpus, original.value.cpus);
        accepted.push(`${f} as ${id}`);
        const removed = await current().cli(["app", "remove", id]);
        assert.equal(removed.code, 0, removed.stderr);
      }
      console.log(
        `corpus: ${accepted.length} accepted, ${refused.length} refused\n  accepted: ${accepted.join(", ")}\n  refused:\n    ${refused.join("\n    ")}`,
      );
      assert.equal(accepted.length + refused.length, files.length);
      assert.ok(accepted.length > 0, "no corpus definition was accepted");
    }),
);

interface TaskJson {
  taskId: string;
  appId: string;
  state: string;
  image: string;
  ports: number[];
}

async function running(id: string, n: number): Promise<TaskJson[]> {
  return waitFor(
    `${n} tasks of ${id} RUNNING`,
    async () => {
      const all = await current().cliJson<TaskJson[]>(["task", "list", "--app", id, "--json"]);
      const run = all.filter((t) => t.state === "TASK_RUNNING");
      return run.length === n ? run : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
}

/** The environment of the task's container, as Docker has it. */
async function containerEnv(taskId: string): Promise<Record<string, string>> {
  const [c] = await docker.listContainers({ filters: { label: [`drover.task_id=${taskId}`] } });
  assert.ok(c, `a container of ${taskId}`);
  const info = await docker.getContainer(c.Id).inspect();
  return Object.fromEntries(
    (info.Config.Env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]),
  );
}

test(
  "a command-only app runs in the agent's default image, with Marathon's environment",
  { timeout: 120_000 },
  () =>
    withLogs(async () => {
      const file = join(dir, "cmd-only.json");
      await writeFile(
        file,
        JSON.stringify({ id: "/batch/cmd-only", cmd: "sleep 100000", instances: 2, cpus: 0.05, mem: 16 }),
      );
      const added = await current().cli(["app", "add", file]);
      assert.equal(added.code, 0, added.stderr);
      const tasks = await running("/batch/cmd-only", 2);
      for (const t of tasks) {
        assert.equal(t.appId, "/batch/cmd-only");
        assert.match(t.taskId, /^batch_cmd-only\./, "Marathon's task id: the app path with _ for /");
        assert.equal(t.ports.length, 1, "Marathon's default: one port per task on host networking");
        const env = await containerEnv(t.taskId);
        assert.equal(env.MARATHON_APP_ID, "/batch/cmd-only");
        assert.equal(env.MESOS_TASK_ID, t.taskId);
        assert.equal(env.PORT0, String(t.ports[0]));
        assert.equal(env.PORTS, String(t.ports[0]));
      }
      const [c] = await docker.listContainers({ filters: { label: [`drover.task_id=${tasks[0]?.taskId}`] } });
      assert.equal(c?.Image, TASK_IMAGE, "the agent's default task image");
      const removed = await current().cli(["app", "remove", "/batch/cmd-only"]);
      assert.equal(removed.code, 0, removed.stderr);
    }),
);

test(
  "args run without a shell; a field Drover does not run yet is refused by name",
  { timeout: 120_000 },
  () =>
    withLogs(async () => {
      const file = join(dir, "args.json");
      await writeFile(
        file,
        JSON.stringify({
          id: "args-app",
          container: { type: "DOCKER", docker: { image: TASK_IMAGE } },
          args: ["sleep", "100000"],
          cpus: 0.05,
          mem: 16,
        }),
      );
      const added = await current().cli(["app", "add", file]);
      assert.equal(added.code, 0, added.stderr);
      const [t] = await running("args-app", 1);
      assert.ok(t);
      const [c] = await docker.listContainers({ filters: { label: [`drover.task_id=${t.taskId}`] } });
      assert.ok(c);
      const info = await docker.getContainer(c.Id).inspect();
      assert.deepEqual(info.Config.Cmd, ["sleep", "100000"]);
      assert.equal((await current().cli(["app", "remove", "args-app"])).code, 0);

      const dependent = join(dir, "dependent.json");
      await writeFile(
        dependent,
        JSON.stringify({
          id: "dependent",
          cmd: "sleep 1000",
          dependencies: ["/dependent"],
          cpus: 0.05,
          mem: 16,
        }),
      );
      // Dependencies run now (groups.test.ts); one on itself is a cycle, refused naming it.
      const refused = await current().cli(["app", "add", dependent]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /dependencies: cycle \/dependent → \/dependent/);
    }),
);
