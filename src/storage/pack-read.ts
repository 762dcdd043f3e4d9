import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { planReads } from './pack-files.ts';
import type { PackLocation } from './pack-index.ts';

/**
 * Frames of packs read synchronously, for a worker thread (the check workers, src/serving): the
 * main thread then makes one call for a batch of frames rather than a read each, whose promise
 * costs it tens of microseconds. A NAR's frames need not lie in its order in the packs (the delta
 * pass writes them in another order), so a batch of frames may take several reads
 * (docs/benchmarks.md, "Serving old versions").
 *
 * The frames land back to back in one buffer, in the order asked. Each pack is opened for the call
 * and closed after it, so no handle outlives a pack that compaction deletes; a pack deleted
 * between the lookup and the open throws ENOENT, for the caller to look the frames up again.
 */
export function readFramesSync(dir: string, locations: PackLocation[]): Uint8Array {
  const at: number[] = [];
  let total = 0;
  for (const { length } of locations) {
    at.push(total);
    total += length;
  }
  const out = Buffer.allocUnsafeSlow(total);
  const handles = new Map<string, number>();
  try {
    for (const { pack, start, end, members } of planReads(locations)) {
      let fd = handles.get(pack);
      if (fd === undefined) handles.set(pack, (fd = openSync(join(dir, pack), 'r')));
      if (members.length === 1) {
        readFully(fd, out.subarray(at[members[0]], at[members[0]] + end - start), start, pack);
        continue;
      }
      const span = Buffer.allocUnsafe(end - start);
      readFully(fd, span, start, pack);
      for (const i of members) {
        const from = locations[i].offset - start;
        span.copy(out, at[i], from, from + locations[i].length);
      }
    }
  } finally {
    for (const fd of handles.values()) closeSync(fd);
  }
  return out;
}

function readFully(fd: number, into: Uint8Array, position: number, pack: string): void {
  let done = 0;
  while (done < into.length) {
    const read = readSync(fd, into, done, into.length - done, position + done);
    if (read === 0)
      throw Object.assign(new Error(`pack ${pack} ends before ${position + into.length}`), { code: 'ETRUNCATED' });
    done += read;
  }
}
