/**
 * The fuzz runner: starts (or takes) a cluster of one master and one scheduler, starts the fuzzer's peers
 * (a fake agent and a fuzz framework), sends `count` inputs of `seed` with bounded concurrency, watches
 * the processes, and finally checks the cluster as a whole (apps valid, status consumer drained,
 * `drover admin verify-log`). A process that exits is restarted, and the inputs that were in flight are
 * replayed one by one to find the one that kills it.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateAppRequest, ListAppsResponse, ListFrameworksResponse } from "@drover/proto";
import { type Client, Metadata } from "@grpc/grpc-js";
import { connect, type NatsConnection } from "nats";
import { type Cluster, type ServiceProcess, startCluster, waitFor, withTimeout } from "../harness/index.js";
import {
  DEFAULT_WEIGHTS,
  type FuzzInput,
  fuzzInput,
  inputsAt,
  renderInput,
  TARGETS,
  type TargetName,
} from "./arbitraries.js";
import { FakeAgent, FuzzFramework, LivePools } from "./peers.js";
import {
  appDefinitionProblem,
  looksLikeTransport,
  type Outcome,
  type ProcessKind,
  processOf,
  protoHasStreamIds,
  runTarget,
  type TargetEnv,
} from "./targets.js";
import { rawClient, rawUnary, statusName } from "./wire.js";

export interface FuzzOptions {
  /** How many inputs (default 1000). */
  count?: number;
  seed: number;
  /** Index of the first input (default 0): `--replay I` runs the single input I. */
  start?: number;
  /** Inputs in flight at once (default 8). */
  concurrency?: number;
  /** Latency bound of one call (default 5000 ms). */
  boundMs?: number;
  /** Targets to draw from (default all). */
  targets?: readonly TargetName[];
  /** Relative weights of the targets (default DEFAULT_WEIGHTS). */
  weights?: Partial<Record<TargetName, number>>;
  /** Restarts of crashed processes before the run stops (default 5). */
  maxRestarts?: number;
  /** Replay the inputs in flight at a crash, one at a time, to find the culprit (default true). */
  replayCrashes?: boolean;
  /** A running cluster to use (default: start one with masters 1, schedulers 1, agents 0). */
  cluster?: Cluster;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface ViolationRecord {
  /** Input index (its fast-check path); null for run-level findings (final checks). */
  index: number | null;
  target: string;
  method: string;
  status: string;
  kind: string;
  detail: string;
  /** The input, rendered and truncated. */
  input?: string;
  refs?: Record<string, string>;
}

export interface CrashRecord {
  process: string;
  kind: ProcessKind;
  exit: string;
  /** Inputs in flight to that process when it went. */
  suspects: number[];
  /** The suspect whose replay killed it again. */
  culprit?: number;
  logTail: string;
  logFile: string;
}

export interface FuzzReport {
  seed: number;
  start: number;
  requested: number;
  ran: number;
  durationMs: number;
  inputsPerSecond: number;
  concurrency: number;
  boundMs: number;
  targets: readonly TargetName[];
  violations: ViolationRecord[];
  crashes: CrashRecord[];
  /** target → status → count */
  byTarget: Record<string, Record<string, number>>;
  /** target.method → status → count */
  byMethod: Record<string, Record<string, number>>;
  /** target → latencies of refused inputs: p50, p99, max (ms) */
  refusedLatency: Record<string, { n: number; p50: number; p99: number; max: number }>;
  /** The slowest inputs (any outcome). */
  slowest: {
    index: number;
    target: string;
    method: string;
    status: string;
    latencyMs: number;
    input: string;
  }[];
  stoppedEarly?: string;
  /** What the fuzzer's peers saw (fake agent, fuzz framework). */
  peers: string[];
  /** The summary as printed. */
  text: string;
}

/** The command line that replays input `index`. */
export function replayCommand(seed: number, index: number, targets: readonly TargetName[]): string {
  const t = targets.length === TARGETS.length ? "" : ` --targets ${targets.join(",")}`;
  return `npm run fuzz -- --seed ${seed} --replay ${index}${t}`;
}

class Gate {
  private pending: Promise<void> | undefined;
  private release: (() => void) | undefined;

  close(): void {
    if (this.pending !== undefined) return;
    this.pending = new Promise((resolve) => {
      this.release = resolve;
    });
  }

  open(): void {
    this.release?.();
    this.pending = undefined;
    this.release = undefined;
  }

  wait(): Promise<void> {
    return this.pending ?? Promise.resolve();
  }
}

/** Inputs generated a chunk at a time (huge strings are not all held at once). */
class InputSource {
  private readonly chunks = new Map<number, FuzzInput[]>();

  constructor(
    private readonly arb: ReturnType<typeof fuzzInput>,
    private readonly seed: number,
    private readonly end: number,
    private readonly size = 50,
  ) {}

  get(index: number): FuzzInput {
    const base = index - (index % this.size);
    let chunk = this.chunks.get(base);
    if (!chunk) {
      chunk = inputsAt(this.arb, this.seed, base, Math.min(this.size, this.end - base));
      this.chunks.set(base, chunk);
      for (const k of this.chunks.keys()) if (k < base - this.size) this.chunks.delete(k);
    }
    const input = chunk[index - base];
    if (!input) throw new Error(`no input ${index}`);
    return input;
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function bump(counts: Record<string, Record<string, number>>, key: string, status: string): void {
  const c = counts[key] ?? {};
  c[status] = (c[status] ?? 0) + 1;
  counts[key] = c;
}

const round = (n: number): number => Math.round(n * 10) / 10;

function tail(text: string, lines: number): string {
  const all = text.trimEnd().split("\n");
  return all
    .slice(Math.max(0, all.length - lines))
    .map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l))
    .join("\n");
}

const PROBES: Record<ProcessKind, string> = {
  master: "/drover.v1.Master/ListAgents",
  scheduler: "/drover.v1.Scheduler/ListApps",
};

const ANCHORS = ["fzanchor-0", "fzanchor-1", "fzanchor-2"];

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const log = opts.log ?? (() => undefined);
  const start = opts.start ?? 0;
  const count = opts.count ?? 1000;
  const end = start + count;
  const concurrency = Math.max(1, opts.concurrency ?? 8);
  const boundMs = opts.boundMs ?? 5_000;
  const targets = opts.targets ?? TARGETS;
  const weights = { ...DEFAULT_WEIGHTS, ...opts.weights };
  const maxRestarts = opts.maxRestarts ?? 5;
  const replayCrashes = opts.replayCrashes ?? true;
  const arb = fuzzInput(targets, weights);
  const source = new InputSource(arb, opts.seed, end);

  const ownCluster = opts.cluster === undefined;
  if (ownCluster) log("starting a cluster (1 master, 1 scheduler, no agent)…");
  const cluster =
    opts.cluster ??
    (await startCluster({
      masters: 1,
      schedulers: 1,
      agents: 0,
      env: { DROVER_MASTER_AGENT_REREGISTER_TIMEOUT_SECONDS: "2" },
    }));
  const workDir = await mkdtemp(join(tmpdir(), "drover-fuzz-"));
  const masterAddress = cluster.env.DROVER_MASTERS?.split(",")[0] ?? "";
  const schedulerAddress = cluster.env.DROVER_SCHEDULERS?.split(",")[0] ?? "";
  const master: Client = rawClient(masterAddress);
  const scheduler: Client = rawClient(schedulerAddress);
  let nc: NatsConnection | undefined;
  let agent: FakeAgent | undefined;
  let framework: FuzzFramework | undefined;
  let refresher: NodeJS.Timeout | undefined;

  const violations: ViolationRecord[] = [];
  const crashes: CrashRecord[] = [];
  const byTarget: Record<string, Record<string, number>> = {};
  const byMethod: Record<string, Record<string, number>> = {};
  const refused: Record<string, number[]> = {};
  let stoppedEarly: string | undefined;
  let ran = 0;
  /** Set once the run is over: process exits are no longer crashes (the cluster is being stopped). */
  let finished = false;
  const slowest: FuzzReport["slowest"] = [];
  const started = performance.now();

  const probe = async (kind: ProcessKind): Promise<boolean> => {
    const a = await rawUnary(
      kind === "master" ? master : scheduler,
      PROBES[kind],
      Buffer.alloc(0),
      new Metadata(),
      boundMs,
    );
    return a.code === 0;
  };
  const current = (kind: ProcessKind): ServiceProcess | undefined =>
    (kind === "master" ? cluster.masters : cluster.schedulers)[0];
  const waitHealthy = (kind: ProcessKind, timeoutMs = 45_000) =>
    waitFor(`the ${kind} to answer`, async () => probe(kind), { timeoutMs, intervalMs: 200 });

  try {
    // ---- setup: the scheduler leads and is subscribed; peers are connected; anchor apps exist
    await waitHealthy("master", 60_000);
    await waitHealthy("scheduler", 60_000);
    await waitFor(
      "the scheduler to subscribe to the master",
      async () => {
        const a = await rawUnary(
          master,
          "/drover.v1.Master/ListFrameworks",
          Buffer.alloc(0),
          new Metadata(),
          boundMs,
        );
        if (a.code !== 0 || !a.response) return false;
        return ListFrameworksResponse.decode(a.response).frameworks.some(
          (f) => f.name === "drover-scheduler" && f.connected,
        );
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const natsUrl = cluster.env.DROVER_NATS_SERVERS ?? "";
    nc = await connect({ servers: natsUrl.split(","), name: "drover-fuzz" });
    const js = nc.jetstream();
    agent = new FakeAgent(masterAddress, js);
    framework = new FuzzFramework(masterAddress);
    agent.start();
    framework.start();
    if (!(await agent.ready(30_000))) throw new Error("the fake agent did not register within 30 s");
    if (!(await framework.ready(30_000))) throw new Error("the fuzz framework did not subscribe within 30 s");
    const pools = new LivePools(master, framework, agent.agentId);
    for (const id of ANCHORS) {
      // apps with no instance, for UpdateApp and ScaleApp to change (each change is scaled back to 0)
      const appJson = JSON.stringify({
        id,
        container: { docker: { image: "drover/busybox:1" } },
        instances: 0,
      });
      const body = Buffer.from(CreateAppRequest.encode({ appJson }).finish());
      const a = await rawUnary(scheduler, "/drover.v1.Scheduler/CreateApp", body, new Metadata(), boundMs);
      if (a.code !== 0 && a.code !== 6)
        throw new Error(`creating anchor app ${id}: ${statusName(a.code)} ${a.details}`);
    }
    pools.anchors = [...ANCHORS];
    await pools.refresh(boundMs);
    const streamIds = protoHasStreamIds();
    log(
      `ready: master ${masterAddress}, scheduler ${schedulerAddress}, fake agent ${agent.agentId}, ` +
        `fuzz framework ${framework.frameworkId}${streamIds ? ` (stream id ${framework.streamId || "none given"})` : ""}`,
    );
    const env: TargetEnv = {
      master,
      scheduler,
      boundMs,
      agent,
      framework,
      pools,
      js,
      workDir,
      cliEnv: cluster.env,
      streamIds,
    };

    // ---- crash watch
    const gate = new Gate();
    const epochs: Record<ProcessKind, number> = { master: 0, scheduler: 0 };
    const inflight = new Map<
      number,
      { input: FuzzInput; process: ProcessKind | undefined; done: Promise<unknown> }
    >();
    /** Inputs that ended lately, per process (crash suspects). */
    const recent: Record<ProcessKind, { index: number; endedAt: number; transport: boolean }[]> = {
      master: [],
      scheduler: [],
    };
    const queue: {
      proc: ServiceProcess;
      kind: ProcessKind;
      code: number | null;
      suspects: number[];
      replayOf?: number;
    }[] = [];
    let recovering: Promise<void> | undefined;
    let replaying: number | undefined;
    let restarts = 0;
    const hardTimeout = boundMs * 8;

    const runOne = (input: FuzzInput): Promise<Outcome> =>
      withTimeout("one fuzz input", runTarget(input, env), hardTimeout).catch(
        (err: unknown): Outcome => ({
          target: input.target,
          method: "?",
          status: "HANG",
          refused: false,
          latencyMs: hardTimeout,
          violations: [{ kind: "slow", detail: err instanceof Error ? err.message : String(err) }],
          ...(processOf(input) ? { process: processOf(input) } : {}),
        }),
      );

    const recover = async (): Promise<void> => {
      gate.close();
      try {
        while (queue.length > 0) {
          const c = queue.shift();
          if (!c) break;
          await Promise.allSettled([...inflight.values()].map((f) => f.done));
          const exit = c.code === null ? "killed by a signal" : `exit code ${c.code}`;
          let record: CrashRecord | undefined;
          if (c.replayOf !== undefined) {
            record = [...crashes].reverse().find((x) => x.kind === c.kind);
            if (record) record.culprit = c.replayOf;
            log(`  replay of input #${c.replayOf} killed the ${c.kind} again: culprit found`);
          } else {
            record = {
              process: c.proc.name,
              kind: c.kind,
              exit,
              suspects: c.suspects,
              logTail: tail(c.proc.logs(), 20),
              logFile: c.proc.logFile,
            };
            crashes.push(record);
            log(
              `!! ${c.proc.name} exited (${exit}); suspects (in flight or just ended): ${c.suspects.map((i) => `#${i}`).join(", ") || "none"}`,
            );
          }
          if (restarts >= maxRestarts) {
            stoppedEarly = `stopped after ${restarts} restarts of crashed processes (--max-restarts ${maxRestarts})`;
            return;
          }
          restarts++;
          const fresh = await cluster.restart(c.proc);
          watch(fresh, c.kind);
          try {
            await waitHealthy(c.kind);
            if (c.kind === "master") {
              await agent?.ready(30_000);
              await framework?.ready(30_000);
            }
          } catch (err) {
            stoppedEarly = `the ${c.kind} did not come back after a restart: ${err instanceof Error ? err.message : String(err)}`;
            return;
          }
          log(`   ${c.kind} restarted (${restarts}/${maxRestarts})`);
          if (c.replayOf !== undefined || !replayCrashes) continue;
          for (const index of c.suspects.slice(0, 16)) {
            replaying = index;
            await runOne(source.get(index));
            const proc = current(c.kind);
            let alive = (await probe(c.kind)) && proc?.running === true;
            if (!alive && proc) {
              // dead or dying: its exit watcher queues the crash with replayOf = index (the culprit)
              const exited = await withTimeout("the exit of the crashed process", proc.exited, 10_000).then(
                () => true,
                () => false,
              );
              alive = !exited;
            }
            replaying = undefined;
            if (!alive) break;
          }
        }
      } finally {
        gate.open();
      }
    };

    const watch = (proc: ServiceProcess, kind: ProcessKind): void => {
      void proc.exited.then((code) => {
        if (finished) return;
        epochs[kind]++;
        // in flight, and those that ended shortly before (the culprit's call fails as the process dies,
        // before its exit is seen): failed ones first
        const now = performance.now();
        const flying = [...inflight.entries()].filter(([, f]) => f.process === kind).map(([i]) => i);
        const ended = recent[kind].filter((r) => now - r.endedAt < 3_000);
        const suspects = [
          ...new Set([
            ...ended.filter((r) => r.transport).map((r) => r.index),
            ...flying,
            ...ended.filter((r) => !r.transport).map((r) => r.index),
          ]),
        ];
        queue.push({
          proc,
          kind,
          code,
          suspects,
          ...(replaying !== undefined ? { replayOf: replaying } : {}),
        });
        startRecovery();
      });
    };
    const startRecovery = (): void => {
      recovering ??= recover().finally(() => {
        recovering = undefined;
        if (queue.length > 0 && !stoppedEarly) startRecovery();
      });
    };
    const m0 = current("master");
    const s0 = current("scheduler");
    if (m0) watch(m0, "master");
    if (s0) watch(s0, "scheduler");

    refresher = setInterval(() => {
      if (recovering === undefined) void pools.refresh(boundMs).catch(() => undefined);
    }, 2_000);

    const record = (index: number, input: FuzzInput, o: Outcome): void => {
      const all = [o, ...(o.extra ?? [])];
      const worst = slowest[slowest.length - 1];
      if (slowest.length < 8 || (worst && o.latencyMs > worst.latencyMs)) {
        slowest.push({
          index,
          target: o.target,
          method: o.method,
          status: o.status,
          latencyMs: round(o.latencyMs),
          input: renderInput(input, 200),
        });
        slowest.sort((a, b) => b.latencyMs - a.latencyMs);
        slowest.length = Math.min(slowest.length, 8);
      }
      for (const x of all) {
        bump(byTarget, x.target, x.status);
        bump(byMethod, `${x.target}.${x.method}`, x.status);
        if (x.refused) {
          const list = refused[x.target] ?? [];
          list.push(x.latencyMs);
          refused[x.target] = list;
        }
        for (const v of x.violations) {
          violations.push({
            index,
            target: x.target,
            method: x.method,
            status: x.status,
            kind: v.kind,
            detail: v.detail,
            input: renderInput(input, 400),
            ...(x.refs && Object.keys(x.refs).length > 0 ? { refs: x.refs } : {}),
          });
        }
      }
    };

    // ---- the run
    let next = start;
    let lastProgress = performance.now();
    const worker = async (): Promise<void> => {
      for (;;) {
        await gate.wait();
        while (recovering !== undefined) {
          await recovering;
          await gate.wait();
        }
        if (stoppedEarly || next >= end) return;
        const index = next++;
        const input = source.get(index);
        const proc = processOf(input);
        const epoch = proc ? epochs[proc] : 0;
        const done = runOne(input);
        inflight.set(index, { input, process: proc, done });
        let o: Outcome;
        try {
          o = await done;
        } finally {
          inflight.delete(index);
        }
        if (proc) {
          const list = recent[proc];
          list.push({ index, endedAt: performance.now(), transport: looksLikeTransport(o) });
          if (list.length > 64) list.shift();
          const p = current(proc);
          if (looksLikeTransport(o) && p && epochs[proc] === epoch) {
            // a lost connection: is the process going down? (its exit is seen a moment after the reset)
            let timer: NodeJS.Timeout | undefined;
            await Promise.race([
              p.exited,
              new Promise((resolve) => {
                timer = setTimeout(resolve, 3_000);
              }),
            ]);
            clearTimeout(timer);
          }
          if (epochs[proc] !== epoch) {
            // its process went down meanwhile: the crash record lists it as a suspect
            o = { ...o, status: "COLLATERAL", refused: false, violations: [], extra: [] };
          }
        }
        ran++;
        record(index, input, o);
        if (performance.now() - lastProgress > 10_000) {
          lastProgress = performance.now();
          log(`  ${ran}/${count} inputs, ${violations.length} violations`);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, () => worker()));
    while (recovering !== undefined) await recovering;
    finished = true;
    const runMs = performance.now() - started;
    log(`sent ${ran} inputs in ${round(runMs / 1000)} s; final checks…`);

    // ---- final checks
    const runLevel = (kind: string, detail: string, target = "cluster", method = "-"): void => {
      violations.push({ index: null, target, method, status: "-", kind, detail });
    };
    for (const c of crashes) {
      const culprit = c.culprit !== undefined ? ` — reproduced by replaying input #${c.culprit}` : "";
      const error = /^\s*((?:\w*Error|FATAL)\b.*)$/m.exec(c.logTail)?.[1] ?? "see its log";
      violations.push({
        index: c.culprit ?? c.suspects[0] ?? null,
        target: c.kind,
        method: "-",
        status: "EXITED",
        kind: "process-exit",
        detail:
          `the ${c.kind} exited (${c.exit}): ${error.slice(0, 160)}\n` +
          `${c.process}; suspects (in flight or just ended): ${c.suspects.map((x) => `#${x}`).join(", ") || "none"}${culprit}\n` +
          `log ${c.logFile}, last lines:\n${c.logTail}`,
        input:
          c.culprit !== undefined
            ? renderInput(source.get(c.culprit), 400)
            : c.suspects.map((i) => `#${i} ${renderInput(source.get(i), 200)}`).join("\n"),
      });
    }
    for (const kind of ["master", "scheduler"] as const) {
      const p = current(kind);
      if (p && !p.running) {
        // a run stopped by crashes: bring the process back, so that the final checks mean something
        try {
          await cluster.restart(p);
          await waitHealthy(kind);
          if (kind === "master") {
            await agent.ready(30_000);
            await framework.ready(30_000);
          }
        } catch (err) {
          runLevel("process-exit", `the ${kind} did not come back for the final checks: ${String(err)}`);
          continue;
        }
      }
      if (!(await probe(kind))) runLevel("unresponsive", `the ${kind} does not answer at the end of the run`);
    }
    try {
      const jsm = await nc.jetstreamManager();
      await waitFor(
        "the master's status consumer to drain",
        async () => {
          const info = await jsm.consumers.info("DROVER_STATUS", "master");
          return info.num_pending === 0 && info.num_ack_pending === 0;
        },
        { timeoutMs: 20_000, intervalMs: 250 },
      );
    } catch (err) {
      const jsm = await nc.jetstreamManager();
      const info = await jsm.consumers.info("DROVER_STATUS", "master").catch(() => undefined);
      runLevel(
        "status-consumer-stuck",
        `${err instanceof Error ? err.message : String(err)}` +
          (info
            ? ` (pending ${info.num_pending}, unacknowledged ${info.num_ack_pending}, redelivered ${info.num_redelivered})`
            : ""),
        "nats",
      );
    }
    const apps = await rawUnary(
      scheduler,
      "/drover.v1.Scheduler/ListApps",
      Buffer.alloc(0),
      new Metadata(),
      boundMs * 2,
    );
    if (apps.code !== 0 || !apps.response)
      runLevel("final-list-apps", `ListApps: ${statusName(apps.code)} ${apps.details}`, "scheduler");
    else {
      const list = ListAppsResponse.decode(apps.response).apps;
      for (const app of list) {
        const problem = appDefinitionProblem(app);
        if (problem)
          runLevel(
            "invalid-app-stored",
            `app ${JSON.stringify(app.id)}: ${problem}`,
            "scheduler",
            "ListApps",
          );
      }
      log(`final: ${list.length} apps listed, each checked against the app schema`);
    }
    const verify = await cluster
      .cli(["admin", "verify-log", "--json"], { timeoutMs: 120_000 })
      .catch((err: unknown) => ({
        code: -1,
        stdout: "",
        stderr: err instanceof Error ? err.message : String(err),
      }));
    let verified = false;
    try {
      verified = verify.code === 0 && (JSON.parse(verify.stdout) as { ok?: boolean }).ok === true;
    } catch {
      verified = false;
    }
    if (!verified)
      runLevel(
        "verify-log",
        `drover admin verify-log exited ${verify.code}: ${tail(verify.stdout || verify.stderr, 15)}`,
        "etcd",
      );
    else log(`final: drover admin verify-log passed`);
    const durationMs = performance.now() - started;

    const refusedLatency: FuzzReport["refusedLatency"] = {};
    for (const [t, list] of Object.entries(refused)) {
      const sorted = [...list].sort((a, b) => a - b);
      refusedLatency[t] = {
        n: sorted.length,
        p50: round(percentile(sorted, 50)),
        p99: round(percentile(sorted, 99)),
        max: round(sorted[sorted.length - 1] ?? 0),
      };
    }
    const report: FuzzReport = {
      seed: opts.seed,
      start,
      requested: count,
      ran,
      durationMs,
      inputsPerSecond: round(ran / (runMs / 1000)),
      concurrency,
      boundMs,
      targets,
      violations,
      crashes,
      byTarget,
      byMethod,
      refusedLatency,
      slowest,
      ...(stoppedEarly ? { stoppedEarly } : {}),
      peers: [
        `fake agent ${agent.agentId}: ${agent.sessions} session(s), ${agent.launches} launches, ${agent.kills} kills, ${agent.publishFailures} failed status publishes`,
        `fuzz framework ${framework.frameworkId}: ${framework.sessions} session(s), ${framework.offersReceived} offers, ${framework.updates} updates; pools refreshed ${pools.refreshes} times (${pools.refreshFailures} failed)`,
      ],
      text: "",
    };
    report.text = formatReport(report);
    return report;
  } finally {
    finished = true;
    clearInterval(refresher);
    framework?.stop();
    await agent?.stop();
    master.close();
    scheduler.close();
    await nc?.drain().catch(() => undefined);
    await rm(workDir, { recursive: true, force: true });
    if (ownCluster) await cluster.stop().catch((err: unknown) => log(`stopping the cluster: ${String(err)}`));
  }
}

/** Violations grouped by kind, place and the shape of their detail. */
export function groupViolations(
  violations: readonly ViolationRecord[],
): { key: string; items: ViolationRecord[] }[] {
  const groups = new Map<string, ViolationRecord[]>();
  for (const v of violations) {
    // errors and crashes are told apart by their message; other kinds by where they happened
    const byMessage =
      v.kind === "process-exit" ||
      v.kind === "INTERNAL" ||
      v.kind === "UNKNOWN" ||
      v.kind.startsWith("unexpected-");
    const shape = byMessage
      ? `: ${(v.detail.split("\n")[0] ?? "")
          .slice(0, 90)
          .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
          .replace(/\d+/g, "N")}`
      : "";
    const key = `${v.kind} at ${v.target}.${v.method.replace(/\(.*\)$/, "")} [${v.status}]${shape}`;
    const g = groups.get(key);
    if (g) g.push(v);
    else groups.set(key, [v]);
  }
  const rank = (g: { items: ViolationRecord[] }) => (g.items[0]?.kind === "process-exit" ? 0 : 1);
  return [...groups.entries()]
    .map(([key, items]) => ({ key, items }))
    .sort((a, b) => rank(a) - rank(b) || b.items.length - a.items.length);
}

function formatCounts(counts: Record<string, number>): string {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
}

/**
 * The summary: counts by target and method, latencies, the slowest inputs, then the violations grouped
 * (a few examples each, with their replay command); `listAll` adds one line per violation.
 */
export function formatReport(
  r: FuzzReport,
  opts: { examplesPerGroup?: number; listAll?: boolean } = {},
): string {
  const examplesPerGroup = opts.examplesPerGroup ?? 3;
  const lines: string[] = [];
  const secs = round(r.durationMs / 1000);
  lines.push(
    `fuzz: seed ${r.seed}, inputs ${r.start}..${r.start + r.requested - 1}: ran ${r.ran} in ${secs} s ` +
      `(${r.inputsPerSecond} inputs/s while sending), concurrency ${r.concurrency}, bound ${r.boundMs} ms`,
  );
  lines.push(`targets: ${r.targets.join(", ")}`);
  if (r.stoppedEarly) lines.push(`STOPPED EARLY: ${r.stoppedEarly}`);
  lines.push("outcomes by target:");
  for (const [t, c] of Object.entries(r.byTarget).sort()) {
    const n = Object.values(c).reduce((a, b) => a + b, 0);
    lines.push(`  ${t.padEnd(10)} ${String(n).padStart(5)}  ${formatCounts(c)}`);
  }
  lines.push("outcomes by method:");
  for (const [m, c] of Object.entries(r.byMethod).sort()) {
    const n = Object.values(c).reduce((a, b) => a + b, 0);
    lines.push(`  ${m.padEnd(40)} ${String(n).padStart(5)}  ${formatCounts(c)}`);
  }
  lines.push("latency of refused inputs (ms):   target       n     p50     p99     max");
  for (const [t, l] of Object.entries(r.refusedLatency).sort()) {
    lines.push(
      `${"".padEnd(34)}${t.padEnd(10)} ${String(l.n).padStart(5)} ${String(l.p50).padStart(7)} ${String(l.p99).padStart(7)} ${String(l.max).padStart(7)}`,
    );
  }
  lines.push("slowest inputs:");
  for (const x of r.slowest)
    lines.push(`  #${x.index} ${x.target}.${x.method} ${x.status} ${x.latencyMs} ms: ${x.input}`);
  lines.push(...r.peers);
  if (r.violations.length === 0) {
    lines.push("violations: none");
    return lines.join("\n");
  }
  const groups = groupViolations(r.violations);
  lines.push(`VIOLATIONS: ${r.violations.length} in ${groups.length} kinds`);
  for (const [gi, g] of groups.entries()) {
    lines.push(`[${gi + 1}] ${g.key} — ${g.items.length}x`);
    for (const v of g.items.slice(0, examplesPerGroup)) {
      if (v.index === null) {
        lines.push(`    ${v.detail.split("\n").join("\n    ")}`);
        continue;
      }
      lines.push(
        `    #${v.index}: ${v.detail.split("\n").join("\n      ")}\n` +
          `      replay: ${replayCommand(r.seed, v.index, r.targets)}   (fast-check: { seed: ${r.seed}, path: "${v.index}" })\n` +
          `      input: ${(v.input ?? "").split("\n").join("\n      ")}` +
          (v.refs ? `\n      refs: ${JSON.stringify(v.refs).slice(0, 300)}` : ""),
      );
    }
    if (g.items.length > examplesPerGroup) {
      const more = g.items.slice(examplesPerGroup).map((v) => (v.index === null ? "-" : `#${v.index}`));
      lines.push(
        `    … and ${more.length} more: ${more.slice(0, 20).join(" ")}${more.length > 20 ? " …" : ""}`,
      );
    }
  }
  if (opts.listAll) {
    lines.push(`all ${r.violations.length} violations (seed ${r.seed}; replay one with --replay INDEX):`);
    for (const v of r.violations) {
      const where = v.index === null ? "run" : `#${v.index} (path "${v.index}")`;
      const detail = v.detail.split("\n")[0]?.slice(0, 160) ?? "";
      lines.push(`  ${where} ${v.target}.${v.method} ${v.status} ${v.kind}: ${detail}`);
      if (v.input) lines.push(`      input: ${v.input.split("\n")[0]?.slice(0, 300)}`);
    }
  }
  return lines.join("\n");
}
