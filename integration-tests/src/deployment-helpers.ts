/**
 * Helpers of the deployment tests on a real cluster (deployments-more.test.ts): an app of busybox
 * httpd with an HTTP health check, its tasks through the scheduler's ListTasks, a sampler of the
 * healthy and active counts every 200 ms, and the elected leader of a service from etcd.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { LeaderClient } from "@drover/common";
import { type Deployment, fromWireState, type SchedulerClient } from "@drover/proto";
import type { Etcd3 } from "etcd3";
import { type Cluster, waitFor } from "./harness/index.js";

export interface AppOptions {
  strategy?: [number, number];
  path?: string;
  instances?: number;
  labels?: Record<string, string>;
}

/** busybox httpd on $PORT0 with an HTTP health check (1 s interval, 5 s grace, 3 failures). */
export function appDef(id: string, v: string, o: AppOptions = {}) {
  const [min, over] = o.strategy ?? [1, 1];
  return {
    id,
    cmd: "mkdir -p /www && echo ok > /www/health && exec httpd -f -p $PORT0 -h /www",
    cpus: 0.05,
    mem: 16,
    instances: o.instances ?? 4,
    env: { V: v },
    ...(o.labels ? { labels: o.labels } : {}),
    upgradeStrategy: { minimumHealthCapacity: min, maximumOverCapacity: over },
    healthChecks: [
      {
        protocol: "HTTP",
        path: o.path ?? "/health",
        portIndex: 0,
        intervalSeconds: 1,
        timeoutSeconds: 1,
        gracePeriodSeconds: 5,
        maxConsecutiveFailures: 3,
      },
    ],
  };
}

export interface Snapshot {
  ids: string[];
  active: number;
  healthy: number;
  versions: string[];
}

export class DeploymentFixture {
  constructor(
    private readonly cluster: () => Cluster,
    private readonly sched: () => LeaderClient<SchedulerClient>,
    private readonly dir: () => string,
  ) {}

  async writeDef(def: Record<string, unknown>): Promise<string> {
    const file = join(this.dir(), `${String(def.id).replaceAll("/", "_")}-${Date.now()}.json`);
    await writeFile(file, JSON.stringify(def));
    return file;
  }

  async snapshot(appId: string): Promise<Snapshot> {
    const res = await this.sched().call((c) => c.listTasks.bind(c), {
      appId,
      includeTerminal: false,
      pageSize: 0,
      pageToken: "",
    });
    const states = res.tasks.map((t) => ({
      id: t.info?.taskId ?? "",
      state: t.status ? fromWireState(t.status.state) : undefined,
      healthy: t.status?.health?.healthy === true,
      version: t.info?.run?.appVersion ?? "",
    }));
    return {
      ids: states.map((s) => s.id),
      active: states.length,
      healthy: states.filter((s) => s.state === "TASK_RUNNING" && s.healthy).length,
      versions: states.map((s) => s.version),
    };
  }

  /** Samples the app's counts every 200 ms until stopped (a failed read, e.g. during a failover, is skipped). */
  sampler(appId: string) {
    let stop = false;
    const seen = { minHealthy: Number.POSITIVE_INFINITY, maxActive: 0, samples: 0, failed: 0 };
    const duplicates: string[] = [];
    const loop = (async () => {
      while (!stop) {
        try {
          const s = await this.snapshot(appId);
          seen.samples++;
          seen.minHealthy = Math.min(seen.minHealthy, s.healthy);
          seen.maxActive = Math.max(seen.maxActive, s.active);
          if (new Set(s.ids).size !== s.ids.length) duplicates.push(...s.ids);
        } catch {
          seen.failed++;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    return {
      seen,
      duplicates,
      async stop() {
        stop = true;
        await loop;
        return seen;
      },
    };
  }

  /** Adds the app and waits until all its instances are healthy; returns how long that took. */
  async addHealthy(def: Record<string, unknown>): Promise<number> {
    const started = Date.now();
    const n = Number(def.instances);
    const res = await this.cluster().cli(["app", "add", await this.writeDef(def)]);
    assert.equal(res.code, 0, res.stderr);
    await waitFor(
      `${String(def.id)}: ${n} healthy`,
      async () => (await this.snapshot(String(def.id))).healthy === n,
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    return Date.now() - started;
  }

  async deployment(id: string): Promise<Deployment> {
    const d = (await this.sched().call((c) => c.getDeployment.bind(c), { id })).deployment;
    assert.ok(d, `deployment ${id}`);
    return d;
  }

  /** Waits until the deployment is in `state`; returns it. */
  async ended(id: string, state: string, timeoutMs = 120_000): Promise<Deployment> {
    return waitFor(
      `deployment ${id} ${state}`,
      async () => {
        const d = await this.deployment(id).catch(() => undefined);
        if (d && d.state !== "running" && d.state !== state)
          throw new Error(`deployment ${id} ended ${d.state}: ${d.reason}`);
        return d?.state === state ? d : undefined;
      },
      { timeoutMs, intervalMs: 200 },
    );
  }

  /** `drover app update ID FILE --detach [...extra]`; returns the deployment id. */
  async updateDetached(def: Record<string, unknown>, extra: string[] = []): Promise<string> {
    const up = await this.cluster().cli([
      "app",
      "update",
      String(def.id),
      await this.writeDef(def),
      "--detach",
      ...extra,
    ]);
    assert.equal(up.code, 0, up.stderr);
    const id = /deployment ([0-9a-f-]{36})/.exec(up.stdout)?.[1];
    assert.ok(id, up.stdout);
    return id;
  }

  async remove(appId: string): Promise<void> {
    const res = await this.cluster().cli(["app", "remove", appId]);
    assert.equal(res.code, 0, res.stderr);
  }
}

/** The advertised address of the elected leader of `service` (the first election key by create revision). */
export async function electedLeader(
  etcd: Etcd3,
  service: "master" | "scheduler",
): Promise<string | undefined> {
  const res = await etcd
    .getAll()
    .prefix(`/drover/election/${service}/`)
    .sort("Create", "Ascend")
    .limit(1)
    .exec();
  return res.kvs[0]?.value.toString();
}
