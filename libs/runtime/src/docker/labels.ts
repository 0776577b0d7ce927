/**
 * Container labels are the agent's memory across its own restarts (DESIGN invariant 6): every task
 * container carries the drover.* labels below, and whatever is read back from Docker is validated
 * with zod before it is trusted.
 */
import { createHash } from "node:crypto";
import { z } from "zod";

export const LABEL_TASK_ID = "drover.task_id";
export const LABEL_APP_ID = "drover.app_id";
export const LABEL_AGENT_ID = "drover.agent_id";
export const LABEL_FRAMEWORK_ID = "drover.framework_id";
export const LABEL_CPUS = "drover.cpus";
export const LABEL_MEM = "drover.mem";

/** Prefix of the container name; the rest is the (sanitized) task id. */
export const CONTAINER_NAME_PREFIX = "drover-";

export interface DroverLabels {
  taskId: string;
  appId: string;
  frameworkId: string;
  agentId: string;
  cpus: number;
  mem: number;
}

const numberLabel = z
  .string()
  .trim()
  .min(1, "must be a number")
  .transform(Number)
  .pipe(z.number().nonnegative());

const droverLabelsSchema = z.object({
  [LABEL_TASK_ID]: z.string().min(1),
  [LABEL_APP_ID]: z.string(),
  [LABEL_FRAMEWORK_ID]: z.string(),
  [LABEL_AGENT_ID]: z.string().min(1),
  [LABEL_CPUS]: numberLabel,
  [LABEL_MEM]: numberLabel,
});

export type ParseLabelsResult = { ok: true; labels: DroverLabels } | { ok: false; error: string };

/** Validates the drover.* labels of a container read back from Docker. Never throws. */
export function parseDroverLabels(labels: unknown): ParseLabelsResult {
  const r = droverLabelsSchema.safeParse(labels ?? {});
  if (!r.success) {
    return {
      ok: false,
      error: r.error.issues
        .map((i) => `${i.path.map(String).join(".") || "labels"}: ${i.message}`)
        .join("; "),
    };
  }
  const l = r.data;
  return {
    ok: true,
    labels: {
      taskId: l[LABEL_TASK_ID],
      appId: l[LABEL_APP_ID],
      frameworkId: l[LABEL_FRAMEWORK_ID],
      agentId: l[LABEL_AGENT_ID],
      cpus: l[LABEL_CPUS],
      mem: l[LABEL_MEM],
    },
  };
}

/**
 * The labels of a task's container: the spec's labels, then `extra`, then the drover.* labels,
 * which always win so a task cannot impersonate another task or agent.
 */
export function buildLabels(
  spec: {
    taskId: string;
    appId: string;
    frameworkId: string;
    cpus: number;
    mem: number;
    labels: Record<string, string>;
  },
  agentId: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    ...spec.labels,
    ...extra,
    [LABEL_TASK_ID]: spec.taskId,
    [LABEL_APP_ID]: spec.appId,
    [LABEL_FRAMEWORK_ID]: spec.frameworkId,
    [LABEL_AGENT_ID]: agentId,
    [LABEL_CPUS]: String(spec.cpus),
    [LABEL_MEM]: String(spec.mem),
  };
}

const MAX_NAME_BODY = 200;

/**
 * `drover-<taskId>` restricted to Docker's name charset [a-zA-Z0-9_.-]. When the task id had to be
 * changed (invalid characters or too long), a short hash of the original id is appended so two
 * different task ids never map to the same name.
 */
export function containerName(taskId: string): string {
  const cleaned = taskId.replace(/[^a-zA-Z0-9_.-]/g, "_");
  if (cleaned === taskId && cleaned.length > 0 && cleaned.length <= MAX_NAME_BODY) {
    return `${CONTAINER_NAME_PREFIX}${taskId}`;
  }
  const hash = createHash("sha256").update(taskId).digest("hex").slice(0, 10);
  return `${CONTAINER_NAME_PREFIX}${cleaned.slice(0, MAX_NAME_BODY)}-${hash}`;
}
