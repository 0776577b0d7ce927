/** A TaskLaunchSpec in Docker's units and shapes. */
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
