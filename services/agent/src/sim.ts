/**
 * drover-sim: N simulated agents in one process against a real master (see sim/fleet.ts and
 * `drover-sim --help`). Progress goes to stdout as one JSON object per line:
 *   {"msg":"started", …}, {"msg":"stats", started, registered, tasksRunning, rssMiB, heapMiB},
 *   {"msg":"registered", agents, ms} once every agent has registered for the first time.
 * Logs go to stderr. SIGINT / SIGTERM stop every agent and exit 0; a bad flag exits 2.
 */
import { connectBus, ensureStreams } from "@drover/bus";
import { createLogger, installProcessGuards } from "@drover/common";
import { parseSimArgs } from "./sim/config.js";
import { SimFleet } from "./sim/fleet.js";

const parsed = parseSimArgs(process.argv.slice(2), process.env);
if (!parsed.ok) {
  process.stderr.write(
    parsed.help ? parsed.error : `drover-sim: ${parsed.error}\n(drover-sim --help for usage)\n`,
  );
  process.exit(parsed.help ? 0 : 2);
}
const config = parsed.config;
const log = createLogger("sim", config.logLevel);
installProcessGuards(log);

const report = (msg: string, fields: Record<string, unknown> = {}) => {
  process.stdout.write(`${JSON.stringify({ t: new Date().toISOString(), msg, ...fields })}\n`);
};
const memory = () => {
  const m = process.memoryUsage();
  return { rssMiB: Math.round(m.rss / 2 ** 20), heapMiB: Math.round(m.heapUsed / 2 ** 20) };
};

const bus = await connectBus(config.nats, `drover-sim-${config.idPrefix}-${config.firstIndex}`, log);
await ensureStreams(bus);
const fleet = new SimFleet(config, bus, log);
const t0 = performance.now();
report("started", {
  agents: config.agents,
  first: fleet.agentId(0),
  last: fleet.agentId(config.agents - 1),
  masters: config.masters,
  rampPerSecond: config.rampPerSecond,
  ...memory(),
});

const stats =
  config.statsIntervalS > 0
    ? setInterval(() => report("stats", { ...fleet.stats(), ...memory() }), config.statsIntervalS * 1000)
    : undefined;
const registration = setInterval(() => {
  const s = fleet.stats();
  if (s.registered < config.agents) return;
  clearInterval(registration);
  report("registered", { agents: s.registered, ms: Math.round(performance.now() - t0), ...memory() });
}, 100);

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info("stopping the simulated agents", { signal });
  if (stats) clearInterval(stats);
  clearInterval(registration);
  await fleet.stop();
  await bus.close().catch(() => undefined);
  report("stopped", { signal });
  process.exit(0);
};
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));
await fleet.start();
