/**
 * A fleet of simulated agents in one process. Each is the real `Agent` (its own master session,
 * registration, heartbeats, launches, kills, status updates) over its own SimulatedExecutor; all
 * share one SimulatedHost (their containers), one NATS connection and, through grpc-js's global
 * subchannel pool, one HTTP/2 connection per master address. Agents start `rampPerSecond` at a time,
 * and re-register after a lost session within a random delay of up to `reconnectSpreadMs`, so
 * thousands of registrations do not reach the master at once.
 */
import type { Bus } from "@drover/bus";
import { errorMessage, type Logger, sleep } from "@drover/common";
import { type AgentConfig, AgentConfigSchema } from "@drover/config";
import {
  SimulatedExecutor,
  SimulatedHost,
  type SimulationProfile,
  SimulationProfileSchema,
} from "@drover/runtime";
import { Agent, type AgentIdentity } from "../agent.js";
import { reconnectSpreadMs, type SimConfig } from "./config.js";

export interface FleetStats {
  started: number;
  registered: number;
  tasksRunning: number;
}

export class SimFleet {
  readonly host = new SimulatedHost();
  private readonly agents: Agent[] = [];
  private readonly executors: SimulatedExecutor[] = [];
  private readonly runs: Promise<void>[] = [];
  private readonly abort = new AbortController();
  private readonly agentConfig: AgentConfig;
  private readonly profile: SimulationProfile;

  constructor(
    private readonly config: SimConfig,
    private readonly bus: Bus,
    private readonly log: Logger,
  ) {
    this.agentConfig = AgentConfigSchema.parse({
      masters: config.masters,
      natsServers: config.nats,
      logLevel: config.logLevel,
    });
    this.profile = SimulationProfileSchema.parse({
      seed: config.seed,
      startLatencyMs: config.startLatencyMs,
      runMs: config.runMs,
      failureRate: config.failureRate,
      launchFailureRate: config.launchFailureRate,
      startingWithRunning: config.starting === "with-running",
    });
  }

  /** The id of the i-th agent of this fleet. */
  agentId(i: number): string {
    return `${this.config.idPrefix}-${this.config.firstIndex + i}`;
  }

  /** Starts the agents at `rampPerSecond`; resolves once all have started (not registered), or on stop(). */
  async start(): Promise<void> {
    const t0 = Date.now();
    for (let i = 0; i < this.config.agents && !this.abort.signal.aborted; i++) {
      const wait = t0 + (i * 1000) / this.config.rampPerSecond - Date.now();
      // Agents start in small batches: one timer per 10 ms at most, whatever the rate.
      if (wait > 10) await sleep(wait, this.abort.signal);
      if (this.abort.signal.aborted) break;
      this.startAgent(i);
    }
  }

  stats(): FleetStats {
    let registered = 0;
    for (const a of this.agents) if (a.registered) registered++;
    return { started: this.agents.length, registered, tasksRunning: this.host.running };
  }

  /** Stops every agent (their tasks stop with the process: nothing outlives a simulation). */
  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled(this.agents.map((a) => a.stop()));
    await Promise.allSettled(this.runs);
    await Promise.allSettled(this.executors.map((e) => e.close()));
    this.host.clear();
  }

  private startAgent(i: number): void {
    const index = this.config.firstIndex + i;
    const agentId = this.agentId(i);
    const identity: AgentIdentity = {
      agentId,
      hostname: agentId,
      resources: {
        cpus: this.config.cpus,
        mem: this.config.mem,
        disk: this.config.disk,
        ports: this.config.ports.map((r) => {
          const [begin = 0, end = 0] = r.split("-").map(Number);
          return { begin, end };
        }),
      },
      attributes: { rack: `r${index % 10}`, zone: `z${index % 3}`, ...this.config.attributes },
    };
    const executor = new SimulatedExecutor({ agentId, host: this.host, profile: this.profile });
    const agent = new Agent(identity, this.agentConfig, executor, this.bus, this.log.child({ agentId }), {
      reconnectJitterMs: reconnectSpreadMs(this.config),
    });
    this.executors.push(executor);
    this.agents.push(agent);
    this.runs.push(
      agent
        .run()
        .catch((err: unknown) => this.log.error("agent stopped", { agentId, err: errorMessage(err) })),
    );
  }
}
