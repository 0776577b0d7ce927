/**
 * Smaller task records in the master's memory. Every task of one app version carries the same
 * environment values (MARATHON_APP_ID, the image, the version, the resources), labels and run
 * settings, and every task of an agent or a framework the same ids: decoded from the wire, each
 * is a string (or object) of its own, tens of thousands of copies at fleet size. The interner
 * makes equal values one instance: repeated strings from a bounded pool, env values and the
 * labels, run and args objects from the last ones seen for the same app (an app's next version
 * replaces them), the task's own id where the env repeats it.
 *
 * The records it returns are equal (deep) to what it is given, and share parts with each other:
 * nothing may mutate a task record in place (no code does; the aggregates replace, never mutate).
 */
import type { TaskInfo, TaskStatus } from "@drover/core";

/** Distinct strings kept at most (ids of agents, apps, frameworks, hosts); then the pool starts again. */
const MAX_POOLED = 50_000;
/** Apps whose last values are kept at most; then the table starts again. */
const MAX_APPS = 10_000;

interface AppValues {
  env: Map<string, string>;
  labels: { json: string; value: Record<string, string> } | undefined;
  run: { json: string; value: TaskInfo["run"] } | undefined;
  args: { json: string; value: string[] } | undefined;
}

const EMPTY: Record<string, string> = Object.freeze({}) as Record<string, string>;

export class TaskInfoInterner {
  private readonly pool = new Map<string, string>();
  private readonly apps = new Map<string, AppValues>();

  /** One instance of each equal string (for values that repeat across tasks: ids, hosts, states). */
  string(s: string): string {
    const known = this.pool.get(s);
    if (known !== undefined) return known;
    if (this.pool.size >= MAX_POOLED) this.pool.clear();
    this.pool.set(s, s);
    return s;
  }

  /** The task info with its repeated parts shared with the other tasks of its app (deep-equal to `info`). */
  info(info: TaskInfo): TaskInfo {
    const appId = this.string(info.appId);
    let app = this.apps.get(appId);
    if (!app) {
      if (this.apps.size >= MAX_APPS) this.apps.clear();
      app = { env: new Map(), labels: undefined, run: undefined, args: undefined };
      this.apps.set(appId, app);
    }
    const env: Record<string, string> = {};
    for (const key of Object.keys(info.env)) {
      const value = info.env[key] as string;
      if (value === info.taskId) {
        env[key] = info.taskId;
        continue;
      }
      const last = app.env.get(key);
      if (last === value) env[key] = last;
      else {
        app.env.set(key, value);
        env[key] = value;
      }
    }
    const out: TaskInfo = {
      taskId: info.taskId,
      name: this.string(info.name),
      agentId: this.string(info.agentId),
      frameworkId: this.string(info.frameworkId),
      appId,
      image: this.string(info.image),
      ...(info.cmd !== undefined ? { cmd: this.string(info.cmd) } : {}),
      ...(info.args !== undefined ? { args: this.shared(app, "args", info.args) } : {}),
      resources: info.resources,
      env,
      labels: Object.keys(info.labels).length === 0 ? EMPTY : this.shared(app, "labels", info.labels),
      ...(info.run !== undefined ? { run: this.shared(app, "run", info.run) } : {}),
    };
    return out;
  }

  /** The status with its repeated strings pooled (the state, a message such as "running"). */
  status(status: TaskStatus): TaskStatus {
    return { ...status, message: this.string(status.message) };
  }

  /** The app's last value of this part if equal (compared as JSON), else this one (kept as the last). */
  private shared<K extends "labels" | "run" | "args">(
    app: AppValues,
    part: K,
    value: NonNullable<AppValues[K]>["value"],
  ): NonNullable<AppValues[K]>["value"] {
    const json = JSON.stringify(value);
    const last = app[part];
    if (last && last.json === json) return last.value as NonNullable<AppValues[K]>["value"];
    app[part] = { json, value } as AppValues[K];
    return value;
  }
}
