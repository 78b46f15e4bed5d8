/** The longest delay setTimeout keeps; Node turns a longer one into 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `fn` once `ms` milliseconds have passed, for any `ms` (--duration 3000000 is 35 days), by
 * chaining timers of at most `stepMs` against one deadline. Returns a function that cancels it.
 */
export function setLongTimeout(fn: () => void, ms: number, stepMs = MAX_TIMER_MS): () => void {
  const deadline = performance.now() + ms;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const left = deadline - performance.now();
    if (left <= 0) {
      timer = undefined;
      fn();
      return;
    }
    timer = setTimeout(arm, Math.min(left, stepMs));
  };
  arm();
  return () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
}
