import {
  addResources,
  cloneResources,
  DEFAULT_MIN_ALLOCATABLE,
  isEmpty,
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

export interface FrameworkView {
  frameworkId: string;
  connected: boolean;
  /** A suppressed framework has asked for no offers. */
  suppressed: boolean;
  /** Resources currently held by the framework (tasks and outstanding offers). */
  allocated: Resources;
}

/** The framework declined this agent's resources and asked not to see them again before `untilMs`. */
export interface RefuseFilter {
  frameworkId: string;
  agentId: string;
  untilMs: number;
}

/** Offer all of `resources` on `agentId` to `frameworkId`. */
export interface OfferGrant {
  frameworkId: string;
  agentId: string;
  resources: Resources;
}

export interface AllocationPolicy {
  minAllocatable: { cpus: number; mem: number };
}

export const DEFAULT_ALLOCATION_POLICY: AllocationPolicy = { minAllocatable: { ...DEFAULT_MIN_ALLOCATABLE } };

/** What an agent can still offer: total - used - offered, never negative. */
export function freeResources(agent: AgentLedger): Resources {
  return subtractResources(subtractResources(agent.total, agent.used), agent.offered);
}

/** max(allocated.cpus / total.cpus, allocated.mem / total.mem); a zero capacity contributes 0. */
export function dominantShare(allocated: Resources, capacity: { cpus: number; mem: number }): number {
  const cpu = capacity.cpus > 0 ? allocated.cpus / capacity.cpus : 0;
  const mem = capacity.mem > 0 ? allocated.mem / capacity.mem : 0;
  return Math.max(cpu, mem);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isFiltered(
  filters: readonly RefuseFilter[],
  frameworkId: string,
  agentId: string,
  nowMs: number,
): boolean {
  return filters.some((f) => f.frameworkId === frameworkId && f.agentId === agentId && f.untilMs > nowMs);
}

/**
 * Decide which framework is offered each agent's free resources (a simple DRF allocator).
 * Agents are visited in agentId order. For each connected agent whose free resources are not below
 * `minAllocatable`, all of its free resources go to the connected, non-suppressed, unfiltered
 * framework with the smallest dominant share of the connected agents' capacity (tie: frameworkId);
 * that framework's share grows as it is granted, so agents spread across frameworks.
 * Pure and deterministic; at most one grant per agent; never more than free.
 */
export function allocate(
  agents: AgentLedger[],
  frameworks: FrameworkView[],
  filters: RefuseFilter[],
  nowMs: number,
  policy: AllocationPolicy = DEFAULT_ALLOCATION_POLICY,
): OfferGrant[] {
  const connected = agents.filter((a) => a.connected).sort((a, b) => compareStrings(a.agentId, b.agentId));
  const capacity = connected.reduce(
    (acc, a) => ({ cpus: acc.cpus + a.total.cpus, mem: acc.mem + a.total.mem }),
    { cpus: 0, mem: 0 },
  );
  const candidates = frameworks
    .filter((f) => f.connected && !f.suppressed)
    .map((f) => ({ frameworkId: f.frameworkId, allocated: cloneResources(f.allocated) }));

  const grants: OfferGrant[] = [];
  const granted = new Set<string>();
  for (const agent of connected) {
    if (granted.has(agent.agentId)) continue; // a duplicate ledger entry is offered once
    const free = freeResources(agent);
    if (isEmpty(free, policy.minAllocatable)) continue;
    let chosen: (typeof candidates)[number] | undefined;
    let chosenShare = 0;
    for (const f of candidates) {
      if (isFiltered(filters, f.frameworkId, agent.agentId, nowMs)) continue;
      const share = dominantShare(f.allocated, capacity);
      if (
        chosen === undefined ||
        share < chosenShare ||
        (share === chosenShare && compareStrings(f.frameworkId, chosen.frameworkId) < 0)
      ) {
        chosen = f;
        chosenShare = share;
      }
    }
    if (chosen === undefined) continue;
    chosen.allocated = addResources(chosen.allocated, free);
    granted.add(agent.agentId);
    grants.push({ frameworkId: chosen.frameworkId, agentId: agent.agentId, resources: free });
  }
  return grants;
}
