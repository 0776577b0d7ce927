export interface WaitOptions {
  /** Give up after this long (default 30 000 ms). */
  timeoutMs?: number;
  /** Pause between attempts (default 250 ms). */
  intervalMs?: number;
}

/** Thrown by a `waitFor` condition to give up at once (say, the process it waits on has died). */
export class StopWaiting extends Error {
  override name = "StopWaiting";
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * Polls `fn` until it returns a truthy value and returns that value. An attempt that throws counts as not
 * yet; its error is reported if time runs out:
 * `timed out after 30000ms waiting for <what>; last error: <message>`. A `StopWaiting` error ends the wait
 * at once: `gave up waiting for <what>: <message>`.
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false | null>,
  opts: WaitOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 250;
  const deadline = Date.now() + timeoutMs;
  let lastError = "none (the condition was still false)";
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      lastError = `none (the condition was still false; last value: ${String(value)})`;
    } catch (err) {
      if (err instanceof StopWaiting) throw new Error(`gave up waiting for ${what}: ${err.message}`);
      lastError = describe(err);
    }
    const left = deadline - Date.now();
    if (left <= 0)
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}; last error: ${lastError}`);
    await sleep(Math.min(intervalMs, left));
  }
}

/** Resolves or rejects as `p` does, or rejects with `timed out after Nms waiting for <what>`. */
export async function withTimeout<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
