/**
 * Server-side helpers: every handler's error goes through toGrpcError (one boundary), every
 * request is decoded without throwing (hardenService), and every server is created with the
 * same deliberate message-size limits (grpcServerOptions).
 */
import {
  type Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import { DroverError, InvalidArgumentError } from "./errors.js";
import { REQUEST_ID_METADATA_KEY, toGrpcError } from "./grpc-errors.js";
import type { Logger } from "./log.js";
import { clip } from "./safe-text.js";

/**
 * Message size limits, on both sides of every Drover gRPC link (bytes). Requests carry at most
 * one app definition (512 KiB) or one accept; answers can list a whole cluster.
 */
export const GRPC_LIMITS = {
  /** Largest request a server takes (an Accept with many tasks is the largest legitimate one). */
  maxRequestBytes: 16 * 1024 * 1024,
  /** Largest answer (and largest stream message) a server sends and a client takes. */
  maxResponseBytes: 64 * 1024 * 1024,
} as const;

export function grpcServerOptions(): Record<string, number> {
  return {
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.max_receive_message_length": GRPC_LIMITS.maxRequestBytes,
    "grpc.max_send_message_length": GRPC_LIMITS.maxResponseBytes,
  };
}

export function grpcClientOptions(): Record<string, number> {
  return {
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.max_reconnect_backoff_ms": 1_000,
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_receive_message_length": GRPC_LIMITS.maxResponseBytes,
    "grpc.max_send_message_length": GRPC_LIMITS.maxRequestBytes,
  };
}

/**
 * What a request that could not be decoded becomes: grpc-js answers a throwing deserializer
 * with INTERNAL ("Error deserializing request"), so the hardened deserializer returns this
 * instead and the handler answers INVALID_ARGUMENT.
 */
export class UndecodableMessage {
  constructor(
    readonly method: string,
    readonly reason: string,
  ) {}

  error(): InvalidArgumentError {
    return new InvalidArgumentError([
      { path: "", message: `not a valid request for ${this.method}: ${clip(this.reason, 200)}` },
    ]);
  }
}

/** Throws the INVALID_ARGUMENT error if `message` could not be decoded. */
export function assertDecoded<T>(message: T | UndecodableMessage): T {
  if (message instanceof UndecodableMessage) throw message.error();
  return message;
}

/** The same service with request deserializers that never throw (see UndecodableMessage). */
export function hardenService<D extends ServiceDefinition>(definition: D): D {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition)) {
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return new UndecodableMessage(method.path, err instanceof Error ? err.message : String(err));
        }
      },
    };
  }
  return out as D;
}

/** Logs an error that is a bug (INTERNAL) with its stack; refusals at debug level. */
export function logRefusal(log: Logger, name: string, err: unknown, code: status, details: string): void {
  if (code === status.INTERNAL || !(err instanceof DroverError))
    log.error(`${name} failed (bug)`, { err, stack: err instanceof Error ? err.stack : undefined });
  else log.debug(`${name} refused`, { code, details });
}

export function unaryHandler<Req, Res>(
  log: Logger,
  name: string,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    const answer = (err: unknown) => {
      const e = toGrpcError(err);
      logRefusal(log, name, err, e.code, e.details);
      try {
        callback({ code: e.code, details: e.details, metadata: e.metadata });
      } catch (sendErr) {
        log.error(`${name}: the error answer could not be sent`, { err: sendErr });
      }
    };
    let pending: Promise<Res>;
    try {
      pending = fn(assertDecoded(call.request as Req | UndecodableMessage), call);
    } catch (err) {
      answer(err);
      return;
    }
    pending.then((res) => {
      try {
        callback(null, res);
      } catch (err) {
        log.error(`${name}: the answer could not be sent`, { err });
      }
    }, answer);
  };
}

/** The call's `drover-request-id` (see LeaderClient.call), when it is a plausible one (1-64 of [A-Za-z0-9-]). */
export function requestIdOf(call: { metadata: { get(key: string): unknown[] } }): string | undefined {
  const v = call.metadata.get(REQUEST_ID_METADATA_KEY)[0];
  return typeof v === "string" && /^[A-Za-z0-9-]{1,64}$/.test(v) ? v : undefined;
}

/** Binds an insecure listener on `listen` (host:port); resolves with the bound port. */
export function bindGrpc(server: Server, listen: string): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(listen, ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
}

/** A step of a service's start failed: it says which and why, and exits 1 (a named reason). */
export function startupFailed(log: Logger, step: string, err: unknown): never {
  const reason = err instanceof Error ? err.message : String(err);
  log.error(`cannot start: ${step}`, { err: reason });
  process.stderr.write(`drover: cannot start: ${step}: ${reason}\n`);
  process.exit(1);
}

/**
 * The last resort (installed once a service has started; a failure while starting exits, see
 * startupFailed): an unhandled rejection or an uncaught exception is a bug, logged with its
 * stack, and the process keeps serving. A Drover process exits only for a reason it names
 * (bad configuration, a signal), never because one request went wrong.
 */
export function installProcessGuards(log: Logger): void {
  process.on("unhandledRejection", (reason) => {
    log.error("unhandled promise rejection (bug); still serving", {
      err: reason,
      stack: reason instanceof Error ? reason.stack : undefined,
    });
  });
  process.on("uncaughtException", (err) => {
    log.error("uncaught exception (bug); still serving", { err, stack: err.stack });
  });
}
