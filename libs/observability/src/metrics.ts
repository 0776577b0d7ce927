/**
 * The metrics of each Drover service, in one place (names `drover_<service>_…`). Each service
 * creates its set on its own registry (with Node's default process metrics) and serves it on
 * `GET /metrics`; the benchmarks read them.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

const LATENCY_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];
const TXN_OPS_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 96, 128];

function registry(service: string): Registry {
  const r = new Registry();
  r.setDefaultLabels({ service });
  collectDefaultMetrics({ register: r, prefix: `drover_${service}_` });
  return r;
}

/** What the master's gauges read at scrape time (the current leader; undefined on a follower). */
export interface MasterGaugeSource {
  tasksByState(): Map<string, number>;
  readonly connectedAgents: number;
  readonly connectedFrameworks: number;
  readonly commitBacklog: number;
}

export class MasterMetrics {
  readonly registry = registry("master");
  /** Set by the service: where the gauges read from. */
  source: () => MasterGaugeSource | undefined = () => undefined;
  readonly leader = new Gauge({
    name: "drover_master_leader",
    help: "1 while this replica leads",
    registers: [this.registry],
  });
  readonly transactions = new Counter({
    name: "drover_master_etcd_transactions_total",
    help: "etcd transactions sent by group commit, by result",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly transactionOps = new Histogram({
    name: "drover_master_etcd_transaction_ops",
    help: "operations per etcd transaction",
    buckets: TXN_OPS_BUCKETS,
    registers: [this.registry],
  });
  readonly changesCommitted = new Counter({
    name: "drover_master_changes_committed_total",
    help: "aggregate changes committed (events plus projections)",
    registers: [this.registry],
  });
  readonly etcdOps = new Counter({
    name: "drover_master_etcd_ops_total",
    help: "etcd operations in committed transactions",
    registers: [this.registry],
  });
  readonly commitLatency = new Histogram({
    name: "drover_master_commit_seconds",
    help: "latency of one etcd transaction",
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly offers = new Counter({
    name: "drover_master_offers_total",
    help: "offers made",
    registers: [this.registry],
  });
  readonly accepts = new Counter({
    name: "drover_master_accepts_total",
    help: "accept calls, by result",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly launches = new Counter({
    name: "drover_master_tasks_launched_total",
    help: "tasks committed as launched and sent to their agent",
    registers: [this.registry],
  });
  readonly statusUpdates = new Counter({
    name: "drover_master_status_updates_total",
    help: "task status updates received from agents",
    registers: [this.registry],
  });
  readonly tasks: Gauge<"state"> = new Gauge({
    name: "drover_master_tasks",
    help: "tasks known to the leader, by state",
    labelNames: ["state"] as const,
    registers: [this.registry],
    collect: () => {
      this.tasks.reset();
      for (const [state, n] of this.source()?.tasksByState() ?? []) this.tasks.set({ state }, n);
    },
  });
  readonly agentsConnected: Gauge = new Gauge({
    name: "drover_master_agents_connected",
    help: "agents with a session",
    registers: [this.registry],
    collect: () => this.agentsConnected.set(this.source()?.connectedAgents ?? 0),
  });
  readonly frameworksConnected: Gauge = new Gauge({
    name: "drover_master_frameworks_connected",
    help: "subscribed frameworks",
    registers: [this.registry],
    collect: () => this.frameworksConnected.set(this.source()?.connectedFrameworks ?? 0),
  });
  readonly allocationCycle = new Histogram({
    name: "drover_master_allocation_cycle_seconds",
    help: "time of one allocation cycle",
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly commitBacklog: Gauge = new Gauge({
    name: "drover_master_commit_backlog",
    help: "changes waiting for a transaction",
    registers: [this.registry],
    collect: () => this.commitBacklog.set(this.source()?.commitBacklog ?? 0),
  });
  readonly logEventsRemoved = new Counter({
    name: "drover_master_log_events_removed_total",
    help: "events removed from the etcd log by retention",
    registers: [this.registry],
  });
}

/** What the scheduler's gauges read at scrape time (undefined on a follower). */
export interface SchedulerGaugeSource {
  readonly apps: number;
  tasksByState(): Map<string, number>;
}

export class SchedulerMetrics {
  readonly registry = registry("scheduler");
  /** Set by the service: where the gauges read from. */
  source: () => SchedulerGaugeSource | undefined = () => undefined;
  readonly leader = new Gauge({
    name: "drover_scheduler_leader",
    help: "1 while this replica leads",
    registers: [this.registry],
  });
  readonly offersReceived = new Counter({
    name: "drover_scheduler_offers_received_total",
    help: "offers received from the master",
    registers: [this.registry],
  });
  readonly accepts = new Counter({
    name: "drover_scheduler_accepts_total",
    help: "accepts sent, by result",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly launches = new Counter({
    name: "drover_scheduler_tasks_launched_total",
    help: "tasks the master launched for this scheduler",
    registers: [this.registry],
  });
  readonly placement = new Histogram({
    name: "drover_scheduler_offer_round_seconds",
    help: "time to place one round of offers (placement and accepts)",
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly appsPlanned = new Counter({
    name: "drover_scheduler_converge_apps_planned_total",
    help: "apps planned by the converge loop (a steady app is planned only when its tasks change or on a full pass)",
    registers: [this.registry],
  });
  readonly converges = new Counter({
    name: "drover_scheduler_converges_total",
    help: "converge passes",
    registers: [this.registry],
  });
  readonly apps: Gauge = new Gauge({
    name: "drover_scheduler_apps",
    help: "apps",
    registers: [this.registry],
    collect: () => this.apps.set(this.source()?.apps ?? 0),
  });
  readonly tasks: Gauge<"state"> = new Gauge({
    name: "drover_scheduler_tasks",
    help: "tasks in the scheduler's view, by state",
    labelNames: ["state"] as const,
    registers: [this.registry],
    collect: () => {
      this.tasks.reset();
      for (const [state, n] of this.source()?.tasksByState() ?? []) this.tasks.set({ state }, n);
    },
  });
}

/** What the agent's gauges read at scrape time. */
export interface AgentGaugeSource {
  readonly connected: boolean;
  tasksByState(): Map<string, number>;
}

export class AgentMetrics {
  readonly registry = registry("agent");
  /** Set by the service: where the gauges read from. */
  source: () => AgentGaugeSource | undefined = () => undefined;
  readonly connected: Gauge = new Gauge({
    name: "drover_agent_session_connected",
    help: "1 while the agent holds a registered session with the master leader",
    registers: [this.registry],
    collect: () => this.connected.set(this.source()?.connected ? 1 : 0),
  });
  readonly launches = new Counter({
    name: "drover_agent_tasks_launched_total",
    help: "launch commands carried out",
    registers: [this.registry],
  });
  readonly statusUpdates = new Counter({
    name: "drover_agent_status_updates_total",
    help: "status updates published",
    registers: [this.registry],
  });
  readonly tasks: Gauge<"state"> = new Gauge({
    name: "drover_agent_tasks",
    help: "tasks on this agent, by state",
    labelNames: ["state"] as const,
    registers: [this.registry],
    collect: () => {
      this.tasks.reset();
      for (const [state, n] of this.source()?.tasksByState() ?? []) this.tasks.set({ state }, n);
    },
  });
}
