/**
 * The offer ledger of the leader: outstanding offers, with what is offered per agent and per
 * framework kept incrementally (no scan of all offers per agent), and the refusal filters.
 * In memory only: offers do not survive a failover.
 */
import {
  addResources,
  emptyResources,
  expiredOffers,
  type RefuseFilter,
  type Resources,
  subtractResources,
} from "@drover/core";

export interface OutstandingOffer {
  offerId: string;
  frameworkId: string;
  agentId: string;
  resources: Resources;
  expiresAtMs: number;
}

export class OfferBook {
  readonly offers = new Map<string, OutstandingOffer>();
  private readonly byAgent = new Map<string, Set<string>>();
  private readonly byFramework = new Map<string, Set<string>>();
  private readonly offeredByAgent = new Map<string, Resources>();
  private readonly offeredByFramework = new Map<string, Resources>();
  /** Refusal filters by `<frameworkId>\0<agentId>`. */
  private readonly filters = new Map<string, RefuseFilter>();
  private seq = 0;

  constructor(private readonly now: () => number = Date.now) {}

  create(frameworkId: string, agentId: string, resources: Resources, expiresAtMs: number): OutstandingOffer {
    this.seq += 1;
    const offer: OutstandingOffer = {
      offerId: `o-${this.now().toString(36)}-${this.seq}`,
      frameworkId,
      agentId,
      resources,
      expiresAtMs,
    };
    this.offers.set(offer.offerId, offer);
    index(this.byAgent, agentId, offer.offerId);
    index(this.byFramework, frameworkId, offer.offerId);
    this.offeredByAgent.set(agentId, addResources(this.offeredOn(agentId), resources));
    this.offeredByFramework.set(frameworkId, addResources(this.offeredTo(frameworkId), resources));
    return offer;
  }

  offeredOn(agentId: string): Resources {
    return this.offeredByAgent.get(agentId) ?? emptyResources();
  }

  offeredTo(frameworkId: string): Resources {
    return this.offeredByFramework.get(frameworkId) ?? emptyResources();
  }

  remove(offerId: string): OutstandingOffer | undefined {
    const o = this.offers.get(offerId);
    if (!o) return undefined;
    this.offers.delete(offerId);
    // The last offer of an agent or framework resets its total to exactly zero (no float drift).
    if (unindex(this.byAgent, o.agentId, offerId)) this.offeredByAgent.delete(o.agentId);
    else this.offeredByAgent.set(o.agentId, subtractResources(this.offeredOn(o.agentId), o.resources));
    if (unindex(this.byFramework, o.frameworkId, offerId)) this.offeredByFramework.delete(o.frameworkId);
    else
      this.offeredByFramework.set(
        o.frameworkId,
        subtractResources(this.offeredTo(o.frameworkId), o.resources),
      );
    return o;
  }

  /** Removes and returns the offers on one agent. */
  removeOnAgent(agentId: string): OutstandingOffer[] {
    return [...(this.byAgent.get(agentId) ?? [])].flatMap((id) => this.remove(id) ?? []);
  }

  /** Removes and returns the offers of one framework. */
  removeOfFramework(frameworkId: string): OutstandingOffer[] {
    return [...(this.byFramework.get(frameworkId) ?? [])].flatMap((id) => this.remove(id) ?? []);
  }

  /** Removes and returns the offers past their expiry. */
  removeExpired(nowMs: number): OutstandingOffer[] {
    return expiredOffers(this.offers.values(), nowMs).flatMap((o) => this.remove(o.offerId) ?? []);
  }

  refuse(frameworkId: string, agentId: string, untilMs: number): void {
    this.filters.set(`${frameworkId}\0${agentId}`, { frameworkId, agentId, untilMs });
  }

  revive(frameworkId: string): void {
    for (const [k, f] of this.filters) if (f.frameworkId === frameworkId) this.filters.delete(k);
  }

  /** The filters in force (expired ones are dropped). */
  activeFilters(nowMs: number): RefuseFilter[] {
    const out: RefuseFilter[] = [];
    for (const [k, f] of this.filters) {
      if (f.untilMs > nowMs) out.push(f);
      else this.filters.delete(k);
    }
    return out;
  }
}

function index(m: Map<string, Set<string>>, key: string, id: string): void {
  let s = m.get(key);
  if (!s) {
    s = new Set();
    m.set(key, s);
  }
  s.add(id);
}

/** Removes `id`; true when `key` has no ids left. */
function unindex(m: Map<string, Set<string>>, key: string, id: string): boolean {
  const s = m.get(key);
  if (!s) return true;
  s.delete(id);
  if (s.size > 0) return false;
  m.delete(key);
  return true;
}
