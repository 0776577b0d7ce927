/**
 * The reservations of resident apps (local persistent volumes), owned by the scheduler leader and
 * kept in etcd (aggregate `residency`, keyed like the app): which agent holds each instance's
 * volumes. Reservations are made before the launch that uses them (so a task is never running on
 * volumes nobody remembers) and released with the app.
 */
import { FencedError } from "@drover/common";
import { appIdToKey, type Reservation, ResidencyAggregate, type ResidencyRecord } from "@drover/core";
import type { AggregateRead, EventStore, Leadership } from "@drover/store";

export class ResidencyStore {
  private readonly byApp = new Map<string, AggregateRead<ResidencyRecord> & { stale?: boolean }>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: EventStore,
    private readonly leadership: Leadership,
  ) {}

  async load(): Promise<void> {
    for (const v of (await this.store.load(ResidencyAggregate)).values())
      if (v.state) this.byApp.set(v.state.appId, v);
  }

  /** The app's reservations, oldest first (none for an app that is not resident). */
  of(appId: string): readonly Reservation[] {
    return this.byApp.get(appId)?.state?.reservations ?? [];
  }

  /** Apps with reservations. */
  apps(): string[] {
    return [...this.byApp.keys()].filter((id) => (this.byApp.get(id)?.state?.reservations.length ?? 0) > 0);
  }

  /** Records new reservations of `appId` (one commit). Throws when the commit fails. */
  reserve(appId: string, reservations: Reservation[]): Promise<void> {
    if (reservations.length === 0) return Promise.resolve();
    return this.serial(() => this.commit(appId, { type: "VolumesReserved", appId, reservations }));
  }

  /** Forgets the reservations of a removed app. */
  release(appId: string): Promise<void> {
    return this.serial(async () => {
      if ((await this.entry(appId)).state) await this.commit(appId, { type: "ReservationsReleased" });
    });
  }

  private async entry(appId: string): Promise<AggregateRead<ResidencyRecord>> {
    let e = this.byApp.get(appId);
    if (!e || e.stale) {
      e = await this.store.get(ResidencyAggregate, appIdToKey(appId));
      this.byApp.set(appId, e);
    }
    return e;
  }

  private async commit(
    appId: string,
    event:
      | { type: "VolumesReserved"; appId: string; reservations: Reservation[] }
      | { type: "ReservationsReleased" },
  ): Promise<void> {
    const e = await this.entry(appId);
    try {
      const res = await this.store.commit(
        this.leadership,
        [
          {
            def: ResidencyAggregate,
            id: appIdToKey(appId),
            expectedVersion: e.version,
            expectedModRevision: e.modRevision,
            legacy: e.legacy ?? false,
            state: e.state,
            events: [event],
          },
        ],
        Date.now(),
      );
      const r = res.results[0];
      if (r)
        this.byApp.set(appId, {
          state: r.state as ResidencyRecord | undefined,
          version: r.version,
          modRevision: r.modRevision,
        });
    } catch (err) {
      if (!(err instanceof FencedError)) {
        const cur = this.byApp.get(appId);
        if (cur) cur.stale = true;
      }
      throw err;
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }
}
