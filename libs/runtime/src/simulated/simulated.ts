/**
 * SimulatedExecutor: the executor contract over a SimulatedHost, for tests and for benchmarks with
 * thousands of agents in one process. A task is a timer: it starts after a seeded latency, runs until
 * its command or the profile says it exits (or until killed), and exits with the code they say.
 *
 * A task's `run` is validated (launch-spec schema) and refused where Docker would refuse it
 * (runProblem: an unsupported docker parameter, a volume leaving the sandbox, a container network
 * without a name); the rest of it (networks, ports, volumes, fetch) is not simulated.
 *
 * It mirrors DockerExecutor's concurrency rules (one record per task id; a terminal event only from
 * finish(), which flips the phase synchronously), with the host in the role of the Docker engine:
 * containers of an agent outlive its executor, and a new executor re-attaches to them (recover()).
 */

import { runProblem } from "../docker/spec.js";
import {
  type Executor,
  ExecutorClosedError,
  type ExecutorEvent,
  type ExecutorState,
  type RecoveredTask,
  type TaskLaunchSpec,
} from "../executor.js";
import { validateLaunchSpec } from "../launch-spec.js";
import { classifyExit, type TerminalOutcome } from "../outcome.js";
import {
  type SimulationProfile,
  type SimulationProfileInput,
  SimulationProfileSchema,
  type TaskFate,
  taskFate,
} from "./fate.js";
import type { SimContainer, SimulatedHost } from "./host.js";

export interface SimulatedExecutorOptions {
  agentId: string;
  /** Where the containers live; share one host between the executors of a process (and across restarts). */
  host: SimulatedHost;
  /** Seed, latencies, run times, exit codes and failure rates (validated; defaults in SimulationProfileSchema). */
  profile?: SimulationProfileInput | SimulationProfile;
}

type Phase = "launching" | "running" | "terminal";

interface TaskRecord {
  readonly taskId: string;
  container: SimContainer | undefined;
  phase: Phase;
  killRequested: boolean;
  /** The launch in progress, awaited by a duplicate launch() and by kill(). */
  launching: Promise<void> | undefined;
  /** Ends the start latency early (a kill during the launch). */
  wake: (() => void) | undefined;
  /** TASK_STARTING was reported (a launch reports it once). */
  startingSent?: boolean;
}

/** Terminal records are kept (for idempotence) up to this many tasks; the oldest go first. */
const MAX_REMEMBERED_TASKS = 10_000;

export class SimulatedExecutor implements Executor {
  readonly agentId: string;
  readonly profile: SimulationProfile;
  private readonly host: SimulatedHost;
  private readonly listeners: Array<(e: ExecutorEvent) => void> = [];
  private readonly tasks = new Map<string, TaskRecord>();
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly unwatch: () => void;
  private closed = false;

  constructor(opts: SimulatedExecutorOptions) {
    if (!opts.agentId) throw new Error("SimulatedExecutor: agentId is required");
    this.agentId = opts.agentId;
    this.host = opts.host;
    this.profile = SimulationProfileSchema.parse(opts.profile ?? {});
    this.unwatch = this.host.watch(this.agentId, (c) => this.onExit(c));
  }

  onEvent(listener: (e: ExecutorEvent) => void): void {
    this.listeners.push(listener);
  }

  async launch(spec: TaskLaunchSpec): Promise<void> {
    this.assertOpen();
    const known = this.tasks.get(spec.taskId);
    if (known) {
      // Idempotent: the task is (or was) launched by this executor; nothing is started twice.
      await known.launching;
      return;
    }
    const rec = this.remember({
      taskId: spec.taskId,
      container: undefined,
      phase: "launching",
      killRequested: false,
      launching: undefined,
      wake: undefined,
    });
    const invalid = validateLaunchSpec(spec);
    if (invalid !== undefined) {
      this.finish(rec, { state: "TASK_FAILED", message: `invalid launch spec: ${invalid}` });
      return;
    }
    if (spec.agentId !== "" && spec.agentId !== this.agentId) {
      this.finish(rec, {
        state: "TASK_FAILED",
        message: `task is for agent ${spec.agentId}, this is agent ${this.agentId}`,
      });
      return;
    }
    // `run` (networks, volumes, fetch, docker options) is not simulated, but what Docker would refuse
    // outright is refused here too, with Docker's words.
    const problem = runProblem(spec);
    if (problem !== undefined) {
      this.finish(rec, { state: "TASK_FAILED", message: problem });
      return;
    }
    if (!this.profile.startingWithRunning) this.starting(rec);
    if (this.adopt(rec)) return;
    const p = this.track(this.start(rec, spec, taskFate(this.profile, this.agentId, spec)));
    rec.launching = p;
    try {
      await p;
    } finally {
      rec.launching = undefined;
    }
  }

  async kill(taskId: string, gracePeriodSeconds: number): Promise<void> {
    this.assertOpen();
    let rec = this.tasks.get(taskId);
    if (rec === undefined) {
      // Not known in memory: its container may still be on the host (recover() not called yet).
      const c = this.host.find(this.agentId, taskId);
      rec = this.remember(record(taskId, c));
      if (c === undefined) {
        this.finish(rec, { state: "TASK_KILLED", message: "unknown task" });
        return;
      }
      rec.phase = "running";
    }
    rec.killRequested = true;
    // A launch in flight sees killRequested and stops before start.
    rec.wake?.();
    await rec.launching;
    const c = rec.container;
    if (rec.phase !== "running" || c === undefined) return;
    await this.track(this.host.stop(c, graceMs(gracePeriodSeconds)));
    this.checkExit(rec);
  }

  async recover(): Promise<RecoveredTask[]> {
    this.assertOpen();
    const out: RecoveredTask[] = [];
    for (const c of this.host.containers(this.agentId)) {
      const known = this.tasks.get(c.taskId);
      if (known) {
        // Already watched (or being launched / already reported): describe it, do not adopt it twice.
        if (known.phase === "running" && known.container === c && c.state === "running") {
          out.push(recovered(c, { state: "TASK_RUNNING", message: "running" }));
        }
        continue;
      }
      const rec = this.remember(record(c.taskId, c));
      rec.phase = "running"; // watched from now on (exits, kill())
      if (c.state === "running") {
        out.push(recovered(c, { state: "TASK_RUNNING", message: "running" }));
        continue;
      }
      const outcome = classifyExit({ ExitCode: c.exitCode }, false);
      this.finish(rec, outcome);
      this.host.remove(c);
      out.push(recovered(c, outcome));
    }
    return out;
  }

  async running(): Promise<Map<string, string>> {
    this.assertOpen();
    const out = new Map<string, string>();
    for (const c of this.host.containers(this.agentId)) if (c.state === "running") out.set(c.taskId, c.id);
    return out;
  }

  /** Stops watching (containers keep running on the host) and waits for launches and kills in flight. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unwatch();
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  // ── launch ──────────────────────────────────────────────────────────────────────────────────

  private async start(rec: TaskRecord, spec: TaskLaunchSpec, fate: TaskFate): Promise<void> {
    await this.delay(rec, fate.startLatencyMs);
    this.starting(rec);
    if (rec.killRequested) {
      this.finish(rec, { state: "TASK_KILLED", message: "killed before start" });
      return;
    }
    if (fate.launchError !== undefined) {
      this.finish(rec, { state: "TASK_FAILED", message: fate.launchError });
      return;
    }
    // Another executor of this agent may have started it meanwhile (the name guard Docker has).
    if (this.adopt(rec)) return;
    rec.container = this.host.run(
      {
        agentId: this.agentId,
        taskId: spec.taskId,
        appId: spec.appId,
        frameworkId: spec.frameworkId,
        image: spec.image,
        cpus: spec.cpus,
        mem: spec.mem,
        ignoresTerm: fate.ignoresTerm,
        stopMs: fate.stopMs,
      },
      fate.runMs,
      fate.exitCode,
    );
    rec.phase = "running";
    this.emit(rec, "TASK_RUNNING", "running");
  }

  /** The task's container is already on the host (left by an earlier executor): continue from its state. */
  private adopt(rec: TaskRecord): boolean {
    const c = this.host.find(this.agentId, rec.taskId);
    if (c === undefined) return false;
    rec.container = c;
    rec.phase = "running";
    this.starting(rec);
    if (c.state === "running") this.emit(rec, "TASK_RUNNING", "running (container already existed)");
    else this.checkExit(rec);
    return true;
  }

  /** Reports TASK_STARTING once per launch (at launch, or with what follows: startingWithRunning). */
  private starting(rec: TaskRecord): void {
    if (rec.startingSent) return;
    rec.startingSent = true;
    this.emit(rec, "TASK_STARTING", "starting");
  }

  /** Waits `ms` on the host's clock, or less if a kill wakes the launch. */
  private delay(rec: TaskRecord, ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    const clock = this.host.clock;
    return new Promise((resolve) => {
      const timer = clock.setTimeout(() => wake(), ms);
      const wake = () => {
        rec.wake = undefined;
        timer.cancel();
        resolve();
      };
      rec.wake = wake;
    });
  }

  // ── watching ────────────────────────────────────────────────────────────────────────────────

  private onExit(c: SimContainer): void {
    const rec = this.tasks.get(c.taskId);
    if (rec === undefined || rec.container !== c) return;
    this.checkExit(rec);
  }

  /** If the task's container has exited, reports the terminal state once and removes the container. */
  private checkExit(rec: TaskRecord): void {
    const c = rec.container;
    if (rec.phase !== "running" || c === undefined || c.state !== "exited") return;
    if (this.finish(rec, classifyExit({ ExitCode: c.exitCode }, rec.killRequested))) this.host.remove(c);
  }

  // ── helpers ─────────────────────────────────────────────────────────────────────────────────

  /** Reports a terminal state unless one was reported already; true if this call reported it. */
  private finish(rec: TaskRecord, outcome: TerminalOutcome): boolean {
    if (rec.phase === "terminal") return false;
    rec.phase = "terminal";
    this.emit(rec, outcome.state, outcome.message, outcome.exitCode);
    return true;
  }

  private emit(rec: TaskRecord, state: ExecutorState, message: string, exitCode?: number): void {
    const event: ExecutorEvent = { taskId: rec.taskId, state, message, timestampMs: this.host.clock.now() };
    if (exitCode !== undefined) event.exitCode = exitCode;
    if (rec.container !== undefined) event.containerId = rec.container.id;
    if (state === "TASK_RUNNING" && rec.container !== undefined)
      event.ipAddresses = [rec.container.ipAddress];
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // a listener's failure is its own; the others still get the event
      }
    }
  }

  private remember(rec: TaskRecord): TaskRecord {
    this.tasks.set(rec.taskId, rec);
    if (this.tasks.size > MAX_REMEMBERED_TASKS) {
      for (const [id, r] of this.tasks) {
        if (this.tasks.size <= MAX_REMEMBERED_TASKS) break;
        if (r.phase === "terminal") this.tasks.delete(id);
      }
    }
    return rec;
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const forget = () => {
      this.inflight.delete(p);
    };
    p.then(forget, forget);
    return p;
  }

  private assertOpen(): void {
    if (this.closed) throw new ExecutorClosedError();
  }
}

function record(taskId: string, container: SimContainer | undefined): TaskRecord {
  return {
    taskId,
    container,
    phase: "launching",
    killRequested: false,
    launching: undefined,
    wake: undefined,
  };
}

function recovered(
  c: SimContainer,
  o: { state: ExecutorState; message: string; exitCode?: number | undefined },
): RecoveredTask {
  const r: RecoveredTask = {
    taskId: c.taskId,
    appId: c.appId,
    frameworkId: c.frameworkId,
    containerId: c.id,
    state: o.state,
    message: o.message,
    cpus: c.cpus,
    mem: c.mem,
    image: c.image,
  };
  if (o.exitCode !== undefined) r.exitCode = o.exitCode;
  if (o.state === "TASK_RUNNING") r.ipAddresses = [c.ipAddress];
  return r;
}

function graceMs(seconds: number): number {
  return Number.isFinite(seconds) && seconds > 0 ? Math.round(seconds * 1000) : 0;
}
