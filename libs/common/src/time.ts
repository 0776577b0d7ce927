/**
 * Time as a seam: components that own timers take a Clock, so tests drive them with a fake one
 * (libs/testing FakeClock) instead of waiting.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): number;
  /** Runs `fn` after `ms` (once). */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Runs `fn` every `ms` until cancelled. */
  setInterval(fn: () => void, ms: number): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
  setInterval: (fn, ms) => {
    const t = setInterval(fn, ms);
    return { cancel: () => clearInterval(t) };
  },
};

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Runs `fn` at most once per `windowMs` (a number, or read at each trigger), coalescing calls made
 * while waiting or running.
 * An error of `fn` goes to `onError` (never an unhandled rejection); after cancel() nothing runs.
 */
export function coalesce(
  fn: () => Promise<void> | void,
  windowMs: number | (() => number),
  onError: (err: unknown) => void = () => {},
  clock: Clock = systemClock,
): { trigger(): void; cancel(): void } {
  let timer: Timer | undefined;
  let running = false;
  let again = false;
  let cancelled = false;
  const run = async () => {
    timer = undefined;
    if (cancelled) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await fn();
    } catch (err) {
      onError(err);
    } finally {
      running = false;
      if (again && !cancelled) {
        again = false;
        trigger();
      }
    }
  };
  const trigger = () => {
    if (timer || cancelled) return;
    timer = clock.setTimeout(() => void run(), typeof windowMs === "number" ? windowMs : windowMs());
  };
  return {
    trigger,
    cancel: () => {
      cancelled = true;
      timer?.cancel();
      timer = undefined;
    },
  };
}

/** Runs `fn` on every item with at most `limit` in flight; resolves when all are done (errors are fn's to handle). */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}
