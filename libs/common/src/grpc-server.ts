/** Server-side helpers: every handler's error goes through toGrpcError (one boundary). */
import { type Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { toGrpcError } from "./grpc-errors.js";
import type { Logger } from "./log.js";

export function unaryHandler<Req, Res>(
  log: Logger,
  name: string,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    fn(call.request, call).then(
      (res) => callback(null, res),
      (err: unknown) => {
        const e = toGrpcError(err);
        if (e.code === 13) log.error(`${name} failed`, { err });
        else log.debug(`${name} refused`, { code: e.code, details: e.details });
        callback({ code: e.code, details: e.details, metadata: e.metadata });
      },
    );
  };
}

/** Binds an insecure listener on `listen` (host:port); resolves with the bound port. */
export function bindGrpc(server: Server, listen: string): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(listen, ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
}
