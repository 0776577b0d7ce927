/**
 * Leader election on an etcd lease, as etcd's `concurrency` package does it: a session is
 * a lease with keep-alive; a campaign creates `/drover/election/<service>/<lease>` bound to
 * the lease; the candidate with the lowest create revision leads. Every write of a leader
 * is fenced: its transaction compares the leader key's create revision (see `fence`), so a
 * deposed leader's write fails. Leadership ends when the lease is lost, the key vanishes,
 * or resign() is called; `lost` then resolves and the caller must stop acting as leader.
 */

import { errorMessage, type Logger, sleep } from "@drover/common";
import { CompareResult, CompareTarget, type Etcd3, type ICompare, type IKeyValue, type Lease } from "etcd3";
import { ELECTION_PREFIX } from "./keys.js";

export interface Leadership {
  readonly service: string;
  readonly key: string;
  readonly createRevision: string;
  /** Resolves when this leadership is over (lease lost, key deleted, resigned). */
  readonly lost: Promise<void>;
  /** False once the term is over, or its keep-alive is overdue (checked when asked). */
  isLeader(): boolean;
  /** The compare that fences a write to this leadership. */
  fence(): ICompare;
  /** Gives up leadership at once (deletes the key, revokes the lease). */
  resign(): Promise<void>;
}

export class LeaderElection {
  private readonly prefix: string;

  constructor(
    private readonly client: Etcd3,
    readonly service: string,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {
    this.prefix = `${ELECTION_PREFIX}${service}/`;
  }

  /** The current leader's value (its advertised address), if any. */
  async leader(): Promise<string | undefined> {
    const res = await this.client.getAll().prefix(this.prefix).sort("Create", "Ascend").limit(1).exec();
    const kv = res.kvs[0];
    return kv ? kv.value.toString() : undefined;
  }

  /** Campaigns until this process leads, or `signal` aborts (then rejects). */
  async campaign(value: string, signal?: AbortSignal): Promise<Leadership> {
    const lease: Lease = this.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    let lostResolve: () => void = () => {};
    const lost = new Promise<void>((r) => {
      lostResolve = r;
    });
    let over = false;
    const end = (why: string) => {
      if (over) return;
      over = true;
      this.log.warn("leadership session ended", { service: this.service, why });
      lostResolve();
    };
    lease.on("lost", (err) => end(`lease lost: ${err.message}`));
    // etcd3 reports a lost lease only after 2×TTL without keep-alive, while etcd may elect a new
    // leader after 1×TTL: end the term locally before the lease can have expired on the server.
    let lastKeepAliveMs = Date.now();
    lease.on("keepaliveSucceeded", () => {
      lastKeepAliveMs = Date.now();
    });
    const overdueMs = Math.max((this.ttlSeconds * 1000 * 2) / 3, this.ttlSeconds * 1000 - 1000);
    const guard = setInterval(() => {
      if (Date.now() - lastKeepAliveMs > overdueMs) end(`keep-alive overdue by more than ${overdueMs} ms`);
    }, 200);
    void lost.then(() => clearInterval(guard));
    try {
      const leaseId = await lease.grant();
      lastKeepAliveMs = Date.now();
      const key = `${this.prefix}${BigInt(leaseId).toString(16)}`;
      const put = await this.client
        .if(key, "Create", "==", 0)
        .then(this.client.put(key).value(value).lease(leaseId))
        .else(this.client.get(key))
        .commit();
      let createRevision: string;
      if (put.succeeded) createRevision = put.header.revision;
      else {
        const kv = put.responses[0]?.response_range?.kvs[0];
        if (!kv) throw new Error("election key vanished during campaign");
        createRevision = kv.create_revision;
      }

      const fence = (): ICompare => ({
        key: Buffer.from(key),
        target: CompareTarget.Create,
        result: CompareResult.Equal,
        create_revision: createRevision,
      });

      // Wait until no candidate has a lower create revision.
      for (;;) {
        if (signal?.aborted || over)
          throw new Error(over ? "lease lost while campaigning" : "campaign aborted");
        const res = await this.client
          .getAll()
          .prefix(this.prefix)
          .maxCreateRevision(String(BigInt(createRevision) - 1n))
          .sort("Create", "Descend")
          .limit(1)
          .exec();
        const pred: IKeyValue | undefined = res.kvs[0];
        if (!pred) break;
        await this.waitDeleted(pred.key.toString(), res.header.revision, signal, lost);
      }

      // Watch our own key: if it disappears we are no longer the leader.
      const watcher = await this.client.watch().key(key).create();
      watcher.on("delete", () => end("leader key deleted"));
      watcher.on("error", () => undefined);
      void lost.then(() => watcher.cancel().catch(() => undefined));

      this.log.info("elected leader", { service: this.service, key, createRevision });
      return {
        service: this.service,
        key,
        createRevision,
        lost,
        // Checked at the moment of asking, not only by the 200 ms guard: a process that was paused
        // past its TTL (GC, SIGSTOP) learns it at its first command, before sending it.
        isLeader: () => {
          if (!over && Date.now() - lastKeepAliveMs > overdueMs)
            end(`keep-alive overdue by more than ${overdueMs} ms`);
          return !over;
        },
        fence,
        resign: async () => {
          end("resigned");
          await this.client
            .if(key, "Create", "==", createRevision)
            .then(this.client.delete().key(key))
            .commit()
            .catch(() => undefined);
          await lease.revoke().catch(() => undefined);
        },
      };
    } catch (err) {
      // A failed campaign must not leave a candidate key alive (it would block every later campaign).
      end("campaign failed");
      await lease.revoke().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Leads whenever it can until `signal` aborts: campaigns, runs `term` while leading (it must
   * return once `leadership.lost` resolves), then gives the key up at once — whatever ended the
   * term, a lost lease or a failure while starting — and campaigns again.
   */
  async serve(
    value: string,
    signal: AbortSignal,
    term: (leadership: Leadership) => Promise<void>,
  ): Promise<void> {
    while (!signal.aborted) {
      try {
        const leadership = await this.campaign(value, signal);
        try {
          await term(leadership);
        } finally {
          await leadership.resign().catch(() => undefined);
        }
      } catch (err) {
        if (signal.aborted) break;
        this.log.error("leadership attempt failed", { service: this.service, err: errorMessage(err) });
        await sleep(1000, signal);
      }
    }
  }

  private async waitDeleted(
    key: string,
    revision: string,
    signal: AbortSignal | undefined,
    lost: Promise<void>,
  ) {
    const watcher = await this.client
      .watch()
      .key(key)
      .startRevision(String(BigInt(revision) + 1n))
      .create();
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve) => {
        watcher.on("delete", () => resolve());
        onAbort = () => resolve();
        signal?.addEventListener("abort", onAbort, { once: true });
        void lost.then(() => resolve());
        // A predecessor may already be gone between our read and the watch: re-check.
        void this.client
          .get(key)
          .exists()
          .then((exists) => {
            if (!exists) resolve();
          })
          .catch(() => resolve()); // the caller re-checks
      });
    } finally {
      // Each predecessor wait removes its listener: a long campaign does not accumulate them (D15).
      if (onAbort) signal?.removeEventListener("abort", onAbort);
      await watcher.cancel().catch(() => undefined);
    }
  }
}
