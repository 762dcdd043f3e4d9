import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { PackLocation } from './pack-index.ts';

/** Open pack files kept for reading; more are opened and closed as needed. */
const KEEP_OPEN = 128;

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
    const entry = this.#acquire(location.pack);
    try {
      const handle = await entry.handle;
      const bytes = Buffer.allocUnsafe(location.length);
      let done = 0;
      while (done < location.length) {
        const { bytesRead } = await handle.read(bytes, done, location.length - done, location.offset + done);
        if (bytesRead === 0) throw Object.assign(new Error(`pack ${location.pack} ends before ${location.offset + location.length}`), { code: 'ETRUNCATED' });
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
