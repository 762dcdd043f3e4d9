import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Bytes of chunks waiting to be written at most. */
const MAX_QUEUED = 16 << 20;
/** A pack file: "NWCP", u32 count, then per chunk its id (32 bytes) and u32 length, then the chunks. */
const PACK_MAGIC = 'NWCP';
const ID_BYTES = 32;
const ENTRY_BYTES = ID_BYTES + 4;
const PACK_NAME = /^pack-[0-9a-f]{16}$/;
/** A chunk per file, as earlier versions kept them: read as packs of one. */
const CHUNK_NAME = /^[0-9a-f]{64}$/;

/** A file of the cache and the chunks in it; the unit of eviction. */
interface Pack {
  name: string;
  bytes: number;
  chunks: string[];
}

/** Where a chunk lies. */
interface Place {
  pack: Pack;
  offset: number;
  length: number;
}

type Chunk = { hex: string; data: Uint8Array };

/**
 * The substituter's chunks on disk, written a batch per file (a pack: one write and rename for
 * up to a request's chunks), the least recently used packs removed once they pass `maxBytes`.
 * What is put here was checked against its id; a file damaged since (or cut by a crash) is caught
 * by the reader's check of every chunk it uses, and a pack whose header does not fit its size is
 * removed when the cache opens.
 */
export class ChunkCache {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #places = new Map<string, Place>();
  /** The packs held, in order of last use (a Map keeps insertion order). */
  readonly #packs = new Map<string, Pack>();
  #bytes = 0;
  /** Batches waiting to be written by keep(), and their bytes. */
  readonly #queue: Chunk[][] = [];
  #queued = 0;
  #writing: Promise<void> | undefined;

  private constructor(dir: string, maxBytes: number) {
    this.#dir = dir;
    this.#maxBytes = maxBytes;
  }

  static async open(dir: string, maxBytes: number): Promise<ChunkCache> {
    await mkdir(dir, { recursive: true });
    const cache = new ChunkCache(dir, maxBytes);
    const found = [];
    for (const name of await readdir(dir)) {
      if (name.includes('.tmp-')) {
        await rm(join(dir, name), { force: true });
        continue;
      }
      if (!PACK_NAME.test(name) && !CHUNK_NAME.test(name)) continue;
      const st = await stat(join(dir, name)).catch(() => undefined);
      if (st) found.push({ name, size: st.size, used: st.mtimeMs });
    }
    for (const f of found.sort((a, b) => a.used - b.used)) {
      const entries = CHUNK_NAME.test(f.name)
        ? [{ hex: f.name, length: f.size }]
        : await readHeader(dir, f.name, f.size);
      if (entries) cache.#add(f.name, f.size, entries);
      else await rm(join(dir, f.name), { force: true });
    }
    await cache.#evict();
    return cache;
  }

  get bytes(): number {
    return this.#bytes;
  }

  has(hex: string): boolean {
    return this.#places.has(hex);
  }

  /** The chunk's bytes, or undefined when not held (or gone from disk). */
  async get(hex: string): Promise<Uint8Array | undefined> {
    const place = this.#places.get(hex);
    if (!place) return undefined;
    const data = await readRange(join(this.#dir, place.pack.name), place.offset, place.length).catch(() => undefined);
    if (data === undefined) {
      if (this.#packs.get(place.pack.name) === place.pack) this.#drop(place.pack);
      return undefined;
    }
    if (this.#packs.delete(place.pack.name)) this.#packs.set(place.pack.name, place.pack);
    return data;
  }

  /** Writes the chunks as one pack now (those held already left out). */
  async put(chunks: Chunk[]): Promise<void> {
    const fresh = unique(chunks.filter((c) => !this.#places.has(c.hex)));
    if (fresh.length === 0) return;
    const header = new Uint8Array(8 + ENTRY_BYTES * fresh.length);
    const view = new DataView(header.buffer);
    header.set(Buffer.from(PACK_MAGIC, 'latin1'));
    view.setUint32(4, fresh.length);
    fresh.forEach(({ hex, data }, i) => {
      header.set(Buffer.from(hex, 'hex'), 8 + ENTRY_BYTES * i);
      view.setUint32(8 + ENTRY_BYTES * i + ID_BYTES, data.length);
    });
    const name = `pack-${randomBytes(8).toString('hex')}`;
    const temp = join(this.#dir, `${name}.tmp-${process.pid}`);
    await writeFile(temp, [header, ...fresh.map((c) => c.data)]);
    await rename(temp, join(this.#dir, name));
    const size = header.length + fresh.reduce((sum, c) => sum + c.data.length, 0);
    this.#add(
      name,
      size,
      fresh.map((c) => ({ hex: c.hex, length: c.data.length })),
    );
    await this.#evict();
  }

  /**
   * Writes the chunks as one pack in the background, one pack at a time, so that no reader waits
   * for it; a batch that comes while MAX_QUEUED bytes wait is not kept (the cache only saves fetching).
   */
  keep(chunks: Chunk[]): void {
    const bytes = chunks.reduce((sum, c) => sum + c.data.length, 0);
    if (chunks.length === 0 || this.#queued + bytes > MAX_QUEUED) return;
    this.#queue.push(chunks);
    this.#queued += bytes;
    this.#writing ??= this.#drain();
  }

  /** Resolves once every batch kept so far is written (or given up). */
  async settled(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  async #drain(): Promise<void> {
    for (let next = this.#queue.shift(); next; next = this.#queue.shift()) {
      await this.put(next).catch(() => {});
      this.#queued -= next.reduce((sum, c) => sum + c.data.length, 0);
    }
    this.#writing = undefined;
  }

  #add(name: string, bytes: number, entries: { hex: string; length: number }[]): void {
    const pack: Pack = { name, bytes, chunks: [] };
    let offset = CHUNK_NAME.test(name) ? 0 : 8 + ENTRY_BYTES * entries.length;
    for (const { hex, length } of entries) {
      if (!this.#places.has(hex)) {
        this.#places.set(hex, { pack, offset, length });
        pack.chunks.push(hex);
      }
      offset += length;
    }
    this.#packs.set(name, pack);
    this.#bytes += bytes;
  }

  #drop(pack: Pack): void {
    this.#packs.delete(pack.name);
    this.#bytes -= pack.bytes;
    for (const hex of pack.chunks) if (this.#places.get(hex)?.pack === pack) this.#places.delete(hex);
  }

  async #evict(): Promise<void> {
    for (const [, pack] of this.#packs) {
      if (this.#bytes <= this.#maxBytes) return;
      this.#drop(pack);
      await rm(join(this.#dir, pack.name), { force: true });
    }
  }
}

/** A pack's entries, or undefined when its header is not one or does not fit the file's size. */
async function readHeader(
  dir: string,
  name: string,
  size: number,
): Promise<{ hex: string; length: number }[] | undefined> {
  try {
    const head = await readRange(join(dir, name), 0, 8);
    if (Buffer.from(head.subarray(0, 4)).toString('latin1') !== PACK_MAGIC) return undefined;
    const count = new DataView(head.buffer, head.byteOffset).getUint32(4);
    if (8 + ENTRY_BYTES * count > size) return undefined;
    const table = await readRange(join(dir, name), 8, ENTRY_BYTES * count);
    const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
    const entries = [];
    let total = 8 + ENTRY_BYTES * count;
    for (let i = 0; i < count; i++) {
      const length = view.getUint32(ENTRY_BYTES * i + ID_BYTES);
      entries.push({
        hex: Buffer.from(table.subarray(ENTRY_BYTES * i, ENTRY_BYTES * i + ID_BYTES)).toString('hex'),
        length,
      });
      total += length;
    }
    return total === size ? entries : undefined;
  } catch {
    return undefined;
  }
}

async function readRange(file: string, offset: number, length: number): Promise<Uint8Array> {
  const handle = await open(file, 'r');
  try {
    const out = Buffer.allocUnsafe(length);
    const { bytesRead } = await handle.read(out, 0, length, offset);
    if (bytesRead !== length) throw new Error(`${file} ends early`);
    return out;
  } finally {
    await handle.close();
  }
}

function unique(chunks: Chunk[]): Chunk[] {
  const seen = new Set<string>();
  return chunks.filter((c) => !seen.has(c.hex) && seen.add(c.hex));
}
