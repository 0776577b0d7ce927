/**
 * The checks of the tasks an agent runs, kept in its work dir (`<workDir>/health/<taskId>.json`) so
 * that a restarted agent checks the tasks it recovers (invariant 6): written at launch, removed when
 * the task ends, read back (and validated: invariant 7) at recovery. Only what the checks need is
 * kept: the host ports, the PORT* variables, and the run's network, port mappings, checks and kill
 * grace (no other environment: it may hold secrets).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TaskRunSchema } from "@drover/core";
import { z } from "zod";
import type { TaskChecks } from "./health.js";

export interface HealthCheckStore {
  save(taskId: string, checks: TaskChecks): void;
  /** Undefined when none was saved, or what was saved is not valid. */
  load(taskId: string): TaskChecks | undefined;
  remove(taskId: string): void;
  /** Removes every entry but those of `keep` (tasks that ended while the agent was down). */
  prune(keep: ReadonlySet<string>): void;
}

const StoredChecksSchema = z.strictObject({
  ports: z.array(z.number().int().min(1).max(65535)).max(64),
  env: z.record(z.string().regex(/^PORT/), z.string()),
  run: TaskRunSchema,
});

/** Task ids are [a-zA-Z0-9._-] (the status message's rule): safe as file names as they are. */
const SAFE_ID = /^[a-zA-Z0-9._-]{1,200}$/;

export class FileHealthCheckStore implements HealthCheckStore {
  constructor(
    private readonly dir: string,
    private readonly log: { warn(msg: string, fields?: Record<string, unknown>): void },
  ) {}

  save(taskId: string, checks: TaskChecks): void {
    if (!SAFE_ID.test(taskId)) return;
    const { network, portMappings, healthChecks, readinessChecks, killGracePeriodSeconds } = checks.run;
    const stored = {
      ports: [...checks.ports],
      env: Object.fromEntries(Object.entries(checks.env).filter(([k]) => k.startsWith("PORT"))),
      run: { network, portMappings, healthChecks, readinessChecks, killGracePeriodSeconds },
    };
    try {
      mkdirSync(this.dir, { recursive: true });
      const file = this.file(taskId);
      writeFileSync(`${file}.tmp`, JSON.stringify(stored));
      renameSync(`${file}.tmp`, file);
    } catch (err) {
      this.log.warn("health checks not kept for a restart", { taskId, err: String(err) });
    }
  }

  load(taskId: string): TaskChecks | undefined {
    if (!SAFE_ID.test(taskId)) return undefined;
    let text: string;
    try {
      text = readFileSync(this.file(taskId), "utf8");
    } catch {
      return undefined;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const r = StoredChecksSchema.safeParse(json);
    if (!r.success) {
      this.log.warn("kept health checks are not valid; the task is not checked", { taskId });
      return undefined;
    }
    return r.data;
  }

  remove(taskId: string): void {
    if (SAFE_ID.test(taskId)) rmSync(this.file(taskId), { force: true });
  }

  prune(keep: ReadonlySet<string>): void {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names) {
      const taskId = n.endsWith(".json") ? n.slice(0, -".json".length) : undefined;
      if (taskId === undefined || !keep.has(taskId)) rmSync(join(this.dir, n), { force: true });
    }
  }

  private file(taskId: string): string {
    return join(this.dir, `${taskId}.json`);
  }
}
