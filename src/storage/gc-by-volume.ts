import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A counter that runs a full garbage collection of this worker thread every `everyBytes` of
 * chunk data. Each one-shot zstd call (zstdCompressSync, zstdDecompressSync) leaves native memory
 * (its context, output buffers) behind its JS wrappers; these workers allocate almost nothing else
 * on the JS heap, so V8 collects rarely and that memory piles up. Measured here: the chunk
 * checkers, serving a 186 MB NAR as .nar.zst and .nar, peaked at 333 MB every 16 MB and 238 MB
 * every 4 MB. Workers that compress through a ZstdFrameEncoder, which keeps its context, need none:
 * the pack writer peaked at 299 MB on a 2.2 GB upload with one-shot calls and no collections, and
 * at 231 MB with the encoder and none.
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
