import { describeRecompression, recompressChunks } from './recompress.ts';
import type { Narwhal } from '../context/narwhal.ts';

/** How often the server looks whether it is idle and has chunks to recompress. */
const CHECK_EVERY_MS = 10_000;

export interface RecompressSchedule {
  /** Stops the schedule and waits for a run under way (which stops after its current batch). */
  stop(): Promise<void>;
}

/**
 * Recompresses in the background of a server: a run starts once no upload has run here for
 * `idleMs` (first recording the sketches chunks lack, sketch-backfill.ts), uses one compression thread, and yields (stops after its batch) as soon as an upload
 * starts; the next idle period resumes it. Once a run has finished, the metadata store's log is
 * checkpointed, and nothing more happens until uploads have come and gone again. Runs that
 * found work are logged.
 */
export function scheduleRecompression(
  nw: Narwhal,
  options: { level: number; idleMs: number; deltas?: boolean; log: (message: string) => void },
): RecompressSchedule {
  let running: Promise<void> | undefined;
  let stopping = false;
  /** The idle period (by its start) whose run finished. */
  let doneFor: number | undefined;
  const busy = (): boolean => stopping || nw.holds.idleSince() === undefined;
  const timer = setInterval(
    () => {
      const idleSince = nw.holds.idleSince();
      if (running || idleSince === undefined || idleSince === doneFor || Date.now() - idleSince < options.idleMs)
        return;
      running = recompressChunks(nw, { level: options.level, workers: 1, shouldStop: busy, deltas: options.deltas })
        .then(async (report) => {
          if (report.sketched > 0 || report.deltas > 0 || report.chunks > 0 || report.skipped > 0)
            options.log(`recompress: ${describeRecompression(report)}`);
          if (report.stopped || report.busy !== undefined) return;
          doneFor = idleSince;
          await nw.meta.checkpoint?.();
        })
        .catch((err: unknown) =>
          options.log(`recompress failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
        )
        .finally(() => {
          running = undefined;
        });
    },
    Math.min(CHECK_EVERY_MS, Math.max(100, options.idleMs)),
  );
  timer.unref();
  return {
    async stop() {
      stopping = true;
      clearInterval(timer);
      await running;
    },
  };
}
