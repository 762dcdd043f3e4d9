import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Bytes of chunks waiting to be written at most. */
const MAX_QUEUED = 16 << 20;

/**
 * The substituter's chunks on disk: a file per chunk named by its id (hex), the least recently
 * used removed once they pass `maxBytes`. What is put here was checked against its id; a file
 * damaged since is caught by the reader's check of every chunk it uses.
 */
export class ChunkCache {
  readonly #dir: string;
  readonly #maxBytes: number;
  /** Size of each chunk held, in order of last use (a Map keeps insertion order). */
  readonly #sizes = new Map<string, number>();
  #bytes = 0;
  /** Chunks waiting to be written by keep(), and their bytes. */
  readonly #queue: { hex: string; data: Uint8Array }[] = [];
  #queued = 0;
  #writing = false;

  private constructor(dir: string, maxBytes: number) {
    this.#dir = dir;
    this.#maxBytes = maxBytes;
  }

  static async open(dir: string, maxBytes: number): Promise<ChunkCache> {
    await mkdir(dir, { recursive: true });
    const cache = new ChunkCache(dir, maxBytes);
    const found = [];
    for (const name of await readdir(dir)) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      const st = await stat(join(dir, name));
      found.push({ name, size: st.size, used: st.mtimeMs });
    }
    for (const f of found.sort((a, b) => a.used - b.used)) cache.#note(f.name, f.size);
    await cache.#evict();
    return cache;
  }

  get bytes(): number {
    return this.#bytes;
  }

  has(hex: string): boolean {
    return this.#sizes.has(hex);
  }

  /** The chunk's bytes, or undefined when not held (or gone from disk). */
  async get(hex: string): Promise<Uint8Array | undefined> {
    if (!this.#sizes.has(hex)) return undefined;
    const data = await readFile(join(this.#dir, hex)).catch(() => undefined);
    if (data === undefined) {
      this.#forget(hex);
      return undefined;
    }
    this.#note(hex, data.length);
    return data;
  }

  async put(hex: string, data: Uint8Array): Promise<void> {
    if (this.#sizes.has(hex)) {
      this.#note(hex, data.length);
      return;
    }
    const temp = join(this.#dir, `${hex}.tmp-${process.pid}`);
    await writeFile(temp, data);
    await rename(temp, join(this.#dir, hex));
    this.#note(hex, data.length);
    await this.#evict();
  }

  /**
   * Writes the chunk in the background, one write at a time, so that no reader waits for it; a
   * chunk that comes while MAX_QUEUED bytes wait is not kept (the cache only saves fetching).
   */
  keep(hex: string, data: Uint8Array): void {
    if (this.#sizes.has(hex) || this.#queued + data.length > MAX_QUEUED) return;
    this.#queue.push({ hex, data });
    this.#queued += data.length;
    if (!this.#writing) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    for (let next = this.#queue.shift(); next; next = this.#queue.shift()) {
      await this.put(next.hex, next.data).catch(() => {});
      this.#queued -= next.data.length;
    }
    this.#writing = false;
  }

  #note(hex: string, size: number): void {
    this.#forget(hex);
    this.#sizes.set(hex, size);
    this.#bytes += size;
  }

  #forget(hex: string): void {
    const size = this.#sizes.get(hex);
    if (size === undefined) return;
    this.#sizes.delete(hex);
    this.#bytes -= size;
  }

  async #evict(): Promise<void> {
    for (const [hex] of this.#sizes) {
      if (this.#bytes <= this.#maxBytes) return;
      this.#forget(hex);
      await rm(join(this.#dir, hex), { force: true });
    }
  }
}
