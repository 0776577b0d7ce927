/**
 * Task status updates from agents to the master over JetStream: the agent publishes until
 * the server has stored the update (PubAck); the master acknowledges the message only after
 * it has committed the update to etcd. Handlers must be idempotent (duplicates, reordering).
 */
import { clip, errorMessage, type Logger, sleep } from "@drover/common";
import { LIMITS, TaskStatusSchema } from "@drover/core";
import { JSONCodec } from "nats";
import { z } from "zod";
import { type Bus, STATUS_STREAM, STATUS_SUBJECT_PREFIX } from "./bus.js";

const jc = JSONCodec();

const Id = (max: number) =>
  z.string().regex(new RegExp(`^[a-zA-Z0-9._-]{1,${max}}$`), `must be 1-${max} of [a-zA-Z0-9._-]`);

export const StatusMessageSchema = z.strictObject({
  agentId: Id(LIMITS.agentIdChars),
  taskId: Id(LIMITS.taskIdChars),
  status: TaskStatusSchema.refine(
    (s) => s.message.length <= LIMITS.statusMessageChars && s.uuid.length <= LIMITS.uuidChars,
    { message: `message at most ${LIMITS.statusMessageChars} characters, uuid at most ${LIMITS.uuidChars}` },
  ),
});
export type StatusMessage = z.infer<typeof StatusMessageSchema>;

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
  for (let attempt = 0; !signal?.aborted; attempt++) {
    try {
      await bus.js.publish(`${STATUS_SUBJECT_PREFIX}.${msg.agentId}`, data, {
        msgID: msg.status.uuid,
        timeout: 5000,
      });
      return;
    } catch (err) {
      log.warn("status publish failed; retrying", { taskId: msg.taskId, attempt, err: errorMessage(err) });
      await sleep(Math.min(5000, 200 * 2 ** Math.min(attempt, 5)), signal);
    }
  }
}

/** Status updates in flight at once (the consumer's pull batch). */
const MAX_IN_FLIGHT = 256;

/**
 * Consumes status updates with the master's durable consumer. Messages are handled
 * concurrently, up to a pull batch at a time (so the master commits them together: group
 * commit), but one at a time per task, in arrival order. `handler` resolves once the update is
 * persisted; only then is the message acknowledged. A handler error leaves the message
 * unacknowledged (redelivered after a pause). Invalid messages are terminated (never redelivered).
 */
export async function consumeStatus(
  bus: Bus,
  log: Logger,
  handler: (m: StatusMessage) => Promise<void>,
): Promise<() => Promise<void>> {
  const consumer = await bus.js.consumers.get(STATUS_STREAM, "master");
  const messages = await consumer.consume({ max_messages: MAX_IN_FLIGHT });
  const perTask = new Map<string, Promise<void>>();
  const inFlight = new Set<Promise<void>>();
  const done = (async () => {
    for await (const m of messages) {
      let parsed: StatusMessage;
      try {
        parsed = StatusMessageSchema.parse(jc.decode(m.data));
        // The subject names the sender: an agent speaks only for its own tasks' updates.
        if (m.subject !== `${STATUS_SUBJECT_PREFIX}.${parsed.agentId}`)
          throw new Error(`agentId ${parsed.agentId} does not match the subject`);
      } catch (err) {
        log.warn("dropping invalid status message", {
          subject: clip(m.subject, 200),
          err: clip(errorMessage(err), 500),
        });
        m.term();
        continue;
      }
      const msg = parsed;
      const previous = perTask.get(msg.taskId) ?? Promise.resolve();
      const run = previous.then(async () => {
        try {
          await handler(msg);
          m.ack();
        } catch (err) {
          log.warn("status update not persisted; will be redelivered", {
            taskId: msg.taskId,
            err: errorMessage(err),
          });
          m.nak(1000);
        }
      });
      perTask.set(msg.taskId, run);
      inFlight.add(run);
      void run.finally(() => {
        inFlight.delete(run);
        if (perTask.get(msg.taskId) === run) perTask.delete(msg.taskId);
      });
      if (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
    }
    await Promise.allSettled(inFlight);
  })();
  return async () => {
    await messages.close();
    await done;
  };
}
