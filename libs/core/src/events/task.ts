import { z } from "zod";
import { ResourcesSchema } from "../resources.js";
import { TaskStateSchema } from "../task-state.js";
import type { AggregateDef } from "./aggregate.js";

export const TaskInfoSchema = z.strictObject({
  taskId: z.string().min(1),
  name: z.string(),
  agentId: z.string().min(1),
  frameworkId: z.string().min(1),
  appId: z.string(),
  /** Empty: the agent's default task image (a command-only app). */
  image: z.string(),
  cmd: z.string().optional(),
  /** The container's command without a shell (Marathon's args); not with cmd. */
  args: z.array(z.string()).optional(),
  resources: ResourcesSchema,
  env: z.record(z.string(), z.string()),
  labels: z.record(z.string(), z.string()),
});
export type TaskInfo = z.infer<typeof TaskInfoSchema>;

export const TaskStatusSchema = z.strictObject({
  state: TaskStateSchema,
  message: z.string(),
  exitCode: z.number().int().optional(),
  timestampMs: z.number(),
  uuid: z.string(),
  containerId: z.string().optional(),
  source: z.enum(["agent", "master", "reconciliation"]),
});
export type TaskStatus = z.infer<typeof TaskStatusSchema>;

export const TaskEventSchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("TaskLaunched"), info: TaskInfoSchema, status: TaskStatusSchema }),
  z.strictObject({ type: z.literal("TaskStatusUpdated"), status: TaskStatusSchema }),
  z.strictObject({ type: z.literal("TaskExpunged") }),
]);
export type TaskEvent = z.infer<typeof TaskEventSchema>;

export const TaskRecordSchema = z.strictObject({
  info: TaskInfoSchema,
  status: TaskStatusSchema,
  createdAtMs: z.number(),
  updatedAtMs: z.number(),
});
export type TaskRecord = z.infer<typeof TaskRecordSchema>;

export const TaskAggregate: AggregateDef<TaskRecord, TaskEvent> = {
  name: "task",
  eventSchema: TaskEventSchema,
  stateSchema: TaskRecordSchema,
  apply(state, event, { atMs }) {
    switch (event.type) {
      case "TaskLaunched":
        return { info: event.info, status: event.status, createdAtMs: atMs, updatedAtMs: atMs };
      case "TaskStatusUpdated":
        if (!state) return state;
        return { ...state, status: event.status, updatedAtMs: atMs };
      case "TaskExpunged":
        return undefined;
    }
  },
};
