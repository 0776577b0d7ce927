import { AgentAggregate } from "./agent.js";
import type { AggregateDef } from "./aggregate.js";
import { AppAggregate } from "./app.js";
import { DeploymentAggregate } from "./deployment.js";
import { FrameworkAggregate } from "./framework.js";
import { JobAggregate } from "./job.js";
import { JobRunAggregate } from "./job-run.js";
import { ResidencyAggregate } from "./residency.js";
import { TaskAggregate } from "./task.js";

export * from "./agent.js";
export * from "./aggregate.js";
export * from "./app.js";
export * from "./app-version.js";
export * from "./deployment.js";
export * from "./framework.js";
export * from "./job.js";
export * from "./job-run.js";
export * from "./residency.js";
export * from "./task.js";

/** Every aggregate type of Drover, by name (used by replay and verification). */
export const AGGREGATES: Record<string, AggregateDef<unknown, { type: string }>> = {
  [AppAggregate.name]: AppAggregate as unknown as AggregateDef<unknown, { type: string }>,
  [TaskAggregate.name]: TaskAggregate as unknown as AggregateDef<unknown, { type: string }>,
  [AgentAggregate.name]: AgentAggregate as unknown as AggregateDef<unknown, { type: string }>,
  [FrameworkAggregate.name]: FrameworkAggregate as unknown as AggregateDef<unknown, { type: string }>,
  [ResidencyAggregate.name]: ResidencyAggregate as unknown as AggregateDef<unknown, { type: string }>,
  [DeploymentAggregate.name]: DeploymentAggregate as unknown as AggregateDef<unknown, { type: string }>,
  [JobAggregate.name]: JobAggregate as unknown as AggregateDef<unknown, { type: string }>,
  [JobRunAggregate.name]: JobRunAggregate as unknown as AggregateDef<unknown, { type: string }>,
};
