export {
  type CliOptions,
  type CliResult,
  type Cluster,
  type ClusterOptions,
  httpUrlOf,
  metricsUrlOf,
  runCli,
  startCluster,
  withClusterLogs,
} from "./cluster.js";
export {
  ETCD_IMAGE,
  ensureImages,
  type Infra,
  NATS_IMAGE,
  startInfra,
  TASK_IMAGE,
  TEST_LABEL,
} from "./infra.js";
export { repoRoot } from "./paths.js";
export { freePort, LOG_DIR, type ServiceKind, type ServiceProcess, spawnService } from "./processes.js";
export { StopWaiting, type WaitOptions, waitFor, withTimeout } from "./wait.js";
