/**
 * The allocation loop: every `allocationIntervalMs`, and 20 ms after any change (coalesced), it
 * takes the ledgers (from the task index, the offer book and the pending launches: no scan of
 * all tasks), asks the pure DRF allocator for grants, turns them into offers and sends them. Its
 * other timer expires offers (rescinded; the agent is refused to that framework for 5 s, so a
 * framework that sits on offers cannot hoard an agent).
 */
import { coalesce, errorMessage } from "@drover/common";
import {
  type AgentLedger,
  addResources,
  allocate,
  DEFAULT_ROLE,
  freeCpusMem,
  isEmpty,
  type Resources,
} from "@drover/core";
import { type FrameworkEvent, toWireResources } from "@drover/proto";
import type { AgentRegistry } from "./agents.js";
import type { MasterContext } from "./context.js";
import type { FrameworkRegistry } from "./frameworks.js";
import type { TaskLifecycle } from "./tasks.js";

/** How long an expired offer's agent is not offered to the same framework again. */
const EXPIRED_OFFER_REFUSE_MS = 5000;

export interface AllocationReport {
  ms: number;
  offers: number;
  agents: number;
  frameworks: number;
}

export class AllocationLoop {
  private readonly timers: { cancel(): void }[] = [];
  private readonly coalesced: { trigger(): void; cancel(): void };
  private stopped = true;
  private lastCycleMs = 0;

  constructor(
    private readonly ctx: MasterContext,
    private readonly agents: AgentRegistry,
    private readonly frameworks: FrameworkRegistry,
    private readonly tasks: TaskLifecycle,
    private readonly onCycle?: (r: AllocationReport) => void,
  ) {
    // Triggered by every change; paced so that allocation takes at most a fifth of the time
    // (at 5,000 agents a cycle costs tens of ms, and changes arrive continuously at load).
    this.coalesced = coalesce(
      () => this.cycle(),
      () => Math.max(20, 4 * this.lastCycleMs),
      (err) => ctx.log.error("allocation failed", { err: errorMessage(err) }),
      ctx.clock,
    );
  }

  start(): void {
    this.stopped = false;
    this.timers.push(
      this.ctx.clock.setInterval(() => this.trigger(), this.ctx.config.allocationIntervalMs),
      this.ctx.clock.setInterval(() => this.expireOffers(), 1000),
    );
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) t.cancel();
    this.coalesced.cancel();
  }

  trigger(): void {
    if (!this.stopped) this.coalesced.trigger();
  }

  /** Withdraws an offer from its framework (its agent left, or it expired). */
  rescind(frameworkId: string, offerId: string): void {
    this.frameworks.send(frameworkId, { event: { $case: "rescind", value: { offerId } } });
  }

  private expireOffers(): void {
    const now = this.ctx.clock.now();
    const expired = this.ctx.offers.removeExpired(now);
    for (const o of expired) {
      this.rescind(o.frameworkId, o.offerId);
      this.ctx.offers.refuse(o.frameworkId, o.agentId, now + EXPIRED_OFFER_REFUSE_MS);
    }
    if (expired.length > 0) this.trigger();
  }

  /** One allocation (the coalesced trigger's; exposed for tests). */
  cycle(): void {
    if (this.stopped || this.agents.awaitingReregistration()) return;
    const started = performance.now();
    const now = this.ctx.clock.now();
    const { index, offers } = this.ctx;
    const ledgers: AgentLedger[] = [];
    const min = { cpus: this.ctx.config.minAllocatableCpus, mem: this.ctx.config.minAllocatableMem };
    // Only agents with something left to offer get a ledger (at fleet size nearly every agent is
    // used or offered in full); the DRF shares still count the whole cluster.
    const capacity = { cpus: 0, mem: 0 };
    const unlisted = { cpus: 0, mem: 0 };
    // Reused for every agent (this loop runs over the whole fleet each cycle: nothing built per
    // agent that is not kept).
    const usedNow = { cpus: 0, mem: 0 };
    const freeNow: Resources = { cpus: 0, mem: 0, disk: 0, ports: [] };
    for (const a of this.agents.connected()) {
      capacity.cpus += a.resources.cpus;
      capacity.mem += a.resources.mem;
      const used = index.usedOn(a.agentId);
      // Launches being committed on this agent (rarely any: then no sum, and no merge of ports).
      const pending = this.tasks.hasPendingOn(a.agentId) ? this.tasks.pendingOn(a.agentId) : undefined;
      const offered = offers.offeredOn(a.agentId);
      usedNow.cpus = used.cpus + (pending?.cpus ?? 0);
      usedNow.mem = used.mem + (pending?.mem ?? 0);
      const free = freeCpusMem({ total: a.resources, used: usedNow, offered });
      freeNow.cpus = free.cpus;
      freeNow.mem = free.mem;
      if (isEmpty(freeNow, min)) {
        // In thousandths (exact, as the allocator sums free amounts).
        unlisted.cpus = (Math.round(unlisted.cpus * 1000) + Math.round(free.cpus * 1000)) / 1000;
        unlisted.mem = (Math.round(unlisted.mem * 1000) + Math.round(free.mem * 1000)) / 1000;
        continue;
      }
      ledgers.push({
        agentId: a.agentId,
        hostname: a.hostname,
        total: a.resources,
        used: pending ? addResources(used, pending) : used,
        offered,
        attributes: a.attributes,
        connected: true,
      });
    }
    const frameworks = [...this.frameworks.connected()].map((frameworkId) => ({
      frameworkId,
      role: this.ctx.state.framework(frameworkId)?.role ?? DEFAULT_ROLE,
      connected: true,
      suppressed: this.frameworks.isSuppressed(frameworkId),
      allocated: addResources(
        addResources(index.usedBy(frameworkId), this.tasks.pendingFor(frameworkId)),
        offers.offeredTo(frameworkId),
      ),
    }));
    if (ledgers.length === 0 || frameworks.length === 0) return;
    const grants = allocate(ledgers, frameworks, offers.activeFilters(now), now, {
      minAllocatable: min,
      roles: this.ctx.config.roles,
      capacity,
      unlisted,
    });
    const byFramework = new Map<string, FrameworkEvent & { event: { $case: "offers" } }>();
    for (const g of grants) {
      const a = this.ctx.state.agent(g.agentId);
      if (!a) continue;
      const offer = offers.create(
        g.frameworkId,
        g.agentId,
        g.resources,
        now + this.ctx.config.offerTimeoutSeconds * 1000,
      );
      let ev = byFramework.get(g.frameworkId);
      if (!ev) {
        ev = { event: { $case: "offers", value: { offers: [] } } };
        byFramework.set(g.frameworkId, ev);
      }
      ev.event.value.offers.push({
        offerId: offer.offerId,
        frameworkId: g.frameworkId,
        agentId: g.agentId,
        hostname: a.hostname,
        resources: toWireResources(g.resources),
        attributes: Object.entries(a.attributes).map(([key, value]) => ({ key, value })),
      });
    }
    for (const [frameworkId, ev] of byFramework) this.frameworks.send(frameworkId, ev);
    this.lastCycleMs = performance.now() - started;
    this.onCycle?.({
      ms: this.lastCycleMs,
      offers: grants.length,
      agents: ledgers.length,
      frameworks: frameworks.length,
    });
  }
}
