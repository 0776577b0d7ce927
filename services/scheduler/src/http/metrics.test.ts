import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "@drover/common";
import { SchedulerMetrics } from "@drover/observability";
import { memoryLeader } from "../memory-leader.js";
import { createHttpServer } from "./server.js";

test("GET /metrics is Marathon's JSON (counters, gauges, histograms); /metrics/prometheus the text", async () => {
  const metrics = new SchedulerMetrics();
  metrics.offersReceived.inc(3);
  metrics.leader.set(1);
  metrics.placement.observe(0.2);
  metrics.placement.observe(0.4);
  const m = memoryLeader();
  const http = await createHttpServer({
    service: m.service,
    log: createLogger("test", "error"),
    registry: metrics.registry,
    selfHttp: "127.0.0.1:8080",
    leaderHttp: async () => "127.0.0.1:8080",
    info: {
      frameworkName: "drover-scheduler",
      frameworkId: () => "fw-1",
      masters: [],
      role: "*",
      failoverTimeoutSeconds: 60,
      httpPort: 8080,
    },
  });
  try {
    const json = (await http.inject("/metrics")).json() as {
      version: string;
      counters: Record<string, { count: number }>;
      gauges: Record<string, { value: number }>;
      histograms: Record<string, { count: number; sum: number; mean: number }>;
      meters: object;
      timers: object;
    };
    assert.equal(json.version, "4.0.0");
    assert.deepEqual(json.counters.drover_scheduler_offers_received_total, { count: 3 });
    assert.deepEqual(json.gauges.drover_scheduler_leader, { value: 1 });
    const h = json.histograms.drover_scheduler_offer_round_seconds;
    assert.equal(h?.count, 2);
    assert.ok(Math.abs((h?.mean ?? 0) - 0.3) < 1e-9, JSON.stringify(h));
    assert.deepEqual([json.meters, json.timers], [{}, {}]);
    const text = await http.inject("/metrics/prometheus");
    assert.match(text.body, /# TYPE drover_scheduler_offers_received_total counter/);
    assert.match(String(text.headers["content-type"]), /text\/plain/);
  } finally {
    await http.close();
  }
});
