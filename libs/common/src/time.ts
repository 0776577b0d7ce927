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
 * Runs `fn` at most once per `windowMs`, coalescing calls made while waiting or running.
 * An error of `fn` goes to `onError` (never an unhandled rejection); after cancel() nothing runs.
 */
export function coalesce(
  fn: () => Promise<void> | void,
  windowMs: number,
  onError: (err: unknown) => void = () => {},
): { trigger(): void; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
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
    timer = setTimeout(() => void run(), windowMs);
  };
  return {
    trigger,
    cancel: () => {
      cancelled = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
