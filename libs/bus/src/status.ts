/**
 * Task status updates from agents to the master over JetStream: the agent publishes until
 * the server has stored the update (PubAck); the master acknowledges the message only after
 * it has committed the update to etcd. Handlers must be idempotent (duplicates, reordering).
 *
 * A message holds one update (StatusMessage) or several of one agent, in order (StatusBatch: an
 * agent's StatusOutbox sends what was queued while its previous message was being stored, and a
 * task's STARTING and RUNNING known at once travel together). The master applies a task's updates
 * of one message in order, in one commit, and acknowledges the message once all of them are.
 */
import { createHash } from "node:crypto";
import { clip, errorMessage, type Logger, sleep } from "@drover/common";
import { LIMITS, type TaskStatus, TaskStatusSchema } from "@drover/core";
import { JSONCodec } from "nats";
import { z } from "zod";
import { type Bus, STATUS_STREAM, STATUS_SUBJECT_PREFIX } from "./bus.js";

const jc = JSONCodec();

const Id = (max: number) =>
  z.string().regex(new RegExp(`^[a-zA-Z0-9._-]{1,${max}}$`), `must be 1-${max} of [a-zA-Z0-9._-]`);

const WireStatusSchema = TaskStatusSchema.refine(
  (s) => s.message.length <= LIMITS.statusMessageChars && s.uuid.length <= LIMITS.uuidChars,
  { message: `message at most ${LIMITS.statusMessageChars} characters, uuid at most ${LIMITS.uuidChars}` },
);

export const StatusMessageSchema = z.strictObject({
  agentId: Id(LIMITS.agentIdChars),
  taskId: Id(LIMITS.taskIdChars),
  status: WireStatusSchema,
});
export type StatusMessage = z.infer<typeof StatusMessageSchema>;

/** Updates one status message carries at most. */
export const MAX_STATUS_BATCH = 64;

/** Several updates of one agent's tasks, in the order they happened (per task). */
export const StatusBatchSchema = z.strictObject({
  agentId: Id(LIMITS.agentIdChars),
  updates: z
    .array(z.strictObject({ taskId: Id(LIMITS.taskIdChars), status: WireStatusSchema }))
    .min(1)
    .max(MAX_STATUS_BATCH),
});
export type StatusBatch = z.infer<typeof StatusBatchSchema>;

export interface StatusUpdate {
  taskId: string;
  status: TaskStatus;
}

/** One task's updates from one message, in order: what the master's handler is given. */
export interface TaskStatusUpdates {
  agentId: string;
  taskId: string;
  statuses: TaskStatus[];
}

/** The updates of one message, by task, each task's in order (a single update or a batch). */
export function statusUpdatesOf(decoded: unknown): TaskStatusUpdates[] {
  if (decoded !== null && typeof decoded === "object" && "updates" in decoded) {
    const batch = StatusBatchSchema.parse(decoded);
    const byTask = new Map<string, TaskStatusUpdates>();
    for (const u of batch.updates) {
      const t = byTask.get(u.taskId);
      if (t) t.statuses.push(u.status);
      else byTask.set(u.taskId, { agentId: batch.agentId, taskId: u.taskId, statuses: [u.status] });
    }
    return [...byTask.values()];
  }
  const m = StatusMessageSchema.parse(decoded);
  return [{ agentId: m.agentId, taskId: m.taskId, statuses: [m.status] }];
}

/**
 * Publishes an agent's updates (in order) as one message until JetStream has stored it (or
 * `signal` aborts): one update as a StatusMessage, several as a StatusBatch (at most
 * MAX_STATUS_BATCH). The message id (the uuid, or a hash of the uuids) makes a retry a no-op.
 * When one of several updates is invalid, each is published on its own and the result says which
 * failed (an error at its index, undefined for the others).
 */
export async function publishStatuses(
  bus: Bus,
  agentId: string,
  updates: StatusUpdate[],
  log: Logger,
  signal?: AbortSignal,
): Promise<undefined | unknown[]> {
  const [first] = updates;
  if (!first) return undefined;
  if (updates.length === 1) {
    await publishStatus(bus, { agentId, ...first }, log, signal);
    return undefined;
  }
  if (updates.length > MAX_STATUS_BATCH)
    throw new Error(`at most ${MAX_STATUS_BATCH} updates in one status message, not ${updates.length}`);
  const checked = StatusBatchSchema.safeParse({
    agentId,
    updates: updates.map((u) => ({
      taskId: u.taskId,
      status: { ...u.status, message: clip(u.status.message, LIMITS.statusMessageChars) },
    })),
  });
  if (!checked.success) {
    // One of them is invalid: each goes on its own, so that only that one is refused.
    const failures: unknown[] = [];
    for (const u of updates)
      failures.push(
        await publishStatus(bus, { agentId, ...u }, log, signal).then(
          () => undefined,
          (err: unknown) => err ?? new Error("status update refused"),
        ),
      );
    return failures;
  }
  const batch = checked.data;
  const msgID = `b-${createHash("sha1")
    .update(updates.map((u) => u.status.uuid).join(","))
    .digest("base64url")}`;
  await publishUntilStored(bus, agentId, jc.encode(batch), msgID, log, first.taskId, signal);
  return undefined;
}

/** Publishes until JetStream has stored it (or `signal` aborts). */
export async function publishStatus(
  bus: Bus,
  msg: StatusMessage,
  log: Logger,
  signal?: AbortSignal,
): Promise<void> {
  // A container's message can be long (Docker quotes whole outputs): cut it to what the master takes.
  const clipped = {
    ...msg,
    status: { ...msg.status, message: clip(msg.status.message, LIMITS.statusMessageChars) },
  };
  const data = jc.encode(StatusMessageSchema.parse(clipped));
  await publishUntilStored(bus, msg.agentId, data, msg.status.uuid, log, msg.taskId, signal);
}

async function publishUntilStored(
  bus: Bus,
  agentId: string,
  data: Uint8Array,
  msgID: string,
  log: Logger,
  taskId: string,
  signal?: AbortSignal,
): Promise<void> {
  for (let attempt = 0; !signal?.aborted; attempt++) {
    try {
      await bus.js.publish(`${STATUS_SUBJECT_PREFIX}.${agentId}`, data, { msgID, timeout: 5000 });
      return;
    } catch (err) {
      log.warn("status publish failed; retrying", { taskId, attempt, err: errorMessage(err) });
      await sleep(Math.min(5000, 200 * 2 ** Math.min(attempt, 5)), signal);
    }
  }
}

/**
 * An agent's status updates on their way to JetStream, one message at a time: what is queued
 * while a message is being stored goes in the next one (up to MAX_STATUS_BATCH), so a task's
 * updates keep their order and a burst of updates (a launch of many tasks, STARTING and RUNNING
 * known at once) costs a few messages instead of one each. Updates queued in the same turn of the
 * event loop travel together (the first send waits for setImmediate).
 */
export class StatusOutbox {
  private readonly queue: { update: StatusUpdate; resolve: () => void; reject: (err: unknown) => void }[] =
    [];
  private running = false;

  /**
   * `send` resolves once the updates are stored; it may resolve with one entry per update, an
   * error for each that failed (undefined for the others), or reject for all of them.
   */
  constructor(
    private readonly send: (updates: StatusUpdate[]) => Promise<undefined | unknown[]>,
    private readonly maxBatch = MAX_STATUS_BATCH,
  ) {}

  /** Queues an update; resolves once the message that carries it is stored (rejects if its send failed). */
  push(update: StatusUpdate): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ update, resolve, reject });
      if (!this.running) {
        this.running = true;
        setImmediate(() => void this.run());
      }
    });
  }

  /** Updates queued and not yet stored. */
  get size(): number {
    return this.queue.length;
  }

  private async run(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const failures = await this.send(batch.map((b) => b.update));
          for (const [i, b] of batch.entries()) {
            const err = failures?.[i];
            if (err === undefined) b.resolve();
            else b.reject(err);
          }
        } catch (err) {
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      this.running = false;
    }
  }
}

/** Status updates in flight at once (the consumer's pull batch). */
const MAX_IN_FLIGHT = 256;

/**
 * Consumes status updates with the master's durable consumer. Messages are handled
 * concurrently, up to a pull batch at a time (so the master commits them together: group
 * commit), but one at a time per task, in arrival order. `handler` is given one task's updates
 * of one message (in order) and resolves once they are persisted; a message is acknowledged only
 * when every task's updates in it are. A handler error leaves the message unacknowledged
 * (redelivered after a pause; the updates applied already are skipped then). Invalid messages are
 * terminated (never redelivered).
 */
export async function consumeStatus(
  bus: Bus,
  log: Logger,
  handler: (u: TaskStatusUpdates) => Promise<void>,
): Promise<() => Promise<void>> {
  const consumer = await bus.js.consumers.get(STATUS_STREAM, "master");
  const messages = await consumer.consume({ max_messages: MAX_IN_FLIGHT });
  const perTask = new Map<string, Promise<void>>();
  const inFlight = new Set<Promise<void>>();
  const done = (async () => {
    for await (const m of messages) {
      let parsed: TaskStatusUpdates[];
      try {
        parsed = statusUpdatesOf(jc.decode(m.data));
        // The subject names the sender: an agent speaks only for its own tasks' updates.
        const agentId = parsed[0]?.agentId ?? "";
        if (m.subject !== `${STATUS_SUBJECT_PREFIX}.${agentId}`)
          throw new Error(`agentId ${agentId} does not match the subject`);
      } catch (err) {
        log.warn("dropping invalid status message", {
          subject: clip(m.subject, 200),
          err: clip(errorMessage(err), 500),
        });
        m.term();
        continue;
      }
      const runs = parsed.map((u) => {
        const previous = perTask.get(u.taskId) ?? Promise.resolve();
        const run = previous.then(() => handler(u));
        // The next update of this task waits for this one, whether it succeeded or not.
        const settled = run.then(
          () => undefined,
          () => undefined,
        );
        perTask.set(u.taskId, settled);
        void settled.then(() => {
          if (perTask.get(u.taskId) === settled) perTask.delete(u.taskId);
        });
        return run;
      });
      const all = Promise.all(runs).then(
        () => {
          m.ack();
        },
        (err: unknown) => {
          log.warn("status update not persisted; will be redelivered", {
            taskId: parsed[0]?.taskId,
            updates: parsed.length,
            err: errorMessage(err),
          });
          m.nak(1000);
        },
      );
      inFlight.add(all);
      void all.finally(() => inFlight.delete(all));
      if (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
    }
    await Promise.allSettled(inFlight);
  })();
  return async () => {
    await messages.close();
    await done;
  };
}
