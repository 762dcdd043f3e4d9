import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A counter that runs a full garbage collection of this worker thread every `everyBytes` of
 * chunk data. Each zstd call leaves native memory (its context, output buffers) behind its JS
 * wrappers; these workers allocate almost nothing else on the JS heap, so V8 collects rarely and
 * that memory piles up. Measured here:
 * - the pack writer, on a 2.2 GB upload: peak RSS 299 MB without, 235 MB every 16 MB; every 4 MB
 *   saved little more and cost about 1 s of the writer's time per 1.5 GB;
 * - the chunk checkers, serving a 186 MB NAR as .nar.zst and .nar: 333 MB every 16 MB, 238 MB
 *   every 4 MB.
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
