import {
  type AgentFacts,
  type CompiledConstraint,
  type Constraint,
  compileConstraint,
  fieldValue,
  meetsConstraint,
  ValueCounts,
} from "./constraints.js";
import { isValidPort, PortSet, portsToRanges, rangesToPorts } from "./ports.js";
import { RESOURCE_EPSILON, type Resources } from "./resources.js";

/** An offer as the scheduler sees it. Immutable view. */
export interface OfferView {
  offerId: string;
  agentId: string;
  hostname: string;
  resources: Resources;
  attributes: Record<string, string>;
  /** The agent's fault domain (`@region`, `@zone` in constraints), when it reports one. */
  region?: string | undefined;
  zone?: string | undefined;
}

/**
 * `count` more instances of an app, each needing `resources`, plus host ports: `ports` of them
 * (any free ones; default 0) and the specific `requestedPorts` (default none). Ports listed in
 * `resources.ports` are requested ports too. Every instance must satisfy every one of `constraints`
 * (Marathon's, from `parseConstraints`; default none), judged against the app's instances: those
 * in `existingPerAgent` and those placed earlier in the same pass (by any demand of the app).
 */
export interface InstanceDemand {
  appId: string;
  count: number;
  resources: Resources;
  ports?: number;
  requestedPorts?: number[];
  constraints?: readonly Constraint[];
}

/**
 * One instance of `appId` to launch from `offerId`. `ports` are the host ports assigned to it:
 * the requested ones first (in the order asked), then the lowest free ones; `resources.ports` holds
 * the same ports as ranges.
 */
export interface Placement {
  offerId: string;
  agentId: string;
  appId: string;
  resources: Resources;
  ports: number[];
}

/**
 * Why instances stay unplaced, counted over the agents that made offers, after the pass: the
 * `constraint` (as `rack:GROUP_BY:3`) rejects `agents` agents; of the agents every constraint
 * accepts, per agent its closest offer: `agents` agents offered too little of `resource` (for
 * `ports`: too few free host ports), a requested host `port` is not free on `agents` agents (in
 * use, or outside the offered ranges); or there were no offers at all. An agent counts once per
 * constraint that rejects it, and is judged on resources only when no constraint does. This is
 * what the cluster tells a user whose app is waiting ("port 80 taken on 3 agents"; `formatReasons`).
 */
export type UnplacedReason =
  | { kind: "constraint"; constraint: string; agents: number }
  | { kind: "insufficient"; resource: "cpus" | "mem" | "disk" | "ports"; agents: number }
  | { kind: "port_taken"; port: number; agents: number }
  | { kind: "no_offers" };

/** Why one agent cannot take an instance: one verdict per predicate that rejects it. */
export type Verdict =
  | { kind: "constraint"; constraint: string }
  | { kind: "insufficient"; resource: "cpus" | "mem" | "disk" | "ports" }
  | { kind: "port_taken"; port: number };

/** The verdicts on one agent; none when it could take an instance. */
export interface AgentVerdicts {
  agentId: string;
  verdicts: Verdict[];
}

export interface PlacementOptions {
  /**
   * What constraints read about agents that run instances of a constrained app but offer nothing
   * now (hostname, attributes), by agent id. An agent's offer takes precedence. An instance on an
   * agent found in neither is counted as on an agent that lacks every field.
   */
  agents?: ReadonlyMap<string, AgentFacts>;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** One reason as a user reads it: `constraint rack:GROUP_BY:3 excluded 2 agents`, `insufficient mem on 1 agent`. */
export function formatReason(r: UnplacedReason): string {
  switch (r.kind) {
    case "constraint":
      return `constraint ${r.constraint} excluded ${plural(r.agents, "agent")}`;
    case "insufficient":
      return `insufficient ${r.resource} on ${plural(r.agents, "agent")}`;
    case "port_taken":
      return `port ${r.port} taken on ${plural(r.agents, "agent")}`;
    case "no_offers":
      return "no offers received yet";
  }
}

/** `constraint rack:GROUP_BY:3 excluded 2 agents; insufficient mem on 1 agent`. */
export function formatReasons(reasons: readonly UnplacedReason[]): string {
  return reasons.map(formatReason).join("; ");
}

/**
 * Each agent that made an offer and could not take an instance, counted once at the first reason
 * in Marathon's order (its offer funnel): a constraint, then cpus, mem, disk, ports (a requested
 * port taken counts as ports). Sums to the agents rejected, unlike the reasons (an agent short of
 * cpus and mem is in two of them).
 */
export interface DeclinedFunnel {
  constraint: number;
  cpus: number;
  mem: number;
  disk: number;
  ports: number;
}

export interface PlacementResult {
  placements: Placement[];
  unplaced: { appId: string; count: number; reasons: UnplacedReason[]; declined: DeclinedFunnel }[];
  /** Offers from which nothing was placed, in input order: decline them. */
  unusedOfferIds: string[];
}

/** What one instance needs, normalised. */
interface Need {
  cpus: number;
  mem: number;
  disk: number;
  /** How many "any" ports. */
  anyPorts: number;
  /** Specific ports, de-duplicated, in the order asked. */
  requested: number[];
}

function needOf(d: InstanceDemand): Need {
  const any = d.ports ?? 0;
  return {
    cpus: d.resources.cpus,
    mem: d.resources.mem,
    disk: d.resources.disk,
    anyPorts: Number.isFinite(any) ? Math.max(0, Math.floor(any)) : 0,
    requested: [...new Set([...(d.requestedPorts ?? []), ...rangesToPorts(d.resources.ports)])],
  };
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Clamp float noise and negatives to 0, as resource subtraction does. */
function nonNegative(x: number): number {
  return x < RESOURCE_EPSILON ? 0 : x;
}

type Shortfall = "cpus" | "mem" | "disk" | "ports";

// ------------------------------------------------------------------------------------ the offers

/** The offers' remaining resources during one pass, indexed in (agentId, offerId, input) order. */
class OfferBook {
  readonly n: number;
  readonly cpus: Float64Array;
  readonly mem: Float64Array;
  readonly disk: Float64Array;
  readonly ports: PortSet[];
  /** The agent of each offer, as an index into `agentIds`. */
  readonly agentOf: Int32Array;
  readonly agentIds: string[] = [];
  readonly agentIndex = new Map<string, number>();
  readonly offersOfAgent: number[][] = [];
  readonly used: Uint8Array;
  /** For every port some demand requests: on how many offers it is still free. */
  readonly portFree = new Map<number, number>();

  constructor(readonly offers: readonly OfferView[]) {
    this.n = offers.length;
    this.cpus = new Float64Array(this.n);
    this.mem = new Float64Array(this.n);
    this.disk = new Float64Array(this.n);
    this.agentOf = new Int32Array(this.n);
    this.used = new Uint8Array(this.n);
    this.ports = offers.map((o, i) => {
      this.cpus[i] = o.resources.cpus;
      this.mem[i] = o.resources.mem;
      this.disk[i] = o.resources.disk;
      let a = this.agentIndex.get(o.agentId);
      if (a === undefined) {
        a = this.agentIds.length;
        this.agentIds.push(o.agentId);
        this.agentIndex.set(o.agentId, a);
        this.offersOfAgent.push([]);
      }
      this.agentOf[i] = a;
      this.offersOfAgent[a]?.push(i);
      return new PortSet(o.resources.ports);
    });
  }

  /** Starts counting, per port, the offers on which it is free. */
  countPorts(ports: ReadonlySet<number>): void {
    const sorted = [...ports].filter(isValidPort).sort((a, b) => a - b);
    for (const p of ports) this.portFree.set(p, 0);
    for (const set of this.ports) {
      for (const r of set.view()) {
        let lo = 0;
        let hi = sorted.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if ((sorted[mid] ?? 0) < r.begin) lo = mid + 1;
          else hi = mid;
        }
        for (let j = lo; j < sorted.length && (sorted[j] ?? 0) <= r.end; j++) {
          const p = sorted[j] ?? 0;
          this.portFree.set(p, (this.portFree.get(p) ?? 0) + 1);
        }
      }
    }
  }

  /** False when a requested port is free on no offer at all. */
  portsAvailable(need: Need): boolean {
    for (const p of need.requested) if (!((this.portFree.get(p) ?? 0) > 0)) return false;
    return true;
  }

  fits(i: number, need: Need): boolean {
    if (need.cpus > (this.cpus[i] ?? 0) + RESOURCE_EPSILON) return false;
    if (need.mem > (this.mem[i] ?? 0) + RESOURCE_EPSILON) return false;
    if (need.disk > (this.disk[i] ?? 0) + RESOURCE_EPSILON) return false;
    const set = this.ports[i];
    if (set === undefined || set.size < need.anyPorts + need.requested.length) return false;
    for (const p of need.requested) if (!set.has(p)) return false;
    return true;
  }

  /** What `need` lacks in offer `i`: scalar dimensions, too few other free ports, requested ports not free. */
  missing(i: number, need: Need): { short: Shortfall[]; taken: number[] } {
    const short: Shortfall[] = [];
    if (need.cpus > (this.cpus[i] ?? 0) + RESOURCE_EPSILON) short.push("cpus");
    if (need.mem > (this.mem[i] ?? 0) + RESOURCE_EPSILON) short.push("mem");
    if (need.disk > (this.disk[i] ?? 0) + RESOURCE_EPSILON) short.push("disk");
    const set = this.ports[i];
    const taken = need.requested.filter((p) => set === undefined || !set.has(p));
    if ((set?.size ?? 0) - (need.requested.length - taken.length) < need.anyPorts) short.push("ports");
    return { short, taken };
  }

  /** How many items `missing` would list, without building them. */
  missingCount(i: number, need: Need): number {
    let n = 0;
    if (need.cpus > (this.cpus[i] ?? 0) + RESOURCE_EPSILON) n++;
    if (need.mem > (this.mem[i] ?? 0) + RESOURCE_EPSILON) n++;
    if (need.disk > (this.disk[i] ?? 0) + RESOURCE_EPSILON) n++;
    const set = this.ports[i];
    let free = 0;
    for (const p of need.requested) if (set?.has(p)) free++;
    n += need.requested.length - free;
    if ((set?.size ?? 0) - free < need.anyPorts) n++;
    return n;
  }

  /** Takes one instance's resources from offer `i`; returns its ports, requested ones first. */
  take(i: number, need: Need): number[] {
    this.cpus[i] = nonNegative((this.cpus[i] ?? 0) - need.cpus);
    this.mem[i] = nonNegative((this.mem[i] ?? 0) - need.mem);
    this.disk[i] = nonNegative((this.disk[i] ?? 0) - need.disk);
    this.used[i] = 1;
    const set = this.ports[i];
    if (set === undefined || (need.requested.length === 0 && need.anyPorts === 0)) return [];
    for (const p of need.requested) set.take(p);
    const ports = need.requested.concat(set.takeLowest(need.anyPorts));
    for (const p of ports) {
      const free = this.portFree.get(p);
      if (free !== undefined) this.portFree.set(p, free - 1);
    }
    return ports;
  }
}

// ----------------------------------------------------------------- the shared index: max-trees

/**
 * A max-tree over the offers (leaf i = offer i) of remaining cpus, mem, disk and free port count,
 * holding only the offers with at least `threshold` cpus left (the others are -Infinity). Searching
 * a tree whose threshold is close to a demand's cpus keeps cpu-starved but mem-rich offers from being
 * walked over again and again.
 */
class OfferTree {
  readonly maxCpus: Float64Array;
  readonly maxMem: Float64Array;
  readonly maxDisk: Float64Array;
  readonly maxPorts: Float64Array;

  constructor(
    readonly size: number,
    readonly threshold: number,
  ) {
    const make = () => new Float64Array(2 * size).fill(Number.NEGATIVE_INFINITY);
    this.maxCpus = make();
    this.maxMem = make();
    this.maxDisk = make();
    this.maxPorts = make();
  }

  setLeaf(book: OfferBook, i: number): void {
    const k = this.size + i;
    const cpus = book.cpus[i] ?? 0;
    const alive = cpus + RESOURCE_EPSILON >= this.threshold;
    this.maxCpus[k] = alive ? cpus : Number.NEGATIVE_INFINITY;
    this.maxMem[k] = alive ? (book.mem[i] ?? 0) : Number.NEGATIVE_INFINITY;
    this.maxDisk[k] = alive ? (book.disk[i] ?? 0) : Number.NEGATIVE_INFINITY;
    this.maxPorts[k] = alive ? (book.ports[i]?.size ?? 0) : Number.NEGATIVE_INFINITY;
  }

  /** Recomputes node k from its children; false when nothing changed. */
  pull(k: number): boolean {
    const l = 2 * k;
    const r = l + 1;
    const cpus = Math.max(this.maxCpus[l] ?? 0, this.maxCpus[r] ?? 0);
    const mem = Math.max(this.maxMem[l] ?? 0, this.maxMem[r] ?? 0);
    const disk = Math.max(this.maxDisk[l] ?? 0, this.maxDisk[r] ?? 0);
    const ports = Math.max(this.maxPorts[l] ?? 0, this.maxPorts[r] ?? 0);
    if (
      cpus === this.maxCpus[k] &&
      mem === this.maxMem[k] &&
      disk === this.maxDisk[k] &&
      ports === this.maxPorts[k]
    )
      return false;
    this.maxCpus[k] = cpus;
    this.maxMem[k] = mem;
    this.maxDisk[k] = disk;
    this.maxPorts[k] = ports;
    return true;
  }
}

/** How many cpus thresholds (trees) at most; a demand uses the highest threshold not above its cpus. */
const MAX_TREES = 12;
/** How many requested ports get a count tree (for pruning) at most. */
const MAX_TRACKED_PORTS = 64;
/** `best` gave up: it rejected more leaves than its budget. */
const OVER_BUDGET = -2;

/**
 * Finds the offer with the most remaining mem (tie: lowest index) that satisfies a predicate,
 * pruning subtrees that cannot fit; an update costs O(trees · log offers). Besides the cpus trees,
 * for a few ports that demands ask for, a count tree of the offers that still have the port free.
 */
class OfferIndex {
  private readonly size: number;
  private readonly trees: OfferTree[];
  private readonly portTrees = new Map<number, Int32Array>();
  private bestIdx = -1;
  private bestMem = Number.NEGATIVE_INFINITY;
  private rejected = 0;
  private budget = 0;

  constructor(
    private readonly book: OfferBook,
    cpuNeeds: readonly number[],
    trackedPorts: readonly number[],
  ) {
    let size = 1;
    while (size < book.n) size *= 2;
    this.size = size;
    const distinct = [...new Set(cpuNeeds.map((c) => (Number.isFinite(c) ? Math.max(0, c) : 0)))].sort(
      (a, b) => a - b,
    );
    const thresholds =
      distinct.length <= MAX_TREES
        ? distinct
        : Array.from(
            { length: MAX_TREES },
            (_, j) => distinct[Math.floor((j * distinct.length) / MAX_TREES)] ?? 0,
          );
    this.trees = (thresholds.length > 0 ? thresholds : [0]).map((t) => {
      const tree = new OfferTree(size, t);
      for (let i = 0; i < book.n; i++) tree.setLeaf(book, i);
      for (let k = size - 1; k >= 1; k--) tree.pull(k);
      return tree;
    });
    for (const p of trackedPorts.slice(0, MAX_TRACKED_PORTS)) {
      const counts = new Int32Array(2 * size);
      for (let i = 0; i < book.n; i++) counts[size + i] = book.ports[i]?.has(p) ? 1 : 0;
      for (let k = size - 1; k >= 1; k--) counts[k] = (counts[2 * k] ?? 0) + (counts[2 * k + 1] ?? 0);
      this.portTrees.set(p, counts);
    }
  }

  /** Offer `i` shrank: refresh its leaves and their ancestors (up to where nothing changes). */
  update(i: number): void {
    for (const tree of this.trees) {
      tree.setLeaf(this.book, i);
      for (let k = (this.size + i) >> 1; k >= 1 && tree.pull(k); k >>= 1);
    }
    for (const [p, counts] of this.portTrees) {
      let k = this.size + i;
      const delta = (this.book.ports[i]?.has(p) ? 1 : 0) - (counts[k] ?? 0);
      if (delta !== 0) for (; k >= 1; k >>= 1) counts[k] = (counts[k] ?? 0) + delta;
    }
  }

  /**
   * The offer with the most remaining mem (tie: lowest index) that fits `need` by the trees' bounds
   * and that `accept`s; -1 when there is none; OVER_BUDGET after `budget` rejected leaves.
   */
  best(need: Need, accept: (i: number) => boolean, budget: number): number {
    this.bestIdx = -1;
    this.bestMem = Number.NEGATIVE_INFINITY;
    this.rejected = 0;
    this.budget = budget;
    let tree = this.trees[0];
    for (const t of this.trees) if (t.threshold <= need.cpus + RESOURCE_EPSILON) tree = t;
    const counts: Int32Array[] = [];
    for (const p of need.requested) {
      const c = this.portTrees.get(p);
      if (c !== undefined) counts.push(c);
    }
    if (tree !== undefined)
      this.search(tree, 1, 0, this.size, need, need.anyPorts + need.requested.length, counts, accept);
    return this.rejected > this.budget ? OVER_BUDGET : this.bestIdx;
  }

  private search(
    tree: OfferTree,
    k: number,
    lo: number,
    width: number,
    need: Need,
    ports: number,
    counts: readonly Int32Array[],
    accept: (i: number) => boolean,
  ): void {
    const mem = tree.maxMem[k] ?? Number.NEGATIVE_INFINITY;
    if (mem < this.bestMem || (mem === this.bestMem && lo > this.bestIdx) || this.rejected > this.budget)
      return;
    if (
      mem === Number.NEGATIVE_INFINITY ||
      mem + RESOURCE_EPSILON < need.mem ||
      (tree.maxCpus[k] ?? 0) + RESOURCE_EPSILON < need.cpus ||
      (tree.maxDisk[k] ?? 0) + RESOURCE_EPSILON < need.disk ||
      (tree.maxPorts[k] ?? 0) < ports
    )
      return;
    for (const c of counts) if (c[k] === 0) return;
    if (width === 1) {
      if (lo >= this.book.n) return;
      if (accept(lo)) {
        this.bestIdx = lo;
        this.bestMem = mem;
      } else this.rejected++;
      return;
    }
    const l = 2 * k;
    const half = width >> 1;
    if ((tree.maxMem[l + 1] ?? 0) > (tree.maxMem[l] ?? 0)) {
      this.search(tree, l + 1, lo + half, half, need, ports, counts, accept);
      this.search(tree, l, lo, half, need, ports, counts, accept);
    } else {
      this.search(tree, l, lo, half, need, ports, counts, accept);
      this.search(tree, l + 1, lo + half, half, need, ports, counts, accept);
    }
  }
}

// --------------------------------------------------------- one demand's own index: lazy heaps

/**
 * A max-heap of offers by (remaining mem desc, index asc). Keys only go stale downwards (offers only
 * shrink), so a stale top is re-pushed with its current mem and a fresh top is the true maximum.
 */
class OfferHeap {
  private readonly idx: number[];
  private readonly key: number[];

  constructor(
    private readonly book: OfferBook,
    offers: readonly number[],
  ) {
    this.idx = [...offers];
    this.key = this.idx.map((i) => book.mem[i] ?? 0);
    for (let j = (this.idx.length >> 1) - 1; j >= 0; j--) this.down(j);
  }

  private before(a: number, b: number): boolean {
    const ka = this.key[a] ?? 0;
    const kb = this.key[b] ?? 0;
    return ka > kb || (ka === kb && (this.idx[a] ?? 0) < (this.idx[b] ?? 0));
  }

  private swap(a: number, b: number): void {
    const i = this.idx[a] ?? 0;
    const k = this.key[a] ?? 0;
    this.idx[a] = this.idx[b] ?? 0;
    this.key[a] = this.key[b] ?? 0;
    this.idx[b] = i;
    this.key[b] = k;
  }

  private down(j: number): void {
    for (;;) {
      const l = 2 * j + 1;
      let m = j;
      if (l < this.idx.length && this.before(l, m)) m = l;
      if (l + 1 < this.idx.length && this.before(l + 1, m)) m = l + 1;
      if (m === j) return;
      this.swap(j, m);
      j = m;
    }
  }

  push(i: number): void {
    this.idx.push(i);
    this.key.push(this.book.mem[i] ?? 0);
    for (let j = this.idx.length - 1; j > 0; ) {
      const parent = (j - 1) >> 1;
      if (!this.before(j, parent)) break;
      this.swap(j, parent);
      j = parent;
    }
  }

  pop(): void {
    const last = this.idx.length - 1;
    this.swap(0, last);
    this.idx.pop();
    this.key.pop();
    this.down(0);
  }

  /** The top offer with its key refreshed, or -1 when empty. */
  top(): number {
    while (this.idx.length > 0) {
      const i = this.idx[0] ?? 0;
      if (this.key[0] === this.book.mem[i]) return i;
      this.pop();
      this.push(i);
    }
    return -1;
  }
}

// ------------------------------------------------------------------------------------- spread

/**
 * How a demand ranks agents: by level, lowest first (then most remaining mem, then lowest index).
 * Levels only grow during a pass.
 */
interface Spread {
  get(agent: number): number;
  /** The smallest level >= `from` that some agent has, or -1. */
  nextLevel(from: number): number;
  /**
   * Demands ranking by this spread that keep their own heaps, told when agents move up; none for
   * a spread whose agents move up in groups: its demands build a level's heap when they reach it.
   */
  readonly heapDemands: Pending[] | undefined;
}

/** Instances of one app per agent (existing plus placed in this pass), and how many agents have each count. */
class AppSpread implements Spread {
  readonly counts = new Map<number, number>();
  /** count → agents with that many instances, for counts > 0. */
  readonly levels = new Map<number, number>();
  /** Demands of this app that keep their own heaps, told when an agent moves up. */
  readonly heapDemands: Pending[] = [];

  constructor(private readonly agents: number) {}

  get(agent: number): number {
    return this.counts.get(agent) ?? 0;
  }

  set(agent: number, count: number): void {
    const before = this.get(agent);
    if (before > 0) this.levels.set(before, (this.levels.get(before) ?? 0) - 1);
    if (count > 0) {
      this.counts.set(agent, count);
      this.levels.set(count, (this.levels.get(count) ?? 0) + 1);
    } else this.counts.delete(agent);
  }

  /** The smallest count >= `from` that some agent has, or -1. */
  nextLevel(from: number): number {
    if (from <= 0 && this.counts.size < this.agents) return 0;
    let best = -1;
    for (const [level, agents] of this.levels)
      if (agents > 0 && level >= from && (best < 0 || level < best)) best = level;
    return best;
  }
}

interface Pending {
  demand: InstanceDemand;
  need: Need;
  /** The app's instances per agent. */
  spread: AppSpread;
  /** How this demand ranks agents: `spread`, or for one GROUP_BY constraint its `GroupSpread`. */
  rank: Spread;
  left: number;
  /** No agent below this level has an offer this demand can take, nor ever will (monotone in a pass). */
  level: number;
  /** Per level, this demand's own heap of the offers of the agents at that level; once it has them. */
  heaps: Map<number, OfferHeap> | undefined;
  /** Whether the demand is in `rank.heapDemands`. */
  listed: boolean;
  /** The demand's constraints; undefined when it has none. */
  constraints: CompiledConstraint[] | undefined;
  /** Judges agents by `constraints`; undefined when there are none. */
  judge: Judge | undefined;
  /** Two GROUP_BY constraints or more: levels cannot rank them, every pick scans the offers. */
  scan: boolean;
  /** The app's instances by constraint field, when some demand of the app has constraints. */
  app: AppConstraints | undefined;
  /** `app.version` when this demand last picked or placed: another demand's placement since resets `level`. */
  seen: number;
  /** A constrained demand found nothing at this `app.version`: it tries again once that changes. */
  stuckAt: number;
}

/**
 * Picks the offer for one more instance of `p`: the lowest level (instances of the app on the agent;
 * with a GROUP_BY, first in the agent's group) with an offer that fits and whose agent the demand's
 * constraints accept, and there the offer with the most remaining mem, then lowest index. Uses the
 * shared index while that is cheap; a demand whose searches skip many offers (its app already runs
 * on the offers' agents, they do not fit it, or its constraints reject them) gets heaps of its own.
 *
 * Skipping a level for good is sound with constraints too: UNIQUE, MAX_PER and CLUSTER only reject
 * more agents as instances are added; GROUP_BY rejects an agent only while a group with fewer
 * instances exists (or too few groups), and those groups' agents rank at lower levels, which the
 * demand has found it can take nothing from. Another demand of the app can change that: then the
 * demand starts again from level 0.
 */
class Picker {
  constructor(
    private readonly book: OfferBook,
    private readonly index: OfferIndex,
  ) {}

  pick(p: Pending): number {
    if (!this.book.portsAvailable(p.need)) return -1;
    for (;;) {
      const level = p.rank.nextLevel(p.level);
      if (level < 0) return -1;
      p.level = level;
      const found = p.heaps === undefined ? this.fromIndex(p, level) : this.fromHeap(p, p.heaps, level);
      if (found === OVER_BUDGET) {
        const told = p.rank.heapDemands;
        p.heaps = told === undefined ? new Map() : this.buildHeaps(p);
        if (!p.listed) told?.push(p);
        p.listed = true;
        continue;
      }
      if (found >= 0) return found;
      // No agent at this level fits; agents only move up and offers only shrink, so none ever will.
      p.level = level + 1;
    }
  }

  private fromIndex(p: Pending, level: number): number {
    const { book, need, rank, judge } = { book: this.book, need: p.need, rank: p.rank, judge: p.judge };
    // Own heaps cost O(offers) to build; worth it once a search skips more than that per instance left.
    const budget = Math.max(128, Math.ceil(book.n / Math.max(1, p.left)));
    return this.index.best(
      need,
      judge === undefined
        ? (i) => rank.get(book.agentOf[i] ?? 0) === level && book.fits(i, need)
        : (i) => {
            const agent = book.agentOf[i] ?? 0;
            return rank.get(agent) === level && book.fits(i, need) && judge.accepts(agent);
          },
      p.left > 1 ? budget : Number.POSITIVE_INFINITY,
    );
  }

  private fromHeap(p: Pending, heaps: Map<number, OfferHeap>, level: number): number {
    let heap = heaps.get(level);
    if (heap === undefined) {
      if (p.rank.heapDemands !== undefined) return -1;
      // Reached for the first time (levels are reached once, in order): nothing below can move in.
      heap = this.levelHeap(p, level);
      heaps.set(level, heap);
    }
    for (;;) {
      const i = heap.top();
      if (i < 0) break;
      const agent = this.book.agentOf[i] ?? 0;
      if (p.rank.get(agent) === level && this.book.fits(i, p.need) && (p.judge?.accepts(agent) ?? true))
        return i;
      heap.pop(); // moved up a level, or will never fit this demand (nor its constraints accept it) again
    }
    heaps.delete(level);
    return -1;
  }

  private buildHeaps(p: Pending): Map<number, OfferHeap> {
    const byLevel = new Map<number, number[]>();
    for (let i = 0; i < this.book.n; i++) {
      const agent = this.book.agentOf[i] ?? 0;
      const level = p.rank.get(agent);
      if (level < p.level || !this.book.fits(i, p.need) || p.judge?.excluded(agent)) continue;
      const list = byLevel.get(level);
      if (list === undefined) byLevel.set(level, [i]);
      else list.push(i);
    }
    return new Map([...byLevel].map(([level, offers]) => [level, new OfferHeap(this.book, offers)]));
  }

  /** The heap of the offers at one level that may serve `p`. */
  private levelHeap(p: Pending, level: number): OfferHeap {
    const offers: number[] = [];
    for (let i = 0; i < this.book.n; i++) {
      const agent = this.book.agentOf[i] ?? 0;
      if (p.rank.get(agent) === level && this.book.fits(i, p.need) && !p.judge?.excluded(agent))
        offers.push(i);
    }
    return new OfferHeap(this.book, offers);
  }

  /** An instance of the app was placed on `agent`: it moves up a level. */
  placed(spread: AppSpread, agent: number): void {
    const level = spread.get(agent) + 1;
    spread.set(agent, level);
    this.moved(spread, agent, level);
  }

  /** `agent` moved up to `level`: the heaps of the demands ranking by `spread` take its offers there. */
  private moved(spread: AppSpread, agent: number, level: number): void {
    for (const d of spread.heapDemands) {
      if (d.left === 0 || d.heaps === undefined) continue;
      let heap = d.heaps.get(level);
      if (heap === undefined) {
        heap = new OfferHeap(this.book, []);
        d.heaps.set(level, heap);
      }
      for (const i of this.book.offersOfAgent[agent] ?? []) heap.push(i);
    }
  }
}

// -------------------------------------------------------------------------------- constraints

/**
 * An app's instances counted by every field its demands' constraints read, and the group spreads
 * of its GROUP_BY demands (by field); `version` counts its placements in the pass.
 */
interface AppConstraints {
  fields: Map<string, ValueCounts>;
  groups: Map<string, GroupSpread>;
  version: number;
}

/**
 * What constraints read about agents during one pass: per field, the value on each offering agent
 * (from its first offer in index order), and for the instances of constrained apps their counts.
 */
class ConstraintContext {
  private readonly values = new Map<string, (string | undefined)[]>();

  constructor(
    private readonly book: OfferBook,
    private readonly agents: ReadonlyMap<string, AgentFacts> | undefined,
  ) {}

  /** The value of field `key` on each agent of the book (by agent index). */
  valuesOf(key: string): (string | undefined)[] {
    let v = this.values.get(key);
    if (v === undefined) {
      v = this.book.offersOfAgent.map((offers) => fieldValue(this.book.offers[offers[0] ?? -1], key));
      this.values.set(key, v);
    }
    return v;
  }

  /** The value of field `key` on any agent: its offer's, else what `agents` says, else none. */
  valueOfAgent(agentId: string, key: string): string | undefined {
    const a = this.book.agentIndex.get(agentId);
    return a !== undefined ? this.valuesOf(key)[a] : fieldValue(this.agents?.get(agentId), key);
  }

  appState(keys: ReadonlySet<string>, existing: ReadonlyMap<string, number> | undefined): AppConstraints {
    const fields = new Map<string, ValueCounts>();
    for (const key of keys) {
      const rows: [string | undefined, number][] = [];
      for (const [agentId, count] of existing ?? [])
        if (count >= 1) rows.push([this.valueOfAgent(agentId, key), Math.floor(count)]);
      fields.set(key, ValueCounts.of(rows));
    }
    return { fields, groups: new Map(), version: 0 };
  }

  /** An instance of the app was placed on `agent`. */
  placed(app: AppConstraints, agent: number): void {
    for (const [key, counts] of app.fields) counts.add(this.valuesOf(key)[agent]);
    app.version += 1;
  }

  /** The constraints that reject `agent` now, in the demand's order. */
  rejecting(
    constraints: readonly CompiledConstraint[],
    app: AppConstraints,
    agent: number,
  ): CompiledConstraint[] {
    return constraints.filter((c) => !meetsConstraint(c, this.valuesOf(c.key)[agent], app.fields.get(c.key)));
  }
}

/**
 * The feasibility predicates of one demand's constraints over the offering agents. The static
 * ones (LIKE, UNLIKE, IS, CLUSTER with a value), and having every field a dynamic one reads, are
 * judged once; the dynamic ones (UNIQUE, MAX_PER, CLUSTER without a value, GROUP_BY) against the
 * app's instances so far.
 */
class Judge {
  private readonly passes: Uint8Array;
  private readonly dynamic: CompiledConstraint[];
  private readonly values: (string | undefined)[][];
  private readonly counts: (ValueCounts | undefined)[];
  /** Per GROUP_BY constraint, in order: its field's values and counts (for ranking). */
  readonly groupBy: { values: (string | undefined)[]; counts: ValueCounts | undefined }[];

  constructor(
    ctx: ConstraintContext,
    constraints: readonly CompiledConstraint[],
    app: AppConstraints,
    agents: number,
  ) {
    this.dynamic = constraints.filter((c) => c.dynamic);
    this.values = this.dynamic.map((c) => ctx.valuesOf(c.key));
    this.counts = this.dynamic.map((c) => app.fields.get(c.key));
    this.groupBy = constraints
      .filter((c) => c.operator === "GROUP_BY")
      .map((c) => ({ values: ctx.valuesOf(c.key), counts: app.fields.get(c.key) }));
    const statics = constraints.filter((c) => !c.dynamic);
    this.passes = new Uint8Array(agents);
    for (let a = 0; a < agents; a++)
      this.passes[a] =
        statics.every((c) => meetsConstraint(c, ctx.valuesOf(c.key)[a], undefined)) &&
        this.values.every((v) => v[a] !== undefined)
          ? 1
          : 0;
  }

  /** Every constraint accepts the agent now. */
  accepts(agent: number): boolean {
    if (this.passes[agent] !== 1) return false;
    for (let j = 0; j < this.dynamic.length; j++)
      if (!meetsConstraint(this.dynamic[j] as CompiledConstraint, this.values[j]?.[agent], this.counts[j]))
        return false;
    return true;
  }

  /** A constraint rejects the agent for the rest of the pass (all but GROUP_BY only reject more agents over time). */
  excluded(agent: number): boolean {
    if (this.passes[agent] !== 1) return true;
    for (let j = 0; j < this.dynamic.length; j++) {
      const c = this.dynamic[j] as CompiledConstraint;
      if (c.operator !== "GROUP_BY" && !meetsConstraint(c, this.values[j]?.[agent], this.counts[j]))
        return true;
    }
    return false;
  }
}

/** Levels of a group spread: the group's instances count in steps of this, the agent's in ones. */
const GROUP_STEP = 2 ** 20;

/**
 * The rank of a demand with one GROUP_BY constraint: an agent's level is the app's instances in
 * its group (the agents sharing its value of the field) times GROUP_STEP, plus those on the agent
 * (so: fewest in the group first, then on the agent). Agents lacking the field have none (-1).
 */
class GroupSpread implements Spread {
  private readonly level: Float64Array;
  private readonly own: Float64Array;
  /** level → agents at it. */
  private readonly levels = new Map<number, number>();
  private readonly members = new Map<string, number[]>();
  readonly heapDemands = undefined;

  constructor(
    private readonly values: readonly (string | undefined)[],
    counts: ValueCounts | undefined,
    spread: AppSpread,
  ) {
    this.level = new Float64Array(values.length).fill(-1);
    this.own = new Float64Array(values.length);
    for (const [a, v] of values.entries()) {
      if (v === undefined) continue;
      const list = this.members.get(v);
      if (list === undefined) this.members.set(v, [a]);
      else list.push(a);
      this.own[a] = Math.min(spread.get(a), GROUP_STEP - 1);
      this.move(a, (counts?.get(v) ?? 0) * GROUP_STEP + (this.own[a] ?? 0));
    }
  }

  get(agent: number): number {
    return this.level[agent] ?? -1;
  }

  nextLevel(from: number): number {
    let best = -1;
    for (const [level, agents] of this.levels)
      if (agents > 0 && level >= from && (best < 0 || level < best)) best = level;
    return best;
  }

  /** An instance was placed on `agent`: its group moves up a step, the agent one more. */
  placed(agent: number): void {
    const v = this.values[agent];
    const group = v === undefined ? undefined : this.members.get(v);
    if (group === undefined) return;
    for (const a of group) {
      let level = (this.level[a] ?? 0) + GROUP_STEP;
      if (a === agent && (this.own[a] ?? 0) < GROUP_STEP - 1) {
        this.own[a] = (this.own[a] ?? 0) + 1;
        level += 1;
      }
      this.move(a, level);
    }
  }

  private move(agent: number, level: number): void {
    const before = this.level[agent] ?? -1;
    if (before >= 0) this.levels.set(before, (this.levels.get(before) ?? 0) - 1);
    this.level[agent] = level;
    this.levels.set(level, (this.levels.get(level) ?? 0) + 1);
  }
}

/**
 * For a demand with two GROUP_BY constraints or more, which levels cannot rank: every offer, the
 * best by (instances in the agent's group of each GROUP_BY, on the agent, most mem, lowest index).
 */
function scanPick(book: OfferBook, p: Pending, judge: Judge): number {
  if (!book.portsAvailable(p.need)) return -1;
  let best = -1;
  const key: number[] = [];
  const bestKey: number[] = [];
  for (let i = 0; i < book.n; i++) {
    const agent = book.agentOf[i] ?? 0;
    if (!book.fits(i, p.need) || !judge.accepts(agent)) continue;
    key.length = 0;
    for (const g of judge.groupBy) key.push(g.counts?.get(g.values[agent] ?? "") ?? 0);
    key.push(p.spread.get(agent), -(book.mem[i] ?? 0));
    let order = best < 0 ? -1 : 0;
    for (let j = 0; order === 0 && j < key.length; j++) order = (key[j] ?? 0) - (bestKey[j] ?? 0);
    if (order < 0) {
      best = i;
      bestKey.splice(0, bestKey.length, ...key);
    }
  }
  return best;
}

// -------------------------------------------------------------------------------------- reasons

/** Per agent (that `eligible` admits), its closest offer: fewest missing items, tie: lowest index; -1 for none. */
function closestOffers(book: OfferBook, need: Need, eligible?: (agent: number) => boolean): Int32Array {
  const closest = new Int32Array(book.agentIds.length).fill(-1);
  const closestItems = new Float64Array(book.agentIds.length);
  for (let i = 0; i < book.n; i++) {
    const agent = book.agentOf[i] ?? 0;
    if (eligible !== undefined && !eligible(agent)) continue;
    const items = book.missingCount(i, need);
    if (closest[agent] === -1 || items < (closestItems[agent] ?? 0)) {
      closest[agent] = i;
      closestItems[agent] = items;
    }
  }
  return closest;
}

/**
 * Per missing item of each agent's closest offer, the number of agents: insufficient cpus, mem,
 * disk, ports, then each requested port taken. Only the agents `eligible` admits are judged.
 */
function explainResources(
  book: OfferBook,
  need: Need,
  declined: DeclinedFunnel,
  eligible?: (agent: number) => boolean,
): UnplacedReason[] {
  const short = new Map<Shortfall, number>();
  const taken = new Map<number, number>();
  for (const i of closestOffers(book, need, eligible)) {
    if (i < 0) continue;
    const m = book.missing(i, need);
    for (const r of m.short) short.set(r, (short.get(r) ?? 0) + 1);
    for (const p of m.taken) taken.set(p, (taken.get(p) ?? 0) + 1);
    const first = m.short[0] ?? (m.taken.length > 0 ? "ports" : undefined);
    if (first !== undefined) declined[first] += 1;
  }
  const reasons: UnplacedReason[] = [];
  for (const resource of ["cpus", "mem", "disk", "ports"] as const) {
    const agents = short.get(resource) ?? 0;
    if (agents > 0) reasons.push({ kind: "insufficient", resource, agents });
  }
  for (const port of need.requested) {
    const agents = taken.get(port) ?? 0;
    if (agents > 0) reasons.push({ kind: "port_taken", port, agents });
  }
  return reasons;
}

function noDeclines(): DeclinedFunnel {
  return { constraint: 0, cpus: 0, mem: 0, disk: 0, ports: 0 };
}

/**
 * The reasons for a demand, from the verdicts on each agent: first the constraints (each counts
 * the agents it rejects), then the resources of the agents no constraint rejects; and the funnel
 * (`DeclinedFunnel`).
 */
function explain(
  book: OfferBook,
  need: Need,
  judged?: { ctx: ConstraintContext; constraints: readonly CompiledConstraint[]; app: AppConstraints },
): { reasons: UnplacedReason[]; declined: DeclinedFunnel } {
  const declined = noDeclines();
  if (book.n === 0) return { reasons: [{ kind: "no_offers" }], declined };
  if (judged === undefined) return { reasons: explainResources(book, need, declined), declined };
  const { ctx, constraints, app } = judged;
  const rejected = new Int32Array(constraints.length);
  const passes = new Uint8Array(book.agentIds.length);
  for (let a = 0; a < book.agentIds.length; a++) {
    let ok = true;
    for (const [j, c] of constraints.entries())
      if (!meetsConstraint(c, ctx.valuesOf(c.key)[a], app.fields.get(c.key))) {
        rejected[j] = (rejected[j] ?? 0) + 1;
        ok = false;
      }
    passes[a] = ok ? 1 : 0;
    if (!ok) declined.constraint += 1;
  }
  const reasons: UnplacedReason[] = [];
  for (const [j, c] of constraints.entries())
    if ((rejected[j] ?? 0) > 0)
      reasons.push({ kind: "constraint", constraint: c.text, agents: rejected[j] ?? 0 });
  return {
    reasons: reasons.concat(explainResources(book, need, declined, (a) => passes[a] === 1)),
    declined,
  };
}

// ------------------------------------------------------------------------------------ placement

/** The offers in index order (agentId, offerId, input order): "lowest index" is the documented tie-break. */
function bookOf(offers: readonly OfferView[]): { book: OfferBook; inputOrder: number[] } {
  const order = offers
    .map((o, i) => ({ o, i }))
    .sort(
      (a, b) =>
        compareStrings(a.o.agentId, b.o.agentId) || compareStrings(a.o.offerId, b.o.offerId) || a.i - b.i,
    );
  const inputOrder: number[] = new Array(offers.length).fill(0);
  for (const [j, x] of order.entries()) inputOrder[x.i] = j;
  return { book: new OfferBook(order.map((x) => x.o)), inputOrder };
}

/** The compiled constraints of each demand (undefined: none), and the counts of each constrained app. */
function constraintSetup(
  ctx: ConstraintContext,
  demands: readonly InstanceDemand[],
  existingPerAgent: ReadonlyMap<string, ReadonlyMap<string, number>>,
): { compiled: (CompiledConstraint[] | undefined)[]; apps: Map<string, AppConstraints> } {
  const compiled = demands.map((d) =>
    d.constraints !== undefined && d.constraints.length > 0
      ? d.constraints.map(compileConstraint)
      : undefined,
  );
  const keys = new Map<string, Set<string>>();
  for (const [j, d] of demands.entries()) {
    const cs = compiled[j];
    if (cs === undefined) continue;
    const set = keys.get(d.appId) ?? new Set<string>();
    for (const c of cs) set.add(c.key);
    keys.set(d.appId, set);
  }
  const apps = new Map<string, AppConstraints>();
  for (const [appId, set] of keys) apps.set(appId, ctx.appState(set, existingPerAgent.get(appId)));
  return { compiled, apps };
}

/**
 * Match pending instances to offers. Demands are served round-robin, one instance at a time, so a
 * large app cannot starve the others. Each instance goes to the offer that still fits (cpus, mem,
 * disk, its requested ports and enough other free ports) on an agent its demand's constraints
 * accept (given the app's instances so far), ranked by: fewest instances of the app in the agent's
 * group of each GROUP_BY constraint, then on the agent (spread), then most remaining mem, then
 * lowest agentId, offerId. Several instances may come from one offer as long as their sum fits; a
 * port assigned to one placement is not assigned to another from the same offer. Pure and
 * deterministic; `existingPerAgent` (appId -> agentId -> active tasks) is not mutated. Constraints on
 * attributes of agents that run instances but offer nothing read `options.agents`.
 *
 * Phases, per instance: filter (resources, then the demand's constraints: `Judge`), spread (the
 * level: the app's instances in the agent's GROUP_BY group, then on the agent), rank (most
 * remaining mem, lowest index); and for what stays unplaced, the reasons counted from the
 * verdicts of the same predicates (`explain`). A demand that finds nothing waits: for good without
 * constraints (offers only shrink), until the app gains an instance with them (GROUP_BY may then
 * accept).
 *
 * Cost: about O(instances · trees · log offers) — max-trees over the offers' remaining resources —
 * plus the offers a search skips (the app already runs on their agent, they cannot fit, or its
 * constraints reject them); a demand that would skip many gets lazy heaps of its own, built once in
 * O(offers) (with a GROUP_BY, one heap per level as it reaches it). Constraints cost O(constraints)
 * per agent judged, and a GROUP_BY placement O(agents in the group). A demand with two GROUP_BY
 * constraints or more scans every offer per instance.
 */
export function placeInstances(
  offers: OfferView[],
  demands: InstanceDemand[],
  existingPerAgent: ReadonlyMap<string, ReadonlyMap<string, number>>,
  options: PlacementOptions = {},
): PlacementResult {
  const { book, inputOrder } = bookOf(offers);
  const spreads = new Map<string, AppSpread>();
  const spreadOf = (appId: string): AppSpread => {
    let s = spreads.get(appId);
    if (s === undefined) {
      s = new AppSpread(book.agentIds.length);
      for (const [agentId, count] of existingPerAgent.get(appId) ?? []) {
        const a = book.agentIndex.get(agentId);
        if (a !== undefined && count >= 1) s.set(a, Math.floor(count));
      }
      spreads.set(appId, s);
    }
    return s;
  };
  const ctx = new ConstraintContext(book, options.agents);
  const { compiled, apps } = constraintSetup(ctx, demands, existingPerAgent);
  const pending: Pending[] = demands.map((demand, j) => {
    const spread = spreadOf(demand.appId);
    const constraints = compiled[j];
    const app = apps.get(demand.appId);
    const judge =
      constraints === undefined || app === undefined
        ? undefined
        : new Judge(ctx, constraints, app, book.agentIds.length);
    let rank: Spread = spread;
    const groupBy = constraints?.filter((c) => c.operator === "GROUP_BY") ?? [];
    const first = groupBy[0];
    if (groupBy.length === 1 && first !== undefined && app !== undefined) {
      let g = app.groups.get(first.key);
      if (g === undefined) {
        g = new GroupSpread(ctx.valuesOf(first.key), app.fields.get(first.key), spread);
        app.groups.set(first.key, g);
      }
      rank = g;
    }
    return {
      demand,
      need: needOf(demand),
      spread,
      rank,
      left: Number.isFinite(demand.count) ? Math.max(0, Math.floor(demand.count)) : 0,
      level: 0,
      heaps: undefined,
      listed: false,
      constraints,
      judge,
      scan: groupBy.length > 1,
      app,
      seen: 0,
      stuckAt: -1,
    };
  });
  let active = pending.filter((p) => p.left > 0);
  const requested = new Set<number>();
  for (const p of active) for (const port of p.need.requested) requested.add(port);
  book.countPorts(requested);
  const index = new OfferIndex(
    book,
    active.map((p) => p.need.cpus),
    [...requested],
  );
  const picker = new Picker(book, index);
  const pick = (p: Pending): number => {
    if (p.app === undefined || p.judge === undefined) return picker.pick(p);
    if (p.seen !== p.app.version) {
      // Another demand of the app placed an instance: what this one ruled out may take it now.
      p.level = 0;
      p.heaps = undefined;
      p.seen = p.app.version;
    }
    return p.scan ? scanPick(book, p, p.judge) : picker.pick(p);
  };
  const placements: Placement[] = [];

  while (active.length > 0) {
    const next: Pending[] = [];
    let progress = false;
    for (const p of active) {
      // A constrained demand that found nothing waits for the app to gain an instance (GROUP_BY
      // may then accept); resources only shrink during a pass, so an unconstrained one is done.
      if (p.judge !== undefined && p.stuckAt === p.app?.version) {
        next.push(p);
        continue;
      }
      const i = p.left > 0 ? pick(p) : -1;
      const offer = book.offers[i];
      if (offer === undefined) {
        if (p.judge !== undefined) {
          p.stuckAt = p.app?.version ?? -1;
          next.push(p);
        } else p.heaps = undefined;
        continue;
      }
      progress = true;
      const agent = book.agentOf[i] ?? 0;
      const ports = book.take(i, p.need);
      index.update(i);
      picker.placed(p.spread, agent);
      if (p.app !== undefined) {
        for (const g of p.app.groups.values()) g.placed(agent);
        ctx.placed(p.app, agent);
        if (p.judge !== undefined) p.seen = p.app.version;
      }
      placements.push({
        offerId: offer.offerId,
        agentId: offer.agentId,
        appId: p.demand.appId,
        resources: { cpus: p.need.cpus, mem: p.need.mem, disk: p.need.disk, ports: portsToRanges(ports) },
        ports,
      });
      p.left -= 1;
      if (p.left > 0) next.push(p);
      else p.heaps = undefined;
    }
    if (!progress) break;
    active = next;
  }

  const explained = new Map<string, ReturnType<typeof explain>>();
  const unplaced = pending
    .filter((p) => p.left > 0)
    .map((p) => {
      const n = p.need;
      let e: ReturnType<typeof explain>;
      if (p.constraints !== undefined && p.app !== undefined)
        e = explain(book, n, { ctx, constraints: p.constraints, app: p.app });
      else {
        const key = `${n.cpus}|${n.mem}|${n.disk}|${n.anyPorts}|${n.requested.join(",")}`;
        e = explained.get(key) ?? explain(book, n);
        explained.set(key, e);
      }
      return {
        appId: p.demand.appId,
        count: p.left,
        reasons: e.reasons.map((r) => ({ ...r })),
        declined: { ...e.declined },
      };
    });
  const unusedOfferIds = offers.filter((_, i) => book.used[inputOrder[i] ?? 0] !== 1).map((o) => o.offerId);
  return { placements, unplaced, unusedOfferIds };
}

/**
 * The verdicts on every agent that made an offer (in agentId order) for one more instance of
 * `demand`, given the app's instances in `existingPerAgent`: the constraints that reject the agent;
 * when none does, what its closest offer lacks (nothing: the agent could take it). The per-agent
 * view of the reasons `placeInstances` counts ("why not on agent-7?").
 */
export function explainAgents(
  offers: OfferView[],
  demand: InstanceDemand,
  existingPerAgent: ReadonlyMap<string, ReadonlyMap<string, number>>,
  options: PlacementOptions = {},
): AgentVerdicts[] {
  const { book } = bookOf(offers);
  const ctx = new ConstraintContext(book, options.agents);
  const { compiled, apps } = constraintSetup(ctx, [demand], existingPerAgent);
  const constraints = compiled[0] ?? [];
  const app = apps.get(demand.appId);
  const need = needOf(demand);
  const closest = closestOffers(book, need);
  return book.agentIds.map((agentId, a) => {
    const rejecting = app === undefined ? [] : ctx.rejecting(constraints, app, a);
    if (rejecting.length > 0)
      return { agentId, verdicts: rejecting.map((c) => ({ kind: "constraint", constraint: c.text })) };
    const m = book.missing(closest[a] ?? 0, need);
    const verdicts: Verdict[] = m.short.map((resource) => ({ kind: "insufficient", resource }));
    for (const port of m.taken) verdicts.push({ kind: "port_taken", port });
    return { agentId, verdicts };
  });
}
