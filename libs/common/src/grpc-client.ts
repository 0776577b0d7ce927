/**
 * Clients that follow the leader. A LeaderClient holds one gRPC client per known address,
 * starts with the last one that answered as leader, and on UNAVAILABLE follows the
 * `drover-leader` hint or tries the next address, until the deadline.
 */

import { randomUUID } from "node:crypto";
import {
  type CallOptions,
  type Client,
  type ClientOptions,
  credentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import { NotLeaderError, UnavailableError } from "./errors.js";
import { fromGrpcError, isUnavailable, leaderHint, REQUEST_ID_METADATA_KEY } from "./grpc-errors.js";
import { grpcClientOptions } from "./grpc-server.js";
import { sleep } from "./time.js";

export type ClientCtor<C> = new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
  options?: Partial<ClientOptions>,
) => C;

export class LeaderClient<C extends Client> {
  private readonly clients = new Map<string, C>();
  private readonly addresses: string[];
  private current = 0;
  private closed = false;

  constructor(
    private readonly ctor: ClientCtor<C>,
    addresses: string[],
  ) {
    if (addresses.length === 0) throw new Error("LeaderClient needs at least one address");
    this.addresses = [...addresses];
  }

  get address(): string {
    return this.addresses[this.current] ?? "";
  }

  client(address = this.address): C {
    if (this.closed) throw new UnavailableError("client closed");
    let c = this.clients.get(address);
    if (!c) {
      c = new this.ctor(address, credentials.createInsecure(), grpcClientOptions());
      this.clients.set(address, c);
    }
    return c;
  }

  /** Points at `address` (adding it if it was not known). */
  follow(address: string): void {
    let i = this.addresses.indexOf(address);
    if (i < 0) {
      this.addresses.push(address);
      i = this.addresses.length - 1;
    }
    this.current = i;
  }

  /** Moves to the next known address. */
  rotate(): void {
    this.current = (this.current + 1) % this.addresses.length;
  }

  /**
   * Calls a unary method on the leader, following leader hints and retrying UNAVAILABLE
   * until `timeoutMs`. Other errors are returned typed (see fromGrpcError).
   */
  async unary<Req, Res>(
    method: (c: C, req: Req, deadline: Date, cb: (err: ServiceError | null, res: Res) => void) => unknown,
    req: Req,
    timeoutMs = 15_000,
  ): Promise<Res> {
    const until = Date.now() + timeoutMs;
    let lastErr: unknown;
    while (Date.now() < until) {
      if (this.closed) throw new UnavailableError("client closed");
      const address = this.address;
      try {
        const perCall = Math.min(5_000, Math.max(500, until - Date.now()));
        return await new Promise<Res>((resolve, reject) => {
          method(this.client(address), req, new Date(Date.now() + perCall), (err, res) =>
            err ? reject(err) : resolve(res),
          );
        });
      } catch (err) {
        lastErr = err;
        if (!isUnavailable(err)) throw fromGrpcError(err);
        const hint = leaderHint(err);
        if (hint && hint !== address) this.follow(hint);
        else {
          this.rotate();
          await sleep(hint ? 200 : 100);
        }
      }
    }
    const typed = fromGrpcError(lastErr);
    if (typed instanceof NotLeaderError) throw typed;
    throw new UnavailableError(
      `no leader answered at ${this.addresses.join(", ")} within ${timeoutMs} ms: ${typed.message}`,
      { cause: lastErr },
    );
  }

  /**
   * Like unary, with the method picked by name: `leader.call((c) => c.listApps.bind(c), {})`.
   * The response type is inferred from the generated method; `headers` become call metadata.
   * Every attempt carries the same `drover-request-id`, so servers can make a retry of a call
   * whose answer was lost (DEADLINE_EXCEEDED) answer as the first attempt did.
   */
  call<Req, Res>(
    pick: (
      c: C,
    ) => (
      req: Req,
      md: Metadata,
      opts: Partial<CallOptions>,
      cb: (err: ServiceError | null, res: Res) => void,
    ) => unknown,
    req: Req,
    timeoutMs = 15_000,
    headers: Record<string, string> = {},
  ): Promise<Res> {
    const requestId = randomUUID();
    return this.unary<Req, Res>(
      (c, r, deadline, cb) => {
        const md = new Metadata();
        md.set(REQUEST_ID_METADATA_KEY, requestId);
        for (const [k, v] of Object.entries(headers)) md.set(k, v);
        return pick(c)(r, md, { deadline }, cb);
      },
      req,
      timeoutMs,
    );
  }

  close(): void {
    this.closed = true;
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
