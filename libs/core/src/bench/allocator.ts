/**
 * Benchmark of the pure core at datacenter scale: `node libs/core/dist/bench/allocator.js`.
 * Builds 5,000 simulated agents and 100,000 pending instances (about 200 apps of 4 frameworks in
 * 2 roles) from a seeded PRNG, so runs are comparable, and prints figures; it asserts nothing.
 *   1. one `allocate` cycle over 5,000 agents (median of several, and with quota and limits);
 *   2. `placeInstances` of 100,000 instances on 5,000 offers (placements per second);
 *   3. the same with Marathon constraints on four apps in five (UNIQUE hostname, GROUP_BY, MAX_PER and
 *      LIKE on the rack attribute, a few CLUSTER);
 *   4. peak heap used.
 * Environment: BENCH_AGENTS, BENCH_INSTANCES, BENCH_APPS, BENCH_SEED, BENCH_ROUNDS.
 */
import { type AgentLedger, allocate, type FrameworkView, type RefuseFilter } from "../allocation.js";
import { type Constraint, parseConstraints } from "../constraints.js";
import { formatReasons, type InstanceDemand, type OfferView, placeInstances } from "../placement.js";
import { emptyResources, type Resources } from "../resources.js";

const AGENTS = Number(process.env.BENCH_AGENTS ?? 5000);
const INSTANCES = Number(process.env.BENCH_INSTANCES ?? 100_000);
const APPS = Number(process.env.BENCH_APPS ?? 200);
const SEED = Number(process.env.BENCH_SEED ?? 42);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const GIB = 1024;

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = prng(SEED);
const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;

let peakHeap = 0;
const sampleHeap = () => {
  peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

// ---------------------------------------------------------------- the cluster

const agents: AgentLedger[] = [];
for (let i = 0; i < AGENTS; i++) {
  const cpus = pick([16, 32, 48, 64]);
  const mem = pick([64, 128, 192, 256]) * GIB;
  const total: Resources = { cpus, mem, disk: 500 * GIB, ports: [{ begin: 31000, end: 32000 }] };
  // A quarter of each agent already runs tasks, some agents have an outstanding offer.
  const used: Resources = { cpus: cpus * rand() * 0.5, mem: mem * rand() * 0.5, disk: 0, ports: [] };
  const offered = rand() < 0.1 ? { cpus: 1, mem: GIB, disk: 0, ports: [] } : emptyResources();
  agents.push({
    agentId: `agent-${String(i).padStart(5, "0")}`,
    hostname: `host-${i}.dc`,
    total,
    used,
    offered,
    attributes: { rack: `r${i % 50}` },
    connected: rand() > 0.01,
  });
}

const frameworks: FrameworkView[] = [
  {
    frameworkId: "marathon",
    role: "services",
    weight: 2,
    connected: true,
    suppressed: false,
    allocated: emptyResources(),
  },
  {
    frameworkId: "aurora",
    role: "services",
    connected: true,
    suppressed: false,
    allocated: emptyResources(),
  },
  {
    frameworkId: "metronome",
    role: "batch",
    connected: true,
    suppressed: false,
    allocated: emptyResources(),
  },
  { frameworkId: "spark", role: "batch", connected: true, suppressed: false, allocated: emptyResources() },
];
const filters: RefuseFilter[] = [];
for (let i = 0; i < 2000; i++)
  filters.push({ frameworkId: pick(frameworks).frameworkId, agentId: pick(agents).agentId, untilMs: 2_000 });

// ---------------------------------------------------------------- 1. allocate

function timeAllocate(label: string, policy?: Parameters<typeof allocate>[4]): void {
  const times: number[] = [];
  let grants = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    grants = allocate(agents, frameworks, filters, 1_000, policy).length;
    times.push(performance.now() - t0);
    sampleHeap();
  }
  console.log(
    `allocate ${label}: ${AGENTS} agents, ${frameworks.length} frameworks, ${filters.length} filters → ${grants} grants; ` +
      `median ${median(times).toFixed(1)} ms (min ${Math.min(...times).toFixed(1)}, max ${Math.max(...times).toFixed(1)})`,
  );
}
timeAllocate("(weighted DRF)");
timeAllocate("(quota: guarantee + limit)", {
  roles: [
    { role: "services", weight: 3, guarantee: { cpus: 40_000, mem: 100_000 * GIB } },
    { role: "batch", weight: 1, limit: { cpus: 30_000, mem: 120_000 * GIB } },
  ],
});

// ---------------------------------------------------------------- 2. placeInstances

const offers: OfferView[] = agents
  .filter((a) => a.connected)
  .map((a, i) => ({
    offerId: `offer-${i}`,
    agentId: a.agentId,
    hostname: a.hostname,
    resources: { cpus: a.total.cpus, mem: a.total.mem, disk: a.total.disk, ports: a.total.ports },
    attributes: a.attributes,
  }));
const demands: InstanceDemand[] = [];
let left = INSTANCES;
for (let i = 0; i < APPS; i++) {
  const count = i === APPS - 1 ? left : Math.min(left, int(1, Math.floor((2 * INSTANCES) / APPS) - 1));
  left -= count;
  demands.push({
    appId: `app-${i}`,
    count,
    resources: {
      cpus: pick([0.1, 0.25, 0.5, 1, 2]),
      mem: pick([128, 256, 512, 1024, 2048]),
      disk: 0,
      ports: [],
    },
    ports: int(0, 2),
    ...(i % 20 === 0 ? { requestedPorts: [31000 + i] } : {}),
  });
}
const existing = new Map<string, Map<string, number>>();
for (let i = 0; i < 2000; i++) {
  const app = `app-${int(0, APPS - 1)}`;
  const m = existing.get(app) ?? new Map<string, number>();
  const a = pick(agents).agentId;
  m.set(a, (m.get(a) ?? 0) + 1);
  existing.set(app, m);
}

const placeTimes: number[] = [];
let placed = 0;
let unplaced = 0;
for (let r = 0; r < Math.max(1, Math.min(3, ROUNDS)); r++) {
  const t0 = performance.now();
  const result = placeInstances(offers, demands, existing);
  placeTimes.push(performance.now() - t0);
  sampleHeap();
  placed = result.placements.length;
  unplaced = result.unplaced.reduce((n, u) => n + u.count, 0);
}
const t = median(placeTimes);
console.log(
  `placeInstances: ${INSTANCES} instances of ${APPS} apps on ${offers.length} offers → ${placed} placed, ${unplaced} unplaced; ` +
    `median ${t.toFixed(0)} ms, ${Math.round((placed / t) * 1000).toLocaleString("en-US")} placements/s`,
);

// ---------------------------------------------------------------- 3. placeInstances with constraints

/** Four apps in five get a constraint; the values keep every app placeable on this cluster. */
function constraintsFor(i: number, count: number): Constraint[] {
  const racks = Math.min(50, AGENTS);
  const text =
    i % 40 === 7
      ? ["rack:CLUSTER"]
      : [
          ["hostname:UNIQUE"],
          [`rack:GROUP_BY:${Math.min(10, racks)}`],
          [`rack:MAX_PER:${Math.ceil((2 * count) / racks) + 1}`],
          ["rack:LIKE:r[0-2]?[0-9]", "hostname:UNLIKE:host-1.*"],
          [],
        ][i % 5];
  const parsed = parseConstraints(text ?? []);
  if (!parsed.ok) throw new Error(`bench constraint: ${JSON.stringify(parsed.issues)}`);
  return parsed.value;
}
const constrainedDemands = demands.map((d, i) => ({ ...d, constraints: constraintsFor(i, d.count) }));
const agentFacts = new Map(agents.map((a) => [a.agentId, a]));
const constrainedTimes: number[] = [];
let constrainedPlaced = 0;
let constrainedUnplaced = 0;
let firstReason = "";
for (let r = 0; r < Math.max(1, Math.min(3, ROUNDS)); r++) {
  const t0 = performance.now();
  const result = placeInstances(offers, constrainedDemands, existing, { agents: agentFacts });
  constrainedTimes.push(performance.now() - t0);
  sampleHeap();
  constrainedPlaced = result.placements.length;
  constrainedUnplaced = result.unplaced.reduce((n, u) => n + u.count, 0);
  const u = result.unplaced[0];
  firstReason = u === undefined ? "" : ` (${u.appId}: ${formatReasons(u.reasons)})`;
}
const tc = median(constrainedTimes);
const withConstraints = constrainedDemands.filter((d) => d.constraints.length > 0).length;
console.log(
  `placeInstances with constraints (${withConstraints} of ${APPS} apps): ${constrainedPlaced} placed, ${constrainedUnplaced} unplaced${firstReason}; ` +
    `median ${tc.toFixed(0)} ms, ${Math.round((constrainedPlaced / tc) * 1000).toLocaleString("en-US")} placements/s`,
);

sampleHeap();
console.log(
  `peak heap used (sampled after each run): ${(peakHeap / 1024 / 1024).toFixed(0)} MiB; ` +
    `max RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`,
);
