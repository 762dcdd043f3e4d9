import { randomUUID } from 'node:crypto';
import { NarwhalError } from '../errors.ts';
import type { Narwhal } from '../context/narwhal.ts';

/** How long samples are kept. */
export const SAMPLE_KEEP_MS = 90 * 86_400_000;
/** The lease that makes one process of all those sharing the metadata take each sample. */
const SAMPLE_LEASE = 'storage-sample';
const MAX_INTERVAL_MS = 24 * 86_400_000;

export interface SampleSchedule {
  /** Stops the schedule and waits for a sample being taken. */
  stop(): Promise<void>;
}

/**
 * Records every cache's usage (paths, NAR bytes, stored bytes) as a sample, and drops samples
 * older than SAMPLE_KEEP_MS, unless another process took a sample less than `intervalMs` ago:
 * the lease, held for the interval and never released, lets one process of all those sharing
 * the metadata (--processes, replicas) sample per interval. Returns whether it sampled.
 */
export async function sampleStorage(nw: Narwhal, intervalMs: number, now = Date.now()): Promise<boolean> {
  if (!(await nw.meta.tryAcquireLease(SAMPLE_LEASE, `sample-${randomUUID()}`, Math.max(1, intervalMs - 1_000)))) {
    return false;
  }
  // Each cache's usage is read outside any write, so that sampling a big cache holds no lock.
  for (const cache of await nw.meta.listCaches()) {
    await nw.meta.recordStorageSample(cache.id, { at: now, ...(await nw.meta.cacheUsage(cache.id)) });
  }
  await nw.meta.deleteStorageSamples(now - SAMPLE_KEEP_MS);
  return true;
}

/** Samples at the start and then every `intervalMs`, logging failures. */
export function scheduleStorageSamples(
  nw: Narwhal,
  options: { intervalMs: number; log: (message: string) => void },
): SampleSchedule {
  if (options.intervalMs > MAX_INTERVAL_MS || options.intervalMs < 1_000) {
    throw new NarwhalError('bad-request', 'the storage sample interval must be between 1 s and 24 days');
  }
  let running: Promise<void> | undefined;
  const take = (): void => {
    if (running) return;
    running = sampleStorage(nw, options.intervalMs)
      .then(() => undefined)
      .catch((err: unknown) =>
        options.log(`storage sample failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
      )
      .finally(() => {
        running = undefined;
      });
  };
  take();
  const timer = setInterval(take, options.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
