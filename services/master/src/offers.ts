/** Outstanding offers and refusal filters of the leader (in memory: offers do not survive a failover). */
import { addResources, emptyResources, type RefuseFilter, type Resources } from "@drover/core";

export interface OutstandingOffer {
  offerId: string;
  frameworkId: string;
  agentId: string;
  resources: Resources;
  expiresAtMs: number;
}

export class OfferBook {
  readonly offers = new Map<string, OutstandingOffer>();
  private filters: RefuseFilter[] = [];
  private seq = 0;

  create(frameworkId: string, agentId: string, resources: Resources, expiresAtMs: number): OutstandingOffer {
    this.seq += 1;
    const offer: OutstandingOffer = {
      offerId: `o-${Date.now().toString(36)}-${this.seq}`,
      frameworkId,
      agentId,
      resources,
      expiresAtMs,
    };
    this.offers.set(offer.offerId, offer);
    return offer;
  }

  offeredOn(agentId: string): Resources {
    let r = emptyResources();
    for (const o of this.offers.values()) if (o.agentId === agentId) r = addResources(r, o.resources);
    return r;
  }

  offeredTo(frameworkId: string): Resources {
    let r = emptyResources();
    for (const o of this.offers.values()) if (o.frameworkId === frameworkId) r = addResources(r, o.resources);
    return r;
  }

  remove(offerId: string): OutstandingOffer | undefined {
    const o = this.offers.get(offerId);
    this.offers.delete(offerId);
    return o;
  }

  /** Removes and returns the offers matching `pred`. */
  removeWhere(pred: (o: OutstandingOffer) => boolean): OutstandingOffer[] {
    const out: OutstandingOffer[] = [];
    for (const o of this.offers.values()) if (pred(o)) out.push(o);
    for (const o of out) this.offers.delete(o.offerId);
    return out;
  }

  refuse(frameworkId: string, agentId: string, untilMs: number): void {
    this.filters = this.filters.filter((f) => !(f.frameworkId === frameworkId && f.agentId === agentId));
    this.filters.push({ frameworkId, agentId, untilMs });
  }

  revive(frameworkId: string): void {
    this.filters = this.filters.filter((f) => f.frameworkId !== frameworkId);
  }

  activeFilters(nowMs: number): RefuseFilter[] {
    this.filters = this.filters.filter((f) => f.untilMs > nowMs);
    return this.filters;
  }
}
