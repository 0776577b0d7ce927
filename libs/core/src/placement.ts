import {
  cloneResources,
  missingResources,
  type ResourceName,
  type Resources,
  subtractResources,
} from "./resources.js";

/** An offer as the scheduler sees it. Immutable view. */
export interface OfferView {
  offerId: string;
  agentId: string;
  hostname: string;
  resources: Resources;
  attributes: Record<string, string>;
}

/** `count` more instances of an app, each needing `resources`. */
export interface InstanceDemand {
  appId: string;
  count: number;
  resources: Resources;
}

/** One instance of `appId` to launch from `offerId`. */
export interface Placement {
  offerId: string;
  agentId: string;
  appId: string;
  resources: Resources;
}

/**
 * Why instances stay unplaced: `agents` agents offered too little of `resource`, or there were no
 * offers at all. This is what the cluster tells a user whose app is waiting.
 */
export type UnplacedReason =
  | { kind: "insufficient"; resource: "cpus" | "mem" | "disk" | "ports"; agents: number }
  | { kind: "no_offers" };

export interface PlacementResult {
  placements: Placement[];
  unplaced: { appId: string; count: number; reasons: UnplacedReason[] }[];
  /** Offers from which nothing was placed, in input order: decline them. */
  unusedOfferIds: string[];
}

interface OfferSlot {
  offer: OfferView;
  remaining: Resources;
  used: boolean;
}

interface Pending {
  demand: InstanceDemand;
  left: number;
  stuck: boolean;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Instances of each app per agent: existing ones plus those placed in this pass. */
class SpreadCounter {
  private readonly placed = new Map<string, Map<string, number>>();

  constructor(private readonly existing: ReadonlyMap<string, ReadonlyMap<string, number>>) {}

  get(appId: string, agentId: string): number {
    return (this.existing.get(appId)?.get(agentId) ?? 0) + (this.placed.get(appId)?.get(agentId) ?? 0);
  }

  add(appId: string, agentId: string): void {
    let perAgent = this.placed.get(appId);
    if (perAgent === undefined) {
      perAgent = new Map();
      this.placed.set(appId, perAgent);
    }
    perAgent.set(agentId, (perAgent.get(agentId) ?? 0) + 1);
  }
}

/**
 * The offer for one more instance of `demand`: among offers whose remaining resources still fit,
 * the agent with the fewest instances of the app, then most remaining mem, then agentId, offerId.
 */
function pickOffer(
  slots: readonly OfferSlot[],
  demand: InstanceDemand,
  spread: SpreadCounter,
): OfferSlot | undefined {
  let best: OfferSlot | undefined;
  let bestCount = 0;
  for (const slot of slots) {
    if (missingResources(demand.resources, slot.remaining).length > 0) continue;
    const count = spread.get(demand.appId, slot.offer.agentId);
    if (best === undefined) {
      best = slot;
      bestCount = count;
      continue;
    }
    const better =
      count - bestCount ||
      best.remaining.mem - slot.remaining.mem ||
      compareStrings(slot.offer.agentId, best.offer.agentId) ||
      compareStrings(slot.offer.offerId, best.offer.offerId);
    if (better < 0) {
      best = slot;
      bestCount = count;
    }
  }
  return best;
}

/** Per agent, the dimensions its closest offer lacks; counted per dimension. */
function explain(slots: readonly OfferSlot[], need: Resources): UnplacedReason[] {
  if (slots.length === 0) return [{ kind: "no_offers" }];
  const closestPerAgent = new Map<string, ResourceName[]>();
  for (const slot of slots) {
    const missing = missingResources(need, slot.remaining);
    const prev = closestPerAgent.get(slot.offer.agentId);
    if (prev === undefined || missing.length < prev.length) closestPerAgent.set(slot.offer.agentId, missing);
  }
  const counts: Record<ResourceName, number> = { cpus: 0, mem: 0, disk: 0, ports: 0 };
  for (const missing of closestPerAgent.values()) {
    for (const r of missing) counts[r] += 1;
  }
  const reasons: UnplacedReason[] = [];
  for (const resource of ["cpus", "mem", "disk", "ports"] as const) {
    if (counts[resource] > 0) reasons.push({ kind: "insufficient", resource, agents: counts[resource] });
  }
  return reasons;
}

/**
 * Match pending instances to offers. Demands are served round-robin, one instance at a time, so a
 * large app cannot starve the others. Each instance goes to the agent with the fewest instances of
 * its app that still fits (spread); several instances may come from one offer as long as their sum
 * fits. Pure and deterministic; `existingPerAgent` (appId -> agentId -> active tasks) is not mutated.
 */
export function placeInstances(
  offers: OfferView[],
  demands: InstanceDemand[],
  existingPerAgent: Map<string, Map<string, number>>,
): PlacementResult {
  const slots: OfferSlot[] = offers.map((offer) => ({
    offer,
    remaining: cloneResources(offer.resources),
    used: false,
  }));
  const spread = new SpreadCounter(existingPerAgent);
  const pending: Pending[] = demands.map((demand) => ({
    demand,
    left: Number.isFinite(demand.count) ? Math.max(0, Math.floor(demand.count)) : 0,
    stuck: false,
  }));
  const placements: Placement[] = [];

  let progress = true;
  while (progress) {
    progress = false;
    for (const p of pending) {
      if (p.left === 0 || p.stuck) continue;
      const slot = pickOffer(slots, p.demand, spread);
      if (slot === undefined) {
        // Remaining resources only shrink during a pass: this demand will not fit later either.
        p.stuck = true;
        continue;
      }
      slot.remaining = subtractResources(slot.remaining, p.demand.resources);
      slot.used = true;
      spread.add(p.demand.appId, slot.offer.agentId);
      placements.push({
        offerId: slot.offer.offerId,
        agentId: slot.offer.agentId,
        appId: p.demand.appId,
        resources: cloneResources(p.demand.resources),
      });
      p.left -= 1;
      progress = true;
    }
  }

  const unplaced = pending
    .filter((p) => p.left > 0)
    .map((p) => ({ appId: p.demand.appId, count: p.left, reasons: explain(slots, p.demand.resources) }));
  const unusedOfferIds = slots.filter((s) => !s.used).map((s) => s.offer.offerId);
  return { placements, unplaced, unusedOfferIds };
}
