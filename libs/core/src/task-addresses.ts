/**
 * A task's IP addresses (TaskStatus.ipAddresses): what the runtime reported when the task turned
 * TASK_RUNNING, kept by later statuses that report none, and Marathon's shape of them.
 */
import type { TaskStatus } from "./events/task.js";

/** Marathon's `ipAddresses` entry of a task and of a `status_update_event`. */
export type MarathonIpAddress = { ipAddress: string; protocol: "IPv4" | "IPv6" };

/** "IPv6" for an address with a colon (validated addresses: TaskIpAddressSchema), else "IPv4". */
export function ipProtocolOf(address: string): "IPv4" | "IPv6" {
  return address.includes(":") ? "IPv6" : "IPv4";
}

/** Marathon's `ipAddresses` of these addresses, in order. */
export function marathonIpAddresses(addresses: readonly string[] | undefined): MarathonIpAddress[] {
  return (addresses ?? []).map((ipAddress) => ({ ipAddress, protocol: ipProtocolOf(ipAddress) }));
}

/**
 * The status to store when `next` replaces `current`. The addresses are reported once, when the task
 * turns TASK_RUNNING; a later status without any (a health or readiness update, the master's
 * TASK_KILLING or TASK_UNREACHABLE, the terminal status) keeps the ones known, as Marathon keeps
 * showing a task's addresses until it is gone. A status that reports addresses replaces them.
 * Pure; returns `next` itself when there is nothing to keep.
 */
export function keepIpAddresses(current: TaskStatus | undefined, next: TaskStatus): TaskStatus {
  if (next.ipAddresses !== undefined || current?.ipAddresses === undefined) return next;
  return { ...next, ipAddresses: current.ipAddresses };
}
