/**
 * What the scheduler needs from a canonical definition to place and launch one task, as pure
 * functions: resources, host ports, image, command and environment, with Marathon's semantics.
 *
 * Upstream (mesosphere/marathon @ 90619da70d79): `mesos/TaskBuilder.scala` (`commandInfo`,
 * `computeContainerInfo`, `taskContextEnv`), `mesos/EnvironmentHelper.scala` (`portsEnv`,
 * `labelsToEnvVars`), `state/AppDefinition.scala` (`portNumbers`, `hostPorts`); Mesos' docker
 * containerizer runs a shell `cmd` as `--entrypoint /bin/sh <image> -c <cmd>`.
 */
import type { Resources } from "../resources.js";
import type { AppDefinition } from "./types.js";

/** True when the app uses host networking (`networks` is `[{mode: "host"}]`). */
export function isHostNetworking(def: AppDefinition): boolean {
  return !def.networks.some((n) => n.mode !== "host");
}

/** The resources one instance needs (host ports are chosen at placement: `hostPortDemand`). */
export function appResourcesOf(def: AppDefinition): Resources {
  return { cpus: def.cpus, mem: def.mem, disk: def.disk, ports: [] };
}

/**
 * The host port one instance needs for each port index, or undefined for an index without a host
 * port: 0 means any free port, another number exactly that port. Host networking: one per port
 * definition, its `port` when `requirePorts` is true, else any. Other networking: a port mapping's
 * `hostPort` (absent on container networks: no host port).
 */
export function hostPortsWanted(def: AppDefinition): (number | undefined)[] {
  if (isHostNetworking(def)) return (def.portDefinitions ?? []).map((p) => (def.requirePorts ? p.port : 0));
  return (def.container?.portMappings ?? []).map((m) => m.hostPort);
}

/**
 * The host ports one instance needs, in the shape of placement's demand: `ports` any free ones and
 * the specific `requestedPorts`. `{ports: 0, requestedPorts: []}` for an app without host ports.
 */
export function hostPortDemand(def: AppDefinition): { ports: number; requestedPorts: number[] } {
  const wanted = hostPortsWanted(def);
  return {
    ports: wanted.filter((p) => p === 0).length,
    requestedPorts: wanted.filter((p): p is number => p !== undefined && p !== 0),
  };
}

/**
 * The host port of each port index, given the ports a placement assigned (`Placement.ports`: the
 * requested ones and `ports` more). Fixed ports keep their number; the others take the assigned
 * ports that were not requested, in order. Undefined for an index without a host port, or when too
 * few ports were assigned.
 */
export function hostPortsByIndex(def: AppDefinition, assigned: readonly number[]): (number | undefined)[] {
  const wanted = hostPortsWanted(def);
  const fixed = new Set(wanted.filter((p): p is number => p !== undefined && p !== 0));
  const pool = assigned.filter((p) => !fixed.has(p));
  let next = 0;
  return wanted.map((p) => {
    if (p === undefined) return undefined;
    if (p !== 0) return p;
    const port = pool[next];
    next += 1;
    return port;
  });
}

/** The image a task runs: the app's docker image, or `defaultImage` for a command-only app. */
export function taskImage(def: AppDefinition, defaultImage: string): string {
  return def.container?.docker?.image ?? defaultImage;
}

/**
 * How a task's container runs its process, in Docker's terms: `entrypoint` replaces the image's
 * entrypoint, `cmd` its command; an absent one keeps the image's.
 *
 * - `cmd`: `/bin/sh -c <cmd>`, whatever the image's entrypoint (as Mesos runs a shell command).
 * - `args` with an image: the image's entrypoint, with `args` as its command.
 * - `args` without an image (default image): `args[0]` is the program, the rest its arguments
 *   (Mesos' command executor with `shell: false`).
 * - neither: the image's own entrypoint and command.
 */
export function taskCommand(def: AppDefinition): { entrypoint?: string[]; cmd?: string[] } {
  if (def.cmd !== undefined) return { entrypoint: ["/bin/sh", "-c"], cmd: [def.cmd] };
  const args = def.args ?? [];
  if (args.length === 0) return {};
  if (def.container?.docker !== undefined) return { cmd: [...args] };
  const [program, ...rest] = args as [string, ...string[]];
  return { entrypoint: [program], cmd: rest };
}

/** The ports the app declares, by index: container ports of its mappings, else its port definitions. */
function declaredPorts(def: AppDefinition): { name?: string | undefined; port: number }[] {
  const mappings = def.container?.portMappings ?? [];
  if (mappings.length > 0) return mappings.map((m) => ({ name: m.name, port: m.containerPort }));
  return (def.portDefinitions ?? []).map((p) => ({ name: p.name, port: p.port }));
}

/**
 * The port variables Marathon gives a task (`EnvironmentHelper.portsEnv`) and `HOST`:
 * `PORT<i>` for each port index, `PORT_<declared port>` (the host port behind a declared port; a
 * declared 0 gives `PORT_<host port>`), `PORT_<NAME>` for named ports, `PORT` (the first) and
 * `PORTS` (all, comma-separated). `hostPorts[i]` is the host port of index i (`hostPortsByIndex`),
 * undefined for a mapping without one: then the container port is used, and a container port 0
 * gets a port of its own (Marathon picks a random one above 1024; here the lowest free one, so that
 * the result is a function of the input). No port variables when `hostPorts` is empty.
 */
export function portEnv(
  def: AppDefinition,
  hostPorts: readonly (number | undefined)[],
  host?: string,
): Record<string, string> {
  const env: Record<string, string> = {};
  if (hostPorts.length > 0) {
    const declared = declaredPorts(def);
    const consumed = new Set<number>([
      ...declared.map((d) => d.port),
      ...hostPorts.filter((p): p is number => p !== undefined),
    ]);
    let candidate = 1025;
    const nextFree = (): number => {
      while (consumed.has(candidate)) candidate += 1;
      consumed.add(candidate);
      return candidate;
    };
    const generated = new Map<number, number>();
    hostPorts.forEach((hp, i) => {
      if (hp !== undefined) env[`PORT${i}`] = String(hp);
      else {
        const req = declared[i];
        if (req === undefined) return;
        if (req.port === 0) {
          const p = nextFree();
          generated.set(i, p);
          env[`PORT${i}`] = String(p);
        } else env[`PORT${i}`] = String(req.port);
      }
    });
    const n = Math.min(declared.length, hostPorts.length);
    for (const [i, req] of declared.slice(0, n).entries()) {
      const effective = hostPorts[i] ?? (req.port !== 0 ? req.port : generated.get(i));
      if (effective === undefined) continue;
      env[`PORT_${req.port !== 0 ? req.port : effective}`] = String(effective);
      if (req.name !== undefined) env[`PORT_${req.name.toUpperCase()}`] = String(effective);
    }
    const all = [...hostPorts.filter((p): p is number => p !== undefined), ...generated.values()];
    if (all[0] !== undefined) env.PORT = String(all[0]);
    env.PORTS = all.join(",");
  }
  if (host !== undefined) env.HOST = host;
  return env;
}

/** A number as Java's `Double.toString` writes it (`1.0`, `0.5`, `1.0E7`): Marathon's resource variables. */
export function javaDouble(x: number): string {
  if (x === 0) return "0.0";
  const abs = Math.abs(x);
  if (abs >= 1e-3 && abs < 1e7) {
    const s = String(x);
    return s.includes(".") || s.includes("e") ? s : `${s}.0`;
  }
  const [mantissa = "0", exponent = "0"] = x.toExponential().split("e");
  return `${mantissa.includes(".") ? mantissa : `${mantissa}.0`}E${Number(exponent)}`;
}

/** Labels as Marathon exports them (`EnvironmentHelper.labelsToEnvVars`): `MARATHON_APP_LABEL_<KEY>`. */
function labelsEnv(labels: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  const keys: string[] = [];
  for (const [key, value] of Object.entries(labels)) {
    if (key.length >= 512 - "MARATHON_APP_LABEL_".length || value.length >= 512) continue;
    const escaped = key.replace(/[^a-zA-Z0-9_]+/g, "_").toUpperCase();
    keys.push(escaped);
    env[`MARATHON_APP_LABEL_${escaped}`] = value;
  }
  return { MARATHON_APP_LABELS: keys.join(" "), ...env };
}

/**
 * The whole environment Marathon gives a task (`TaskBuilder.commandInfo`), later entries winning:
 * `MESOS_TASK_ID`, `MARATHON_APP_ID`, `MARATHON_APP_VERSION` (when given), `MARATHON_APP_DOCKER_IMAGE`
 * (DOCKER containers), `MARATHON_APP_RESOURCE_CPUS/MEM/DISK/GPUS`, `MARATHON_APP_LABELS` and
 * `MARATHON_APP_LABEL_<KEY>`; then `portEnv` and `HOST`; then the app's own `env` (plain values only:
 * secret references are refused by normalizeApp).
 */
export function taskEnv(
  def: AppDefinition,
  task: { taskId: string; host?: string; hostPorts: readonly (number | undefined)[]; version?: string },
): Record<string, string> {
  const env: Record<string, string> = {
    MESOS_TASK_ID: task.taskId,
    MARATHON_APP_ID: def.id,
  };
  if (task.version !== undefined) env.MARATHON_APP_VERSION = task.version;
  if (def.container?.type === "DOCKER" && def.container.docker !== undefined)
    env.MARATHON_APP_DOCKER_IMAGE = def.container.docker.image;
  env.MARATHON_APP_RESOURCE_CPUS = javaDouble(def.cpus);
  env.MARATHON_APP_RESOURCE_MEM = javaDouble(def.mem);
  env.MARATHON_APP_RESOURCE_DISK = javaDouble(def.disk);
  env.MARATHON_APP_RESOURCE_GPUS = String(def.gpus);
  Object.assign(env, labelsEnv(def.labels), portEnv(def, task.hostPorts, task.host));
  for (const [name, value] of Object.entries(def.env)) if (typeof value === "string") env[name] = value;
  return env;
}
