/** Validation of a TaskLaunchSpec at the executor's boundary (DESIGN invariant 7). */
import { z } from "zod";
import type { TaskLaunchSpec } from "./types.js";

const launchSpecSchema = z.object({
  taskId: z.string().min(1),
  appId: z.string(),
  frameworkId: z.string(),
  agentId: z.string(),
  image: z.string().min(1),
  cmd: z.string().optional(),
  cpus: z.number().positive(),
  mem: z.number().positive(),
  env: z.record(
    z.string().regex(/^[^=\0]+$/, "environment variable names must be non-empty without '='"),
    z.string(),
  ),
  labels: z.record(z.string().min(1), z.string()),
});

/** Returns undefined when valid, else a message naming the offending fields. */
export function validateLaunchSpec(spec: TaskLaunchSpec): string | undefined {
  const r = launchSpecSchema.safeParse(spec);
  if (r.success) return undefined;
  return r.error.issues.map((i) => `${i.path.map(String).join(".") || "spec"}: ${i.message}`).join("; ");
}

/** The container's command: the image's default when cmd is absent or empty, else through /bin/sh -c. */
export function containerCmd(cmd: string | undefined): string[] | undefined {
  return cmd === undefined || cmd === "" ? undefined : ["/bin/sh", "-c", cmd];
}

export function nanoCpus(cpus: number): number {
  return Math.round(cpus * 1e9);
}

export function memoryBytes(memMiB: number): number {
  return Math.round(memMiB * 1024 * 1024);
}

export function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}
