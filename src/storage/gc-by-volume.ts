import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Bytes a worker passes through zstd between two collections. */
const COLLECT_EVERY_BYTES = 16 * 1024 * 1024;

/**
 * A counter that runs a full garbage collection of this worker thread every COLLECT_EVERY_BYTES
 * of chunk data. Each zstd call leaves native memory (its context, output buffers) behind its JS
 * wrappers; these workers allocate almost nothing else on the JS heap, so V8 collects rarely and
 * that memory piles up. Measured on a 2.2 GB upload: peak RSS 299 MB without, 235 MB collecting
 * every 16 MB; every 4 MB saved little more and cost about 1 s of the writer's time per 1.5 GB.
 * `gc` is reached through the V8 flag because a Worker cannot be started with `--expose-gc`.
 */
export function garbageCollectorByVolume(): (bytes: number) => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since < COLLECT_EVERY_BYTES) return;
    since = 0;
    gc();
  };
}
