/**
 * The conformance suite of the executor contract (executor.ts), in the manner of Nomad's driver test
 * harness: one set of node:test tests that every runtime must pass, parameterised by a factory and by
 * the faults the runtime knows how to cause (a task that exits with code N, one that ignores SIGTERM, a
 * launch that fails). Usage, in a test file:
 *
 *   describeExecutor("SimulatedExecutor", (agentId) => new SimulatedExecutor({ agentId, host }), {
 *     faults: { runsUntilKilled: () => ({ cmd: "sleep 300" }), ... },
 *   });
 *
 * Every executor the factory makes is closed after the suite, and then every event each one emitted is
 * checked once more against the per-task order (STARTING → RUNNING → one terminal event, nothing after).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, describe, test } from "node:test";
import { isTerminal, MAX_TASK_IP_ADDRESSES, TaskIpAddressSchema } from "@drover/core";
import { type Executor, ExecutorClosedError, type ExecutorEvent, type TaskLaunchSpec } from "./executor.js";

/** Makes a new executor for `agentId`. Executors made for the same agent id share its containers. */
export type ExecutorFactory = (agentId: string) => Executor | Promise<Executor>;

/** How the runtime makes a task behave; each returns the launch spec fields that do it. */
export interface ExecutorFaults {
  /** Runs until killed, and exits soon after SIGTERM. */
  runsUntilKilled(): Partial<TaskLaunchSpec>;
  /** Exits on its own with `code`, `afterSeconds` after it started (default 0). */
  exitsWith(code: number, afterSeconds?: number): Partial<TaskLaunchSpec>;
  /** Runs until killed and ignores SIGTERM: only the SIGKILL at the end of the grace period stops it. */
  ignoresSigterm(): Partial<TaskLaunchSpec>;
  /** The launch fails before the task runs (for Docker: an image that cannot be pulled). */
  failsToLaunch(): Partial<TaskLaunchSpec>;
  /**
   * Optional: the task's container dies behind the executor's back (`docker kill`). Resolves with the
   * exit code the executor must then report.
   */
  crash?(agentId: string, taskId: string, containerId: string): Promise<number>;
}

export interface ConformanceOptions {
  faults: ExecutorFaults;
  /** Fields of every test task (image, …); the fault's and the test's own fields override them. */
  baseSpec?: Partial<TaskLaunchSpec>;
  /** Deadline of every wait for an event (default 20 000 ms). */
  waitMs?: number;
  /** Tasks of the concurrency test (default 100). */
  concurrentTasks?: number;
  /** Time a kill may take beyond its grace period (default 10 000 ms). */
  killSlackMs?: number;
  /** Runs after the suite, once every executor is closed: remove what the runtime left behind. */
  cleanup?: () => Promise<void>;
}

type Waiter = { pred: (e: ExecutorEvent) => boolean; resolve: (e: ExecutorEvent) => void };

/** Collects an executor's events; waits resolve as soon as a matching event arrives, or fail at a deadline. */
export class EventRecorder {
  readonly events: ExecutorEvent[] = [];
  private waiters: Waiter[] = [];

  constructor(private readonly defaultWaitMs = 20_000) {}

  readonly push = (e: ExecutorEvent): void => {
    this.events.push(e);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(e)) return true;
      w.resolve(e);
      return false;
    });
  };

  of(taskId: string): ExecutorEvent[] {
    return this.events.filter((e) => e.taskId === taskId);
  }

  states(taskId: string): string[] {
    return this.of(taskId).map((e) => e.state);
  }

  terminals(taskId: string): ExecutorEvent[] {
    return this.of(taskId).filter((e) => isTerminal(e.state));
  }

  waitFor(
    pred: (e: ExecutorEvent) => boolean,
    what: string,
    timeoutMs = this.defaultWaitMs,
  ): Promise<ExecutorEvent> {
    const seen = this.events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const recent = JSON.stringify(this.events.slice(-20));
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last events: ${recent}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  running(taskId: string, timeoutMs?: number): Promise<ExecutorEvent> {
    return this.waitFor(
      (e) => e.taskId === taskId && e.state === "TASK_RUNNING",
      `${taskId} RUNNING`,
      timeoutMs,
    );
  }

  terminal(taskId: string, timeoutMs?: number): Promise<ExecutorEvent> {
    return this.waitFor((e) => e.taskId === taskId && isTerminal(e.state), `${taskId} terminal`, timeoutMs);
  }
}

const RANK: Record<string, number> = { TASK_STARTING: 0, TASK_RUNNING: 1 };

/**
 * The per-task order of one executor's events: STARTING, RUNNING and a terminal event, each at most
 * once and in this order (any may be missing: a refused spec has no STARTING, a failed launch no
 * RUNNING, a recovered task only what happened after), nothing after the terminal event, and
 * timestamps that never go back.
 */
export function assertEventOrder(events: readonly ExecutorEvent[]): void {
  const last = new Map<string, { rank: number; ts: number }>();
  for (const e of events) {
    const rank = isTerminal(e.state) ? 2 : (RANK[e.state] ?? -1);
    assert.ok(rank >= 0, `${e.taskId}: unexpected state ${e.state}`);
    const prev = last.get(e.taskId);
    if (prev) {
      assert.ok(
        rank > prev.rank,
        `${e.taskId}: ${e.state} after an event of rank ${prev.rank}: ${JSON.stringify(events.filter((x) => x.taskId === e.taskId))}`,
      );
      assert.ok(e.timestampMs >= prev.ts, `${e.taskId}: timestamps go back`);
    }
    last.set(e.taskId, { rank, ts: e.timestampMs });
  }
}

export function describeExecutor(name: string, factory: ExecutorFactory, options: ConformanceOptions): void {
  const { faults } = options;
  const waitMs = options.waitMs ?? 20_000;
  const killSlackMs = options.killSlackMs ?? 10_000;
  const concurrent = options.concurrentTasks ?? 100;
  const timeout = Math.max(60_000, 4 * waitMs);
  const run = randomUUID().slice(0, 8);
  const opened: Array<{ ex: Executor; rec: EventRecorder }> = [];
  let agentSeq = 0;
  let taskSeq = 0;
  const newAgentId = () => `conf-${run}-${++agentSeq}`;
  const newTaskId = (label: string) => `${label}.${run}.${++taskSeq}`;

  async function open(
    agentId = newAgentId(),
  ): Promise<{ ex: Executor; rec: EventRecorder; agentId: string }> {
    const ex = await factory(agentId);
    const rec = new EventRecorder(waitMs);
    ex.onEvent(rec.push);
    opened.push({ ex, rec });
    return { ex, rec, agentId };
  }

  function spec(agentId: string, label: string, ...over: Partial<TaskLaunchSpec>[]): TaskLaunchSpec {
    return Object.assign(
      {
        taskId: newTaskId(label),
        appId: `conformance-${label}`,
        frameworkId: "fw-conformance",
        agentId,
        image: "drover/busybox:1",
        cpus: 0.1,
        mem: 32,
        env: {},
        labels: {},
      },
      options.baseSpec,
      ...over,
    );
  }

  describe(`executor conformance: ${name}`, () => {
    after(async () => {
      const closing = await Promise.allSettled(opened.map((o) => o.ex.close()));
      try {
        for (const { rec } of opened) assertEventOrder(rec.events);
        const failed = closing.filter((r) => r.status === "rejected");
        assert.equal(failed.length, 0, `close() failed: ${failed.map((r) => String(r.reason)).join("; ")}`);
      } finally {
        await options.cleanup?.();
      }
    });

    test("launch emits STARTING then RUNNING (with the container id) and resolves once it runs", {
      timeout,
    }, async () => {
      const { ex, rec, agentId } = await open();
      const s = spec(agentId, "starter", faults.runsUntilKilled());
      await ex.launch(s);
      assert.deepEqual(rec.states(s.taskId), ["TASK_STARTING", "TASK_RUNNING"]);
      const running = rec.of(s.taskId)[1];
      assert.ok(running?.containerId, "RUNNING names the container");
      assert.equal((await ex.running()).get(s.taskId), running.containerId);
      // Addresses are optional (host networking without a known host IP), but never empty or invalid.
      if (running.ipAddresses !== undefined) {
        assert.ok(running.ipAddresses.length > 0 && running.ipAddresses.length <= MAX_TASK_IP_ADDRESSES);
        for (const a of running.ipAddresses) assert.ok(TaskIpAddressSchema.safeParse(a).success, a);
      }
      for (const e of rec.of(s.taskId))
        if (e.state !== "TASK_RUNNING") assert.equal(e.ipAddresses, undefined, "addresses only on RUNNING");
      await ex.kill(s.taskId, 0);
      assert.equal((await rec.terminal(s.taskId)).state, "TASK_KILLED");
    });

    test("launch is idempotent per task id, across executors of one agent, and after the end", {
      timeout,
    }, async () => {
      const { ex, rec, agentId } = await open();
      const s = spec(agentId, "idem", faults.runsUntilKilled());
      await Promise.all([ex.launch(s), ex.launch(s)]);
      await ex.launch(s);
      assert.deepEqual(rec.states(s.taskId), ["TASK_STARTING", "TASK_RUNNING"]);
      const containerId = rec.of(s.taskId)[1]?.containerId;
      assert.ok(containerId);

      // A second executor of the same agent (a restarted agent that has not recovered yet) adopts it.
      const other = await open(agentId);
      await other.ex.launch(s);
      assert.deepEqual(other.rec.states(s.taskId), ["TASK_STARTING", "TASK_RUNNING"]);
      assert.equal(other.rec.of(s.taskId)[1]?.containerId, containerId, "the second executor adopted it");
      await other.ex.close();
      assert.equal((await ex.running()).get(s.taskId), containerId, "the same container runs");

      await ex.kill(s.taskId, 0);
      await rec.terminal(s.taskId);
      // A task id that has ended is not launched again by the same executor.
      await ex.launch(s);
      assert.deepEqual(rec.states(s.taskId), ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"]);
      assert.equal((await ex.running()).has(s.taskId), false);

      const done = spec(agentId, "idem-done", faults.exitsWith(0));
      await ex.launch(done);
      assert.equal((await rec.terminal(done.taskId)).state, "TASK_FINISHED");
      await ex.launch(done);
      assert.deepEqual(rec.states(done.taskId), ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]);
      assert.equal((await ex.running()).has(done.taskId), false);
    });

    test("kill emits KILLED and honours the grace period; a repeated kill emits nothing", {
      timeout,
    }, async () => {
      const { ex, rec, agentId } = await open();
      const polite = spec(agentId, "polite", faults.runsUntilKilled());
      const stubborn = spec(agentId, "stubborn", faults.ignoresSigterm());
      const instant = spec(agentId, "instant", faults.runsUntilKilled());
      await Promise.all([ex.launch(polite), ex.launch(stubborn), ex.launch(instant)]);
      for (const s of [polite, stubborn, instant]) await rec.running(s.taskId);

      // A task that stops on SIGTERM ends well before a long grace period.
      let t0 = performance.now();
      await ex.kill(polite.taskId, 30);
      const politeMs = performance.now() - t0;
      assert.ok(
        politeMs < Math.min(killSlackMs, 29_000),
        `a polite task took ${politeMs.toFixed(0)} ms to stop`,
      );
      assert.equal((await rec.terminal(polite.taskId)).state, "TASK_KILLED");

      // A task that ignores SIGTERM is killed once the grace period is over, not before.
      t0 = performance.now();
      await ex.kill(stubborn.taskId, 2);
      const stubbornMs = performance.now() - t0;
      assert.ok(
        stubbornMs >= 1_900,
        `a task ignoring SIGTERM was stopped after ${stubbornMs.toFixed(0)} ms < 2 s`,
      );
      assert.ok(stubbornMs < 2_000 + killSlackMs, `kill took ${stubbornMs.toFixed(0)} ms`);
      assert.equal((await rec.terminal(stubborn.taskId)).state, "TASK_KILLED");

      // Grace 0: SIGKILL at once.
      t0 = performance.now();
      await ex.kill(instant.taskId, 0);
      assert.ok(performance.now() - t0 < killSlackMs);
      assert.equal((await rec.terminal(instant.taskId)).state, "TASK_KILLED");

      await Promise.all([ex.kill(polite.taskId, 1), ex.kill(polite.taskId, 0)]);
      for (const s of [polite, stubborn, instant]) {
        assert.equal(rec.terminals(s.taskId).length, 1, `${s.taskId}: one terminal event`);
        assert.equal((await ex.running()).has(s.taskId), false);
      }
    });

    test('kill of an unknown task emits KILLED "unknown task" once', { timeout }, async () => {
      const { ex, rec } = await open();
      const taskId = newTaskId("unknown");
      await ex.kill(taskId, 1);
      await Promise.all([ex.kill(taskId, 1), ex.kill(taskId, 0)]);
      assert.deepEqual(
        rec.of(taskId).map((e) => [e.state, e.message]),
        [["TASK_KILLED", "unknown task"]],
      );
    });

    test("a task that exits 0 is FINISHED; one that exits non-zero is FAILED with its exit code", {
      timeout,
    }, async () => {
      const { ex, rec, agentId } = await open();
      const ok = spec(agentId, "exit0", faults.exitsWith(0));
      const bad = spec(agentId, "exit3", faults.exitsWith(3));
      await Promise.all([ex.launch(ok), ex.launch(bad)]);
      const finished = await rec.terminal(ok.taskId);
      assert.equal(finished.state, "TASK_FINISHED");
      assert.equal(finished.exitCode, 0);
      const failed = await rec.terminal(bad.taskId);
      assert.equal(failed.state, "TASK_FAILED");
      assert.equal(failed.exitCode, 3);
      assert.match(failed.message, /\b3\b/);
      for (const s of [ok, bad]) {
        assert.deepEqual(rec.states(s.taskId).slice(0, 2), ["TASK_STARTING", "TASK_RUNNING"]);
        assert.equal(rec.terminals(s.taskId).length, 1);
      }
      const running = await ex.running();
      assert.equal(running.has(ok.taskId) || running.has(bad.taskId), false);
    });

    test("a launch that fails is FAILED without RUNNING; a bad spec is refused naming the field", {
      timeout,
    }, async () => {
      const { ex, rec, agentId } = await open();
      const broken = spec(agentId, "nolaunch", faults.failsToLaunch());
      await ex.launch(broken);
      const failed = await rec.terminal(broken.taskId);
      assert.equal(failed.state, "TASK_FAILED");
      assert.ok(failed.message.length > 0, "the runtime's reason");
      assert.deepEqual(rec.states(broken.taskId), ["TASK_STARTING", "TASK_FAILED"]);

      const invalid = spec(agentId, "invalid", faults.runsUntilKilled(), { cpus: -1 });
      await ex.launch(invalid);
      const refused = await rec.terminal(invalid.taskId);
      assert.equal(refused.state, "TASK_FAILED");
      assert.match(refused.message, /invalid launch spec: cpus/);

      const elsewhere = spec(agentId, "elsewhere", faults.runsUntilKilled(), { agentId: `${agentId}-other` });
      await ex.launch(elsewhere);
      assert.equal((await rec.terminal(elsewhere.taskId)).state, "TASK_FAILED");
      const running = await ex.running();
      for (const s of [broken, invalid, elsewhere]) assert.equal(running.has(s.taskId), false);
    });

    test("a run the runtime cannot carry out is refused naming the field, before anything starts", {
      timeout,
    }, async () => {
      const { ex, rec, agentId } = await open();
      const unknown = spec(agentId, "badparam", faults.runsUntilKilled(), {
        run: {
          dockerParameters: [
            { key: "label", value: "a=b" },
            { key: "no-such-flag", value: "1" },
          ],
        },
      });
      await ex.launch(unknown);
      const refused = await rec.terminal(unknown.taskId);
      assert.equal(refused.state, "TASK_FAILED");
      assert.equal(refused.message, "container.docker.parameters: no-such-flag not supported");
      assert.deepEqual(rec.states(unknown.taskId), ["TASK_FAILED"]);

      const escaping = spec(agentId, "escape", faults.runsUntilKilled(), {
        run: { volumes: [{ containerPath: "../../etc", hostPath: "/tmp", mode: "RO" }] },
      });
      await ex.launch(escaping);
      const refused2 = await rec.terminal(escaping.taskId);
      assert.equal(refused2.state, "TASK_FAILED");
      assert.match(refused2.message, /^run\.volumes\.0\.containerPath: /);
      const running = await ex.running();
      assert.equal(running.has(unknown.taskId) || running.has(escaping.taskId), false);
    });

    test("a kill during the launch leaves nothing running", { timeout }, async () => {
      const { ex, rec, agentId } = await open();
      const s = spec(agentId, "racer", faults.runsUntilKilled());
      const launching = ex.launch(s);
      await ex.kill(s.taskId, 0);
      await launching;
      assert.equal((await rec.terminal(s.taskId)).state, "TASK_KILLED");
      assert.equal(rec.terminals(s.taskId).length, 1);
      assert.equal((await ex.running()).has(s.taskId), false);
    });

    if (faults.crash) {
      const crash = faults.crash.bind(faults);
      test("a task that dies behind the executor's back is FAILED with its exit code", {
        timeout,
      }, async () => {
        const { ex, rec, agentId } = await open();
        const s = spec(agentId, "crash", faults.runsUntilKilled());
        await ex.launch(s);
        const running = await rec.running(s.taskId);
        assert.ok(running.containerId);
        const code = await crash(agentId, s.taskId, running.containerId);
        const failed = await rec.terminal(s.taskId);
        assert.equal(failed.state, "TASK_FAILED");
        assert.equal(failed.exitCode, code);
        assert.equal(rec.terminals(s.taskId).length, 1);
      });
    }

    test("recover() in a new executor re-attaches running tasks and reports exited ones once", {
      timeout,
    }, async () => {
      const first = await open();
      const agentId = first.agentId;
      const alive = spec(agentId, "alive", faults.runsUntilKilled(), {
        appId: "conformance-alive",
        cpus: 0.2,
        mem: 48,
      });
      const dead = spec(agentId, "dead", faults.exitsWith(7, 2));
      await Promise.all([first.ex.launch(alive), first.ex.launch(dead)]);
      await first.rec.running(alive.taskId);
      await first.rec.running(dead.taskId);
      await first.ex.close(); // the agent goes away; its containers stay
      await assert.rejects(first.ex.launch(spec(agentId, "late")), ExecutorClosedError);

      const second = await open(agentId);
      // The dead task exits while no executor watches.
      const deadline = Date.now() + waitMs;
      while ((await second.ex.running()).has(dead.taskId)) {
        assert.ok(Date.now() < deadline, "the dead task did not exit on its own");
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(first.rec.terminals(dead.taskId).length, 0, "a closed executor reports nothing");
      assert.ok((await second.ex.running()).has(alive.taskId));

      const recovered = await second.ex.recover();
      const byTask = new Map(recovered.map((r) => [r.taskId, r]));
      const r1 = byTask.get(alive.taskId);
      assert.equal(r1?.state, "TASK_RUNNING");
      assert.equal(r1?.appId, "conformance-alive");
      assert.equal(r1?.frameworkId, "fw-conformance");
      assert.equal(r1?.cpus, 0.2);
      assert.equal(r1?.mem, 48);
      assert.equal(r1?.image, alive.image);
      assert.equal(r1?.containerId, first.rec.of(alive.taskId)[1]?.containerId);
      const r2 = byTask.get(dead.taskId);
      assert.equal(r2?.state, "TASK_FAILED");
      assert.equal(r2?.exitCode, 7);
      assert.equal(recovered.length, 2, JSON.stringify(recovered));
      // The exited task is also reported as an event (the agent's normal path), once.
      const deadEvent = await second.rec.terminal(dead.taskId);
      assert.equal(deadEvent.exitCode, 7);

      // Recovering again describes the running task without re-reporting.
      const again = await second.ex.recover();
      assert.deepEqual(
        again.map((r) => [r.taskId, r.state]),
        [[alive.taskId, "TASK_RUNNING"]],
      );
      assert.equal(second.rec.terminals(dead.taskId).length, 1);

      // The re-attached task is watched: a kill stops it and is reported by the new executor.
      await second.ex.kill(alive.taskId, 0);
      assert.equal((await second.rec.terminal(alive.taskId)).state, "TASK_KILLED");
      assert.equal((await second.ex.running()).has(alive.taskId), false);
    });

    test("after close(), every call throws ExecutorClosedError; close() is idempotent", {
      timeout,
    }, async () => {
      const { ex, agentId } = await open();
      await ex.close();
      await ex.close();
      await assert.rejects(ex.launch(spec(agentId, "closed")), ExecutorClosedError);
      await assert.rejects(ex.kill("any", 0), ExecutorClosedError);
      await assert.rejects(ex.recover(), ExecutorClosedError);
      await assert.rejects(ex.running(), ExecutorClosedError);
    });

    test("events are ordered per task under a mixed load", { timeout }, async () => {
      const { ex, rec, agentId } = await open();
      const specs = [
        ...[0, 1, 2].map((i) => spec(agentId, `mix-ok${i}`, faults.exitsWith(0))),
        ...[0, 1, 2].map((i) => spec(agentId, `mix-fail${i}`, faults.exitsWith(5 + i))),
        ...[0, 1, 2].map((i) => spec(agentId, `mix-kill${i}`, faults.runsUntilKilled())),
        spec(agentId, "mix-nolaunch", faults.failsToLaunch()),
        spec(agentId, "mix-invalid", { mem: 0 }),
        spec(agentId, "mix-racer", faults.runsUntilKilled()),
      ];
      const racer = specs[specs.length - 1] as TaskLaunchSpec;
      const launches = specs.map((s) => ex.launch(s));
      await ex.kill(racer.taskId, 0);
      for (const s of specs.filter((x) => x.appId.startsWith("conformance-mix-kill"))) {
        await rec.running(s.taskId);
        await ex.kill(s.taskId, 0);
      }
      await Promise.all(launches);
      for (const s of specs) await rec.terminal(s.taskId);
      assertEventOrder(rec.events);
      for (const s of specs)
        assert.equal(rec.terminals(s.taskId).length, 1, `${s.taskId}: one terminal event`);
      const code = (s: TaskLaunchSpec) => rec.terminals(s.taskId)[0]?.exitCode;
      assert.deepEqual(specs.slice(0, 6).map(code), [0, 0, 0, 5, 6, 7]);
    });

    test(`${concurrent} tasks launched concurrently all reach RUNNING`, {
      timeout: Math.max(timeout, 180_000),
    }, async () => {
      const { ex, rec, agentId } = await open();
      const specs = Array.from({ length: concurrent }, (_, i) =>
        spec(agentId, `many${i}`, faults.runsUntilKilled()),
      );
      await Promise.all(specs.map((s) => ex.launch(s)));
      for (const s of specs) await rec.running(s.taskId);
      const running = await ex.running();
      assert.equal(specs.filter((s) => running.has(s.taskId)).length, concurrent);
      assert.equal(new Set(specs.map((s) => running.get(s.taskId))).size, concurrent, "one container each");
      await Promise.all(specs.map((s) => ex.kill(s.taskId, 0)));
      for (const s of specs) assert.equal((await rec.terminal(s.taskId)).state, "TASK_KILLED");
      const left = await ex.running();
      assert.equal(specs.filter((s) => left.has(s.taskId)).length, 0);
    });
  });
}
