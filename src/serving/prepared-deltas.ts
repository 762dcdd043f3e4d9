import { createHash, randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, readdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * Deltas prepared for upgrades (upgrade-deltas.ts), on disk under the data dir, one file per
 * upgrade (`<from NAR id>-<to NAR id>.<random>.deltas`: a name is never reused, so that an index
 * read earlier never points into another file's bytes), so that every process of `serve --processes N`
 * finds them and a restart keeps them. A file is the deltas back to back, then its index sorted
 * by key (KEY_BYTES of key, u64 offset, u32 length, u32 flags), then a trailer (u64 index offset,
 * u32 count, MAGIC); a writer's temporary file (TEMP_PREFIX) is renamed into place once whole. A key names a chunk and the bases of its delta (deltaKey), so an entry is
 * right whatever NAR it came from; whether the requester may read the chunk and its bases is the
 * caller's check. An entry flagged NOT_WORTH says that no delta against those bases pays.
 * Files beyond the bound in bytes go, the least recently used first (a file used is touched).
 */
const KEY_BYTES = 16;
const ENTRY_BYTES = 32;
const TRAILER_BYTES = 16;
const MAGIC = 0x4457_554e; // "NUWD" little-endian
const NOT_WORTH = 1;
const SUFFIX = '.deltas';
const TEMP_PREFIX = '.tmp-';
/** A temporary file this old is a writer's that died. */
const STALE_TEMP_MS = 10 * 60_000;
/** How often a file in use has its modification time moved to now, at most (its rank for eviction). */
const TOUCH_MS = 60_000;
/** One upgrade's file holds at most this share of the bound, so one huge upgrade does not push out the rest. */
const FILE_SHARE = 0.5;

/** The key of a delta of chunk `id` against `bases` (in that order). */
export function deltaKey(id: Uint8Array, bases: readonly Uint8Array[]): Uint8Array {
  const hash = createHash('sha256').update(id);
  for (const base of bases) hash.update(base);
  return hash.digest().subarray(0, KEY_BYTES);
}

interface DeltaFile {
  name: string;
  /** The sorted index. */
  index: Buffer;
  count: number;
  touchedAt: number;
}

/** The store of one data dir, as this process sees it. */
export class PreparedDeltas {
  readonly dir: string;
  readonly maxBytes: number;
  #files: DeltaFile[] = [];
  #dirTime = -1;
  #refreshing: Promise<void> | undefined;
  /** The file of the last hit, tried first: a request's chunks come from one upgrade. */
  #lastHit: DeltaFile | undefined;

  constructor(dir: string, maxBytes: number) {
    this.dir = dir;
    this.maxBytes = maxBytes;
  }

  /** Picks up files other processes wrote or removed since the last look (the folder's time changed). */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    const dirTime = await stat(this.dir).then(
      (s) => s.mtimeMs,
      () => -1,
    );
    if (dirTime === this.#dirTime) return;
    this.#dirTime = dirTime;
    const listed = dirTime < 0 ? [] : await readdir(this.dir).catch(() => [] as string[]);
    const names = new Set(listed.filter((n) => n.endsWith(SUFFIX) && !n.startsWith(TEMP_PREFIX)));
    const kept: DeltaFile[] = [];
    for (const file of this.#files) if (names.delete(file.name)) kept.push(file);
    for (const name of names) {
      const file = await openDeltaFile(join(this.dir, name), name).catch(() => undefined);
      if (file) kept.push(file);
    }
    this.#files = kept;
    if (this.#lastHit && !kept.includes(this.#lastHit)) this.#lastHit = undefined;
  }

  /** The delta kept for `key`, null when none pays, undefined when none was prepared. */
  async get(key: Uint8Array): Promise<Uint8Array | null | undefined> {
    const last = this.#lastHit;
    if (last) {
      const found = await this.#getIn(last, key);
      if (found !== undefined) return found;
    }
    for (const file of this.#files) {
      if (file === last) continue;
      const found = await this.#getIn(file, key);
      if (found !== undefined) {
        this.#lastHit = file;
        return found;
      }
    }
    return undefined;
  }

  async #getIn(file: DeltaFile, key: Uint8Array): Promise<Uint8Array | null | undefined> {
    const at = findKey(file, key);
    if (at < 0) return undefined;
    const entry = at * ENTRY_BYTES;
    if (file.index.readUInt32LE(entry + 28) & NOT_WORTH) return null;
    const offset = file.index.readUIntLE(entry + KEY_BYTES, 6);
    const length = file.index.readUInt32LE(entry + 24);
    const delta = Buffer.allocUnsafe(length);
    // Opened per read: no handle outlives the request, and a file another process removed is a miss.
    const handle = await open(join(this.dir, file.name), 'r').catch(() => undefined);
    if (!handle) return undefined;
    try {
      const read = await handle.read(delta, 0, length, offset).catch(() => undefined);
      if (read?.bytesRead !== length) return undefined;
    } finally {
      await handle.close().catch(() => {});
    }
    if (Date.now() - file.touchedAt >= TOUCH_MS) {
      file.touchedAt = Date.now();
      const now = new Date();
      utimes(join(this.dir, file.name), now, now).catch(() => {});
    }
    return delta;
  }

  /** Whether the upgrade from NAR `from` to NAR `to` has its file. */
  async has(from: number, to: number): Promise<boolean> {
    await this.refresh();
    const prefix = `${from}-${to}.`;
    return this.#files.some((f) => f.name.startsWith(prefix));
  }

  /** A writer of the upgrade's file, which appears whole once finished. */
  async writer(from: number, to: number): Promise<DeltaFileWriter> {
    await mkdir(this.dir, { recursive: true });
    const name = `${from}-${to}.${randomBytes(8).toString('hex')}${SUFFIX}`;
    const temp = join(this.dir, `${TEMP_PREFIX}${name}`);
    const handle = await open(temp, 'wx');
    return new DeltaFileWriter(this, handle, temp, name, Math.floor(this.maxBytes * FILE_SHARE));
  }

  /** Removes the files of upgrades whose NAR at either end `exists` says is gone; returns how many. */
  async dropUnless(exists: (narId: number) => Promise<boolean>): Promise<number> {
    let dropped = 0;
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      const ends = /^(\d+)-(\d+)\.[0-9a-f]+\.deltas$/.exec(name);
      if (!ends) continue;
      if ((await exists(Number(ends[1]))) && (await exists(Number(ends[2])))) continue;
      await unlink(join(this.dir, name)).catch(() => {});
      dropped++;
    }
    await this.refresh();
    return dropped;
  }

  /** Removes the least recently used files until they hold at most maxBytes, and dead writers' leftovers. */
  async evict(): Promise<void> {
    const files: { path: string; size: number; time: number }[] = [];
    const now = Date.now();
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      const path = join(this.dir, name);
      const s = await stat(path).catch(() => undefined);
      if (!s) continue;
      if (name.startsWith(TEMP_PREFIX)) {
        if (now - s.mtimeMs > STALE_TEMP_MS) await unlink(path).catch(() => {});
      } else if (name.endsWith(SUFFIX)) files.push({ path, size: s.size, time: s.mtimeMs });
    }
    files.sort((a, b) => a.time - b.time);
    let total = files.reduce((sum, f) => sum + f.size, 0);
    for (const file of files) {
      if (total <= this.maxBytes) break;
      await unlink(file.path).catch(() => {});
      total -= file.size;
    }
    await this.refresh();
  }
}

/** Appends deltas to a temporary file; `finish` writes the index and renames it into place. */
export class DeltaFileWriter {
  readonly #store: PreparedDeltas;
  readonly #handle: FileHandle;
  readonly #temp: string;
  readonly #name: string;
  readonly #maxBytes: number;
  readonly #entries: { key: Uint8Array; offset: number; length: number; flags: number }[] = [];
  #pending: Uint8Array[] = [];
  #bytes = 0;

  constructor(store: PreparedDeltas, handle: FileHandle, temp: string, name: string, maxBytes: number) {
    this.#store = store;
    this.#handle = handle;
    this.#temp = temp;
    this.#name = name;
    this.#maxBytes = maxBytes;
  }

  /** Whether the file holds its share of the bound: what is added later is dropped. */
  get full(): boolean {
    return this.#bytes >= this.#maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Notes the delta of `key` (null: none pays); written by the next flush. */
  add = (key: Uint8Array, delta: Uint8Array | null): void => {
    if (this.full) return;
    const length = delta?.length ?? 0;
    this.#entries.push({ key, offset: this.#bytes, length, flags: delta ? 0 : NOT_WORTH });
    if (delta) this.#pending.push(delta);
    this.#bytes += length;
  };

  /** Writes what was added since the last flush. */
  async flush(): Promise<void> {
    const pending = this.#pending;
    this.#pending = [];
    if (pending.length > 0) await this.#handle.writev(pending);
  }

  /** Writes the index, syncs, and puts the file in place; then keeps the folder within its bound. */
  async finish(): Promise<void> {
    await this.flush();
    const entries = this.#entries.sort((a, b) => Buffer.compare(a.key, b.key));
    const tail = Buffer.alloc(entries.length * ENTRY_BYTES + TRAILER_BYTES);
    entries.forEach((e, i) => {
      const at = i * ENTRY_BYTES;
      tail.set(e.key, at);
      tail.writeUIntLE(e.offset, at + KEY_BYTES, 6);
      tail.writeUInt32LE(e.length, at + 24);
      tail.writeUInt32LE(e.flags, at + 28);
    });
    const trailer = entries.length * ENTRY_BYTES;
    tail.writeUIntLE(this.#bytes, trailer, 6);
    tail.writeUInt32LE(entries.length, trailer + 8);
    tail.writeUInt32LE(MAGIC, trailer + 12);
    await this.#handle.write(tail);
    await this.#handle.sync();
    await this.#handle.close();
    await rename(this.#temp, join(this.#store.dir, this.#name));
    await this.#store.evict();
  }

  /** Drops the temporary file. */
  async abort(): Promise<void> {
    await this.#handle.close().catch(() => {});
    await unlink(this.#temp).catch(() => {});
  }
}

async function openDeltaFile(path: string, name: string): Promise<DeltaFile | undefined> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size < TRAILER_BYTES) throw new Error('short');
    const trailer = Buffer.alloc(TRAILER_BYTES);
    await handle.read(trailer, 0, TRAILER_BYTES, size - TRAILER_BYTES);
    const indexAt = trailer.readUIntLE(0, 6);
    const count = trailer.readUInt32LE(8);
    if (trailer.readUInt32LE(12) !== MAGIC || indexAt + count * ENTRY_BYTES + TRAILER_BYTES !== size) {
      throw new Error('not a delta file');
    }
    const index = Buffer.alloc(count * ENTRY_BYTES);
    await handle.read(index, 0, index.length, indexAt);
    return { name, index, count, touchedAt: 0 };
  } catch {
    return undefined;
  } finally {
    await handle.close();
  }
}

/** The entry of `key` in the file's index, or -1. */
function findKey(file: DeltaFile, key: Uint8Array): number {
  let low = 0;
  let high = file.count - 1;
  while (low <= high) {
    const mid = (low + high) >>> 1;
    const at = mid * ENTRY_BYTES;
    const order = file.index.compare(key, 0, KEY_BYTES, at, at + KEY_BYTES);
    if (order === 0) return mid;
    if (order < 0) low = mid + 1;
    else high = mid - 1;
  }
  return -1;
}

const stores = new WeakMap<Narwhal, PreparedDeltas>();

/** The prepared deltas of the context's data dir; undefined for a context opened without one. */
export function preparedDeltasOf(nw: Narwhal): PreparedDeltas | undefined {
  if (nw.options.dataDir === undefined) return undefined;
  let store = stores.get(nw);
  if (!store) {
    store = new PreparedDeltas(join(nw.options.dataDir, 'upgrade-deltas'), nw.options.upgradeDeltaBytes);
    stores.set(nw, store);
  }
  return store;
}

/** Removes the prepared deltas of upgrades whose NAR at either end is gone (for GC); returns how many. */
export async function dropDeltasOfGoneNars(nw: Narwhal): Promise<number> {
  const store = preparedDeltasOf(nw);
  if (!store) return 0;
  return store.dropUnless(async (narId) => (await nw.meta.narChunkTable(narId)) !== undefined);
}
