/**
 * The agent's health module on a fake clock with scripted checks: which address each check probes,
 * when a TASK_RUNNING update carries the task's health or readiness, and the kill of a task whose
 * check fails too often (its grace, and its terminal status: reason and message).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { Logger } from "@drover/common";
import {
  type CheckResult,
  type HealthCheckSpec,
  REASON_HEALTH_UPDATED,
  REASON_UNHEALTHY,
  type ReadinessProbe,
  readinessCheckSpec,
  type TaskRun,
  type TaskStatus,
} from "@drover/core";
import type { CheckTarget, CommandRunner, RunCheckOptions, TaskContainers } from "@drover/runtime";
import { FakeClock } from "@drover/testing";
import {
  AgentHealth,
  describeCheck,
  type HealthStatusUpdate,
  needsContainerIp,
  resolveHealthTarget,
  resolveReadinessTarget,
  type TaskChecks,
} from "./health.js";
import { FileHealthCheckStore } from "./health-store.js";

const S = 1000;

const silent: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silent,
};

function check(given: Partial<HealthCheckSpec> = {}): HealthCheckSpec {
  return {
    protocol: "HTTP",
    gracePeriodSeconds: 0,
    intervalSeconds: 1,
    timeoutSeconds: 1,
    maxConsecutiveFailures: 2,
    delaySeconds: 0,
    ...given,
  };
}

function task(run: TaskRun, ports: number[] = [31002, 31003], env: Record<string, string> = {}): TaskChecks {
  return { ports, env, run };
}

const ok: CheckResult = { kind: "healthy" };
const bad: CheckResult = { kind: "unhealthy", cause: "500 Internal Server Error" };

/** An AgentHealth on a fake clock whose checks answer from `script` in turn (the last one forever). */
function harness(script: CheckResult[], opts: { containers?: TaskContainers; killFailures?: number } = {}) {
  const clock = new FakeClock();
  const published: Array<{ taskId: string; atMs: number; update: HealthStatusUpdate }> = [];
  const kills: Array<{ taskId: string; grace: number; atMs: number }> = [];
  const probes: Array<{ target: CheckTarget | undefined; unresolved: string | undefined; atMs: number }> = [];
  let i = 0;
  const health = new AgentHealth({
    clock,
    log: silent,
    publish: (taskId, update) => published.push({ taskId, atMs: clock.now(), update }),
    kill: async (taskId, grace) => {
      kills.push({ taskId, grace, atMs: clock.now() });
      if (kills.length <= (opts.killFailures ?? 0)) throw new Error("executor busy");
    },
    containers: opts.containers,
    runCheck: async (_spec, target, _timeoutMs, o: RunCheckOptions) => {
      probes.push({ target, unresolved: o.unresolved, atMs: clock.now() });
      if (!target && _spec.protocol !== "COMMAND")
        return { kind: "unhealthy", cause: o.unresolved ?? "no target" };
      return script[Math.min(i++, script.length - 1)] ?? bad;
    },
  });
  return { clock, health, published, kills, probes };
}

function running(atMs: number): TaskStatus {
  return { state: "TASK_RUNNING", message: "running", timestampMs: atMs, uuid: "u", source: "agent" };
}

describe("check targets", () => {
  it("host networking: the host port of portIndex on 127.0.0.1, or `port`", () => {
    const t = task({ healthChecks: [check()] });
    assert.deepEqual(resolveHealthTarget(check({ portIndex: 1 }), t, undefined), {
      target: { host: "127.0.0.1", port: 31003 },
    });
    assert.deepEqual(resolveHealthTarget(check({ port: 31002 }), t, undefined), {
      target: { host: "127.0.0.1", port: 31002 },
    });
    assert.deepEqual(resolveHealthTarget(check({}), t, undefined).target, { host: "127.0.0.1", port: 31002 });
    assert.match(
      resolveHealthTarget(check({ portIndex: 5 }), t, undefined).unresolved ?? "",
      /no port at index 5/,
    );
    assert.deepEqual(resolveHealthTarget(check({ protocol: "COMMAND" }), t, undefined), {});
  });

  it("bridge: the mapping's host port; container network without host port: the container's IP, else unresolved", () => {
    const bridge = task({
      network: { mode: "bridge" },
      portMappings: [{ containerPort: 80, hostPort: 31007, protocol: "tcp", name: "http" }],
    });
    assert.deepEqual(resolveHealthTarget(check({ portIndex: 0 }), bridge, "172.17.0.2").target, {
      host: "127.0.0.1",
      port: 31007,
    });
    assert.equal(needsContainerIp({ ...bridge, run: { ...bridge.run, healthChecks: [check()] } }), false);

    const overlay = task(
      {
        network: { mode: "container", name: "dcos" },
        portMappings: [{ containerPort: 8080, hostPort: 0, protocol: "tcp", name: "api" }],
        healthChecks: [check({ portIndex: 0, protocol: "MESOS_HTTP" })],
      },
      [],
    );
    assert.equal(needsContainerIp(overlay), true);
    assert.deepEqual(resolveHealthTarget(check({ portIndex: 0 }), overlay, "10.0.0.7").target, {
      host: "10.0.0.7",
      port: 8080,
    });
    assert.match(
      resolveHealthTarget(check({ portIndex: 0 }), overlay, undefined).unresolved ?? "",
      /no host port and the container's IP address is not known/,
    );
  });

  it("a check's own port on a container network is the container's: its host port if published, else its IP", () => {
    const net = (hostPort: number) =>
      task(
        {
          network: { mode: "container", name: "dcos" },
          portMappings: [{ containerPort: 80, hostPort, protocol: "tcp" }],
          healthChecks: [check({ port: 80 })],
        },
        hostPort > 0 ? [hostPort] : [],
      );
    assert.equal(needsContainerIp(net(0)), true);
    assert.deepEqual(resolveHealthTarget(check({ port: 80 }), net(0), "10.0.0.9").target, {
      host: "10.0.0.9",
      port: 80,
    });
    assert.match(
      resolveHealthTarget(check({ port: 80 }), net(0), undefined).unresolved ?? "",
      /IP address is not known/,
    );
    assert.equal(needsContainerIp(net(31050)), false);
    assert.deepEqual(resolveHealthTarget(check({ port: 80 }), net(31050), undefined).target, {
      host: "127.0.0.1",
      port: 31050,
    });
    // Host and bridge networking: a given port is a host port.
    assert.deepEqual(resolveHealthTarget(check({ port: 8080 }), task({}), undefined).target, {
      host: "127.0.0.1",
      port: 8080,
    });
  });

  it("readiness: the port named portName (a mapping, else the task's PORT_<NAME>)", () => {
    const spec = readinessCheckSpec({ portName: "http-api" });
    const bridge = task({
      network: { mode: "bridge" },
      portMappings: [{ containerPort: 80, hostPort: 31009, protocol: "tcp", name: "http-api" }],
    });
    assert.deepEqual(resolveReadinessTarget(spec, bridge, undefined), { host: "127.0.0.1", port: 31009 });
    const host = task({}, [31002], { PORT_HTTP_API: "31002" });
    assert.equal(resolveReadinessTarget(spec, task({}, [31002]), undefined), undefined);
    // PORT_HTTP-API is not a shell name; Marathon upper-cases the name as it is.
    assert.deepEqual(
      resolveReadinessTarget(spec, { ...host, env: { "PORT_HTTP-API": "31002" } }, undefined),
      {
        host: "127.0.0.1",
        port: 31002,
      },
    );
  });

  it("names a check by protocol and address", () => {
    assert.equal(describeCheck(check(), { host: "127.0.0.1", port: 31002 }), "HTTP check on port 31002");
    assert.equal(
      describeCheck(check({ protocol: "TCP" }), { host: "10.0.0.7", port: 80 }),
      "TCP check on 10.0.0.7:80",
    );
    assert.equal(
      describeCheck(check({ protocol: "COMMAND", command: { value: "true" } }), undefined),
      "COMMAND check `true`",
    );
  });
});

describe("AgentHealth", () => {
  it("publishes healthy, then unhealthy at the first counted failure, and kills on failure max+1 with the reason", async () => {
    const { clock, health, published, kills, probes } = harness([ok, ok, bad]);
    const since = clock.now();
    health.launched("t1", task({ healthChecks: [check()], killGracePeriodSeconds: 7 }));
    await health.running("t1", "c1", since);
    assert.deepEqual(health.watching(), ["t1"]);

    await clock.advance(10 * S);
    // Checks at 1, 2 (ok), 3, 4, 5 (failures 1, 2, 3): the third failure kills (max 2 → max+1).
    assert.deepEqual(
      probes.map((p) => (p.atMs - since) / S),
      [1, 2, 3, 4, 5],
    );
    assert.deepEqual(probes[0]?.target, { host: "127.0.0.1", port: 31002 });
    assert.deepEqual(
      published.map((p) => [(p.atMs - since) / S, p.update.health?.healthy, p.update.reason]),
      [
        [1, true, REASON_HEALTH_UPDATED],
        [3, false, REASON_HEALTH_UPDATED],
      ],
    );
    assert.equal(
      published[1]?.update.message,
      "unhealthy: HTTP check on port 31002 failed: 500 Internal Server Error",
    );
    assert.equal(published[1]?.update.health?.consecutiveFailures, 1);
    assert.deepEqual(kills, [{ taskId: "t1", grace: 7, atMs: since + 5 * S }]);
    assert.deepEqual(health.watching(), []);
    assert.equal(clock.pending(), 0);

    // The executor reports the kill: the terminal status says why.
    const terminal = health.finished("t1", {
      state: "TASK_KILLED",
      message: "killed",
      exitCode: 143,
      timestampMs: clock.now(),
      uuid: "u2",
      source: "agent",
    });
    assert.equal(terminal.state, "TASK_KILLED");
    assert.equal(terminal.exitCode, 143);
    assert.equal(terminal.reason, REASON_UNHEALTHY);
    assert.equal(
      terminal.message,
      "unhealthy: HTTP check on port 31002 failed 3 times: 500 Internal Server Error",
    );
    assert.equal(terminal.health?.healthy, false);
    assert.equal(terminal.health?.consecutiveFailures, 3);
    assert.equal(terminal.health?.lastFailureMs, since + 5 * S);
  });

  it("a health kill that fails is tried again (1 s, then 2 s) until it goes through", async () => {
    const { clock, health, kills } = harness([bad], { killFailures: 2 });
    const since = clock.now();
    health.launched("t1", task({ healthChecks: [check({ maxConsecutiveFailures: 1 })] }));
    await health.running("t1", "c1", since);
    await clock.advance(10 * S);
    assert.deepEqual(
      kills.map((k) => (k.atMs - since) / S),
      [2, 3, 5],
    );
  });

  it("a kill without a grace of the task's own waits 5 s; a task that ends by itself keeps its status", async () => {
    const { clock, health, kills } = harness([bad]);
    health.launched("t1", task({ healthChecks: [check({ maxConsecutiveFailures: 1 })] }));
    await health.running("t1", "c1", clock.now());
    await clock.advance(3 * S);
    assert.equal(kills[0]?.grace, 5);

    health.launched("t2", task({ healthChecks: [check({ maxConsecutiveFailures: 0 })] }));
    await health.running("t2", "c2", clock.now());
    await clock.advance(3 * S);
    const failed: TaskStatus = { ...running(clock.now()), state: "TASK_FAILED", message: "exited 1" };
    assert.deepEqual(health.finished("t2", failed), failed);
  });

  it("a kill by the master stops the checks: no update, no health kill", async () => {
    const { clock, health, published, kills, probes } = harness([bad]);
    health.launched("t1", task({ healthChecks: [check()] }));
    await health.running("t1", "c1", clock.now());
    await clock.advance(1 * S);
    health.stop("t1");
    await clock.advance(10 * S);
    assert.equal(probes.length, 1);
    assert.equal(kills.length, 0);
    assert.equal(published.length, 1); // the first failure's, before the kill
    assert.equal(clock.pending(), 0);
  });

  it("a task whose checks are unknown (not launched here) or that has none is not checked", async () => {
    const { clock, health } = harness([ok]);
    await health.running("recovered", "c1", clock.now());
    health.launched("plain", task({}));
    await health.running("plain", "c2", clock.now());
    assert.deepEqual(health.watching(), []);
  });

  it("grace period: failures before the first success are not counted until it ends", async () => {
    const { clock, health, published, kills } = harness([bad]);
    const since = clock.now();
    health.launched("t1", task({ healthChecks: [check({ gracePeriodSeconds: 5 })] }));
    await health.running("t1", "c1", since);
    await clock.advance(4 * S);
    assert.equal(published.length, 0);
    await clock.advance(10 * S);
    // Counted from 5 s on (runningSince + grace > now ignores up to 4 s): failures at 5, 6, 7 → kill at 7.
    assert.equal((published[0]?.atMs ?? 0) - since, 5 * S);
    assert.equal((kills[0]?.atMs ?? 0) - since, 7 * S);
  });

  it("COMMAND checks run in the task's container; without container access they fail saying so", async () => {
    const calls: string[] = [];
    const runner: CommandRunner = {
      run: async (command) => {
        calls.push(command);
        return { kind: "exited", exitCode: 0, output: "" };
      },
    };
    const containers: TaskContainers = {
      commandRunner: (id) => {
        calls.push(`runner for ${id}`);
        return runner;
      },
      ipAddress: async () => undefined,
    };
    const spec = check({ protocol: "COMMAND", command: { value: "test -f /www/index.html" } });
    const withDocker = harness([ok], { containers });
    withDocker.health.launched("t1", task({ healthChecks: [spec] }));
    await withDocker.health.running("t1", "c1", withDocker.clock.now());
    await withDocker.clock.advance(1 * S);
    assert.deepEqual(calls, ["runner for c1"]);
    assert.equal(withDocker.published[0]?.update.health?.healthy, true);

    const without = harness([ok]);
    without.health.launched("t1", task({ healthChecks: [spec] }));
    await without.health.running("t1", "c1", without.clock.now());
    await without.clock.advance(1 * S);
    assert.match(without.probes[0]?.unresolved ?? "", /COMMAND checks need the task's container/);
  });

  it("readiness: an update with the first answer and when the task becomes ready, none in between", async () => {
    const clock = new FakeClock();
    const published: HealthStatusUpdate[] = [];
    const answers: ReadinessProbe[] = [
      { kind: "response", response: { status: 503, contentType: "text/plain", body: "warming" } },
      { kind: "response", response: { status: 503, contentType: "text/plain", body: "warming" } },
      { kind: "response", response: { status: 200, contentType: "text/plain", body: "ok" } },
    ];
    let n = 0;
    const health = new AgentHealth({
      clock,
      log: silent,
      publish: (_t, u) => published.push(u),
      kill: async () => {},
      probeReadiness: async () => answers[Math.min(n++, answers.length - 1)] as ReadinessProbe,
    });
    const spec = readinessCheckSpec({ intervalSeconds: 2, portName: "http" });
    health.launched("t1", task({ readinessChecks: [spec] }, [31002], { PORT_HTTP: "31002" }));
    await health.running("t1", "c1", clock.now());
    await clock.advance(10 * S);
    assert.equal(n, 3, "probed until ready");
    assert.deepEqual(
      published.map((u) => u.readiness?.map((r) => r.ready)),
      [[false], [true]],
    );
    assert.equal(published[1]?.message, "readiness check readinessCheck: ready");
    assert.equal(published[0]?.health, undefined);
  });
});

describe("checks kept across an agent restart", () => {
  const run: TaskRun = {
    network: { mode: "bridge" },
    portMappings: [{ containerPort: 80, hostPort: 31004, protocol: "tcp", name: "http" }],
    healthChecks: [check({ port: 31004 })],
    killGracePeriodSeconds: 9,
    volumes: [{ containerPath: "/data", hostPath: "/srv/data", mode: "RW" }],
  };

  it("FileHealthCheckStore keeps what the checks need (no other environment), validates it, prunes the rest", () => {
    const dir = mkdtempSync(join(tmpdir(), "drover-health-store-"));
    try {
      const store = new FileHealthCheckStore(join(dir, "health"), silent);
      store.save("web.1", task(run, [31004], { PORT0: "31004", PORT_HTTP: "31004", DB_PASSWORD: "s3cret" }));
      store.save("web.2", task(run));
      assert.deepEqual(store.load("web.1"), {
        ports: [31004],
        env: { PORT0: "31004", PORT_HTTP: "31004" },
        run: {
          network: run.network,
          portMappings: run.portMappings,
          healthChecks: run.healthChecks,
          killGracePeriodSeconds: 9,
        },
      });
      assert.equal(store.load("unknown"), undefined);
      writeFileSync(join(dir, "health", "bad.json"), '{"ports":["x"]}');
      assert.equal(store.load("bad"), undefined);
      store.prune(new Set(["web.1"]));
      assert.deepEqual(readdirSync(join(dir, "health")), ["web.1.json"]);
      store.remove("web.1");
      assert.deepEqual(readdirSync(join(dir, "health")), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a restarted agent checks the recovered tasks whose checks it kept, and forgets them when they end", async () => {
    const dir = mkdtempSync(join(tmpdir(), "drover-health-store-"));
    try {
      const store = new FileHealthCheckStore(dir, silent);
      const first = new AgentHealth({
        clock: new FakeClock(),
        log: silent,
        publish: () => {},
        kill: async () => {},
        store,
      });
      first.launched("web.1", task(run));
      first.close(); // the agent stops; the container keeps running
      store.save("gone.1", task(run)); // a task that ended while the agent was down

      const probes: Array<CheckTarget | undefined> = [];
      const clock = new FakeClock();
      const published: HealthStatusUpdate[] = [];
      const again = new AgentHealth({
        clock,
        log: silent,
        publish: (_t, u) => published.push(u),
        kill: async () => {},
        store,
        runCheck: async (_s, target) => {
          probes.push(target);
          return ok;
        },
      });
      again.recover([
        { taskId: "web.1", containerId: "c1" },
        { taskId: "plain.1", containerId: "c2" },
      ]);
      await clock.advance(2 * S);
      assert.deepEqual(again.watching(), ["web.1"]);
      assert.deepEqual(probes[0], { host: "127.0.0.1", port: 31004 });
      assert.equal(published[0]?.health?.healthy, true);
      assert.deepEqual(readdirSync(dir), ["web.1.json"], "what ended meanwhile is dropped");
      again.finished("web.1", { ...running(clock.now()), state: "TASK_KILLED" });
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
