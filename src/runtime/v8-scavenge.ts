import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A counter that runs a young-generation collection (a scavenge) of this worker thread every
 * `everyBytes` of chunk data. These workers allocate almost nothing on the JS heap, so V8 collects
 * rarely, while native memory piles up behind small JS objects: buffers moved to and from the
 * thread, and the contexts and outputs of one-shot zstd calls (zstdCompressSync,
 * zstdDecompressSync). Those objects die young, so a scavenge frees them and what they hold.
 * Measured here:
 * - the chunk checkers, serving the benchmark's largest NAR (186 MB) as .nar.zst, then as .nar:
 *   with no collections 0.95 + 0.9 s and a peak RSS of 413 MB; a full collection every 4 MB,
 *   1.4-1.5 + 1.25-1.35 s (a third of the checker's time went to collecting) and 278-289 MB;
 *   a scavenge every 4 MB, 0.7-0.85 + 0.75 s and 286 MB;
 * - earlier, the pack writer on a 2.2 GB upload: 299 MB with one-shot calls and no collections,
 *   231 MB compressing through a kept context and none (it moves no buffers), so it has none.
 * `gc` is reached through the V8 flag because a Worker cannot be started with `--expose-gc`.
 */
export function scavengerByVolume(everyBytes = 4 * 1024 * 1024): (bytes: number) => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (options?: { type: 'minor' | 'major'; execution: 'sync' }) => void;
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since < everyBytes) return;
    since = 0;
    gc({ type: 'minor', execution: 'sync' });
  };
}
