/**
 * gRPC surface of the master. Every call is answered by the leader; a follower answers
 * UNAVAILABLE with the leader's address in the `drover-leader` trailer.
 */
import {
  assertDecoded,
  errorMessage,
  InvalidArgumentError,
  type Logger,
  logRefusal,
  NotLeaderError,
  requestIdOf,
  SessionClosedError,
  STREAM_ID_METADATA_KEY,
  toGrpcError,
  UndecodableMessage,
  unaryHandler,
} from "@drover/common";
import { isTerminal, type TaskRecord } from "@drover/core";
import {
  type AgentCommand,
  type AgentInfo,
  type AgentMessage,
  type FrameworkEvent,
  type FrameworkInfo,
  fromWireTaskInfo,
  type MasterServer,
  type SubscribeRequest,
  type Task,
  toWireResources,
  toWireTask,
} from "@drover/proto";
import type { Metadata, ServerDuplexStream, ServerWritableStream } from "@grpc/grpc-js";
import type { AgentConn, FrameworkConn, MasterLeader } from "./leader.js";

export interface LeaderRef {
  current(): MasterLeader | undefined;
  leaderAddress(): Promise<string | undefined>;
  /** This replica's advertised address. */
  self: string;
}

/** Ends a stream with the error's status (through the one boundary); never throws. */
function closeWithError(
  log: Logger,
  name: string,
  call: { emit(event: "error", err: unknown): boolean },
  err: unknown,
): void {
  const e = toGrpcError(err);
  logRefusal(log, name, err, e.code, e.details);
  try {
    call.emit("error", { code: e.code, details: e.details, metadata: e.metadata });
  } catch (emitErr) {
    log.warn(`${name}: the stream could not be closed with its error`, { err: emitErr });
  }
}

/** The caller's proof of subscription (see Subscribed.stream_id). */
function streamIdOf(call: { metadata: Metadata }): string | undefined {
  const v = call.metadata.get(STREAM_ID_METADATA_KEY)[0];
  return typeof v === "string" ? v : undefined;
}

/** Messages buffered on a framework's stream beyond which its status updates are held (see Subscribe). */
const FRAMEWORK_STREAM_BUFFERED = 256;

export function masterService(ref: LeaderRef, log: Logger): MasterServer {
  const leader = async (): Promise<MasterLeader> => {
    const l = ref.current();
    if (l) return l;
    // Elected but still starting: no hint to itself (callers back off instead of retrying at once).
    const address = await ref.leaderAddress();
    throw new NotLeaderError(address === ref.self ? undefined : address);
  };

  const agentInfo = (l: MasterLeader): AgentInfo[] =>
    [...l.state.agents.values()].flatMap((e) => {
      const a = e.state;
      if (!a) return [];
      return [
        {
          agentId: a.agentId,
          hostname: a.hostname,
          resources: toWireResources(a.resources),
          used: toWireResources(l.usedOn(a.agentId)),
          attributes: Object.entries(a.attributes).map(([key, value]) => ({ key, value })),
          connected: l.isAgentConnected(a.agentId),
          registeredAtMs: a.registeredAtMs,
          lastSeenMs: l.agentLastSeen(a.agentId),
        },
      ];
    });

  const frameworkInfo = (l: MasterLeader): FrameworkInfo[] => {
    const total = l.capacity();
    return [...l.state.frameworks.values()].flatMap((e) => {
      const f = e.state;
      if (!f) return [];
      const allocated = l.allocatedTo(f.frameworkId);
      const share = Math.max(
        total.cpus > 0 ? allocated.cpus / total.cpus : 0,
        total.mem > 0 ? allocated.mem / total.mem : 0,
      );
      return [
        {
          frameworkId: f.frameworkId,
          name: f.name,
          role: f.role,
          connected: l.isFrameworkConnected(f.frameworkId),
          failoverTimeoutSeconds: f.failoverTimeoutSeconds,
          suppressed: l.isSuppressed(f.frameworkId),
          allocated: toWireResources(allocated),
          dominantShare: share,
          activeTasks: l.activeTasksOf(f.frameworkId),
        },
      ];
    });
  };

  // The tasks a query can match, from the index when it names a framework (and an app).
  const candidates = (l: MasterLeader, f: { frameworkId?: string; appId?: string }): TaskRecord[] => {
    if (!f.frameworkId) return l.state.allTasks();
    const ids = f.appId
      ? l.index.tasksOfApp(f.frameworkId, f.appId)
      : l.index.tasksOfFramework(f.frameworkId);
    return [...ids].flatMap((id) => l.state.task(id) ?? []);
  };
  const unsorted = (
    l: MasterLeader,
    f: { frameworkId?: string; appId?: string; includeTerminal?: boolean },
  ): TaskRecord[] =>
    candidates(l, f).filter(
      (t) =>
        (!f.frameworkId || t.info.frameworkId === f.frameworkId) &&
        (!f.appId || t.info.appId === f.appId) &&
        (f.includeTerminal || !isTerminal(t.status.state)),
    );
  const matching = (
    l: MasterLeader,
    f: { frameworkId?: string; appId?: string; includeTerminal?: boolean },
  ): TaskRecord[] => unsorted(l, f).sort(byCreation);
  const tasks = (
    l: MasterLeader,
    f: { frameworkId?: string; appId?: string; includeTerminal?: boolean },
  ): Task[] => matching(l, f).map(toWireTask);

  return {
    agentSession(call: ServerDuplexStream<AgentMessage, AgentCommand>) {
      let agentId: string | undefined;
      let active: MasterLeader | undefined;
      let ended = false;
      const conn: AgentConn = {
        send: (cmd) => {
          if (!ended) call.write(cmd);
        },
        close: (reason) => {
          if (ended) return;
          ended = true;
          closeWithError(log, "AgentSession", call, new SessionClosedError(reason));
          log.debug("agent session closed", { agentId, reason });
        },
      };
      const gone = () => {
        if (agentId && active) active.agentDisconnected(agentId, conn);
        ended = true;
      };
      call.on("data", (msg: AgentMessage | UndecodableMessage) => {
        if (ended) return;
        if (msg instanceof UndecodableMessage) {
          if (agentId && active) active.agentDisconnected(agentId, conn);
          ended = true;
          closeWithError(log, "AgentSession", call, msg.error());
          return;
        }
        const m = msg.message;
        if (!m) return;
        if (m.$case === "register") {
          leader()
            .then(async (l) => {
              active = l;
              // Known before registration completes, so heartbeats during a long reconciliation count
              // and a stream that ends meanwhile is cleaned up.
              agentId = m.value.agentId;
              await l.registerAgent(m.value, conn);
              if (ended) l.agentDisconnected(agentId, conn);
            })
            .catch((err: unknown) => {
              if (agentId && active) active.agentDisconnected(agentId, conn);
              log.warn("agent registration refused", { err: errorMessage(err) });
              ended = true;
              closeWithError(log, "AgentSession", call, err);
            });
        } else if (m.$case === "heartbeat" && agentId && active) {
          active.agentHeartbeat(agentId, conn);
        }
      });
      call.on("end", () => {
        gone();
        call.end();
      });
      call.on("error", gone);
      call.on("cancelled", gone);
    },

    subscribe(call: ServerWritableStream<SubscribeRequest, FrameworkEvent>) {
      let frameworkId: string | undefined;
      let active: MasterLeader | undefined;
      let ended = false;
      const conn: FrameworkConn = {
        send: (ev) => {
          if (!ended) call.write(ev);
        },
        close: (reason) => {
          if (ended) return;
          ended = true;
          closeWithError(log, "Subscribe", call, new SessionClosedError(reason));
          log.debug("framework stream closed", { frameworkId, reason });
        },
        // Status updates wait (the latest per task) while the framework reads slower than it is
        // written to: the stream's buffer would otherwise hold every one (FrameworkRegistry.sendUpdate).
        // 256 messages in the buffer (far above its high-water mark, so 'drain' follows) keep the
        // stream busy while they go out.
        full: () => !ended && call.writableLength >= FRAMEWORK_STREAM_BUFFERED,
        onDrain: (fn) => {
          call.once("drain", fn);
        },
      };
      const gone = () => {
        if (frameworkId && active) active.frameworkDisconnected(frameworkId, conn);
        ended = true;
      };
      call.on("cancelled", gone);
      call.on("error", gone);
      call.on("close", gone);
      leader()
        .then(async (l) => {
          const request = assertDecoded(call.request as SubscribeRequest | UndecodableMessage);
          active = l;
          frameworkId = await l.subscribe(request, conn);
          // The stream may have closed while the subscription was being committed.
          if (ended) l.frameworkDisconnected(frameworkId, conn);
        })
        .catch((err: unknown) => {
          ended = true;
          closeWithError(log, "Subscribe", call, err);
        });
    },

    accept: unaryHandler(log, "Accept", async (req, call) => {
      const l = await leader();
      l.authorizeFramework(req.frameworkId, streamIdOf(call));
      const tasksIn = req.operations.flatMap((op, k) =>
        op.operation?.$case === "launch"
          ? op.operation.value.tasks.map((t, i) => ({
              path: ["operations", k, "launch", "tasks", i],
              task: fromWireTaskInfo(t),
            }))
          : [],
      );
      const launchedTaskIds = await l.accept(
        {
          frameworkId: req.frameworkId,
          offerIds: req.offerIds,
          tasks: tasksIn,
          refuseSeconds: req.filters?.refuseSeconds ?? 0,
        },
        requestIdOf(call),
      );
      return { launchedTaskIds };
    }),
    decline: unaryHandler(log, "Decline", async (req, call) => {
      const l = await leader();
      l.authorizeFramework(req.frameworkId, streamIdOf(call));
      l.decline({
        frameworkId: req.frameworkId,
        offerIds: req.offerIds,
        refuseSeconds: req.filters?.refuseSeconds ?? 5,
      });
      return {};
    }),
    revive: unaryHandler(log, "Revive", async (req, call) => {
      const l = await leader();
      l.authorizeFramework(req.frameworkId, streamIdOf(call));
      l.revive(req.frameworkId);
      return {};
    }),
    suppress: unaryHandler(log, "Suppress", async (req, call) => {
      const l = await leader();
      l.authorizeFramework(req.frameworkId, streamIdOf(call));
      l.suppress(req.frameworkId);
      return {};
    }),
    listFrameworks: unaryHandler(log, "ListFrameworks", async () => ({
      frameworks: frameworkInfo(await leader()),
    })),
    kill: unaryHandler(log, "Kill", async (req, call) => {
      const l = await leader();
      l.authorizeFramework(req.frameworkId, streamIdOf(call));
      await l.kill(req.frameworkId, req.taskId, req.gracePeriodSeconds);
      return {};
    }),
    acknowledge: unaryHandler(log, "Acknowledge", async (req, call) => {
      const l = await leader();
      l.authorizeFramework(req.frameworkId, streamIdOf(call));
      if (req.taskId !== "" || req.acks.length === 0) l.acknowledge(req.frameworkId, req.taskId, req.uuid);
      return { unknownTaskIds: l.acknowledgeMany(req.frameworkId, req.acks) };
    }),
    reconcile: unaryHandler(log, "Reconcile", async (req, call) => {
      const l = await leader();
      l.authorizeFramework(req.frameworkId, streamIdOf(call));
      return { statuses: l.reconcile(req.frameworkId, req.taskIds) };
    }),
    listAgents: unaryHandler(log, "ListAgents", async () => ({ agents: agentInfo(await leader()) })),
    listTasks: unaryHandler(log, "ListTasks", async (req) => {
      const page = taskPage(req.pageSize, req.pageToken);
      const l = await leader();
      const { items, next } = page(unsorted(l, req));
      return { tasks: items.map(toWireTask), nextPageToken: next };
    }),
    getState: unaryHandler(log, "GetState", async () => {
      const l = await leader();
      return {
        leader: (await ref.leaderAddress()) ?? "",
        agents: agentInfo(l),
        tasks: tasks(l, { includeTerminal: true }),
        frameworks: frameworkInfo(l),
      };
    }),
  };
}

/** Tasks in creation order, then by id: the order of ListTasks and of its pages. */
function byCreation(a: TaskRecord, b: TaskRecord): number {
  return (
    a.createdAtMs - b.createdAtMs ||
    (a.info.taskId < b.info.taskId ? -1 : a.info.taskId > b.info.taskId ? 1 : 0)
  );
}

/** Tasks per ListTasks page at most. */
export const MAX_TASK_PAGE = 10_000;

/**
 * One page of tasks sorted byCreation: those after `token` (`<createdAtMs>:<taskId>` of the last
 * task of the previous page), at most `size` (0: all). Refuses a size over MAX_TASK_PAGE or a
 * malformed token by field.
 */
export function taskPage(size: number, token: string) {
  if (size > MAX_TASK_PAGE)
    throw new InvalidArgumentError([{ path: "pageSize", message: `at most ${MAX_TASK_PAGE}` }]);
  let after: { createdAtMs: number; taskId: string } | undefined;
  if (token !== "") {
    const i = token.indexOf(":");
    const createdAtMs = Number(token.slice(0, i));
    if (i <= 0 || !Number.isSafeInteger(createdAtMs) || i === token.length - 1)
      throw new InvalidArgumentError([{ path: "pageToken", message: "not a token from a previous answer" }]);
    after = { createdAtMs, taskId: token.slice(i + 1) };
  }
  // Tasks in any order: those after the token are selected (the first `size` byCreation, by a
  // bounded heap: O(n log size) a page, not a sort of every task per page), then sorted.
  return (tasks: readonly TaskRecord[]): { items: TaskRecord[]; next: string } => {
    const a = after;
    const rest =
      a === undefined
        ? tasks
        : tasks.filter(
            (t) =>
              t.createdAtMs > a.createdAtMs || (t.createdAtMs === a.createdAtMs && t.info.taskId > a.taskId),
          );
    if (size === 0 || rest.length <= size) return { items: [...rest].sort(byCreation), next: "" };
    const items = smallest(rest, size, byCreation);
    const last = items[items.length - 1];
    return { items, next: last ? `${last.createdAtMs}:${last.info.taskId}` : "" };
  };
}

/** The `k` smallest of `list` by `cmp`, sorted (a max-heap of k: O(n log k)). */
export function smallest<T>(list: readonly T[], k: number, cmp: (a: T, b: T) => number): T[] {
  const heap: T[] = [];
  const at = (i: number) => heap[i] as T;
  const swap = (i: number, j: number) => {
    const x = at(i);
    heap[i] = at(j);
    heap[j] = x;
  };
  for (const item of list) {
    if (heap.length < k) {
      heap.push(item);
      for (let i = heap.length - 1; i > 0; ) {
        const parent = (i - 1) >> 1;
        if (cmp(at(i), at(parent)) <= 0) break;
        swap(i, parent);
        i = parent;
      }
    } else if (k > 0 && cmp(item, at(0)) < 0) {
      heap[0] = item;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let top = i;
        if (l < heap.length && cmp(at(l), at(top)) > 0) top = l;
        if (r < heap.length && cmp(at(r), at(top)) > 0) top = r;
        if (top === i) break;
        swap(i, top);
        i = top;
      }
    }
  }
  return heap.sort(cmp);
}
