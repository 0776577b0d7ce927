/**
 * A Clock (libs/common time.ts) whose time moves only when the test says so. Timers run in time
 * order (equal times: in the order they were set), including timers set by timers, and between
 * two timers the pending promise callbacks run, so async work started by a timer (a commit on a
 * MemoryKv, say) progresses as it would in real time:
 *
 *   const clock = new FakeClock();
 *   leader.start(clock);
 *   await clock.advance(10_000); // every timer due within 10 s has run, in order
 */
import { setImmediate as nextMacrotask } from "node:timers/promises";
import type { Clock, Timer } from "@drover/common";

/** 2023-11-14T22:13:20Z: where FakeClock and the builders' timestamps start. */
export const TEST_EPOCH_MS = 1_700_000_000_000;

interface Scheduled {
  id: number;
  at: number;
  fn: () => void;
  /** Set for intervals. */
  every: number | undefined;
  cancelled: boolean;
}

export class FakeClock implements Clock {
  private nowMs: number;
  private seq = 0;
  private timers: Scheduled[] = [];
  private advancing = false;
  /** Timers run so far. */
  fired = 0;

  constructor(startMs: number = TEST_EPOCH_MS) {
    this.nowMs = startMs;
  }

  now(): number {
    return this.nowMs;
  }

  /** Runs `fn` once, `ms` from now (a negative or NaN delay is 0). */
  setTimeout(fn: () => void, ms: number): Timer {
    return this.schedule(fn, delay(ms, 0), undefined);
  }

  /** Runs `fn` every `ms` (at least 1, as Node's setInterval) until cancelled. */
  setInterval(fn: () => void, ms: number): Timer {
    const every = delay(ms, 1);
    return this.schedule(fn, every, every);
  }

  /** A promise resolved when the clock has moved `ms` forward. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }

  /** Timers waiting to run (intervals included). */
  pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** When the next timer is due, or undefined. */
  nextAt(): number | undefined {
    return this.earliest()?.at;
  }

  /**
   * Moves the time `ms` forward, running every timer due on the way in time order, then sets the
   * time to exactly now + ms. Pending promise callbacks run after each timer and at the end.
   * An exception thrown by a timer propagates (the time stays at that timer's).
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new Error(`FakeClock.advance: ${ms} is not a duration`);
    await this.runUntil(this.nowMs + ms);
  }

  /** Moves the time to `atMs` (not backwards), as advance() does. */
  async advanceTo(atMs: number): Promise<void> {
    if (atMs < this.nowMs) throw new Error(`FakeClock.advanceTo: ${atMs} is in the past (now ${this.nowMs})`);
    await this.runUntil(atMs);
  }

  /** Runs the next timer (moving the time to it); false when there is none. */
  async next(): Promise<boolean> {
    const t = this.earliest();
    if (!t) return false;
    await this.runUntil(t.at);
    return true;
  }

  /**
   * Runs timers until no one-shot timer is left (intervals run whenever their time comes on the
   * way). Throws after `maxTimers` runs: a timer that always sets another never ends.
   */
  async runAll(maxTimers = 10_000): Promise<void> {
    const start = this.fired;
    await this.settle();
    for (;;) {
      const next = this.timers.filter((t) => !t.cancelled && t.every === undefined).sort(byTime)[0];
      if (!next) return;
      await this.runUntil(next.at);
      if (this.fired - start > maxTimers)
        throw new Error(`FakeClock.runAll: more than ${maxTimers} timers ran; is a timer re-arming itself?`);
    }
  }

  /** Lets pending promise callbacks run (without moving the time). */
  async settle(): Promise<void> {
    await nextMacrotask();
  }

  private schedule(fn: () => void, ms: number, every: number | undefined): Timer {
    this.seq += 1;
    const t: Scheduled = { id: this.seq, at: this.nowMs + ms, fn, every, cancelled: false };
    this.timers.push(t);
    return {
      cancel: () => {
        t.cancelled = true;
        this.timers = this.timers.filter((x) => x !== t);
      },
    };
  }

  private earliest(): Scheduled | undefined {
    let best: Scheduled | undefined;
    for (const t of this.timers) if (!t.cancelled && (!best || byTime(t, best) < 0)) best = t;
    return best;
  }

  private async runUntil(target: number): Promise<void> {
    if (this.advancing) throw new Error("FakeClock: advance() called while another advance() runs");
    this.advancing = true;
    try {
      await this.settle();
      for (;;) {
        const t = this.earliest();
        if (!t || t.at > target) {
          if (this.nowMs >= target) break;
          // Promise callbacks that run once the time is `target` may set timers due by then.
          this.nowMs = target;
          await this.settle();
          continue;
        }
        this.nowMs = Math.max(this.nowMs, t.at);
        if (t.every !== undefined) {
          // Re-armed before it runs, with a new sequence number: it stays in time order with the
          // timers its own run sets.
          this.seq += 1;
          t.id = this.seq;
          t.at += t.every;
        } else {
          t.cancelled = true;
          this.timers = this.timers.filter((x) => x !== t);
        }
        this.fired += 1;
        t.fn();
        await this.settle();
      }
    } finally {
      this.advancing = false;
    }
  }
}

function delay(ms: number, min: number): number {
  return Number.isFinite(ms) && ms > min ? ms : min;
}

function byTime(a: Scheduled, b: Scheduled): number {
  return a.at - b.at || a.id - b.id;
}
