import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A counter that runs a young-generation collection (a scavenge) of this worker thread every
 * `everyBytes` of chunk data. These workers allocate almost nothing on the JS heap, so V8 collects
 * rarely, while native memory piles up behind small JS objects: buffers moved to and from the
 * thread, and the contexts and outputs of one-shot zstd calls (zstdCompressSync,
 * zstdDecompressSync). Those objects die young, so a scavenge frees them and what they hold.
 * A scavenge bounds that memory about as well as a full collection, at a fraction of its time,
 * and serves faster than no collections; the pack writer, which moves no buffers and compresses
 * through a kept context, needs none (measured: docs/benchmarks.md, 'Collections in workers').
 * With `fullEveryBytes`, every so many bytes the collection is a full one instead: what outlives
 * scavenges is otherwise collected only once the old generation reaches its size
 * (--initial-old-space-size), and the check workers decoding deltas for many downloads at once
 * grew round after round without.
 * `gc` is reached through the V8 flag because a Worker cannot be started with `--expose-gc`.
 */
export function scavengerByVolume(
  everyBytes = 4 * 1024 * 1024,
  fullEveryBytes = Number.POSITIVE_INFINITY,
): (bytes: number) => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (options?: { type: 'minor' | 'major'; execution: 'sync' }) => void;
  let since = 0;
  let sinceFull = 0;
  return (bytes) => {
    since += bytes;
    sinceFull += bytes;
    if (since < everyBytes) return;
    since = 0;
    if (sinceFull < fullEveryBytes) return gc({ type: 'minor', execution: 'sync' });
    sinceFull = 0;
    gc({ type: 'major', execution: 'sync' });
  };
}
