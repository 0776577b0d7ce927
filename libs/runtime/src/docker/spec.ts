/** A TaskLaunchSpec in Docker's units and shapes. Pure: nothing here talks to Docker or the disk. */
import { posix } from "node:path";
import {
  MAX_TASK_IP_ADDRESSES,
  TaskIpAddressSchema,
  type TaskPortMapping,
  type VolumeMount,
} from "@drover/core";
import type { TaskLaunchSpec } from "../executor.js";
import { buildLabels } from "./labels.js";
import { dockerParameters, type ParameterEffects } from "./parameters.js";

/** Where a task's sandbox is mounted in its container (Mesos' mapped directory), also $MESOS_SANDBOX. */
export const SANDBOX_PATH = "/mnt/mesos/sandbox";

/**
 * The container's command: `args` as given (after the image's entrypoint, no shell) when there are
 * any; else `cmd` through /bin/sh -c; else the image's default.
 */
export function containerCmd(cmd: string | undefined, args?: string[]): string[] | undefined {
  if (args && args.length > 0) return [...args];
  return cmd === undefined || cmd === "" ? undefined : ["/bin/sh", "-c", cmd];
}

export function nanoCpus(cpus: number): number {
  return Math.round(cpus * 1e9);
}

export function memoryBytes(memMiB: number): number {
  return Math.round(memMiB * 1024 * 1024);
}

export function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/**
 * Host ports of the task: each is published on the host and mapped to the same port in the
 * container (tcp and udp), so a task that listens on $PORT0 is reachable at host:$PORT0.
 */
export function portBindings(ports: readonly number[] | undefined): {
  ExposedPorts: Record<string, Record<string, never>>;
  PortBindings: Record<string, { HostPort: string }[]>;
} {
  const ExposedPorts: Record<string, Record<string, never>> = {};
  const PortBindings: Record<string, { HostPort: string }[]> = {};
  for (const p of ports ?? []) {
    for (const proto of ["tcp", "udp"]) {
      ExposedPorts[`${p}/${proto}`] = {};
      PortBindings[`${p}/${proto}`] = [{ HostPort: String(p) }];
    }
  }
  return { ExposedPorts, PortBindings };
}

type PortBindings = Record<string, { HostPort: string }[]>;
type ExposedPorts = Record<string, Record<string, never>>;

/**
 * Marathon's port mappings (bridge or a container network): each mapping with a host port is
 * published as containerPort/protocol → hostPort ("udp,tcp" publishes both); containerPort 0 means
 * the host port. A mapping without a host port (0) is only exposed, not published.
 */
export function mappedPortBindings(mappings: readonly TaskPortMapping[]): {
  ExposedPorts: ExposedPorts;
  PortBindings: PortBindings;
} {
  const ExposedPorts: ExposedPorts = {};
  const PortBindings: PortBindings = {};
  for (const m of mappings) {
    const containerPort = m.containerPort || m.hostPort;
    if (containerPort === 0) continue;
    for (const proto of m.protocol.split(",")) {
      const key = `${containerPort}/${proto}`;
      ExposedPorts[key] = {};
      if (m.hostPort > 0)
        PortBindings[key] = [...(PortBindings[key] ?? []), { HostPort: String(m.hostPort) }];
    }
  }
  return { ExposedPorts, PortBindings };
}

export interface NetworkPlan {
  /** HostConfig.NetworkMode; undefined: Docker's default (what "host" networking has always meant here). */
  NetworkMode: string | undefined;
  /** The user-defined network the task joins (container mode): it must exist on the agent. */
  networkName: string | undefined;
  ExposedPorts: ExposedPorts;
  PortBindings: PortBindings;
}

/**
 * How the task is networked. Host (no `run.network`, or mode host): Docker's default network with
 * each host port published on the same container port (portBindings), so a task listening on
 * $PORT0 answers at host:$PORT0. Bridge: Docker's `bridge` network with the port mappings. Container:
 * the named user-defined network, with the port mappings that have a host port. Without port
 * mappings, bridge and container tasks publish their host ports as host networking does.
 */
export function networkPlan(spec: Pick<TaskLaunchSpec, "ports" | "run">): NetworkPlan | { error: string } {
  const network = spec.run?.network;
  const mappings = spec.run?.portMappings;
  const ports = (): Pick<NetworkPlan, "ExposedPorts" | "PortBindings"> =>
    mappings && mappings.length > 0 ? mappedPortBindings(mappings) : portBindings(spec.ports);
  if (network === undefined || network.mode === "host") {
    return { NetworkMode: undefined, networkName: undefined, ...portBindings(spec.ports) };
  }
  if (network.mode === "bridge") return { NetworkMode: "bridge", networkName: undefined, ...ports() };
  if (network.name === undefined || network.name === "")
    return { error: "run.network: container networking needs the name of a network" };
  if (network.name === "host" || network.name === "none" || network.name.startsWith("container:"))
    return { error: `run.network.name: ${network.name} is not a user-defined network` };
  return { NetworkMode: network.name, networkName: network.name, ...ports() };
}

/** A local persistent volume to make sure of before the container is created. */
export interface PersistentVolumePlan {
  name: string;
  sizeMib: number;
  /** Where it is mounted in the container (absolute). */
  containerPath: string;
}

/** Docker's rule for volume names. */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/**
 * A volume's container path: absolute as given, or relative to the sandbox (Marathon: relative
 * container paths are in the sandbox). Undefined when it escapes the sandbox.
 */
export function containerPathOf(p: string): string | undefined {
  if (p.startsWith("/")) return posix.normalize(p);
  const abs = posix.join(SANDBOX_PATH, p);
  return abs.startsWith(`${SANDBOX_PATH}/`) ? abs : undefined;
}

/**
 * The task's volumes as `docker run -v` strings (HostConfig.Binds), plus the persistent volumes they
 * use. hostPath absolute → a bind mount of it. A persistent volume → the named Docker volume
 * `persistent.name` (created by the executor, kept when the container is removed). A relative
 * hostPath names a path in the sandbox — or, when it is the container path of one of the task's
 * persistent volumes, that volume (Marathon's idiom of a persistent volume `data` mounted again at
 * an absolute path). Paths with ':' cannot be expressed as binds and are refused.
 */
export function volumeBinds(
  volumes: readonly VolumeMount[] | undefined,
  sandboxHostPath: string,
): { binds: string[]; persistent: PersistentVolumePlan[] } | { error: string } {
  const binds: string[] = [];
  const persistent: PersistentVolumePlan[] = [];
  const byRelativePath = new Map<string, string>();
  const all = volumes ?? [];
  for (const [i, v] of all.entries()) {
    const field = `run.volumes.${i}`;
    if (v.persistent === undefined) continue;
    if (!VOLUME_NAME.test(v.persistent.name))
      return { error: `${field}.persistent.name: ${v.persistent.name} is not a valid Docker volume name` };
    if (!v.containerPath.startsWith("/"))
      byRelativePath.set(posix.normalize(v.containerPath), v.persistent.name);
  }
  for (const [i, v] of all.entries()) {
    const field = `run.volumes.${i}`;
    const mode = v.mode === "RO" ? "ro" : "rw";
    const target = containerPathOf(v.containerPath);
    if (target === undefined)
      return { error: `${field}.containerPath: ${v.containerPath} escapes the sandbox` };
    if (target.includes(":")) return { error: `${field}.containerPath: ':' cannot be bind-mounted` };
    if (v.persistent !== undefined && v.hostPath !== undefined)
      return { error: `${field}: a volume is either a hostPath or persistent, not both` };
    if (v.persistent !== undefined) {
      binds.push(`${v.persistent.name}:${target}:${mode}`);
      persistent.push({ name: v.persistent.name, sizeMib: v.persistent.sizeMib, containerPath: target });
      continue;
    }
    if (v.hostPath === undefined) return { error: `${field}: needs a hostPath or persistent` };
    if (v.hostPath.includes(":")) return { error: `${field}.hostPath: ':' cannot be bind-mounted` };
    let source: string;
    if (v.hostPath.startsWith("/")) source = posix.normalize(v.hostPath);
    else {
      const named = byRelativePath.get(posix.normalize(v.hostPath));
      if (named !== undefined) source = named;
      else {
        source = posix.join(sandboxHostPath, v.hostPath);
        if (!source.startsWith(`${sandboxHostPath}/`))
          return { error: `${field}.hostPath: ${v.hostPath} escapes the sandbox` };
      }
    }
    binds.push(`${source}:${target}:${mode}`);
  }
  return { binds, persistent };
}

/** Everything the executor needs to create a task's container, decided before anything is created. */
export interface ContainerPlan {
  /** Create options except WorkingDir, which depends on the image (see withWorkingDir). */
  options: {
    name: string;
    Image: string;
    Cmd: string[] | undefined;
    Env: string[];
    Labels: Record<string, string>;
    ExposedPorts: ExposedPorts;
    User?: string;
    Hostname?: string;
    WorkingDir?: string;
    StopSignal?: string;
    Tty?: boolean;
    HostConfig: Record<string, unknown> & { Binds: string[]; NetworkMode?: string };
  };
  networkName: string | undefined;
  persistent: PersistentVolumePlan[];
}

export interface PlanContext {
  agentId: string;
  extraLabels: Record<string, string>;
  /** The task's sandbox directory on the agent, bind-mounted at SANDBOX_PATH. */
  sandboxHostPath: string;
  containerName: string;
}

/**
 * The container of a task as Docker create options (pure). Fails, naming the field, for what cannot
 * be run: an unsupported docker parameter, a volume that escapes the sandbox, a container network
 * without a name.
 */
export function planContainer(spec: TaskLaunchSpec, ctx: PlanContext): ContainerPlan | { error: string } {
  const params = dockerParameters(spec.run?.dockerParameters);
  if (!params.ok) return { error: params.message };
  const net = networkPlan(spec);
  if ("error" in net) return net;
  const vols = volumeBinds(spec.run?.volumes, ctx.sandboxHostPath);
  if ("error" in vols) return vols;
  const e: ParameterEffects = params.effects;
  // The request is the limit, unless Marathon's resourceLimits raise it (or lift it: "unlimited",
  // 0 for Docker). Above the request, the request stays a reservation (CPU shares, memory reservation).
  const limits = spec.run?.limits;
  const memLimit = limits?.mem;
  const memory = memLimit === "unlimited" ? 0 : memoryBytes(memLimit ?? spec.mem);
  const cpuLimit = limits?.cpus;
  const labels = buildLabels(
    { ...spec, labels: { ...spec.labels, ...e.labels } },
    ctx.agentId,
    ctx.extraLabels,
  );
  const options: ContainerPlan["options"] = {
    name: ctx.containerName,
    Image: spec.image,
    Cmd: containerCmd(spec.cmd, spec.args),
    Env: [...envList({ ...spec.env, MESOS_SANDBOX: SANDBOX_PATH }), ...e.env],
    Labels: labels,
    ExposedPorts: net.ExposedPorts,
    HostConfig: {
      NanoCpus: cpuLimit === "unlimited" ? 0 : nanoCpus(cpuLimit ?? spec.cpus),
      Memory: memory,
      MemorySwap: memory === 0 ? -1 : memory,
      ...(limits?.cpus !== undefined ? { CpuShares: Math.max(2, Math.round(spec.cpus * 1024)) } : {}),
      ...(limits?.mem !== undefined ? { MemoryReservation: memoryBytes(spec.mem) } : {}),
      // Init: a tiny init (tini) as PID 1 forwards SIGTERM to the task, so a kill honours the grace
      // period instead of always waiting it out (a shell as PID 1 ignores SIGTERM).
      Init: true,
      PortBindings: net.PortBindings,
      Binds: [`${ctx.sandboxHostPath}:${SANDBOX_PATH}:rw`, ...vols.binds, ...e.binds],
      ...(net.NetworkMode !== undefined ? { NetworkMode: net.NetworkMode } : {}),
      ...(spec.run?.privileged ? { Privileged: true } : {}),
      ...e.host,
    },
  };
  const user = e.config.User ?? spec.run?.user;
  if (user !== undefined) options.User = user;
  if (e.config.Hostname !== undefined) options.Hostname = e.config.Hostname;
  if (e.config.WorkingDir !== undefined) options.WorkingDir = e.config.WorkingDir;
  if (e.config.StopSignal !== undefined) options.StopSignal = e.config.StopSignal;
  if (spec.run?.tty) options.Tty = true;
  return { options, networkName: net.networkName, persistent: vols.persistent };
}

/**
 * The working directory: a `workdir` parameter if given; else the image's own WORKDIR; else (an
 * image that declares none, such as the default image of command-only apps) the sandbox, where
 * Marathon runs a task's command and where its fetched files are.
 */
export function workingDirOf(plan: ContainerPlan, imageWorkingDir: string | undefined): string | undefined {
  if (plan.options.WorkingDir !== undefined) return plan.options.WorkingDir;
  return imageWorkingDir ? undefined : SANDBOX_PATH;
}

/**
 * The address of a container on its Docker network, for a task on the bridge or a user-defined
 * network (what health checks of a container network probe). Undefined for host networking (Docker's
 * default network here: the task is reached at the agent's host ports) and without an address.
 */
export function containerIpOf(
  networkMode: string | undefined,
  networks: Record<string, { IPAddress?: string } | undefined> | undefined,
): string | undefined {
  if (
    networkMode === undefined ||
    networkMode === "" ||
    networkMode === "default" ||
    networkMode === "host" ||
    networkMode === "none" ||
    networkMode.startsWith("container:")
  )
    return undefined;
  const ip = networks?.[networkMode]?.IPAddress;
  return ip ? ip : undefined;
}

/**
 * The task's IP addresses as ExecutorEvent.ipAddresses reports them, from `docker inspect`: on the
 * bridge or a user-defined network, each network's IPAddress and GlobalIPv6Address that is set (the
 * task's own network first, then the others by name; valid addresses only, at most
 * MAX_TASK_IP_ADDRESSES). Host networking (Docker's "host" mode, and Docker's default, which is what
 * host networking has always meant here: the task is reached at the agent's host ports) has the
 * agent's address, as Mesos reports it: `hostIp` when the agent was given one, otherwise none (the
 * Docker-internal address of a default-mode container is not where clients reach the task). "none"
 * and "container:<id>" have none.
 */
export function containerAddressesOf(
  networkMode: string | undefined,
  networks: Record<string, { IPAddress?: string; GlobalIPv6Address?: string } | undefined> | undefined,
  hostIp?: string,
): string[] {
  const valid = (a: string | undefined): a is string =>
    a !== undefined && a !== "" && TaskIpAddressSchema.safeParse(a).success;
  if (networkMode === undefined || networkMode === "" || networkMode === "default" || networkMode === "host")
    return valid(hostIp) ? [hostIp] : [];
  if (networkMode === "none" || networkMode.startsWith("container:")) return [];
  const names = Object.keys(networks ?? {}).sort((a, b) =>
    a === networkMode ? -1 : b === networkMode ? 1 : a < b ? -1 : a > b ? 1 : 0,
  );
  const out: string[] = [];
  for (const name of names) {
    const n = networks?.[name];
    for (const a of [n?.IPAddress, n?.GlobalIPv6Address]) if (valid(a) && !out.includes(a)) out.push(a);
  }
  return out.slice(0, MAX_TASK_IP_ADDRESSES);
}

/**
 * Why a task's `run` cannot be carried out at all, by any runtime (an unsupported docker parameter,
 * a volume leaving the sandbox, a container network without a name), or undefined. The simulated
 * runtime refuses what Docker would refuse with the same words.
 */
export function runProblem(spec: Pick<TaskLaunchSpec, "ports" | "run">): string | undefined {
  const params = dockerParameters(spec.run?.dockerParameters);
  if (!params.ok) return params.message;
  const net = networkPlan(spec);
  if ("error" in net) return net.error;
  const vols = volumeBinds(spec.run?.volumes, "/sandbox");
  if ("error" in vols) return vols.error;
  return undefined;
}
