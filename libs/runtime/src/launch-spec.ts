/** Validation of a TaskLaunchSpec at the executor's boundary (DESIGN invariant 7), the same for every runtime. */
import { TaskRunSchema } from "@drover/core";
import { z } from "zod";
import type { TaskLaunchSpec } from "./executor.js";

const launchSpecSchema = z.object({
  taskId: z.string().min(1),
  appId: z.string(),
  frameworkId: z.string(),
  agentId: z.string(),
  image: z.string().min(1),
  cmd: z.string().optional(),
  args: z.array(z.string()).max(1024).optional(),
  cpus: z.number().positive(),
  mem: z.number().positive(),
  env: z.record(
    z.string().regex(/^[^=\0]+$/, "environment variable names must be non-empty without '='"),
    z.string(),
  ),
  labels: z.record(z.string().min(1), z.string()),
  ports: z.array(z.number().int().min(1).max(65535)).max(64).optional(),
  run: TaskRunSchema.optional(),
});

/** Returns undefined when valid, else a message naming the offending fields. */
export function validateLaunchSpec(spec: TaskLaunchSpec): string | undefined {
  const r = launchSpecSchema.safeParse(spec);
  if (r.success) return undefined;
  return r.error.issues.map((i) => `${i.path.map(String).join(".") || "spec"}: ${i.message}`).join("; ");
}
