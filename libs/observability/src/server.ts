/**
 * `GET /metrics` in Prometheus' text format, on the address each service is configured with
 * (`metricsListen`; port 0 picks a free one). A port that cannot be bound is logged and the
 * service runs on without metrics: observability never takes a service down.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { errorMessage, type Logger } from "@drover/common";
import type { Registry } from "prom-client";

export interface MetricsServer {
  /** The bound port (0 when the server could not start). */
  port: number;
  close(): Promise<void>;
}

export async function serveMetrics(registry: Registry, listen: string, log: Logger): Promise<MetricsServer> {
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i);
  const port = Number(listen.slice(i + 1));
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${errorMessage(err)}\n`),
    );
  });
  const bound = await new Promise<number>((resolve) => {
    server.once("error", (err) => {
      log.warn("metrics server not started", { listen, err: errorMessage(err) });
      resolve(0);
    });
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
  if (bound > 0)
    log.info("metrics listening", {
      url: `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${bound}/metrics`,
    });
  return {
    port: bound,
    close: () => new Promise((resolve) => (bound > 0 ? server.close(() => resolve()) : resolve())),
  };
}
