/**
 * Test support for rolling.test.ts and rolling.property.test.ts (not exported from the package): a
 * model app whose tasks start, turn healthy, die, and whose scheduler carries out what `rollingStep`
 * asks for. Task ids are `old-<k>` / `new-<k>`, creation times increase with each task.
 */
import { isActive } from "../task-state.js";
import { type DeploymentTask, type RollingInput, type RollingStep, rollingStep } from "./rolling.js";

export type SimConfig = Omit<RollingInput, "tasks">;

export class RollingSim {
  tasks: DeploymentTask[] = [];
  private seq = 0;

  constructor(public config: SimConfig) {}

  /** Adds `count` old tasks, RUNNING, healthy and ready unless told otherwise. */
  addOld(count: number, t: Partial<DeploymentTask> = {}): string[] {
    return this.add(count, false, t);
  }

  /** Adds `count` new tasks (left by an interrupted deployment), RUNNING, healthy and ready unless told otherwise. */
  addNew(count: number, t: Partial<DeploymentTask> = {}): string[] {
    return this.add(count, true, t);
  }

  private add(count: number, isNew: boolean, t: Partial<DeploymentTask>): string[] {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const k = this.seq++;
      const taskId = `${isNew ? "new" : "old"}-${String(k).padStart(3, "0")}`;
      this.tasks.push({
        taskId,
        isNew,
        state: "TASK_RUNNING",
        healthy: true,
        ready: true,
        killRequested: false,
        createdAtMs: 1000 + k,
        ...t,
      });
      ids.push(taskId);
    }
    return ids;
  }

  input(): RollingInput {
    return { ...this.config, tasks: this.tasks.map((t) => ({ ...t })) };
  }

  /** rollingStep on the tasks now, without carrying it out. */
  peek(): RollingStep {
    return rollingStep(this.input());
  }

  /** rollingStep, carried out: kills are requested, launched tasks are STAGING. */
  step(): RollingStep {
    const s = this.peek();
    this.apply(s);
    return s;
  }

  apply(s: RollingStep): void {
    for (const id of s.kill) this.get(id).killRequested = true;
    this.add(s.launch, true, { state: "TASK_STAGING", healthy: false, ready: false });
  }

  get(id: string): DeploymentTask {
    const t = this.tasks.find((x) => x.taskId === id);
    if (t === undefined) throw new Error(`no task ${id}`);
    return t;
  }

  active(): DeploymentTask[] {
    return this.tasks.filter((t) => isActive(t.state));
  }

  /** Staging/starting new tasks become RUNNING (not yet healthy). */
  startNew(): string[] {
    const started = this.active().filter((t) => t.isNew && t.state !== "TASK_RUNNING");
    for (const t of started) t.state = "TASK_RUNNING";
    return started.map((t) => t.taskId);
  }

  /** `count` running new tasks that are not healthy and ready become so (oldest first). */
  healthyNew(count = Number.POSITIVE_INFINITY): string[] {
    const ts = this.active()
      .filter((t) => t.isNew && t.state === "TASK_RUNNING" && !(t.healthy && t.ready))
      .slice(0, count);
    for (const t of ts) {
      t.healthy = true;
      t.ready = true;
    }
    return ts.map((t) => t.taskId);
  }

  /** `count` tasks whose kill was requested become TASK_KILLED (oldest first). */
  dieKilled(count = Number.POSITIVE_INFINITY): string[] {
    const ts = this.active()
      .filter((t) => t.killRequested)
      .slice(0, count);
    for (const t of ts) t.state = "TASK_KILLED";
    return ts.map((t) => t.taskId);
  }

  count(p: (t: DeploymentTask) => boolean): number {
    return this.active().filter(p).length;
  }
}

/** The healthy count as the guarantees define it, computed apart from rolling.ts. */
export function healthyCount(tasks: readonly DeploymentTask[]): number {
  return tasks.filter(
    (t) =>
      isActive(t.state) &&
      !t.killRequested &&
      t.state === "TASK_RUNNING" &&
      t.healthy &&
      (t.isNew ? t.ready : true),
  ).length;
}
