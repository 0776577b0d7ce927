/**
 * Marathon's `container.docker.parameters` ({key, value} pairs that Mesos passed to `docker run` as
 * `--key=value`) mapped onto the Engine API's create options. Pure. A key repeated accumulates, as the
 * flag does on the command line (label, env, volume, cap-add, …); for a single-valued flag the last
 * one wins. A key outside SUPPORTED fails the launch: Drover never drops a flag silently.
 */

export interface DockerParameter {
  key: string;
  value: string;
}

export interface Ulimit {
  Name: string;
  Soft: number;
  Hard: number;
}

export interface DeviceMapping {
  PathOnHost: string;
  PathInContainer: string;
  CgroupPermissions: string;
}

/** What the parameters add to a container's create options. */
export interface ParameterEffects {
  labels: Record<string, string>;
  /** `NAME=value`, after the task's own environment (so a parameter wins, as the later `-e` does). */
  env: string[];
  /** `host:container[:options]`, as `docker run -v` takes them. */
  binds: string[];
  config: { Hostname?: string; WorkingDir?: string; User?: string; StopSignal?: string };
  host: {
    CapAdd?: string[];
    CapDrop?: string[];
    Ulimits?: Ulimit[];
    ExtraHosts?: string[];
    Dns?: string[];
    DnsSearch?: string[];
    DnsOptions?: string[];
    MemorySwap?: number;
    MemorySwappiness?: number;
    PidsLimit?: number;
    ShmSize?: number;
    LogConfig?: { Type: string; Config: Record<string, string> };
    SecurityOpt?: string[];
    Sysctls?: Record<string, string>;
    Init?: boolean;
    ReadonlyRootfs?: boolean;
    Tmpfs?: Record<string, string>;
    Devices?: DeviceMapping[];
    GroupAdd?: string[];
  };
}

export type ParametersResult = { ok: true; effects: ParameterEffects } | { ok: false; message: string };

const FIELD = "container.docker.parameters";

const ULIMIT_NAMES = new Set([
  "core",
  "cpu",
  "data",
  "fsize",
  "locks",
  "memlock",
  "msgqueue",
  "nice",
  "nofile",
  "nproc",
  "rss",
  "rtprio",
  "rttime",
  "sigpending",
  "stack",
]);

class ParameterError extends Error {}

type Apply = (e: ParameterEffects, value: string) => void;

const push = <T>(list: T[] | undefined, item: T): T[] => [...(list ?? []), item];

/** The `docker run` flags Drover maps, by their long name without dashes. */
const APPLY: Record<string, Apply> = {
  label: (e, v) => {
    const [k, val] = keyValue(v, "label", false);
    e.labels[k] = val;
  },
  env: (e, v) => {
    const [k, val] = keyValue(v, "env", true);
    e.env.push(`${k}=${val}`);
  },
  volume: (e, v) => {
    const parts = v.split(":");
    if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === ""))
      throw new ParameterError("must be host-path-or-volume:container-path[:options]");
    e.binds.push(v);
  },
  hostname: (e, v) => {
    e.config.Hostname = nonEmpty(v);
  },
  "cap-add": (e, v) => {
    e.host.CapAdd = push(e.host.CapAdd, nonEmpty(v));
  },
  "cap-drop": (e, v) => {
    e.host.CapDrop = push(e.host.CapDrop, nonEmpty(v));
  },
  ulimit: (e, v) => {
    const u = parseUlimit(v);
    e.host.Ulimits = [...(e.host.Ulimits ?? []).filter((x) => x.Name !== u.Name), u];
  },
  "add-host": (e, v) => {
    const i = v.indexOf(":");
    if (i <= 0 || i === v.length - 1) throw new ParameterError("must be host:ip");
    e.host.ExtraHosts = push(e.host.ExtraHosts, v);
  },
  dns: (e, v) => {
    e.host.Dns = push(e.host.Dns, nonEmpty(v));
  },
  "dns-search": (e, v) => {
    e.host.DnsSearch = push(e.host.DnsSearch, nonEmpty(v));
  },
  "dns-option": (e, v) => {
    e.host.DnsOptions = push(e.host.DnsOptions, nonEmpty(v));
  },
  workdir: (e, v) => {
    if (!v.startsWith("/")) throw new ParameterError("must be an absolute path");
    e.config.WorkingDir = v;
  },
  "memory-swap": (e, v) => {
    e.host.MemorySwap = v.trim() === "-1" ? -1 : parseBytes(v);
  },
  "memory-swappiness": (e, v) => {
    const n = Number(v.trim());
    if (!Number.isInteger(n) || n < 0 || n > 100)
      throw new ParameterError("must be an integer from 0 to 100");
    e.host.MemorySwappiness = n;
  },
  "pids-limit": (e, v) => {
    const n = Number(v.trim());
    if (!Number.isInteger(n) || n < -1 || n === 0)
      throw new ParameterError("must be a positive integer, or -1 for none");
    e.host.PidsLimit = n;
  },
  "shm-size": (e, v) => {
    e.host.ShmSize = parseBytes(v);
  },
  "log-driver": (e, v) => {
    e.host.LogConfig = { Type: nonEmpty(v), Config: e.host.LogConfig?.Config ?? {} };
  },
  "log-opt": (e, v) => {
    const [k, val] = keyValue(v, "log-opt", true);
    e.host.LogConfig = {
      Type: e.host.LogConfig?.Type ?? "",
      Config: { ...e.host.LogConfig?.Config, [k]: val },
    };
  },
  user: (e, v) => {
    e.config.User = nonEmpty(v);
  },
  "security-opt": (e, v) => {
    e.host.SecurityOpt = push(e.host.SecurityOpt, nonEmpty(v));
  },
  sysctl: (e, v) => {
    const [k, val] = keyValue(v, "sysctl", true);
    e.host.Sysctls = { ...e.host.Sysctls, [k]: val };
  },
  init: (e, v) => {
    e.host.Init = parseBool(v);
  },
  "read-only": (e, v) => {
    e.host.ReadonlyRootfs = parseBool(v);
  },
  tmpfs: (e, v) => {
    const i = v.indexOf(":");
    const path = i < 0 ? v : v.slice(0, i);
    if (!path.startsWith("/")) throw new ParameterError("must be /absolute/path[:options]");
    e.host.Tmpfs = { ...e.host.Tmpfs, [path]: i < 0 ? "" : v.slice(i + 1) };
  },
  device: (e, v) => {
    const parts = v.split(":");
    const [onHost, inContainer, perms] = parts;
    if (parts.length > 3 || !onHost?.startsWith("/"))
      throw new ParameterError("must be /host/device[:/container/device[:permissions]]");
    e.host.Devices = push(e.host.Devices, {
      PathOnHost: onHost,
      PathInContainer: inContainer || onHost,
      CgroupPermissions: perms || "rwm",
    });
  },
  "group-add": (e, v) => {
    e.host.GroupAdd = push(e.host.GroupAdd, nonEmpty(v));
  },
  "stop-signal": (e, v) => {
    e.config.StopSignal = nonEmpty(v);
  },
};

/** The keys Drover maps (docker run's long flag names without the dashes). */
export const SUPPORTED_DOCKER_PARAMETERS: readonly string[] = Object.keys(APPLY).sort();

/**
 * Maps the parameters, or says why not: `container.docker.parameters: <key> not supported` for keys
 * Drover does not map (all of them listed), `container.docker.parameters: <key>=<value>: <reason>`
 * for a value it cannot read.
 */
export function dockerParameters(params: readonly DockerParameter[] | undefined): ParametersResult {
  const effects: ParameterEffects = { labels: {}, env: [], binds: [], config: {}, host: {} };
  const unknown = [...new Set((params ?? []).map((p) => p.key).filter((k) => !Object.hasOwn(APPLY, k)))];
  if (unknown.length > 0) return { ok: false, message: `${FIELD}: ${unknown.join(", ")} not supported` };
  for (const p of params ?? []) {
    const apply = APPLY[p.key];
    if (apply === undefined) continue;
    try {
      apply(effects, p.value);
    } catch (err) {
      if (!(err instanceof ParameterError)) throw err;
      return { ok: false, message: `${FIELD}: ${p.key}=${p.value}: ${err.message}` };
    }
  }
  return { ok: true, effects };
}

function nonEmpty(v: string): string {
  if (v.trim() === "") throw new ParameterError("must not be empty");
  return v;
}

/** `k=v`; without `=`: an error when `requireValue`, else the value "" (as `--label k` gives). */
function keyValue(v: string, what: string, requireValue: boolean): [string, string] {
  const i = v.indexOf("=");
  if (i === 0 || v === "") throw new ParameterError(`must be NAME=value`);
  if (i < 0) {
    if (requireValue) throw new ParameterError(`${what} must be NAME=value`);
    return [v, ""];
  }
  return [v.slice(0, i), v.slice(i + 1)];
}

/** As `docker run` reads a boolean flag's value: "" (the bare flag), true/false, 1/0. */
export function parseBool(v: string): boolean {
  const s = v.trim().toLowerCase();
  if (s === "" || s === "true" || s === "1") return true;
  if (s === "false" || s === "0") return false;
  throw new ParameterError("must be true or false");
}

const UNITS: Record<string, number> = {
  "": 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
};

/** Docker's RAMInBytes: "512m", "1g", "1.5GiB", "4096" (bytes); units are powers of 1024. */
export function parseBytes(v: string): number {
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp]?)(?:i?b)?$/i.exec(v.trim());
  if (!m) throw new ParameterError("must be a size such as 512m or 1g");
  const n = Number(m[1]) * (UNITS[(m[2] ?? "").toLowerCase()] ?? 1);
  if (!Number.isSafeInteger(Math.floor(n)) || n <= 0) throw new ParameterError("must be a positive size");
  return Math.floor(n);
}

/** `name=soft[:hard]` (hard defaults to soft; -1 is unlimited), as `docker run --ulimit`. */
export function parseUlimit(v: string): Ulimit {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(v.trim());
  if (!m || m[1] === undefined || m[2] === undefined)
    throw new ParameterError("must be name=soft[:hard], e.g. nofile=1024:2048");
  if (!ULIMIT_NAMES.has(m[1])) throw new ParameterError(`unknown ulimit ${m[1]}`);
  const soft = Number(m[2]);
  const hard = m[3] === undefined ? soft : Number(m[3]);
  if (hard !== -1 && soft > hard) throw new ParameterError("the soft limit exceeds the hard limit");
  return { Name: m[1], Soft: soft, Hard: hard };
}
