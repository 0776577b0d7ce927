/**
 * Time for the simulated runtime: `now()` and one-shot timers, injectable so tests can drive a
 * simulation without waiting. The real clock is Node's; ManualClock moves only when told to.
 */

/** An opaque handle of a pending timer. */
export type ClockTimer = object;

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once, `ms` from now (at least 0). */
  setTimeout(fn: () => void, ms: number): ClockTimer;
  /** Cancels a pending timer; a timer that has run or was cancelled is ignored. */
  clearTimeout(timer: ClockTimer): void;
}

/** Date.now and Node's timers. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

interface ManualTimer {
  at: number;
  seq: number;
  fn: (() => void) | undefined;
}

/**
 * A clock that moves only through `advance()`. Timers due at the same time run in the order they were
 * set. Between two timers, `advance` lets promise chains and I/O callbacks settle (one setImmediate
 * turn), so work a timer starts (an await, then another timer) happens within the same advance.
 */
export class ManualClock implements Clock {
  private current: number;
  private seq = 0;
  private readonly heap: ManualTimer[] = [];

  constructor(startMs = 0) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): ClockTimer {
    const t: ManualTimer = { at: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.push(t);
    return t;
  }

  clearTimeout(timer: ClockTimer): void {
    (timer as ManualTimer).fn = undefined;
  }

  /** Timers set and neither run nor cancelled. */
  get pending(): number {
    let n = 0;
    for (const t of this.heap) if (t.fn !== undefined) n++;
    return n;
  }

  /** Moves time forward by `ms`, running every timer that falls due on the way, in time order. */
  async advance(ms: number): Promise<void> {
    const until = this.current + Math.max(0, ms);
    await settle();
    for (;;) {
      const next = this.heap[0];
      if (next === undefined || next.at > until) break;
      this.pop();
      const fn = next.fn;
      if (fn === undefined) continue;
      next.fn = undefined;
      this.current = Math.max(this.current, next.at);
      fn();
      await settle();
    }
    this.current = until;
  }

  private push(t: ManualTimer): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent] as ManualTimer;
      if (!before(t, p)) break;
      h[i] = p;
      i = parent;
    }
    h[i] = t;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const child = r < h.length && before(h[r] as ManualTimer, h[l] as ManualTimer) ? r : l;
      const c = h[child] as ManualTimer;
      if (!before(c, last)) break;
      h[i] = c;
      i = child;
    }
    h[i] = last;
  }
}

const before = (a: ManualTimer, b: ManualTimer): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/** One turn of the event loop: pending promise callbacks and I/O run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
