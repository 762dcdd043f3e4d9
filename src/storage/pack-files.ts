import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { PackLocation } from './pack-index.ts';

/** Open pack files kept for reading; more are opened and closed as needed. */
const KEEP_OPEN = 128;
/** Frames at most this far apart are read together: a read costs more than this many bytes copied. */
const MAX_GAP = 16 * 1024;
/** The largest read of neighbouring frames. */
const MAX_READ = 4 * 1024 * 1024;

/** One read of neighbouring frames of a pack, [start, end): the frames at `members` (indexes of the locations read). */
export interface PackRead {
  pack: string;
  start: number;
  end: number;
  members: number[];
}

/**
 * The reads that fetch these frames: neighbouring frames of one pack (a NAR's new chunks are
 * written one after another) are read at once, with what lies between them, one read instead of
 * one per frame. They are grouped in the order they lie in their packs, not the order asked: the
 * delta pass writes a NAR's chunks in another order than the NAR's.
 */
export function planReads(locations: PackLocation[]): PackRead[] {
  const order = locations.map((_, i) => i);
  order.sort((a, b) => {
    const [x, y] = [locations[a], locations[b]];
    return x.pack < y.pack ? -1 : x.pack > y.pack ? 1 : x.offset - y.offset;
  });
  const reads: PackRead[] = [];
  for (let first = 0; first < order.length; ) {
    const { pack, offset: start } = locations[order[first]];
    let end = start + locations[order[first]].length;
    let last = first;
    for (let next = locations[order[last + 1]]; next; next = locations[order[last + 1]]) {
      const nextEnd = next.offset + next.length;
      if (next.pack !== pack || next.offset - end > MAX_GAP || nextEnd - start > MAX_READ) break;
      end = Math.max(end, nextEnd);
      last++;
    }
    reads.push({ pack, start, end, members: order.slice(first, last + 1) });
    first = last + 1;
  }
  return reads;
}

interface Entry {
  handle: Promise<FileHandle>;
  users: number;
}

/**
 * Read handles of pack files, shared by concurrent reads. A handle is closed only when no read
 * uses it. A pack deleted by compaction while open stays readable through its handle: its frames
 * are the same bytes that moved.
 */
export class PackFiles {
  readonly #dir: string;
  /** In least recently used order (Map keeps insertion order). */
  readonly #open = new Map<string, Entry>();

  constructor(dir: string) {
    this.#dir = dir;
  }

  async read(location: PackLocation): Promise<Uint8Array> {
    return this.#readRange(location.pack, location.offset, location.length);
  }

  /** The frames at these places, in order, read as planReads groups them. */
  async readMany(locations: PackLocation[]): Promise<Uint8Array[]> {
    const frames = new Array<Uint8Array>(locations.length);
    await Promise.all(
      planReads(locations).map(async ({ pack, start, end, members }) => {
        const bytes = await this.#readRange(pack, start, end - start);
        let previous: PackLocation | undefined;
        for (const i of members) {
          const location = locations[i];
          const frame = bytes.subarray(location.offset - start, location.offset - start + location.length);
          // A frame asked for again (a NAR repeats a chunk) is a copy of its own: two views of a
          // buffer that is theirs alone would both be moved to a worker, the second found detached.
          const again = previous?.offset === location.offset;
          frames[i] = again ? new Uint8Array(frame) : frame;
          previous = location;
        }
      }),
    );
    return frames;
  }

  async #readRange(pack: string, offset: number, length: number): Promise<Uint8Array> {
    const entry = this.#acquire(pack);
    try {
      const handle = await entry.handle;
      const bytes = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(bytes, done, length - done, offset + done);
        if (bytesRead === 0)
          throw Object.assign(new Error(`pack ${pack} ends before ${offset + length}`), { code: 'ETRUNCATED' });
        done += bytesRead;
      }
      return bytes;
    } finally {
      entry.users--;
      this.#trim();
    }
  }

  /** Closes the handle of a pack (it is being deleted) once no read uses it. */
  forget(pack: string): void {
    const entry = this.#open.get(pack);
    if (entry && entry.users === 0) void this.#close(pack, entry);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#open].map(([pack, entry]) => this.#close(pack, entry)));
  }

  #acquire(pack: string): Entry {
    let entry = this.#open.get(pack);
    if (entry) {
      this.#open.delete(pack);
    } else {
      entry = { handle: open(join(this.#dir, pack), 'r'), users: 0 };
      // A failed open is not kept: the next read tries again (or learns the pack is gone).
      entry.handle.catch(() => {
        if (this.#open.get(pack) === entry) this.#open.delete(pack);
      });
    }
    this.#open.set(pack, entry);
    entry.users++;
    return entry;
  }

  #trim(): void {
    if (this.#open.size <= KEEP_OPEN) return;
    for (const [pack, entry] of this.#open) {
      if (this.#open.size <= KEEP_OPEN) break;
      if (entry.users === 0) void this.#close(pack, entry);
    }
  }

  async #close(pack: string, entry: Entry): Promise<void> {
    this.#open.delete(pack);
    const handle = await entry.handle.catch(() => undefined);
    await handle?.close();
  }
}
