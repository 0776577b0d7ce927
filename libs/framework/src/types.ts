import type { ReadinessResult, Resources, TaskHealth, TaskRun, TaskState } from "@drover/core";

/** An offer as a framework sees it: one agent's resources, lent until used, declined or rescinded. */
export interface FrameworkOffer {
  offerId: string;
  agentId: string;
  hostname: string;
  resources: Resources;
  attributes: Record<string, string>;
}

/** What a framework asks to run. Host ports must come from the offer's port ranges. */
export interface TaskSpec {
  taskId: string;
  /** The framework's own grouping of the task (the Drover scheduler puts the app id here). */
  appId?: string;
  name?: string;
  image: string;
  /** Run by the image's shell (`/bin/sh -c`); absent: the image's default command. */
  cmd?: string;
  /** The container's command without a shell, after the image's entrypoint (not with cmd). */
  args?: string[];
  cpus: number;
  mem: number;
  disk?: number;
  ports?: number[];
  env?: Record<string, string>;
  labels?: Record<string, string>;
  /** Networking, volumes, fetch, checks and the other runtime needs of the task (Marathon's app model). */
  run?: TaskRun;
}

export interface TaskUpdate {
  taskId: string;
  agentId: string;
  appId: string;
  state: TaskState;
  message: string;
  exitCode?: number;
  timestampMs: number;
  /** Id of this update (what the SDK acknowledges). */
  uuid: string;
  /** The task's health, once its health checks have answered. */
  health?: TaskHealth;
  /** A machine-readable cause of the state, e.g. REASON_TASK_UNHEALTHY_CHECK_STATUS. */
  reason?: string;
  readiness?: ReadinessResult[];
  /** The task's IP addresses (IPv4 or IPv6 text), once its runtime reported them (at TASK_RUNNING). */
  ipAddresses?: string[];
}

/** A task of this framework as the master knows it. */
export interface FrameworkTask {
  taskId: string;
  appId: string;
  agentId: string;
  state: TaskState;
  message: string;
  createdAtMs: number;
  updatedAtMs: number;
  /** The labels it was launched with. */
  labels: Record<string, string>;
  /** The host ports it was launched with. */
  ports?: number[];
  /** The app version it was launched with (TaskRun.appVersion); absent when none was given. */
  appVersion?: string;
  /** The task's health and readiness as its last status carries them. */
  health?: TaskHealth;
  readiness?: ReadinessResult[];
  /** As TaskUpdate.ipAddresses, from the task's last status. */
  ipAddresses?: string[];
}

export interface FrameworkOptions {
  /** Master addresses (host:port); the SDK finds and follows the leader. */
  masters: string[];
  name: string;
  role?: string;
  /** Reconnect with this id to keep the tasks of an earlier run. */
  frameworkId?: string;
  /** How long the master keeps this framework's tasks after it disconnects (default 60 s). */
  failoverTimeoutSeconds?: number;
}

export interface FrameworkHandlers {
  subscribed?(frameworkId: string): void | Promise<void>;
  /** Offers to use (launch) or decline; offers left unanswered time out on the master. */
  offers?(offers: FrameworkOffer[]): void | Promise<void>;
  /** A task status update; acknowledged automatically once the handler returns. */
  update?(update: TaskUpdate): void | Promise<void>;
  rescind?(offerId: string): void | Promise<void>;
  /** The connection to the master dropped; the SDK reconnects by itself. */
  disconnected?(reason: string): void;
}
