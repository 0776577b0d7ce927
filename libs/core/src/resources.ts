import { z } from "zod";
import { LIMITS } from "./limits.js";

/** An inclusive range of host ports, `begin <= end`. */
export interface PortRange {
  begin: number;
  end: number;
}

/**
 * A bundle of resources: `cpus` in cores, `mem` and `disk` in MiB, `ports` as ranges.
 * Values are treated as immutable: every function here returns a new object.
 */
export interface Resources {
  cpus: number;
  mem: number;
  disk: number;
  ports: PortRange[];
}

/** Tolerance for comparing scalar resources (float sums drift). */
export const RESOURCE_EPSILON = 1e-9;

/** The smallest free bundle worth offering: a task needs cpus > 0 and at least 4 MiB of memory. */
export const DEFAULT_MIN_ALLOCATABLE: { cpus: number; mem: number } = { cpus: 0.01, mem: 4 };

const port = z.number().int().min(1).max(65535);

export const PortRangeSchema: z.ZodType<PortRange> = z
  .strictObject({ begin: port, end: port })
  .refine((r) => r.begin <= r.end, { message: "must be >= begin", path: ["end"] });

export const ResourcesSchema: z.ZodType<Resources> = z.strictObject({
  cpus: z.number().min(0).max(LIMITS.maxCpus),
  mem: z.number().min(0).max(LIMITS.maxMiB),
  disk: z.number().min(0).max(LIMITS.maxMiB),
  ports: z
    .array(PortRangeSchema)
    .max(LIMITS.portRanges)
    .default(() => []),
});

export function emptyResources(): Resources {
  return { cpus: 0, mem: 0, disk: 0, ports: [] };
}

/** Clamp float noise and negatives to 0. */
function nonNegative(x: number): number {
  return x < RESOURCE_EPSILON ? 0 : x;
}

/** Sort and merge overlapping or adjacent ranges; drops malformed ranges (begin > end). */
export function normalizePorts(ranges: readonly PortRange[]): PortRange[] {
  const sorted = ranges
    .filter((r) => r.begin <= r.end)
    .map((r) => ({ begin: r.begin, end: r.end }))
    .sort((a, b) => a.begin - b.begin || a.end - b.end);
  const out: PortRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r.begin <= last.end + 1) {
      last.end = Math.max(last.end, r.end);
    } else {
      out.push(r);
    }
  }
  return out;
}

/** Ports in `a` that are not in `b`. */
function subtractPorts(a: readonly PortRange[], b: readonly PortRange[]): PortRange[] {
  let remaining = normalizePorts(a);
  for (const cut of normalizePorts(b)) {
    const next: PortRange[] = [];
    for (const r of remaining) {
      if (cut.end < r.begin || cut.begin > r.end) {
        next.push(r);
        continue;
      }
      if (r.begin < cut.begin) next.push({ begin: r.begin, end: cut.begin - 1 });
      if (r.end > cut.end) next.push({ begin: cut.end + 1, end: r.end });
    }
    remaining = next;
  }
  return remaining;
}

/** True when every port of `need` lies in `have`. */
export function portsSubset(need: readonly PortRange[], have: readonly PortRange[]): boolean {
  return subtractPorts(need, have).length === 0;
}

/** Number of individual ports in the ranges (after merging overlaps). */
export function portCount(ranges: readonly PortRange[]): number {
  return normalizePorts(ranges).reduce((n, r) => n + (r.end - r.begin + 1), 0);
}

/** Sum of scalars; ports are the union of both sets of ranges. */
export function addResources(a: Resources, b: Resources): Resources {
  return {
    cpus: a.cpus + b.cpus,
    mem: a.mem + b.mem,
    disk: a.disk + b.disk,
    ports: normalizePorts([...a.ports, ...b.ports]),
  };
}

/** `a - b`, never below 0 in any scalar; ports are the set difference. */
export function subtractResources(a: Resources, b: Resources): Resources {
  return {
    cpus: nonNegative(a.cpus - b.cpus),
    mem: nonNegative(a.mem - b.mem),
    disk: nonNegative(a.disk - b.disk),
    ports: subtractPorts(a.ports, b.ports),
  };
}

export type ResourceName = "cpus" | "mem" | "disk" | "ports";

/** The dimensions in which `need` does not fit in `have`, in the order cpus, mem, disk, ports. */
export function missingResources(need: Resources, have: Resources): ResourceName[] {
  const missing: ResourceName[] = [];
  if (need.cpus > have.cpus + RESOURCE_EPSILON) missing.push("cpus");
  if (need.mem > have.mem + RESOURCE_EPSILON) missing.push("mem");
  if (need.disk > have.disk + RESOURCE_EPSILON) missing.push("disk");
  if (!portsSubset(need.ports, have.ports)) missing.push("ports");
  return missing;
}

/** cpus/mem/disk within a 1e-9 tolerance, and every needed port is available. */
export function fitsIn(need: Resources, have: Resources): boolean {
  return missingResources(need, have).length === 0;
}

/**
 * True when `r` is below the minimum allocatable size: fewer cpus or less mem than `min`
 * (default {cpus: 0.01, mem: 4}), or no cpus and no mem at all.
 */
export function isEmpty(r: Resources, min: { cpus: number; mem: number } = DEFAULT_MIN_ALLOCATABLE): boolean {
  if (r.cpus <= RESOURCE_EPSILON && r.mem <= RESOURCE_EPSILON) return true;
  return r.cpus < min.cpus - RESOURCE_EPSILON || r.mem < min.mem - RESOURCE_EPSILON;
}

/** A deep copy, so callers can hand out resources without sharing port arrays. */
export function cloneResources(r: Resources): Resources {
  return {
    cpus: r.cpus,
    mem: r.mem,
    disk: r.disk,
    ports: r.ports.map((p) => ({ begin: p.begin, end: p.end })),
  };
}
