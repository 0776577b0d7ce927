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

/** Runs `fn` at most once per `windowMs`, coalescing calls made while waiting. */
export function coalesce(
  fn: () => Promise<void> | void,
  windowMs: number,
): { trigger(): void; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let again = false;
  const run = async () => {
    timer = undefined;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await fn();
    } finally {
      running = false;
      if (again) {
        again = false;
        trigger();
      }
    }
  };
  const trigger = () => {
    if (timer) return;
    timer = setTimeout(() => void run(), windowMs);
  };
  return {
    trigger,
    cancel: () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
