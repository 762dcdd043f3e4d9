import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A counter that runs a full garbage collection of this worker thread every `everyBytes` of
 * chunk data. These workers allocate almost nothing on the JS heap, so V8 collects rarely, while
 * native memory piles up behind small JS objects: the contexts and outputs of one-shot zstd calls
 * (zstdCompressSync, zstdDecompressSync), and buffers moved to and from the thread. Measured here:
 * - the chunk checkers, serving a 186 MB NAR as .nar.zst and .nar with one-shot calls: peak RSS
 *   333 MB every 16 MB, 238 MB every 4 MB. Decoding through a kept context (zstd-frames.ts)
 *   they still need it, for the buffers: 370 MB with none, 300 MB every 16 MB, 250 MB every 4 MB
 *   (the last 15% faster than with one-shot calls);
 * - the pack writer, on a 2.2 GB upload: 299 MB with one-shot calls and no collections, 231 MB
 *   compressing through a kept context and none (it moves no buffers), so it has none.
 * `gc` is reached through the V8 flag because a Worker cannot be started with `--expose-gc`.
 */
export function garbageCollectorByVolume(everyBytes = 4 * 1024 * 1024): (bytes: number) => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since < everyBytes) return;
    since = 0;
    gc();
  };
}
