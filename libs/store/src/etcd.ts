/**
 * The etcd client as every Drover process configures it, and the translation of its errors.
 *
 * - Every unary call has a deadline (`timeoutMs`): a store that does not answer becomes
 *   UnavailableError within that bound, never a hang.
 * - The circuit breaker and the retries act only on a host that is unreachable (UNAVAILABLE).
 *   etcd3's default breaker also opens on RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED and others,
 *   so one refused (oversized) request blocked every unrelated call for 5 s.
 * - Writes larger than etcd accepts are refused before they are sent (see StoreLimits).
 */
import { TooLargeError, UnavailableError } from "@drover/common";
import {
  ConsecutiveBreaker,
  ConstantBackoff,
  circuitBreaker,
  handleType,
  isBrokenCircuitError,
  retry,
} from "cockatiel";
import { Etcd3, GRPCDeadlineExceededError, GRPCResourceExhastedError, GRPCUnavailableError } from "etcd3";

export interface EtcdOptions {
  /** Deadline of every unary call (ms). */
  timeoutMs?: number;
}

export const DEFAULT_STORE_TIMEOUT_MS = 3000;

/** Largest etcd answer this client takes (a page of the log or of the projections is far smaller). */
const MAX_RECEIVE_BYTES = 64 * 1024 * 1024;

export function connectEtcd(endpoints: string[], options: EtcdOptions = {}): Etcd3 {
  const timeoutMs = options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
  return new Etcd3({
    hosts: endpoints,
    dialTimeout: Math.min(3000, timeoutMs),
    grpcOptions: { "grpc.max_receive_message_length": MAX_RECEIVE_BYTES },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    faultHandling: {
      host: () =>
        circuitBreaker(handleType(GRPCUnavailableError), {
          halfOpenAfter: 1000,
          breaker: new ConsecutiveBreaker(3),
        }),
      global: retry(handleType(GRPCUnavailableError), { maxAttempts: 1, backoff: new ConstantBackoff(100) }),
    },
  });
}

/**
 * etcd's failures as Drover errors: no answer → UnavailableError, a refused size →
 * TooLargeError; anything else is returned as it is (a bug, INTERNAL).
 */
export function storeError(err: unknown, what: string): unknown {
  if (err instanceof GRPCDeadlineExceededError)
    return new UnavailableError(`the store did not answer in time (${what})`, { cause: err });
  if (err instanceof GRPCUnavailableError || isBrokenCircuitError(err))
    return new UnavailableError(`the store is unreachable (${what})`, { cause: err });
  if (err instanceof GRPCResourceExhastedError)
    return new TooLargeError(`the store refused ${what} as too large`);
  return err;
}

/** Runs one store call with its errors translated (see storeError). */
export async function storeCall<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw storeError(err, what);
  }
}
