import { splitLowestPorts } from "./ports.js";
import {
  addResources,
  DEFAULT_MIN_ALLOCATABLE,
  isEmpty,
  portCount,
  RESOURCE_EPSILON,
  type Resources,
  subtractResources,
} from "./resources.js";

/** The master's ledger for one agent. Immutable view. */
export interface AgentLedger {
  agentId: string;
  hostname: string;
  total: Resources;
  /** Held by non-terminal tasks. */
  used: Resources;
  /** Lent in outstanding offers. */
  offered: Resources;
  attributes: Record<string, string>;
  connected: boolean;
}

/** The role of a framework that names none. */
export const DEFAULT_ROLE = "*";

export interface FrameworkView {
  frameworkId: string;
  connected: boolean;
  /** A suppressed framework has asked for no offers. */
  suppressed: boolean;
  /** Resources currently held by the framework (tasks and outstanding offers). */
  allocated: Resources;
  /** The role it allocates in; default `"*"`. */
  role?: string;
  /** Its weight among the frameworks of its role; default 1. */
  weight?: number;
}

/** A quantity of the two resources that shares, guarantees and limits are measured in. */
export interface CpusMem {
  cpus: number;
  mem: number;
}

/**
 * Configuration of one role. A role not listed has weight 1 and no quota.
 * `guarantee`: resources the role is given before any other role gets more than the surplus.
 * `limit`: the role never holds more than this (tasks and outstanding offers together).
 */
export interface RoleConfig {
  role: string;
  /** Its weight among roles; default 1. */
  weight?: number;
  guarantee?: CpusMem;
  limit?: CpusMem;
}

/** The framework declined this agent's resources and asked not to see them again before `untilMs`. */
export interface RefuseFilter {
  frameworkId: string;
  agentId: string;
  untilMs: number;
}

/** Offer `resources` on `agentId` to `frameworkId`. */
export interface OfferGrant {
  frameworkId: string;
  agentId: string;
  resources: Resources;
}

export interface AllocationPolicy {
  /** The smallest bundle worth offering; default {cpus: 0.01, mem: 4}. */
  minAllocatable?: CpusMem;
  /** Weights, guarantees and limits per role; the first entry for a role counts. */
  roles?: RoleConfig[];
  /**
   * The cluster's total cpus and mem (for the DRF shares), when `agents` leaves out agents with
   * nothing to offer (a caller at fleet size passes only those with free resources; the grants are
   * the same). Default: the total of `agents`.
   */
  capacity?: CpusMem;
  /**
   * With `capacity`: the free cpus and mem (freeCpusMem) of the connected agents left out, each
   * below the minimum allocatable; they count in what unmet guarantees may draw on.
   */
  unlisted?: CpusMem;
}

export const DEFAULT_ALLOCATION_POLICY: AllocationPolicy = { minAllocatable: { ...DEFAULT_MIN_ALLOCATABLE } };

/** What an agent can still offer: total - used - offered, never negative. */
export function freeResources(agent: AgentLedger): Resources {
  const free = subtractResources(subtractResources(agent.total, agent.used), agent.offered);
  // Float sums drift (1.4 - 1.2 = 0.19999999999999996): offers carry scalars in thousandths, rounded
  // down, so a framework comparing exactly never sees 0.2 as less than 0.2.
  return { ...free, ...freeCpusMem(agent), disk: roundDown(free.disk) };
}

/**
 * The cpus and mem of freeResources (the same arithmetic), without the port ranges: cheap enough
 * for a caller that leaves out the agents with nothing to offer (see AllocationPolicy.unlisted).
 */
export function freeCpusMem(agent: { total: CpusMem; used: CpusMem; offered: CpusMem }): CpusMem {
  const pos = (x: number) => (x < RESOURCE_EPSILON ? 0 : x);
  return {
    cpus: roundDown(pos(pos(agent.total.cpus - agent.used.cpus) - agent.offered.cpus)),
    mem: roundDown(pos(pos(agent.total.mem - agent.used.mem) - agent.offered.mem)),
  };
}

function roundDown(x: number): number {
  return Math.floor(x * 1000 + 1e-6) / 1000;
}

/** max(allocated.cpus / total.cpus, allocated.mem / total.mem); a zero capacity contributes 0. */
export function dominantShare(allocated: CpusMem, capacity: CpusMem): number {
  const cpu = capacity.cpus > 0 ? allocated.cpus / capacity.cpus : 0;
  const mem = capacity.mem > 0 ? allocated.mem / capacity.mem : 0;
  return Math.max(cpu, mem);
}

/** A weight that is not a finite positive number counts as 1. */
export function effectiveWeight(weight: number | undefined): number {
  return weight !== undefined && Number.isFinite(weight) && weight > 0 ? weight : 1;
}

/** The dominant share divided by the weight: what DRF orders roles and frameworks by. */
export function weightedShare(allocated: CpusMem, capacity: CpusMem, weight?: number): number {
  return dominantShare(allocated, capacity) / effectiveWeight(weight);
}

/** The sum of the connected agents' totals (one ledger per agentId: the first in agentId order). */
export function clusterCapacity(agents: readonly AgentLedger[]): CpusMem {
  return connectedAgents(agents).reduce(
    (acc, a) => ({ cpus: acc.cpus + a.total.cpus, mem: acc.mem + a.total.mem }),
    { cpus: 0, mem: 0 },
  );
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function connectedAgents(agents: readonly AgentLedger[]): AgentLedger[] {
  const sorted = agents.filter((a) => a.connected).sort((a, b) => compareStrings(a.agentId, b.agentId));
  return sorted.filter((a, i) => i === 0 || sorted[i - 1]?.agentId !== a.agentId);
}

interface FrameworkState {
  id: string;
  weight: number;
  alloc: CpusMem;
  /** Agents this framework has an unexpired refuse filter for. */
  filtered: ReadonlySet<string> | undefined;
}

interface RoleState {
  name: string;
  weight: number;
  /** min(guarantee, limit), or undefined. */
  guarantee: CpusMem | undefined;
  limit: CpusMem | undefined;
  alloc: CpusMem;
  /** Has a framework that is not suppressed: its unmet guarantee is kept back as headroom. */
  active: boolean;
  /** Connected, unsuppressed frameworks, the ones that can be offered anything. */
  frameworks: FrameworkState[];
}

/** The part of the role's guarantee it does not hold yet (0 for an inactive role or no guarantee). */
function unmet(role: RoleState): CpusMem {
  const g = role.guarantee;
  if (g === undefined || !role.active) return { cpus: 0, mem: 0 };
  return { cpus: Math.max(0, g.cpus - role.alloc.cpus), mem: Math.max(0, g.mem - role.alloc.mem) };
}

function hasUnmet(role: RoleState): boolean {
  const u = unmet(role);
  return u.cpus > RESOURCE_EPSILON || u.mem > RESOURCE_EPSILON;
}

const emptyUnlisted = { cpus: 0, mem: 0, disk: 0, ports: [] };

/** One cycle's mutable bookkeeping. */
class Cycle {
  readonly capacity: CpusMem;
  /** Free cpus/mem of all agents not yet granted this cycle. */
  readonly available: CpusMem = { cpus: 0, mem: 0 };
  /** Sum of the active roles' unmet guarantees. */
  readonly required: CpusMem = { cpus: 0, mem: 0 };

  constructor(
    readonly roles: RoleState[],
    readonly min: CpusMem,
    capacity: CpusMem,
    free: readonly Resources[],
  ) {
    this.capacity = capacity;
    // Free amounts are in thousandths (freeCpusMem): summed as integers, the total is exact and
    // the same in any order (a caller may pass some agents' free as one sum, see `unlisted`).
    let cpus = 0;
    let mem = 0;
    for (const f of free) {
      cpus += Math.round(f.cpus * 1000);
      mem += Math.round(f.mem * 1000);
    }
    this.available.cpus = cpus / 1000;
    this.available.mem = mem / 1000;
    for (const r of roles) {
      const u = unmet(r);
      this.required.cpus += u.cpus;
      this.required.mem += u.mem;
    }
  }

  /** True while some active role is below its guarantee. */
  guaranteesUnmet(): boolean {
    return this.required.cpus > RESOURCE_EPSILON || this.required.mem > RESOURCE_EPSILON;
  }

  /** What is left once every unmet guarantee is set aside; may be negative. */
  surplus(): CpusMem {
    return { cpus: this.available.cpus - this.required.cpus, mem: this.available.mem - this.required.mem };
  }

  roleShare(r: RoleState): number {
    return dominantShare(r.alloc, this.capacity) / r.weight;
  }

  /** The role's framework with the lowest weighted share that may be offered `agentId` (tie: id). */
  pickFramework(role: RoleState, agentId: string): { fw: FrameworkState; share: number } | undefined {
    let best: { fw: FrameworkState; share: number } | undefined;
    for (const fw of role.frameworks) {
      if (fw.filtered?.has(agentId)) continue;
      const share = dominantShare(fw.alloc, this.capacity) / fw.weight;
      if (best === undefined || share < best.share || (share === best.share && fw.id < best.fw.id))
        best = { fw, share };
    }
    return best;
  }

  /**
   * How much cpus/mem `role` may take from an agent with `free`.
   * Stage 1 (quota): up to the unmet part of its guarantee; in a dimension whose guarantee is met,
   * as much as the dimension still lacking needs in proportion (at least the minimum), and in a
   * dimension without a guarantee whatever is surplus. Stage 2: up to its limit and without
   * touching the headroom other roles' unmet guarantees need.
   */
  cap(role: RoleState, free: CpusMem, stage: 1 | 2): CpusMem {
    const u = unmet(role);
    const s = this.surplus();
    const out: CpusMem = { cpus: 0, mem: 0 };
    const g = role.guarantee;
    let fraction = 0;
    if (stage === 1 && g !== undefined) {
      if (g.cpus > 0) fraction = Math.max(fraction, u.cpus / g.cpus);
      if (g.mem > 0) fraction = Math.max(fraction, u.mem / g.mem);
    }
    for (const d of ["cpus", "mem"] as const) {
      let c: number;
      if (stage === 2) c = Math.max(0, s[d] + u[d]);
      // At least the minimum allocatable: a remainder below it (0.005 cpus of a guarantee) would
      // make the whole grant unallocatable and leave the other dimension's remainder unserved.
      else if (u[d] > RESOURCE_EPSILON) c = Math.max(u[d], this.min[d]);
      else if (g !== undefined && g[d] > 0)
        c = Math.min(Math.max(0, s[d]), Math.max(this.min[d], fraction * g[d]));
      else c = Math.max(0, s[d]);
      if (role.limit !== undefined) c = Math.min(c, Math.max(0, role.limit[d] - role.alloc[d]));
      out[d] = Math.min(free[d], c);
    }
    return out;
  }

  /** Books a grant of `g` to `fw` of `role`. */
  book(role: RoleState, fw: FrameworkState, g: CpusMem): void {
    const before = unmet(role);
    for (const d of ["cpus", "mem"] as const) {
      fw.alloc[d] += g[d];
      role.alloc[d] += g[d];
      this.available[d] -= g[d];
    }
    const after = unmet(role);
    this.required.cpus -= before.cpus - after.cpus;
    this.required.mem -= before.mem - after.mem;
  }
}

/**
 * Cuts `cpus`/`mem` out of `free`. A grant that takes all of the free cpus and mem takes everything
 * (disk and all ports). A capped grant takes disk and ports in proportion to the larger of its cpus
 * and mem fractions, ports lowest first and rounded up, so a capped framework can still launch
 * tasks that need a port; the rest stays for the next grant.
 */
function carve(free: Resources, want: CpusMem): { grant: Resources; rest: Resources; capped: boolean } {
  const whole = want.cpus >= free.cpus - RESOURCE_EPSILON && want.mem >= free.mem - RESOURCE_EPSILON;
  if (whole) return { grant: free, rest: { cpus: 0, mem: 0, disk: 0, ports: [] }, capped: false };
  const fraction = Math.min(
    1,
    Math.max(free.cpus > 0 ? want.cpus / free.cpus : 0, free.mem > 0 ? want.mem / free.mem : 0),
  );
  const ports = splitLowestPorts(free.ports, Math.ceil(fraction * portCount(free.ports)));
  const grant: Resources = { cpus: want.cpus, mem: want.mem, disk: free.disk * fraction, ports: ports.taken };
  return { grant, rest: subtractResources(free, grant), capped: true };
}

function buildRoles(
  frameworks: readonly FrameworkView[],
  filters: readonly RefuseFilter[],
  nowMs: number,
  configs: readonly RoleConfig[],
): RoleState[] {
  const config = new Map<string, RoleConfig>();
  for (const c of configs) if (!config.has(c.role)) config.set(c.role, c);
  const filtered = new Map<string, Set<string>>();
  for (const f of filters) {
    if (!(f.untilMs > nowMs)) continue;
    let set = filtered.get(f.frameworkId);
    if (set === undefined) {
      set = new Set();
      filtered.set(f.frameworkId, set);
    }
    set.add(f.agentId);
  }
  const roles = new Map<string, RoleState>();
  const seen = new Set<string>();
  // In frameworkId order, so that float sums do not depend on the input order.
  const sorted = [...frameworks].sort((a, b) => compareStrings(a.frameworkId, b.frameworkId));
  for (const f of sorted) {
    if (seen.has(f.frameworkId)) continue; // a duplicate view counts once
    seen.add(f.frameworkId);
    const name = f.role ?? DEFAULT_ROLE;
    let role = roles.get(name);
    if (role === undefined) {
      const c = config.get(name);
      const limit = c?.limit;
      const g = c?.guarantee;
      role = {
        name,
        weight: effectiveWeight(c?.weight),
        guarantee:
          g === undefined
            ? undefined
            : limit === undefined
              ? { ...g }
              : { cpus: Math.min(g.cpus, limit.cpus), mem: Math.min(g.mem, limit.mem) },
        limit: limit === undefined ? undefined : { ...limit },
        alloc: { cpus: 0, mem: 0 },
        active: false,
        frameworks: [],
      };
      roles.set(name, role);
    }
    role.alloc.cpus += f.allocated.cpus;
    role.alloc.mem += f.allocated.mem;
    if (!f.suppressed) role.active = true;
    if (f.connected && !f.suppressed)
      role.frameworks.push({
        id: f.frameworkId,
        weight: effectiveWeight(f.weight),
        alloc: { cpus: f.allocated.cpus, mem: f.allocated.mem },
        filtered: filtered.get(f.frameworkId),
      });
  }
  return [...roles.values()].sort((a, b) => compareStrings(a.name, b.name));
}

/**
 * Hierarchical, weighted DRF with quota, in two stages over the agents (in agentId order).
 *
 * Stage 1 serves roles below their guarantee, each grant capped to the guarantee's remaining part.
 * Stage 2 serves every role, never beyond its limit and keeping back the headroom the other roles'
 * unmet guarantees need. In both, an agent's free resources go to the role with the lowest weighted
 * dominant share (tie: name), and within it to the framework with the lowest weighted dominant share
 * (tie: frameworkId) that is connected, not suppressed and has no unexpired refuse filter for the
 * agent. An uncapped grant takes all that is left of the agent; a capped one takes its part and the
 * rest goes on to the next framework. A capped grant below `minAllocatable` is skipped. Shares are
 * updated with every grant, so one cycle spreads agents across roles and frameworks.
 *
 * Pure and deterministic; at most one grant per (framework, agent); never more than free.
 */
export function allocate(
  agents: AgentLedger[],
  frameworks: FrameworkView[],
  filters: RefuseFilter[],
  nowMs: number,
  policy: AllocationPolicy = DEFAULT_ALLOCATION_POLICY,
): OfferGrant[] {
  const min = policy.minAllocatable ?? DEFAULT_MIN_ALLOCATABLE;
  const connected = connectedAgents(agents);
  const capacity = policy.capacity ? { ...policy.capacity } : { cpus: 0, mem: 0 };
  if (!policy.capacity)
    for (const a of connected) {
      capacity.cpus += a.total.cpus;
      capacity.mem += a.total.mem;
    }
  const roles = buildRoles(frameworks, filters, nowMs, policy.roles ?? []);
  const free = connected.map(freeResources);
  const cycle = new Cycle(
    roles,
    min,
    capacity,
    policy.capacity ? [...free, { ...emptyUnlisted, ...policy.unlisted }] : free,
  );
  const perAgent: OfferGrant[][] = connected.map(() => []);

  for (const stage of [1, 2] as const) {
    const eligible = stage === 1 ? roles.filter((r) => r.guarantee !== undefined) : roles;
    if (stage === 1 && !eligible.some(hasUnmet)) continue;
    for (const [i, agent] of connected.entries()) {
      if (stage === 1 && !cycle.guaranteesUnmet()) break;
      let excluded: Set<RoleState> | undefined;
      for (;;) {
        const left = free[i];
        if (left === undefined || isEmpty(left, min)) break;
        let pick: { role: RoleState; fw: FrameworkState; share: number } | undefined;
        for (const role of eligible) {
          if (excluded?.has(role) || (stage === 1 && !hasUnmet(role))) continue;
          const share = cycle.roleShare(role);
          if (pick !== undefined && share >= pick.share) continue; // roles are in name order
          const f = cycle.pickFramework(role, agent.agentId);
          if (f !== undefined) pick = { role, fw: f.fw, share };
        }
        if (pick === undefined) break;
        const want = cycle.cap(pick.role, left, stage);
        if (isEmpty({ cpus: want.cpus, mem: want.mem, disk: 0, ports: [] }, min)) {
          excluded = (excluded ?? new Set()).add(pick.role);
          continue;
        }
        const { grant, rest, capped } = carve(left, want);
        // A capped grant used up the role's cap in some dimension: the role gets no more of this agent.
        if (capped) excluded = (excluded ?? new Set()).add(pick.role);
        free[i] = rest;
        cycle.book(pick.role, pick.fw, grant);
        const grants = perAgent[i] ?? [];
        const same = grants.find((g) => g.frameworkId === pick.fw.id);
        if (same === undefined)
          grants.push({ frameworkId: pick.fw.id, agentId: agent.agentId, resources: grant });
        else same.resources = addResources(same.resources, grant);
      }
    }
  }
  return perAgent.flat();
}
