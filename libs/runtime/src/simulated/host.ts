/**
 * SimulatedHost: the simulated counterpart of a Docker engine, shared by every SimulatedExecutor of a
 * process. It holds the containers of all agents, runs their exits on the clock, and tells the
 * executors watching an agent when one of its containers exits (as Docker's `die` events do). Containers
 * outlive executors: an executor that closes stops watching, and a new executor of the same agent finds
 * them with recover(). Cheap by construction: a running container is one small object, plus one timer
 * only while it has an exit ahead (a service that runs until killed has none).
 */
import { type Clock, systemClock, type Timer } from "@drover/common";

export type SimContainerState = "running" | "exited";

/** A container on the host. A class with a fixed shape: 100,000 of them must stay small. */
export class SimContainer {
  state: SimContainerState = "running";
  /** Set once exited. */
  exitCode: number | undefined = undefined;
  /** Its own exit ahead, if any. */
  timer: Timer | undefined = undefined;
  /** The end of a stop under way (SIGTERM answered, or SIGKILL after the grace period). */
  stopTimer: Timer | undefined = undefined;
  /** Resolvers of stop() calls waiting for the exit. */
  waiters: Array<() => void> | undefined = undefined;
  readonly agentId: string;
  readonly taskId: string;
  readonly appId: string;
  readonly frameworkId: string;
  readonly image: string;
  readonly cpus: number;
  readonly mem: number;
  readonly ignoresTerm: boolean;
  readonly stopMs: number;

  constructor(
    /** Unique on its host. */
    readonly seq: number,
    spec: SimContainerSpec,
  ) {
    this.agentId = spec.agentId;
    this.taskId = spec.taskId;
    this.appId = spec.appId;
    this.frameworkId = spec.frameworkId;
    this.image = spec.image;
    this.cpus = spec.cpus;
    this.mem = spec.mem;
    this.ignoresTerm = spec.ignoresTerm;
    this.stopMs = spec.stopMs;
  }

  /** The container id, `sim` and 12 hex digits (made when asked: most containers are never asked). */
  get id(): string {
    return `sim${this.seq.toString(16).padStart(12, "0")}`;
  }

  /** A made-up address, deterministic per container (10.x.y.z from its seq): the task's only address. */
  get ipAddress(): string {
    const n = this.seq + 1;
    return `10.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
}

export type ContainerWatcher = (c: SimContainer) => void;

export interface SimContainerSpec {
  agentId: string;
  taskId: string;
  appId: string;
  frameworkId: string;
  image: string;
  cpus: number;
  mem: number;
  ignoresTerm: boolean;
  stopMs: number;
}

/** Exit codes of a task ended by a signal, as a shell reports them (128 + signal number). */
export const EXIT_SIGTERM = 143;
export const EXIT_SIGKILL = 137;

export class SimulatedHost {
  readonly clock: Clock;
  private readonly byAgent = new Map<string, Map<string, SimContainer>>();
  private readonly watchers = new Map<string, Set<ContainerWatcher>>();
  private seq = 0;
  private count = 0;
  private runningCount = 0;

  constructor(opts: { clock?: Clock } = {}) {
    this.clock = opts.clock ?? systemClock;
  }

  /** Containers on the host (running or exited, not removed). */
  get size(): number {
    return this.count;
  }

  /** Containers running now. */
  get running(): number {
    return this.runningCount;
  }

  /** The containers of `agentId` (a snapshot). */
  containers(agentId: string): SimContainer[] {
    return [...(this.byAgent.get(agentId)?.values() ?? [])];
  }

  find(agentId: string, taskId: string): SimContainer | undefined {
    return this.byAgent.get(agentId)?.get(taskId);
  }

  /** Starts a container for the task; it exits on its own after `runMs` (undefined: never). */
  run(spec: SimContainerSpec, runMs: number | undefined, exitCode: number): SimContainer {
    let containers = this.byAgent.get(spec.agentId);
    if (containers === undefined) {
      containers = new Map();
      this.byAgent.set(spec.agentId, containers);
    }
    if (containers.has(spec.taskId)) throw new Error(`container of task ${spec.taskId} exists already`);
    const c = new SimContainer(++this.seq, spec);
    containers.set(spec.taskId, c);
    this.count++;
    this.runningCount++;
    if (runMs !== undefined) c.timer = this.clock.setTimeout(() => this.exit(c, exitCode), runMs);
    return c;
  }

  /**
   * Stops a container as `docker stop -t` does: SIGTERM, then SIGKILL once `graceMs` has passed (0: at
   * once). Resolves once it has exited (at once if it had). A second stop while one is under way waits
   * for the same exit, except that a grace of 0 kills at once.
   */
  stop(c: SimContainer, graceMs: number): Promise<void> {
    if (c.state === "exited") return Promise.resolve();
    const done = new Promise<void>((resolve) => {
      c.waiters ??= [];
      c.waiters.push(resolve);
    });
    if (graceMs <= 0) {
      this.exit(c, EXIT_SIGKILL);
    } else if (c.stopTimer === undefined) {
      // Its own exit, if it comes first, still happens (and cancels this one).
      const [ms, code] =
        c.ignoresTerm || c.stopMs >= graceMs ? [graceMs, EXIT_SIGKILL] : [c.stopMs, EXIT_SIGTERM];
      c.stopTimer = this.clock.setTimeout(() => this.exit(c, code), ms);
    }
    return done;
  }

  /** The container exits with `exitCode` now, behind any executor's back (as `docker kill` does). */
  crash(agentId: string, taskId: string, exitCode = EXIT_SIGKILL): boolean {
    const c = this.find(agentId, taskId);
    if (c === undefined || c.state === "exited") return false;
    this.exit(c, exitCode);
    return true;
  }

  /** Removes a container; a running one is killed first, without telling anyone (`docker rm -f`). */
  remove(c: SimContainer): void {
    const containers = this.byAgent.get(c.agentId);
    if (containers?.get(c.taskId) !== c) return;
    this.cancelTimers(c);
    if (c.state === "running") {
      c.state = "exited";
      c.exitCode = EXIT_SIGKILL;
      this.runningCount--;
      for (const resolve of c.waiters ?? []) resolve();
      c.waiters = undefined;
    }
    containers.delete(c.taskId);
    this.count--;
    if (containers.size === 0) this.byAgent.delete(c.agentId);
  }

  /** Calls `fn` whenever a container of `agentId` exits; returns the unsubscribe function. */
  watch(agentId: string, fn: ContainerWatcher): () => void {
    let set = this.watchers.get(agentId);
    if (set === undefined) {
      set = new Set();
      this.watchers.set(agentId, set);
    }
    set.add(fn);
    return () => {
      const s = this.watchers.get(agentId);
      if (s === undefined) return;
      s.delete(fn);
      if (s.size === 0) this.watchers.delete(agentId);
    };
  }

  /** Cancels every pending exit and forgets every container (the end of a simulation). */
  clear(): void {
    for (const containers of this.byAgent.values()) {
      for (const c of containers.values()) {
        this.cancelTimers(c);
        for (const resolve of c.waiters ?? []) resolve();
        c.waiters = undefined;
      }
    }
    this.byAgent.clear();
    this.count = 0;
    this.runningCount = 0;
  }

  private exit(c: SimContainer, exitCode: number): void {
    if (c.state === "exited") return;
    c.state = "exited";
    c.exitCode = exitCode;
    this.runningCount--;
    this.cancelTimers(c);
    const waiters = c.waiters;
    c.waiters = undefined;
    for (const fn of this.watchers.get(c.agentId) ?? []) {
      try {
        fn(c);
      } catch {
        // a watcher's failure is its own; the others still hear of the exit
      }
    }
    for (const resolve of waiters ?? []) resolve();
  }

  private cancelTimers(c: SimContainer): void {
    c.timer?.cancel();
    c.stopTimer?.cancel();
    c.timer = undefined;
    c.stopTimer = undefined;
  }
}
