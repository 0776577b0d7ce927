/**
 * A scheduler leader in one process on the in-memory store (libs/testing's memoryStore), with no
 * master: the task view is filled by the caller. For unit tests and benches of the application
 * service, the HTTP API and the deployments; never used by the scheduler itself.
 */
import { type Clock, createLogger, type Logger } from "@drover/common";
import { SchedulerConfigSchema } from "@drover/config";
import { memoryStore } from "@drover/testing";
import { AppService, type SchedulerLeader } from "./app-service.js";
import { AppStore } from "./apps.js";
import { DeploymentStore } from "./deployments.js";
import { FrameworkDriver } from "./framework.js";

/** The address the leader's AppService answers for itself (it leads: no forwarding). */
export const MEMORY_LEADER_ADDRESS = "127.0.0.1:5060";

export function memoryLeader(opts: { log?: Logger; clock?: Clock } = {}) {
  const log = opts.log ?? createLogger("test", "error");
  const m = memoryStore({ service: "scheduler" });
  const apps = new AppStore(m.store, m.leadership);
  const deployments = new DeploymentStore(m.store, m.leadership, log, opts.clock);
  const framework = new FrameworkDriver({
    config: SchedulerConfigSchema.parse({}),
    log,
    apps: () => apps.records(),
    deployments,
    loadFrameworkId: async () => undefined,
    saveFrameworkId: async () => {},
  });
  const leader: SchedulerLeader = { apps, deployments, framework, changed: () => {} };
  const service = new AppService({
    current: () => leader,
    leaderAddress: async () => MEMORY_LEADER_ADDRESS,
    self: MEMORY_LEADER_ADDRESS,
  });
  return { ...m, apps, deployments, framework, leader, service, log };
}
