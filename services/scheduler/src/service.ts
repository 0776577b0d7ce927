/** gRPC surface of the scheduler. Followers answer UNAVAILABLE with the leader's address. */

import { InvalidArgumentError, type Logger, NotLeaderError, unaryHandler } from "@drover/common";
import type { AppRecord } from "@drover/core";
import type { App, ListTasksRequest, ListTasksResponse, SchedulerServer } from "@drover/proto";
import { Metadata } from "@grpc/grpc-js";
import { AppStore } from "./apps.js";
import type { FrameworkDriver } from "./framework.js";

export interface SchedulerLeader {
  apps: AppStore;
  framework: FrameworkDriver;
  changed(): void;
}

export interface SchedulerRef {
  current(): SchedulerLeader | undefined;
  leaderAddress(): Promise<string | undefined>;
}

function toApp(l: SchedulerLeader, r: AppRecord, version: number): App {
  const s = r.spec;
  const c = l.framework.counts(s.id);
  return {
    id: s.id,
    image: s.container.docker.image,
    cmd: s.cmd ?? "",
    instances: s.instances,
    cpus: s.cpus,
    mem: s.mem,
    env: { ...s.env },
    labels: { ...s.labels },
    version,
    tasksRunning: c.running,
    tasksStaged: c.staged,
    backoffUntilMs: l.framework.backoffUntil(s.id),
    definitionJson: JSON.stringify(s),
  };
}

export function schedulerService(ref: SchedulerRef, log: Logger): SchedulerServer {
  const leader = async (): Promise<SchedulerLeader> => {
    const l = ref.current();
    if (l) return l;
    throw new NotLeaderError(await ref.leaderAddress());
  };
  const requireId = (id: string) => {
    if (!id) throw new InvalidArgumentError([{ path: "id", message: "required" }]);
  };
  return {
    createApp: unaryHandler(log, "CreateApp", async (req) => {
      const spec = AppStore.parse(req.appJson);
      const l = await leader();
      const rec = await l.apps.create(spec);
      l.changed();
      const { version } = l.apps.get(spec.id);
      return { app: rec ? toApp(l, rec, version) : undefined };
    }),
    getApp: unaryHandler(log, "GetApp", async (req) => {
      requireId(req.id);
      const l = await leader();
      const { state, version } = l.apps.get(req.id);
      return { app: toApp(l, state, version) };
    }),
    listApps: unaryHandler(log, "ListApps", async () => {
      const l = await leader();
      return {
        apps: [...l.apps.records().entries()]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([id, r]) => toApp(l, r, l.apps.get(id).version)),
      };
    }),
    updateApp: unaryHandler(log, "UpdateApp", async (req) => {
      requireId(req.id);
      const spec = AppStore.parse(req.appJson);
      const l = await leader();
      const rec = await l.apps.update(req.id, spec);
      l.changed();
      return { app: rec ? toApp(l, rec, l.apps.get(req.id).version) : undefined };
    }),
    scaleApp: unaryHandler(log, "ScaleApp", async (req) => {
      requireId(req.id);
      const l = await leader();
      const rec = await l.apps.scale(req.id, req.instances);
      l.changed();
      return { app: rec ? toApp(l, rec, l.apps.get(req.id).version) : undefined };
    }),
    deleteApp: unaryHandler(log, "DeleteApp", async (req) => {
      requireId(req.id);
      const l = await leader();
      await l.apps.remove(req.id);
      l.changed();
      return {};
    }),
    listTasks: unaryHandler(log, "ListTasks", async (req) => {
      const l = await leader();
      const frameworkId = l.framework.frameworkId;
      if (!frameworkId) return { tasks: [] };
      const res = await l.framework.masters.unary<ListTasksRequest, ListTasksResponse>(
        (c, r, deadline, cb) => c.listTasks(r, new Metadata(), { deadline }, cb),
        { frameworkId, appId: req.appId, includeTerminal: req.includeTerminal },
      );
      return { tasks: res.tasks };
    }),
  };
}
