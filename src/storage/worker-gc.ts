import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Bytes a worker passes through zstd between two collections. */
const COLLECT_EVERY_BYTES = 4 * 1024 * 1024;

/**
 * A counter that runs a full garbage collection of this worker thread every COLLECT_EVERY_BYTES
 * of chunk data. Each zstd call leaves native memory (its context, output buffers) behind its JS
 * wrappers; these workers allocate almost nothing else on the JS heap, so V8 collects rarely and
 * that memory piles up: peak RSS 366 MB against 243 MB with this, over a 1.1 GB upload. A
 * collection of this tiny heap takes about a millisecond. `gc` is reached through the V8 flag
 * because a Worker cannot be started with `--expose-gc`.
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
