import { normalizePorts, type PortRange } from "./resources.js";

/** The largest valid host port. */
export const MAX_PORT = 65535;

/** True for an integer port in 1..65535. */
export function isValidPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= MAX_PORT;
}

/** Sorted, de-duplicated single ports → the fewest ranges that hold exactly them. Invalid ports are dropped. */
export function portsToRanges(ports: readonly number[]): PortRange[] {
  if (ports.length === 0) return [];
  const sorted = [...new Set(ports.filter(isValidPort))].sort((a, b) => a - b);
  const out: PortRange[] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && p === last.end + 1) last.end = p;
    else out.push({ begin: p, end: p });
  }
  return out;
}

/** Every port of the ranges, ascending (after merging overlaps). */
export function rangesToPorts(ranges: readonly PortRange[]): number[] {
  const out: number[] = [];
  for (const r of normalizePorts(ranges)) for (let p = r.begin; p <= r.end; p++) out.push(p);
  return out;
}

/**
 * The lowest `count` ports of `ranges` and the rest, as ranges. Asking for more ports than there
 * are takes them all. Pure; `ranges` need not be normalized.
 */
export function splitLowestPorts(
  ranges: readonly PortRange[],
  count: number,
): { taken: PortRange[]; rest: PortRange[] } {
  const taken: PortRange[] = [];
  const rest: PortRange[] = [];
  let left = Math.max(0, Math.floor(count));
  for (const r of normalizePorts(ranges)) {
    const size = r.end - r.begin + 1;
    if (left >= size) {
      taken.push(r);
      left -= size;
    } else if (left > 0) {
      taken.push({ begin: r.begin, end: r.begin + left - 1 });
      rest.push({ begin: r.begin + left, end: r.end });
      left = 0;
    } else {
      rest.push(r);
    }
  }
  return { taken, rest };
}

/**
 * A mutable set of free host ports, kept as sorted disjoint ranges, for one offer during one
 * placement pass. Membership is a binary search; taking the lowest ports walks from the front.
 */
export class PortSet {
  private ranges: PortRange[];
  private count: number;

  constructor(ranges: readonly PortRange[]) {
    this.ranges = normalizePorts(ranges);
    this.count = this.ranges.reduce((n, r) => n + (r.end - r.begin + 1), 0);
  }

  /** How many ports are free. */
  get size(): number {
    return this.count;
  }

  private indexOf(port: number): number {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.ranges[mid];
      if (r === undefined) break;
      if (port < r.begin) hi = mid - 1;
      else if (port > r.end) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  has(port: number): boolean {
    return Number.isInteger(port) && this.indexOf(port) >= 0;
  }

  /** Removes `port`; false when it was not free. */
  take(port: number): boolean {
    if (!Number.isInteger(port)) return false;
    const i = this.indexOf(port);
    const r = this.ranges[i];
    if (r === undefined) return false;
    const pieces: PortRange[] = [];
    if (r.begin < port) pieces.push({ begin: r.begin, end: port - 1 });
    if (port < r.end) pieces.push({ begin: port + 1, end: r.end });
    this.ranges.splice(i, 1, ...pieces);
    this.count -= 1;
    return true;
  }

  /** Removes and returns the lowest `n` free ports (fewer when fewer are free), ascending. */
  takeLowest(n: number): number[] {
    const out: number[] = [];
    while (out.length < n) {
      const r = this.ranges[0];
      if (r === undefined) break;
      const end = Math.min(r.end, r.begin + (n - out.length) - 1);
      for (let p = r.begin; p <= end; p++) out.push(p);
      if (end === r.end) this.ranges.shift();
      else r.begin = end + 1;
    }
    this.count -= out.length;
    return out;
  }

  /** The free ranges themselves, sorted and disjoint: read, do not keep (they change with every take). */
  view(): readonly Readonly<PortRange>[] {
    return this.ranges;
  }

  /** The free ports as fresh ranges. */
  toRanges(): PortRange[] {
    return this.ranges.map((r) => ({ begin: r.begin, end: r.end }));
  }
}
