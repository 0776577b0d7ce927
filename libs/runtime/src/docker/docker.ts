/**
 * DockerExecutor: runs each task in one Docker container named `drover-<taskId>` and labelled with
 * the drover.* labels, so a restarted agent finds its tasks again (recover()).
 *
 * Pipeline of a task: launch → plan the container (pure: parameters, volumes, network) → STARTING →
 * (find existing container | inspect image → pull if absent or forcePullImage → network exists? →
 * sandbox + fetch → persistent volumes → create → start) → RUNNING → `die` event or periodic check →
 * inspect → FINISHED / FAILED / KILLED → remove the container, then its sandbox.
 *
 * Concurrency notes (everything runs on one event loop, so these checks hold between awaits):
 * - one TaskRecord per task id; a second launch() awaits the first one's promise instead of
 *   creating anything, and the container name is a second guard across processes (409);
 * - a terminal event is emitted only by finish(), which flips `phase` to "terminal" synchronously,
 *   so a `die` event, the periodic check and kill() racing on the same exit report it once;
 * - a `die` seen while the launch is still between start() and RUNNING is remembered (dieSeen)
 *   and handled right after RUNNING, so RUNNING always precedes the terminal event.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import Dockerode from "dockerode";
import {
  type Executor,
  ExecutorClosedError,
  type ExecutorEvent,
  type ExecutorLogger,
  type ExecutorState,
  type RecoveredTask,
  type TaskLaunchSpec,
} from "../executor.js";
import { validateLaunchSpec } from "../launch-spec.js";
import { classifyExit, type TerminalOutcome } from "../outcome.js";
import {
  dockerErrorMessage,
  dockerStatusCode,
  isConflict,
  isNotFound,
  isNotModified,
} from "./docker-errors.js";
import { type DockerEvent, DockerEventSubscription } from "./docker-events.js";
import { FetchError, Fetcher } from "./fetch.js";
import { ensureImage, pullImage } from "./image.js";
import {
  containerName,
  type DroverLabels,
  LABEL_AGENT_ID,
  LABEL_TASK_ID,
  parseDroverLabels,
} from "./labels.js";
import { checkNetwork, ensureVolumes, imageWorkingDir } from "./prerequisites.js";
import { chownSandbox, Sandboxes } from "./sandbox.js";
import {
  type ContainerPlan,
  containerAddressesOf,
  containerIpOf,
  planContainer,
  workingDirOf,
} from "./spec.js";

export interface DockerExecutorOptions {
  agentId: string;
  /** Default: new Dockerode(), i.e. DOCKER_HOST or /var/run/docker.sock. */
  docker?: Dockerode;
  /** Added to every container's labels (below the drover.* labels, which always win). */
  extraLabels?: Record<string, string>;
  /** Upper bound of one image pull (default 300 000 ms). */
  pullTimeoutMs?: number;
  /** Period of the safety check that catches a missed `die` event (default 5000 ms). */
  checkIntervalMs?: number;
  logger?: ExecutorLogger;
  /** Clock for event timestamps (default Date.now). */
  now?: () => number;
  /**
   * The agent's work dir: task sandboxes live in `<workDir>/sandboxes`, the fetch cache in
   * `<workDir>/fetch-cache`. The Docker daemon must see the same path (it bind-mounts the sandbox).
   * Default: `<os tmpdir>/drover-agent/<agentId>`.
   */
  workDir?: string;
  /** Keep a task's sandbox when its container is removed (default false: removed with it). */
  keepSandboxes?: boolean;
  /** Limits of fetching URIs into sandboxes (defaults: 300 s per URI, 1 GiB per file, a 2 GiB cache). */
  fetch?: { timeoutMs?: number; maxBytes?: number; cacheMaxBytes?: number };
  /**
   * The agent's own IP address, reported as the address of host-networked tasks (Marathon's
   * `ipAddresses`, as Mesos reports the agent's). Absent: such tasks report no address.
   */
  hostIp?: string;
}

/** A Docker call failed for a reason that is not task-level (daemon unreachable, server error). */
export class ExecutorDockerError extends Error {
  readonly statusCode: number | undefined;
  constructor(operation: string, cause: unknown) {
    super(`docker ${operation}: ${dockerErrorMessage(cause)}`, { cause });
    this.name = "ExecutorDockerError";
    this.statusCode = dockerStatusCode(cause);
  }
}

type Phase = "launching" | "running" | "terminal";

interface TaskRecord {
  readonly taskId: string;
  readonly appId: string;
  readonly frameworkId: string;
  readonly image: string;
  readonly cpus: number;
  readonly mem: number;
  containerId: string | undefined;
  phase: Phase;
  killRequested: boolean;
  /** A `die` event arrived while the launch was still in progress. */
  dieSeen: boolean;
  /** The launch in progress, awaited by a duplicate launch() and by kill(). */
  launching: Promise<void> | undefined;
  /** Aborts the launch's fetches (a kill during the launch). */
  abort: AbortController | undefined;
  /** The container's address on its bridge or user-defined network (reported on TASK_RUNNING). */
  containerIp: string | undefined;
  /** The task's addresses, ExecutorEvent.ipAddresses (reported on TASK_RUNNING; empty: none known). */
  ipAddresses: string[];
}

/** Terminal records are kept (for idempotence) up to this many tasks; the oldest go first. */
const MAX_REMEMBERED_TASKS = 10_000;
const LIVE_STATES = new Set(["running", "paused", "restarting"]);

const stderrLogger: ExecutorLogger = {
  debug: () => {},
  warn: (msg, fields) => {
    process.stderr.write(`${JSON.stringify({ level: "warn", component: "executor", msg, ...fields })}\n`);
  },
};

export class DockerExecutor implements Executor {
  private readonly docker: Dockerode;
  private readonly agentId: string;
  private readonly extraLabels: Record<string, string>;
  private readonly pullTimeoutMs: number;
  private readonly log: ExecutorLogger;
  private readonly now: () => number;
  private readonly listeners: Array<(e: ExecutorEvent) => void> = [];
  private readonly tasks = new Map<string, TaskRecord>();
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly events: DockerEventSubscription;
  private readonly checkTimer: NodeJS.Timeout;
  private readonly sandboxes: Sandboxes;
  private readonly keepSandboxes: boolean;
  private readonly fetcher: Fetcher;
  private readonly hostIp: string | undefined;
  private checking = false;
  private closed = false;

  constructor(opts: DockerExecutorOptions) {
    if (!opts.agentId) throw new Error("DockerExecutor: agentId is required");
    this.agentId = opts.agentId;
    this.docker = opts.docker ?? new Dockerode();
    this.extraLabels = opts.extraLabels ?? {};
    this.pullTimeoutMs = opts.pullTimeoutMs ?? 300_000;
    this.log = opts.logger ?? stderrLogger;
    this.now = opts.now ?? Date.now;
    const workDir = opts.workDir ?? join(tmpdir(), "drover-agent", this.agentId);
    if (workDir.includes(":"))
      throw new Error("DockerExecutor: workDir must not contain ':' (it is bind-mounted)");
    this.sandboxes = new Sandboxes(workDir);
    this.keepSandboxes = opts.keepSandboxes ?? false;
    this.hostIp = opts.hostIp;
    this.fetcher = new Fetcher({ cacheDir: join(this.sandboxes.root, "..", "fetch-cache"), ...opts.fetch });
    this.events = new DockerEventSubscription({
      docker: this.docker,
      filters: { type: ["container"], event: ["die"], label: [`${LABEL_AGENT_ID}=${this.agentId}`] },
      onEvent: (e) => this.onDockerEvent(e),
      onConnected: () => this.triggerCheck(),
      logger: this.log,
    });
    this.events.start();
    this.checkTimer = setInterval(() => this.triggerCheck(), opts.checkIntervalMs ?? 5000);
    this.checkTimer.unref();
  }

  onEvent(listener: (e: ExecutorEvent) => void): void {
    this.listeners.push(listener);
  }

  async launch(spec: TaskLaunchSpec): Promise<void> {
    this.assertOpen();
    const known = this.tasks.get(spec.taskId);
    if (known) {
      // Idempotent: the task is (or was) launched by this executor; nothing is created twice.
      await known.launching;
      return;
    }
    const rec = this.remember({
      taskId: spec.taskId,
      appId: spec.appId,
      frameworkId: spec.frameworkId,
      image: spec.image,
      cpus: spec.cpus,
      mem: spec.mem,
      containerId: undefined,
      phase: "launching",
      killRequested: false,
      dieSeen: false,
      launching: undefined,
      abort: undefined,
      containerIp: undefined,
      ipAddresses: [],
    });
    const p = this.track(
      this.doLaunch(rec, spec).catch((err: unknown) => {
        this.finish(rec, { state: "TASK_FAILED", message: dockerErrorMessage(err) });
      }),
    );
    rec.launching = p;
    try {
      await p;
    } finally {
      rec.launching = undefined;
    }
  }

  async kill(taskId: string, gracePeriodSeconds: number): Promise<void> {
    this.assertOpen();
    await this.track(this.doKill(taskId, gracePeriodSeconds));
  }

  async recover(): Promise<RecoveredTask[]> {
    this.assertOpen();
    return this.track(this.doRecover());
  }

  async running(): Promise<Map<string, string>> {
    this.assertOpen();
    let list: Dockerode.ContainerInfo[];
    try {
      list = await this.docker.listContainers({
        all: true,
        filters: { label: [`${LABEL_AGENT_ID}=${this.agentId}`], status: ["running"] },
      });
    } catch (err) {
      throw new ExecutorDockerError("list containers", err);
    }
    const out = new Map<string, string>();
    for (const c of list) {
      const labels = this.validLabels(c);
      if (labels) out.set(labels.taskId, c.Id);
    }
    return out;
  }

  /** Stops watching (containers keep running: a restarted agent recovers them) and waits for work in flight. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.checkTimer);
    this.events.close();
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  // ── launch ──────────────────────────────────────────────────────────────────────────────────

  private async doLaunch(rec: TaskRecord, spec: TaskLaunchSpec): Promise<void> {
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
    // What cannot be run at all (an unsupported docker parameter, a volume leaving the sandbox) is
    // refused like an invalid spec: before anything is pulled or created.
    const plan = planContainer(spec, {
      agentId: this.agentId,
      extraLabels: this.extraLabels,
      sandboxHostPath: this.sandboxes.path(spec.taskId),
      containerName: containerName(spec.taskId),
    });
    if ("error" in plan) {
      this.finish(rec, { state: "TASK_FAILED", message: plan.error });
      return;
    }
    this.emit(rec, "TASK_STARTING", "starting");
    // Subscribe to `die` events before anything can die (the periodic check covers a failed subscription).
    await this.events.ready;

    const existing = await this.findContainer(rec.taskId);
    if (existing) {
      await this.adoptOnLaunch(rec, existing);
      return;
    }
    const pullError = spec.run?.forcePullImage
      ? await pullImage(this.docker, spec.image, this.pullTimeoutMs)
      : await ensureImage(this.docker, spec.image, this.pullTimeoutMs);
    if (pullError !== undefined) {
      this.finish(rec, { state: "TASK_FAILED", message: pullError });
      return;
    }
    if (plan.networkName !== undefined) {
      const networkError = await checkNetwork(this.docker, plan.networkName);
      if (networkError !== undefined) {
        this.finish(rec, { state: "TASK_FAILED", message: networkError });
        return;
      }
    }
    if (rec.killRequested) {
      this.finish(rec, { state: "TASK_KILLED", message: "killed before start" });
      return;
    }
    if (!(await this.prepareSandbox(rec, spec))) return;
    const volumeError = await ensureVolumes(this.docker, plan.persistent, {
      agentId: this.agentId,
      appId: spec.appId,
      taskId: spec.taskId,
      extraLabels: this.extraLabels,
    });
    if (volumeError !== undefined) {
      this.finish(rec, { state: "TASK_FAILED", message: volumeError });
      await this.removeSandbox(rec.taskId);
      return;
    }

    let container: Dockerode.Container;
    try {
      container = await this.docker.createContainer(await this.createOptions(plan, spec.image));
    } catch (err) {
      if (isConflict(err)) {
        // The name is taken: by this task's container (a concurrent launcher) or by something else.
        const again = await this.findContainer(rec.taskId);
        if (again) {
          await this.adoptOnLaunch(rec, again);
          return;
        }
      }
      this.finish(rec, { state: "TASK_FAILED", message: dockerErrorMessage(err) });
      await this.removeSandbox(rec.taskId);
      return;
    }
    rec.containerId = container.id;
    if (rec.killRequested) {
      this.finish(rec, { state: "TASK_KILLED", message: "killed before start" });
      await this.removeContainer(container.id, rec.taskId);
      return;
    }
    await this.startContainer(rec, container.id);
  }

  /**
   * Creates the task's sandbox and fetches its URIs into it; false when the launch ended here (a fetch
   * failed: TASK_FAILED `fetch <uri>: <reason>`, or a kill came), with the sandbox removed.
   */
  private async prepareSandbox(rec: TaskRecord, spec: TaskLaunchSpec): Promise<boolean> {
    rec.abort = new AbortController();
    try {
      const dir = await this.sandboxes.create(rec.taskId);
      await this.fetcher.fetchAll(spec.run?.fetch ?? [], dir, rec.abort.signal);
      await chownSandbox(dir, spec.run?.user);
    } catch (err) {
      if (rec.killRequested) this.finish(rec, { state: "TASK_KILLED", message: "killed before start" });
      else if (err instanceof FetchError) this.finish(rec, { state: "TASK_FAILED", message: err.message });
      else this.finish(rec, { state: "TASK_FAILED", message: `sandbox: ${String(err)}` });
      await this.removeSandbox(rec.taskId);
      return false;
    } finally {
      rec.abort = undefined;
    }
    if (rec.killRequested) {
      this.finish(rec, { state: "TASK_KILLED", message: "killed before start" });
      await this.removeSandbox(rec.taskId);
      return false;
    }
    return true;
  }

  private async createOptions(plan: ContainerPlan, image: string): Promise<Dockerode.ContainerCreateOptions> {
    const workingDir = workingDirOf(plan, await imageWorkingDir(this.docker, image));
    return { ...plan.options, ...(workingDir !== undefined ? { WorkingDir: workingDir } : {}) };
  }

  private async startContainer(rec: TaskRecord, containerId: string): Promise<void> {
    try {
      await this.docker.getContainer(containerId).start();
    } catch (err) {
      if (!isNotModified(err)) {
        this.finish(rec, { state: "TASK_FAILED", message: dockerErrorMessage(err) });
        await this.removeContainer(containerId, rec.taskId);
        return;
      }
    }
    const net = await this.addressesOf(containerId);
    rec.containerIp = net.containerIp;
    rec.ipAddresses = net.ipAddresses;
    rec.phase = "running";
    this.emit(rec, "TASK_RUNNING", "running");
    if (rec.dieSeen) await this.checkExit(rec);
  }

  /** launch() found this task's container already there: continue from the state it is in. */
  private async adoptOnLaunch(rec: TaskRecord, c: Dockerode.ContainerInfo): Promise<void> {
    rec.containerId = c.Id;
    if (c.State === "created") {
      if (rec.killRequested) {
        this.finish(rec, { state: "TASK_KILLED", message: "killed before start" });
        await this.removeContainer(c.Id, rec.taskId);
        return;
      }
      await this.startContainer(rec, c.Id);
      return;
    }
    rec.phase = "running";
    rec.containerIp = containerIpOf(c.HostConfig?.NetworkMode, c.NetworkSettings?.Networks);
    rec.ipAddresses = containerAddressesOf(
      c.HostConfig?.NetworkMode,
      c.NetworkSettings?.Networks,
      this.hostIp,
    );
    if (LIVE_STATES.has(c.State)) this.emit(rec, "TASK_RUNNING", "running (container already existed)");
    else await this.checkExit(rec);
  }

  // ── kill ────────────────────────────────────────────────────────────────────────────────────

  private async doKill(taskId: string, gracePeriodSeconds: number): Promise<void> {
    let rec = this.tasks.get(taskId);
    let found: Dockerode.ContainerInfo | undefined;
    if (rec === undefined) {
      // Not known in memory: its container may still exist (recover() not called yet).
      found = await this.findContainer(taskId);
      rec = this.tasks.get(taskId); // a launch() may have begun while we were listing
    }
    if (rec === undefined) {
      const labels = found ? this.validLabels(found) : undefined;
      if (found === undefined || labels === undefined) {
        const unknown = this.remember(
          recordFromLabels({ taskId, appId: "", frameworkId: "", cpus: 0, mem: 0 }, ""),
        );
        this.finish(unknown, { state: "TASK_KILLED", message: "unknown task" });
        return;
      }
      rec = this.remember(recordFromLabels(labels, found.Image, found.Id));
      rec.phase = "running";
    }
    rec.killRequested = true;
    rec.abort?.abort(); // a fetch in flight stops now
    await rec.launching; // a launch in flight sees killRequested and stops before start
    if (rec.phase !== "running" || rec.containerId === undefined) return;
    try {
      await this.docker.getContainer(rec.containerId).stop({ t: graceSeconds(gracePeriodSeconds) });
    } catch (err) {
      if (!isNotModified(err) && !isNotFound(err)) throw new ExecutorDockerError("stop container", err);
    }
    await this.checkExit(rec);
  }

  // ── recover ─────────────────────────────────────────────────────────────────────────────────

  private async doRecover(): Promise<RecoveredTask[]> {
    await this.events.ready;
    let list: Dockerode.ContainerInfo[];
    try {
      list = await this.docker.listContainers({
        all: true,
        filters: { label: [`${LABEL_AGENT_ID}=${this.agentId}`] },
      });
    } catch (err) {
      throw new ExecutorDockerError("list containers", err);
    }
    const out: RecoveredTask[] = [];
    for (const c of list) {
      const labels = this.validLabels(c);
      if (labels === undefined) continue;
      const known = this.tasks.get(labels.taskId);
      if (known) {
        // Already watched (or being launched / already reported): describe it, do not adopt it twice.
        if (known.phase === "running" && known.containerId === c.Id) {
          out.push(recovered(known, c.Id, { state: "TASK_RUNNING", message: "running" }));
        }
        continue;
      }
      const rec = this.remember(recordFromLabels(labels, c.Image, c.Id));
      let outcome: TerminalOutcome;
      if (c.State !== "created") rec.phase = "running"; // watched from now on (die events, kill())
      if (c.State === "created") {
        outcome = { state: "TASK_FAILED", message: "container was created but never started" };
      } else {
        let info: Dockerode.ContainerInspectInfo;
        try {
          info = await this.docker.getContainer(c.Id).inspect();
        } catch (err) {
          this.tasks.delete(rec.taskId);
          if (isNotFound(err)) continue;
          throw new ExecutorDockerError("inspect container", err);
        }
        rec.containerIp = containerIpOf(info.HostConfig?.NetworkMode, info.NetworkSettings?.Networks);
        rec.ipAddresses = containerAddressesOf(
          info.HostConfig?.NetworkMode,
          info.NetworkSettings?.Networks,
          this.hostIp,
        );
        if (info.State.Running || info.State.Restarting) {
          out.push(recovered(rec, c.Id, { state: "TASK_RUNNING", message: "running" }));
          continue;
        }
        outcome = classifyExit(info.State, false);
      }
      this.finish(rec, outcome);
      await this.removeContainer(c.Id, rec.taskId);
      out.push(recovered(rec, c.Id, outcome));
    }
    // Anything that died between the listing and now is caught by this check.
    this.triggerCheck();
    return out;
  }

  // ── watching ────────────────────────────────────────────────────────────────────────────────

  private onDockerEvent(e: DockerEvent): void {
    if (e.action !== "die") return;
    const taskId = e.attributes[LABEL_TASK_ID];
    if (taskId === undefined) return;
    const rec = this.tasks.get(taskId);
    if (rec === undefined || (rec.containerId !== undefined && rec.containerId !== e.actorId)) return;
    if (rec.phase === "launching") rec.dieSeen = true;
    else if (rec.phase === "running") this.spawn(() => this.checkExit(rec));
  }

  /** Inspects a running task's container; if it has stopped, reports the terminal state once and removes it. */
  private async checkExit(rec: TaskRecord): Promise<void> {
    const id = rec.containerId;
    if (rec.phase !== "running" || id === undefined) return;
    let info: Dockerode.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(id).inspect();
    } catch (err) {
      if (isNotFound(err)) {
        this.finish(
          rec,
          rec.killRequested
            ? { state: "TASK_KILLED", message: "killed (container removed)" }
            : { state: "TASK_FAILED", message: "container disappeared" },
        );
        await this.removeSandbox(rec.taskId);
      } else {
        this.log.debug("inspect failed; will retry", { taskId: rec.taskId, err: dockerErrorMessage(err) });
      }
      return;
    }
    const s = info.State;
    if (s.Running || s.Restarting) return;
    if (s.Status === "created") {
      if (!rec.killRequested) return;
      if (this.finish(rec, { state: "TASK_KILLED", message: "killed before start" }))
        await this.removeContainer(id, rec.taskId);
      return;
    }
    if (this.finish(rec, classifyExit(s, rec.killRequested))) await this.removeContainer(id, rec.taskId);
  }

  private triggerCheck(): void {
    if (this.checking || this.closed) return;
    this.checking = true;
    this.spawn(async () => {
      try {
        await this.checkAll();
      } finally {
        this.checking = false;
      }
    });
  }

  /** The safety net for missed `die` events: one listing per period, whatever the number of tasks. */
  private async checkAll(): Promise<void> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_AGENT_ID}=${this.agentId}`] },
    });
    const live = new Map<string, string>();
    for (const c of list) {
      const taskId = c.Labels?.[LABEL_TASK_ID];
      if (taskId === undefined) continue;
      const rec = this.tasks.get(taskId);
      if (rec === undefined || rec.containerId !== c.Id) continue;
      if (rec.phase === "terminal" && c.State !== "removing") {
        await this.removeContainer(c.Id, taskId); // an earlier removal failed
      } else if (rec.phase === "running") {
        live.set(c.Id, c.State);
      }
    }
    for (const rec of this.tasks.values()) {
      if (rec.phase !== "running" || rec.containerId === undefined) continue;
      const state = live.get(rec.containerId);
      if (state === undefined || !LIVE_STATES.has(state)) await this.checkExit(rec);
    }
  }

  // ── helpers ─────────────────────────────────────────────────────────────────────────────────

  private async findContainer(taskId: string): Promise<Dockerode.ContainerInfo | undefined> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_TASK_ID}=${taskId}`, `${LABEL_AGENT_ID}=${this.agentId}`] },
    });
    return list.find((c) => LIVE_STATES.has(c.State)) ?? list[0];
  }

  private validLabels(c: Dockerode.ContainerInfo): DroverLabels | undefined {
    const r = parseDroverLabels(c.Labels);
    if (r.ok && r.labels.agentId === this.agentId) return r.labels;
    this.log.warn("skipping container with malformed drover labels", {
      containerId: c.Id,
      error: r.ok ? `agent id ${r.labels.agentId}` : r.error,
    });
    return undefined;
  }

  /**
   * Removes a task's container (its anonymous volumes too; named persistent volumes stay), then its
   * sandbox once the container is gone.
   */
  private async removeContainer(id: string, taskId: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      // 404: already gone; 409: a removal is already in progress.
      if (!isNotFound(err) && !isConflict(err)) {
        this.log.warn("remove container failed; will retry", {
          containerId: id,
          err: dockerErrorMessage(err),
        });
        return;
      }
    }
    await this.removeSandbox(taskId);
  }

  private async removeSandbox(taskId: string): Promise<void> {
    if (this.keepSandboxes) return;
    try {
      await this.sandboxes.remove(taskId);
    } catch (err) {
      this.log.warn("remove sandbox failed", { taskId, err: String(err) });
    }
  }

  /**
   * A started container's address on its bridge or user-defined network, if it has one, and the
   * task's addresses (containerAddressesOf), from one inspect.
   */
  private async addressesOf(
    containerId: string,
  ): Promise<{ containerIp: string | undefined; ipAddresses: string[] }> {
    try {
      const info = await this.docker.getContainer(containerId).inspect();
      const mode = info.HostConfig?.NetworkMode;
      const networks = info.NetworkSettings?.Networks;
      return {
        containerIp: containerIpOf(mode, networks),
        ipAddresses: containerAddressesOf(mode, networks, this.hostIp),
      };
    } catch {
      return { containerIp: undefined, ipAddresses: [] }; // gone already: its exit is reported by the watch
    }
  }

  /** Reports a terminal state unless one was reported already; true if this call reported it. */
  private finish(rec: TaskRecord, outcome: TerminalOutcome): boolean {
    if (rec.phase === "terminal") return false;
    rec.phase = "terminal";
    this.emit(rec, outcome.state, outcome.message, outcome.exitCode);
    return true;
  }

  private emit(rec: TaskRecord, state: ExecutorState, message: string, exitCode?: number): void {
    const event: ExecutorEvent = { taskId: rec.taskId, state, message, timestampMs: this.now() };
    if (exitCode !== undefined) event.exitCode = exitCode;
    if (rec.containerId !== undefined) event.containerId = rec.containerId;
    if (state === "TASK_RUNNING" && rec.containerIp !== undefined) event.containerIp = rec.containerIp;
    if (state === "TASK_RUNNING" && rec.ipAddresses.length > 0) event.ipAddresses = [...rec.ipAddresses];
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.log.warn("executor event listener threw", { taskId: rec.taskId, err: String(err) });
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

  /** Fire-and-forget background work; failures are logged, never unhandled. */
  private spawn(fn: () => Promise<void>): void {
    this.track(
      fn().catch((err: unknown) => {
        this.log.debug("background check failed", { err: dockerErrorMessage(err) });
      }),
    ).then(
      () => {},
      () => {},
    );
  }

  private assertOpen(): void {
    if (this.closed) throw new ExecutorClosedError();
  }
}

function recordFromLabels(
  l: Pick<DroverLabels, "taskId" | "appId" | "frameworkId" | "cpus" | "mem">,
  image: string,
  containerId?: string,
): TaskRecord {
  return {
    taskId: l.taskId,
    appId: l.appId,
    frameworkId: l.frameworkId,
    image,
    cpus: l.cpus,
    mem: l.mem,
    containerId,
    phase: "launching",
    killRequested: false,
    dieSeen: false,
    launching: undefined,
    abort: undefined,
    containerIp: undefined,
    ipAddresses: [],
  };
}

function recovered(
  rec: TaskRecord,
  containerId: string,
  o: { state: ExecutorState; message: string; exitCode?: number | undefined },
): RecoveredTask {
  const r: RecoveredTask = {
    taskId: rec.taskId,
    appId: rec.appId,
    frameworkId: rec.frameworkId,
    containerId,
    state: o.state,
    message: o.message,
    cpus: rec.cpus,
    mem: rec.mem,
    image: rec.image,
  };
  if (o.exitCode !== undefined) r.exitCode = o.exitCode;
  if (o.state === "TASK_RUNNING" && rec.containerIp !== undefined) r.containerIp = rec.containerIp;
  if (o.state === "TASK_RUNNING" && rec.ipAddresses.length > 0) r.ipAddresses = [...rec.ipAddresses];
  return r;
}

function graceSeconds(s: number): number {
  return Number.isFinite(s) && s > 0 ? Math.ceil(s) : 0;
}
