/**
 * Offers end to end, seen by frameworks written inline with the Framework SDK against a real master and
 * agent (no Drover scheduler): offers carry the agent's attributes; a bad accept (unknown offer, another
 * framework's offer, more than the offer holds) is refused with the field it concerns and launches
 * nothing; an unanswered offer is rescinded after the offer timeout (3 s here) and offered again once
 * the 5 s filter a timed-out offer earns has passed; decline
 * filters, revive and suppress shape what a framework is offered; and no resource of the agent is ever
 * in two outstanding offers at once.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { errorMessage, LeaderClient } from "@drover/common";
import { Framework, type FrameworkOffer, type TaskSpec, type TaskUpdate } from "@drover/framework";
import { MasterClient } from "@drover/proto";
import Docker from "dockerode";
import {
  type Cluster,
  StopWaiting,
  startCluster,
  TASK_IMAGE,
  waitFor,
  withClusterLogs,
  withTimeout,
} from "./harness/index.js";

const OFFER_TIMEOUT_S = 3;
const AGENT = { cpus: 2, mem: 1024, ports: { begin: 31200, end: 31209 } };
const ATTRIBUTES = { rack: "r1", zone: "a" };
const EPS = 1e-6;

const docker = new Docker({ socketPath: "/var/run/docker.sock" });
let cluster: Cluster | undefined;
let master: LeaderClient<MasterClient> | undefined;
let agentId = "";
const probes: Probe[] = [];

function current(): Cluster {
  assert.ok(cluster, "cluster not started");
  return cluster;
}

function masterClient(): LeaderClient<MasterClient> {
  assert.ok(master, "master client not connected");
  return master;
}

// ------------------------------------------------------------------ an SDK framework that records all

interface OfferRecord {
  offer: FrameworkOffer;
  framework: string;
  receivedAt: number;
  /** When the offer stopped being outstanding (rescinded, declined, launched on, disconnected). */
  endedAt?: number;
  end?: "rescind" | "decline" | "launch" | "disconnect";
}

/**
 * A framework that keeps every offer it is given (never answering on its own), and records rescinds,
 * status updates and disconnections with the time they arrived.
 */
class Probe {
  readonly fw: Framework;
  readonly offers: OfferRecord[] = [];
  readonly updates: (TaskUpdate & { receivedAt: number })[] = [];
  readonly disconnects: { at: number; reason: string }[] = [];
  private readonly subscribed: Promise<string>;
  private running: Promise<void> | undefined;

  constructor(
    readonly name: string,
    options: { role?: string } = {},
  ) {
    let resolveId: (id: string) => void = () => undefined;
    this.subscribed = new Promise((resolve) => {
      resolveId = resolve;
    });
    this.fw = new Framework(
      { masters: current().env.DROVER_MASTERS?.split(",") ?? [], name, ...options },
      {
        subscribed: (id) => resolveId(id),
        offers: (offers) => {
          const at = Date.now();
          for (const offer of offers) this.offers.push({ offer, framework: name, receivedAt: at });
        },
        rescind: (offerId) => this.ended(offerId, "rescind"),
        update: (u) => {
          this.updates.push({ ...u, receivedAt: Date.now() });
        },
        disconnected: (reason) => {
          const at = Date.now();
          this.disconnects.push({ at, reason });
          for (const r of this.offers)
            if (r.endedAt === undefined) this.ended(r.offer.offerId, "disconnect", at);
        },
      },
    );
  }

  async start(): Promise<string> {
    this.running = this.fw.run();
    return withTimeout(`${this.name} subscribed`, this.subscribed, 20_000);
  }

  get id(): string {
    const id = this.fw.frameworkId;
    assert.ok(id, `${this.name} is not subscribed`);
    return id;
  }

  async stop(): Promise<void> {
    this.fw.stop();
    const at = Date.now();
    for (const r of this.offers) if (r.endedAt === undefined) this.ended(r.offer.offerId, "disconnect", at);
    await this.running?.catch(() => undefined);
  }

  ended(offerId: string, how: NonNullable<OfferRecord["end"]>, at = Date.now()): void {
    const r = this.offers.find((x) => x.offer.offerId === offerId);
    if (r && r.endedAt === undefined) {
      r.endedAt = at;
      r.end = how;
    }
  }

  /** Offers outstanding right now (as far as this framework knows). */
  outstanding(): OfferRecord[] {
    return this.offers.filter((r) => r.endedAt === undefined);
  }

  /** The first offer received after `since` (waits for it). */
  async offerAfter(since: number, timeoutMs = 10_000): Promise<OfferRecord> {
    return waitFor(
      `an offer to ${this.name} after ${new Date(since).toISOString()}`,
      async () => this.offers.find((r) => r.receivedAt > since),
      { timeoutMs, intervalMs: 20 },
    );
  }

  /** An outstanding offer received less than `maxAgeMs` ago, so that it has most of its life left. */
  async freshOffer(maxAgeMs = 1_000, timeoutMs = 10_000): Promise<OfferRecord> {
    return waitFor(
      `a fresh outstanding offer to ${this.name}`,
      async () =>
        this.outstanding().find((r) => Date.now() - r.receivedAt < maxAgeMs && r.offer.agentId === agentId),
      { timeoutMs, intervalMs: 20 },
    );
  }

  async launch(rec: OfferRecord, tasks: TaskSpec[]): Promise<string[]> {
    this.ended(rec.offer.offerId, "launch");
    return this.fw.launch(rec.offer, tasks);
  }

  async decline(rec: OfferRecord, refuseSeconds: number): Promise<void> {
    this.ended(rec.offer.offerId, "decline");
    await this.fw.decline([rec.offer.offerId], refuseSeconds);
  }

  async update(
    taskId: string,
    state: string,
    timeoutMs = 30_000,
  ): Promise<TaskUpdate & { receivedAt: number }> {
    return waitFor(
      `${state} of ${taskId} at ${this.name}`,
      async () => this.updates.find((u) => u.taskId === taskId && u.state === state),
      { timeoutMs, intervalMs: 20 },
    );
  }
}

async function newProbe(name: string): Promise<Probe> {
  const p = new Probe(name);
  probes.push(p);
  await p.start();
  return p;
}

// ------------------------------------------------------------------ helpers

/** Runs a test body; a failure carries the processes' last log lines. */
const withLogs = (fn: () => Promise<void>): Promise<void> => withClusterLogs(cluster, fn);

async function listFrameworks() {
  return (await masterClient().call((c) => c.listFrameworks.bind(c), {})).frameworks;
}

async function allTasks() {
  const res = await masterClient().call((c) => c.listTasks.bind(c), {
    pageSize: 0,
    pageToken: "",
    frameworkId: "",
    appId: "",
    includeTerminal: true,
  });
  return res.tasks;
}

async function taskContainers() {
  return docker.listContainers({ all: true, filters: { label: [`drover.test.cluster=${current().id}`] } });
}

function task(taskId: string, patch: Partial<TaskSpec> = {}): TaskSpec {
  return { taskId, image: TASK_IMAGE, cmd: "sleep 100000", cpus: 0.1, mem: 32, ...patch };
}

interface Issue {
  path: string;
  message: string;
}

/** Runs `fn`, which must fail with INVALID_ARGUMENT; returns the field issues. */
async function refused(what: string, fn: () => Promise<unknown>): Promise<Issue[]> {
  try {
    await fn();
  } catch (err) {
    const e = err as { code?: string; issues?: Issue[] };
    assert.equal(e.code, "INVALID_ARGUMENT", `${what}: expected INVALID_ARGUMENT, got ${errorMessage(err)}`);
    assert.ok(Array.isArray(e.issues) && e.issues.length > 0, `${what}: the error carries field issues`);
    return e.issues;
  }
  assert.fail(`${what} was accepted`);
}

/** Watches the master's view of the probes' frameworks every 250 ms (connected, suppressed). */
async function watchFrameworks(ms: number, frameworkId: string) {
  const samples: { at: number; connected: boolean; suppressed: boolean }[] = [];
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const f = (await listFrameworks()).find((x) => x.frameworkId === frameworkId);
    samples.push({ at: Date.now(), connected: f?.connected ?? false, suppressed: f?.suppressed ?? false });
    await delay(250);
  }
  return samples;
}

function portsOf(o: FrameworkOffer): number[] {
  const out: number[] = [];
  for (const r of o.resources.ports) for (let p = r.begin; p <= r.end; p++) out.push(p);
  return out;
}

// ------------------------------------------------------------------ lifecycle

before(async () => {
  cluster = await startCluster({
    masters: 1,
    schedulers: 0,
    agents: 1,
    // The CLI needs a scheduler address; readiness is checked below through the master instead.
    waitReady: false,
    env: {
      DROVER_MASTER_OFFER_TIMEOUT_SECONDS: String(OFFER_TIMEOUT_S),
      DROVER_AGENT_CPUS: String(AGENT.cpus),
      DROVER_AGENT_MEM: String(AGENT.mem),
      DROVER_AGENT_PORTS: `${AGENT.ports.begin}-${AGENT.ports.end}`,
      DROVER_AGENT_ATTRIBUTES: "rack:r1,zone:a",
    },
  });
  master = new LeaderClient(MasterClient, cluster.env.DROVER_MASTERS?.split(",") ?? []);
  try {
    const agents = await waitFor(
      "the agent registered and connected at the master",
      async () => {
        const dead = [...current().masters, ...current().agents].filter((p) => !p.running);
        if (dead.length > 0) throw new StopWaiting(`${dead.map((p) => p.name).join(", ")} exited`);
        const res = await masterClient().call((c) => c.listAgents.bind(c), {}, 5_000);
        return res.agents.length === 1 && res.agents[0]?.connected ? res.agents : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    agentId = agents[0]?.agentId ?? "";
    assert.ok(agentId);
  } catch (err) {
    throw new Error(`${errorMessage(err)}\n${current().describe(30)}`);
  }
});

after(async () => {
  await Promise.all(probes.map((p) => p.stop()));
  master?.close();
  await cluster?.stop();
});

// ------------------------------------------------------------------ tests

let a: Probe | undefined;

function probeA(): Probe {
  assert.ok(a, "framework A was not started (the first test failed)");
  return a;
}

test("an offer carries the agent's id, hostname, attributes and all its free resources", () =>
  withLogs(async () => {
    a = await newProbe("offers-a");
    const rec = await a.offerAfter(0, 15_000);
    const o = rec.offer;
    assert.equal(o.agentId, agentId);
    assert.ok(o.hostname.length > 0, "the offer names the agent's host");
    assert.deepEqual(o.attributes, ATTRIBUTES, "the agent's attributes travel with the offer");
    assert.ok(Math.abs(o.resources.cpus - AGENT.cpus) < EPS, `all cpus offered (${o.resources.cpus})`);
    assert.ok(Math.abs(o.resources.mem - AGENT.mem) < EPS, `all mem offered (${o.resources.mem})`);
    assert.deepEqual(o.resources.ports, [AGENT.ports], "the agent's port range is offered");
    assert.ok(o.offerId.length > 0);
  }));

test("a bad accept is refused naming the field (unknown offer, another framework's offer, more than offered) and launches nothing", () =>
  withLogs(async () => {
    const fa = probeA();
    const b = await newProbe("offers-b");
    try {
      await badAccepts(fa, b);
    } finally {
      // B leaves: with equal shares the allocator breaks ties by framework id, so a B that hoards
      // offers would keep A from ever being offered anything in the tests that follow.
      await b.stop();
    }
  }));

async function badAccepts(fa: Probe, b: Probe): Promise<void> {
  // One agent: the whole of it is offered to one framework at a time. Find who holds a fresh offer.
  const { holder, rec } = await waitFor(
    "a fresh outstanding offer to A or B",
    async () => {
      for (const p of [fa, b]) {
        const r = p.outstanding().find((x) => Date.now() - x.receivedAt < 1_000);
        if (r) return { holder: p, rec: r };
      }
      return undefined;
    },
    { timeoutMs: 15_000, intervalMs: 20 },
  );
  const other = holder === fa ? b : fa;
  const spec = task("must-not-run-1");

  const foreign = await refused("accepting another framework's offer", () =>
    other.fw.launch(rec.offer, [spec]),
  );
  assert.equal(foreign[0]?.path, "offerIds[0]", JSON.stringify(foreign));
  assert.match(foreign[0]?.message ?? "", /another framework/);

  const unknown = await refused("accepting an unknown offer id", () =>
    holder.fw.launch({ ...rec.offer, offerId: "o-no-such-offer" }, [spec]),
  );
  assert.equal(unknown[0]?.path, "offerIds[0]", JSON.stringify(unknown));
  assert.match(unknown[0]?.message ?? "", /o-no-such-offer/);
  assert.match(unknown[0]?.message ?? "", /unknown/);

  const cpus = await refused("launching more cpus than offered", () =>
    holder.fw.launch(rec.offer, [task("must-not-run-2", { cpus: rec.offer.resources.cpus + 1 })]),
  );
  const mem = await refused("launching more mem than offered", () =>
    holder.fw.launch(rec.offer, [task("must-not-run-3", { mem: rec.offer.resources.mem + 512 })]),
  );
  assert.ok(Date.now() - rec.receivedAt < OFFER_TIMEOUT_S * 1000, "all refused while the offer was valid");
  for (const [issues, field] of [
    [cpus, "cpus"],
    [mem, "mem"],
  ] as const) {
    const text = JSON.stringify(issues);
    assert.ok(
      issues.some((i) => i.path.startsWith("operations")),
      `the refusal points at the launch operation: ${text}`,
    );
    assert.ok(
      issues.some((i) => i.path.includes(field) || i.message.includes(field)),
      `the refusal names the resource that does not fit (${field}): ${text}`,
    );
  }

  // Nothing was launched: the master knows no task, and Docker runs no container of this cluster.
  assert.deepEqual(
    (await allTasks()).map((t) => t.info?.taskId),
    [],
    "the master recorded no task",
  );
  assert.deepEqual(
    (await taskContainers()).map((c) => c.Names),
    [],
    "no container was created",
  );
}

test("an unanswered offer is rescinded after the offer timeout and offered again after a 5 s filter", () =>
  withLogs(async () => {
    const fa = probeA();
    const rec = await fa.freshOffer();
    const rescinded = await waitFor(
      `the rescind of ${rec.offer.offerId}`,
      async () => (rec.end === "rescind" ? rec : undefined),
      { timeoutMs: OFFER_TIMEOUT_S * 1000 + 5_000, intervalMs: 20 },
    );
    const heldMs = (rescinded.endedAt ?? 0) - rec.receivedAt;
    // A timed-out offer counts as a decline with the default 5 s filter (no hoarding), then returns.
    const again = await fa.offerAfter(rescinded.endedAt ?? 0, 10_000);
    const gapMs = again.receivedAt - (rescinded.endedAt ?? 0);
    console.log(
      `offer held ${heldMs} ms before its rescind (timeout ${OFFER_TIMEOUT_S} s); re-offered ${gapMs} ms later`,
    );
    assert.ok(
      heldMs >= OFFER_TIMEOUT_S * 1000 - 500 && heldMs <= OFFER_TIMEOUT_S * 1000 + 2_500,
      `rescinded ${heldMs} ms after it was offered (timeout ${OFFER_TIMEOUT_S} s)`,
    );
    assert.notEqual(again.offer.offerId, rec.offer.offerId, "the new offer has a new id");
    assert.equal(again.offer.agentId, agentId);
    assert.ok(
      Math.abs(again.offer.resources.cpus - AGENT.cpus) < EPS,
      "the same resources are offered again",
    );
    assert.ok(gapMs >= 4_500 && gapMs < 7_500, `re-offered ${gapMs} ms after the rescind (5 s filter)`);
  }));

test("a decline with refuse 4 s keeps the agent from the framework for 4 s, then it is offered again", () =>
  withLogs(async () => {
    const fa = probeA();
    const disconnectsBefore = fa.disconnects.length;
    const rec = await fa.freshOffer();
    const t0 = Date.now();
    await fa.decline(rec, 4);
    // Observe the master's view meanwhile: the framework stays connected and unsuppressed, so the
    // silence is the filter's doing.
    const samples = await watchFrameworks(3_800, fa.id);
    const next = await fa.offerAfter(t0, 8_000);
    const gapMs = next.receivedAt - t0;
    console.log(
      `declined with refuse 4 s: next offer after ${gapMs} ms (${samples.length} master samples meanwhile)`,
    );
    assert.ok(samples.length >= 8, `the master was sampled ${samples.length} times`);
    assert.ok(
      samples.every((s) => s.connected && !s.suppressed),
      `connected and unsuppressed throughout: ${JSON.stringify(samples)}`,
    );
    assert.equal(fa.disconnects.length, disconnectsBefore, "the subscription never dropped");
    assert.ok(gapMs >= 3_950, `no offer for ${gapMs} ms after the decline (want >= 4000)`);
    assert.ok(gapMs <= 7_000, `offered again ${gapMs} ms after the decline (want soon after 4 s)`);
    assert.equal(next.offer.agentId, agentId);
  }));

test("revive clears a refusal filter: an offer arrives long before the refusal ends", () =>
  withLogs(async () => {
    const fa = probeA();
    const rec = await fa.freshOffer();
    const t0 = Date.now();
    await fa.decline(rec, 60);
    await delay(1_500);
    assert.equal(
      fa.offers.filter((r) => r.receivedAt > t0).length,
      0,
      "no offer during the refusal, before revive",
    );
    const t1 = Date.now();
    await fa.fw.revive();
    const next = await fa.offerAfter(t1, 10_000);
    const ms = next.receivedAt - t1;
    console.log(`revive → offer in ${ms} ms (the refusal had ${60_000 - (t1 - t0)} ms left)`);
    assert.ok(ms < 2_500, `offered ${ms} ms after revive`);
    assert.equal(next.offer.agentId, agentId);
  }));

test("suppress stops offers (outstanding ones are rescinded) until revive", () =>
  withLogs(async () => {
    const fa = probeA();
    const held = await fa.freshOffer();
    const t0 = Date.now();
    await fa.fw.suppress();
    await waitFor("the held offer to be rescinded on suppress", async () => held.end === "rescind", {
      timeoutMs: 1_000,
      intervalMs: 20,
    });
    const samples = await watchFrameworks(3_000, fa.id);
    const during = fa.offers.filter((r) => r.receivedAt > t0);
    assert.ok(samples.length >= 6, `the master was sampled ${samples.length} times`);
    assert.ok(
      samples.every((s) => s.connected && s.suppressed),
      `the master shows the framework connected and suppressed: ${JSON.stringify(samples)}`,
    );
    assert.deepEqual(
      during.map((r) => `${r.offer.offerId} at +${r.receivedAt - t0} ms`),
      [],
      "no offer while suppressed",
    );
    const t1 = Date.now();
    await fa.fw.revive();
    const next = await fa.offerAfter(t1, 10_000);
    console.log(`suppressed 3 s without offers; revive → offer in ${next.receivedAt - t1} ms`);
    assert.ok(next.receivedAt - t1 < 2_500, `offered ${next.receivedAt - t1} ms after revive`);
    const f = (await listFrameworks()).find((x) => x.frameworkId === fa.id);
    assert.equal(f?.suppressed, false, "no longer suppressed after revive");
  }));

test("no resource is in two outstanding offers at once (two frameworks holding offers on one agent)", () =>
  withLogs(async () => {
    const fa = probeA();
    await fa.fw.revive(); // in case the previous test failed while A was suppressed
    const c = await newProbe("offers-c");
    // Whoever holds the whole agent launches a short task; the rest goes to the other framework, and the
    // task's resources come back to the first one while the other still holds its offer.
    const { x, rec } = await waitFor(
      "a fresh offer of the whole agent to A or C",
      async () => {
        for (const p of [fa, c]) {
          const r = p
            .outstanding()
            .find(
              (o) => Date.now() - o.receivedAt < 1_000 && Math.abs(o.offer.resources.cpus - AGENT.cpus) < EPS,
            );
          if (r) return { x: p, rec: r };
        }
        return undefined;
      },
      { timeoutMs: 15_000, intervalMs: 20 },
    );
    const y = x === fa ? c : fa;
    const taskId = `short-${Date.now()}`;
    const tAccept = Date.now();
    const launched = await x.launch(rec, [task(taskId, { cpus: 0.5, mem: 128, cmd: "sleep 2" })]);
    assert.deepEqual(launched, [taskId]);
    const running = await x.update(taskId, "TASK_RUNNING");
    console.log(`SDK accept → TASK_RUNNING update: ${running.receivedAt - tAccept} ms`);

    const rest = await y.offerAfter(tAccept, 5_000);
    assert.ok(
      Math.abs(rest.offer.resources.cpus - 1.5) < EPS,
      `the rest of the cpus (${rest.offer.resources.cpus})`,
    );
    assert.ok(
      Math.abs(rest.offer.resources.mem - (AGENT.mem - 128)) < EPS,
      `the rest of the mem (${rest.offer.resources.mem})`,
    );

    const finished = await x.update(taskId, "TASK_FINISHED", 20_000);
    const back = await x.offerAfter(finished.receivedAt - 50, 5_000);
    // Both hold an offer, and have for a moment (no rescind in flight).
    const yHolds = await waitFor(
      "both frameworks holding an offer on the agent for 300 ms",
      async () => {
        const ys = y.outstanding().filter((o) => o.offer.agentId === agentId);
        const newest = Math.max(back.receivedAt, ...ys.map((o) => o.receivedAt));
        return back.endedAt === undefined && ys.length > 0 && Date.now() - newest >= 300 ? ys : undefined;
      },
      { timeoutMs: 3_000, intervalMs: 20 },
    );
    const snapshot = await listFrameworks();
    const both = [back, ...yHolds];
    const cpus = both.reduce((n, r) => n + r.offer.resources.cpus, 0);
    const mem = both.reduce((n, r) => n + r.offer.resources.mem, 0);
    const ports = both.flatMap((r) => portsOf(r.offer));
    console.log(
      `two outstanding offers on the agent: ${both.map((r) => `${r.framework} ${r.offer.resources.cpus} cpus / ${r.offer.resources.mem} MiB`).join(" + ")}`,
    );
    assert.ok(cpus <= AGENT.cpus + EPS, `offered cpus ${cpus} <= ${AGENT.cpus}`);
    assert.ok(mem <= AGENT.mem + EPS, `offered mem ${mem} <= ${AGENT.mem}`);
    assert.equal(new Set(ports).size, ports.length, `no port in two offers: ${ports.join(",")}`);
    const held = snapshot
      .filter((f) => f.connected)
      .reduce((n, f) => ({ cpus: n.cpus + (f.allocated?.cpus ?? 0), mem: n.mem + (f.allocated?.mem ?? 0) }), {
        cpus: 0,
        mem: 0,
      });
    assert.ok(
      held.cpus <= AGENT.cpus + EPS,
      `the master's ledger: ${held.cpus} cpus held in offers and tasks`,
    );
    assert.ok(held.mem <= AGENT.mem + EPS, `the master's ledger: ${held.mem} MiB held in offers and tasks`);

    // And over the whole run: at every offer's arrival, the offers outstanding at that moment (each
    // counted from its arrival to its end, shortened by 300 ms for events in flight) fit in the agent.
    const all = probes.flatMap((p) => p.offers).filter((r) => r.offer.agentId === agentId);
    const slack = 300;
    const violations: string[] = [];
    for (const r of all) {
      const t = r.receivedAt;
      const live = all.filter(
        (o) => o.receivedAt <= t && (o === r || (o.endedAt ?? Number.POSITIVE_INFINITY) - slack > t),
      );
      const sum = live.reduce(
        (n, o) => ({ cpus: n.cpus + o.offer.resources.cpus, mem: n.mem + o.offer.resources.mem }),
        { cpus: 0, mem: 0 },
      );
      const livePorts = live.flatMap((o) => portsOf(o.offer));
      if (
        sum.cpus > AGENT.cpus + EPS ||
        sum.mem > AGENT.mem + EPS ||
        new Set(livePorts).size !== livePorts.length
      )
        violations.push(
          `${new Date(t).toISOString()}: ${live.map((o) => `${o.framework}:${o.offer.offerId} ${o.offer.resources.cpus}/${o.offer.resources.mem}`).join(", ")}`,
        );
    }
    assert.ok(all.length >= 5, `offers observed over the run: ${all.length}`);
    assert.deepEqual(violations, [], `${violations.length} moment(s) with over-offered resources`);
  }));
