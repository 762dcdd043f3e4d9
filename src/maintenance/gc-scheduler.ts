import { NarwhalError } from '../errors.ts';
import { describeGc, runGc } from './gc.ts';
import type { Narwhal } from '../context/narwhal.ts';

const MAX_INTERVAL_MS = 24 * 86_400_000;

export interface GcSchedule {
  /** Stops the schedule and waits for a run under way. */
  stop(): Promise<void>;
}

/**
 * Runs GC every `intervalMs` (the first run one interval after the start), one run at a time,
 * logging what each run deleted or why it failed. A failed run is retried at the next interval.
 */
export function scheduleGc(
  nw: Narwhal,
  options: { intervalMs: number; graceMs: number; log: (message: string) => void },
): GcSchedule {
  // Node's timers turn longer delays into 1 ms.
  if (options.intervalMs > MAX_INTERVAL_MS)
    throw new NarwhalError('bad-request', 'the GC interval can be at most 24 days');
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (running) return;
    running = runGc(nw, { graceMs: options.graceMs })
      .then((report) => options.log(`gc: ${describeGc(report)}`))
      .catch((err: unknown) =>
        options.log(`gc failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
      )
      .finally(() => {
        running = undefined;
      });
  }, options.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
