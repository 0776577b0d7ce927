/**
 * Log retention on a real etcd: events past retention (and published) leave the log, a
 * checkpoint keeps what they built, deleted aggregates vanish, verify-log replays the retained
 * window; and the master's relay resumes on its own after etcd compacted the revision it
 * resumes from (it used to stop publishing silently).
 */
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { connectBus, followEvents, type PublishedEvent } from "@drover/bus";
import { createLogger } from "@drover/common";
import { AppAggregate, type AppEvent, type AppSpec, AppSpecSchema } from "@drover/core";
import { CHECKPOINT_PREFIX, connectEtcd, EventStore, LOG_PREFIX, pruneLog, verifyLog } from "@drover/store";
import type { Etcd3 } from "etcd3";
import { type Cluster, type ServiceProcess, startCluster, waitFor } from "./harness/index.js";

let cluster: Cluster | undefined;

before(async () => {
  cluster = await startCluster({ agents: 0, waitReady: false });
  const c = cluster;
  await waitFor(
    "the scheduler answers (streams exist)",
    async () => (await c.cli(["app", "list"])).code === 0,
    {
      timeoutMs: 60_000,
    },
  );
});

after(async () => {
  await cluster?.stop();
});

const spec = (id: string, instances = 0): AppSpec =>
  AppSpecSchema.parse({
    id,
    container: { docker: { image: "drover/busybox:1" } },
    instances,
    cpus: 0.1,
    mem: 32,
  });

test("retention removes published events past retention, keeps checkpoints, and verify-log replays the window", async () => {
  const c = cluster;
  assert.ok(c);
  const etcd = connectEtcd([c.infra.etcdEndpoint]);
  try {
    const store = new EventStore(etcd);
    const longAgo = Date.now() - 3 * 3600_000;
    const versions = new Map<string, { version: number; modRevision: string; state: unknown }>();
    const commit = async (id: string, events: AppEvent[], atMs: number) => {
      const cur = versions.get(id) ?? { version: 0, modRevision: "0", state: undefined };
      const res = await store.commit(
        undefined,
        [
          {
            def: AppAggregate,
            id,
            expectedVersion: cur.version,
            expectedModRevision: cur.modRevision,
            state: cur.state,
            events,
          },
        ],
        atMs,
      );
      const r = res.results[0];
      assert.ok(r);
      versions.set(id, { version: r.version, modRevision: r.modRevision, state: r.state });
    };
    // "kept": old history, still alive. "gone": created and deleted long ago. "fresh": recent.
    await commit("ret-kept", [{ type: "AppCreated", spec: spec("ret-kept") }], longAgo);
    await commit("ret-kept", [{ type: "AppScaled", instances: 2 }], longAgo);
    await commit("ret-gone", [{ type: "AppCreated", spec: spec("ret-gone") }], longAgo);
    await commit("ret-gone", [{ type: "AppDeleted" }], longAgo);
    await commit("ret-fresh", [{ type: "AppCreated", spec: spec("ret-fresh") }], Date.now());

    const logKeys = async (id: string) =>
      Object.keys(await etcd.getAll().prefix(`${LOG_PREFIX}app/${id}/`).strings()).length;
    assert.equal(await logKeys("ret-kept"), 2);

    // Nothing past the published revision is removed.
    const none = await pruneLog(store, undefined, {
      retentionMs: 3600_000,
      nowMs: Date.now(),
      publishedRevision: 0n,
    });
    assert.equal(none.events, 0);

    const report = await pruneLog(store, undefined, {
      retentionMs: 3600_000,
      nowMs: Date.now(),
      publishedRevision: 1n << 62n,
    });
    console.log(`[retention] ${JSON.stringify(report)}`);
    assert.equal(await logKeys("ret-kept"), 0);
    assert.equal(await logKeys("ret-gone"), 0);
    assert.equal(await logKeys("ret-fresh"), 1);
    assert.ok(
      await etcd.get(`${CHECKPOINT_PREFIX}app/ret-kept`).string(),
      "a checkpoint keeps ret-kept's state",
    );
    assert.equal(await etcd.get(`${CHECKPOINT_PREFIX}app/ret-gone`).string(), null);
    assert.equal(
      await etcd.get("/drover/state/app/ret-gone").string(),
      null,
      "a deleted aggregate vanishes (its tombstone too)",
    );
    assert.ok(report.events >= 4 && report.checkpointed >= 1 && report.removed >= 1, JSON.stringify(report));

    let v = await verifyLog(store);
    assert.ok(v.ok, JSON.stringify(v.mismatches));
    // New events continue from the checkpoint's version, and replay from it still matches.
    await commit("ret-kept", [{ type: "AppScaled", instances: 3 }], Date.now());
    assert.equal(versions.get("ret-kept")?.version, 3);
    v = await verifyLog(store);
    assert.ok(v.ok, JSON.stringify(v.mismatches));
    // An id whose aggregate vanished starts again at version 1.
    versions.delete("ret-gone");
    await commit("ret-gone", [{ type: "AppCreated", spec: spec("ret-gone") }], Date.now());
    assert.equal(versions.get("ret-gone")?.version, 1);
    v = await verifyLog(store);
    assert.ok(v.ok, JSON.stringify(v.mismatches));
  } finally {
    etcd.close();
  }
});

/**
 * Runs `body` with the cluster's first master, an etcd client, and the app events published
 * on NATS from now on (collected in `seen`); closes the clients after.
 */
async function withAppEvents(
  name: string,
  body: (x: { c: Cluster; master: ServiceProcess; etcd: Etcd3; seen: PublishedEvent[] }) => Promise<void>,
): Promise<void> {
  const c = cluster;
  assert.ok(c);
  const master = c.masters[0];
  assert.ok(master);
  const bus = await connectBus([c.infra.natsUrl], name, createLogger("test", "warn"));
  const etcd = connectEtcd([c.infra.etcdEndpoint]);
  const seen: PublishedEvent[] = [];
  let stopFollowing: (() => Promise<void>) | undefined;
  try {
    stopFollowing = await followEvents(bus, createLogger("test", "warn"), (e) => void seen.push(e), {
      filter: "drover.events.app.>",
    });
    await body({ c, master, etcd, seen });
  } finally {
    await stopFollowing?.();
    await bus.close();
    etcd.close();
  }
}

test("the relay catches up by itself after etcd compacted the revision it resumes from", async () => {
  await withAppEvents("retention-test", async ({ c, master, etcd, seen }) => {
    await master.stop();
    // While no master relays, an app is committed and etcd compacts away every older revision.
    const file = join(await mkdtemp(join(tmpdir(), "drover-retention-")), "app.json");
    await writeFile(
      file,
      JSON.stringify({
        id: "while-away",
        container: { docker: { image: "drover/busybox:1" } },
        instances: 0,
      }),
    );
    const created = await c.cli(["app", "add", file]);
    assert.equal(created.code, 0, created.stderr);
    const rev = (await etcd.kv.range({ key: Buffer.from(LOG_PREFIX), limit: 1 })).header.revision;
    await etcd.kv.compact({ revision: rev, physical: true });
    const restarted = await c.restart(master);
    await waitFor(
      "the AppCreated of while-away is published after the compaction",
      async () => seen.some((e) => e.id === "while-away" && e.event.type === "AppCreated"),
      { timeoutMs: 45_000 },
    );
    assert.ok(restarted.running, c.describe(40));
    assert.match(restarted.logs(), /relay watch failed; catching up from the log/);
  });
});

test("the relay publishes in batches: 600 events, the master restarted in the middle, each event in the stream once and in revision order", async () => {
  await withAppEvents("relay-test", async ({ c, master, etcd, seen }) => {
    const store = new EventStore(etcd);
    const spec = (id: string): AppSpec =>
      AppSpecSchema.parse({
        id,
        container: { docker: { image: "drover/busybox:1" } },
        instances: 0,
        cpus: 0.1,
        mem: 32,
      });
    // 300 apps of two events each, committed 20 at a time; the master restarts after the first half.
    const commitApps = async (from: number, to: number) => {
      for (let i = from; i < to; i += 20) {
        const ids = Array.from({ length: Math.min(20, to - i) }, (_, k) => `relay-${i + k}`);
        await store.commit(
          undefined,
          ids.map((id) => ({
            def: AppAggregate,
            id,
            expectedVersion: 0,
            state: undefined,
            events: [
              { type: "AppCreated", spec: spec(id) },
              { type: "AppUpdated", spec: { ...spec(id), cmd: "v2" } },
            ] satisfies AppEvent[],
          })),
          Date.now(),
        );
      }
    };
    await commitApps(0, 150);
    const restarting = c.restart(master);
    await commitApps(150, 300);
    await restarting;
    const mine = () => seen.filter((e) => e.id.startsWith("relay-"));
    await waitFor("all 600 events of relay-* published", async () => mine().length >= 600, {
      timeoutMs: 60_000,
    });
    // A short wait for any duplicate still in flight, then the exact check.
    await waitFor("no more events arrive", async () => {
      const n = mine().length;
      await new Promise((r) => setTimeout(r, 500));
      return mine().length === n;
    });
    const events = mine();
    const keys = events.map((e) => `${e.id}/${e.version}`);
    assert.equal(new Set(keys).size, keys.length, "no event published twice");
    assert.equal(events.length, 600);
    const revisions = events.map((e) => BigInt(e.revision));
    for (let i = 1; i < revisions.length; i++)
      assert.ok((revisions[i] ?? 0n) >= (revisions[i - 1] ?? 0n), `revision order at ${i}`);
  });
});
