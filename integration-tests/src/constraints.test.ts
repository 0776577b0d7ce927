/**
 * Marathon constraints on a real cluster of three agents (hostnames drover-h1..h3, racks r1..r3,
 * each with a host port range of its own): every operator places as Marathon would, in both
 * syntaxes; an instance no agent can take waits, and `drover app why` names the constraint; a
 * malformed constraint is refused naming its index.
 */
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type Cluster, startCluster, TASK_IMAGE, waitFor, withClusterLogs } from "./harness/index.js";

let cluster: Cluster | undefined;
let dir = "";

interface TaskJson {
  taskId: string;
  appId: string;
  agentId: string;
  state: string;
}

interface AgentJson {
  agentId: string;
  hostname: string;
  attributes: Record<string, string> | { key: string; value: string }[];
}

/** agent id → rack, filled once the agents registered. */
const rackOf = new Map<string, string>();

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "drover-constraints-"));
  cluster = await startCluster({
    agents: 3,
    agentEnv: (i) => ({
      DROVER_AGENT_HOSTNAME: `drover-h${i + 1}`,
      DROVER_AGENT_ATTRIBUTES: `rack:r${i + 1}`,
      DROVER_AGENT_PORTS: `${31000 + i * 100}-${31000 + i * 100 + 99}`,
      DROVER_AGENT_CPUS: "1",
      DROVER_AGENT_MEM: "1024",
    }),
  });
  const agents = await cluster.cliJson<AgentJson[]>(["agent", "list", "--json"]);
  for (const a of agents) {
    const rack = Array.isArray(a.attributes)
      ? a.attributes.find((x) => x.key === "rack")?.value
      : a.attributes.rack;
    if (rack) rackOf.set(a.agentId, rack);
  }
  assert.equal(rackOf.size, 3, JSON.stringify(agents));
});

after(async () => {
  await cluster?.stop();
});

const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

async function addApp(id: string, instances: number, constraints: unknown): Promise<void> {
  const file = join(dir, `${id}.json`);
  await writeFile(
    file,
    JSON.stringify({
      id,
      container: { type: "DOCKER", docker: { image: TASK_IMAGE } },
      cmd: "sleep 100000",
      instances,
      cpus: 0.05,
      mem: 16,
      constraints,
    }),
  );
  const r = await current().cli(["app", "add", file]);
  assert.equal(r.code, 0, r.stderr);
}

/** Waits until `n` tasks of the app run (and no other task of it is active), then their racks, sorted. */
async function racksOf(id: string, n: number): Promise<string[]> {
  const tasks = await waitFor(
    `${n} tasks of ${id} RUNNING`,
    async () => {
      const all = await current().cliJson<TaskJson[]>(["task", "list", "--app", id, "--json"]);
      const running = all.filter((t) => t.state === "TASK_RUNNING");
      return running.length === n && all.length === n ? running : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  return tasks.map((t) => rackOf.get(t.agentId) ?? "?").sort();
}

async function removeApp(id: string): Promise<void> {
  const r = await current().cli(["app", "remove", id]);
  assert.equal(r.code, 0, r.stderr);
}

test("each operator places as Marathon would on three racks, in both syntaxes", { timeout: 240_000 }, () =>
  withLogs(async () => {
    await addApp("unique", 3, [["hostname", "UNIQUE"]]);
    await addApp("cluster", 2, ["rack:CLUSTER:r2"]);
    await addApp("groupby", 3, [["rack", "GROUP_BY", "3"]]);
    await addApp("like", 4, [["rack", "LIKE", "r[13]"]]);
    await addApp("unlike", 2, [["rack", "UNLIKE", "r1|r2"]]);
    await addApp("maxper", 3, [["rack", "MAX_PER", "1"]]);
    await addApp("is", 2, [["rack", "IS", "r1"]]);
    assert.deepEqual(await racksOf("unique", 3), ["r1", "r2", "r3"]);
    assert.deepEqual(await racksOf("cluster", 2), ["r2", "r2"]);
    assert.deepEqual(await racksOf("groupby", 3), ["r1", "r2", "r3"]);
    const like = await racksOf("like", 4);
    assert.ok(
      like.every((r) => r === "r1" || r === "r3"),
      `LIKE r[13] placed on ${like}`,
    );
    assert.deepEqual(await racksOf("unlike", 2), ["r3", "r3"]);
    assert.deepEqual(await racksOf("maxper", 3), ["r1", "r2", "r3"]);
    assert.deepEqual(await racksOf("is", 2), ["r1", "r1"]);
    for (const id of ["unique", "cluster", "groupby", "like", "unlike", "maxper", "is"]) await removeApp(id);
  }),
);

test("an instance no agent can take waits, and 'app why' names the constraint", { timeout: 120_000 }, () =>
  withLogs(async () => {
    await addApp("one-per-host", 4, ["hostname:UNIQUE"]);
    assert.deepEqual(await racksOf("one-per-host", 3), ["r1", "r2", "r3"]);
    const why = await waitFor(
      "app why to name the constraint",
      async () => {
        const q = await current().cliJson<{ waiting: number; reasons: { text: string }[] }>([
          "app",
          "why",
          "one-per-host",
          "--json",
        ]);
        return q.waiting === 1 && q.reasons.some((r) => /constraint hostname:UNIQUE/.test(r.text))
          ? q
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    assert.ok(
      why.reasons.some((r) => r.text === "constraint hostname:UNIQUE excluded 3 agents"),
      JSON.stringify(why),
    );
    await removeApp("one-per-host");
  }),
);

test("a malformed constraint is refused naming its index, and nothing is stored", { timeout: 60_000 }, () =>
  withLogs(async () => {
    const file = join(dir, "bad.json");
    await writeFile(
      file,
      JSON.stringify({
        id: "bad-constraint",
        cmd: "sleep 1",
        constraints: [
          ["hostname", "UNIQUE"],
          ["rack", "GROUP_BY", "zero"],
        ],
      }),
    );
    const r = await current().cli(["app", "add", file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /constraints\[1\]/);
    const show = await current().cli(["app", "show", "bad-constraint"]);
    assert.notEqual(show.code, 0, "the app was not created");
  }),
);
