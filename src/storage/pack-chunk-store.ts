import { mkdirSync } from 'node:fs';
import { open, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { NarwhalError } from '../errors.ts';
import { chunkHex, type ChunkStore, type StoredChunkInfo, type StoredFrame } from './chunk-store.ts';
import type {
  CompactOptions,
  CompactReport,
  Compaction,
  ConditionalDelete,
  FramePlaces,
  FrameReads,
  FreeSpace,
  LeftoverCleanup,
  PlacedFrames,
  RemovedLeftovers,
  WritePreparation,
} from './chunk-store-capabilities.ts';
import { FRAME_HEADER_BYTES, frameHeader, newPackName, PACK_IDLE_LIMIT_MS, PACK_NAME } from './pack-format.ts';
import { PackFiles } from './pack-files.ts';
import { PackIndex, type IndexedChunk, type LocatedFrame, type PackLocation, type PackUsage } from './pack-index.ts';
import type { PackWriteRequest, PackWriteResult, SealResult, WrittenFrame } from './pack-write-worker.ts';
import { WorkerPool, transferable } from '../runtime/worker-pool.ts';
import { freeBytesAt, ignoreMissing, mapWriteError, syncPath } from '../runtime/local-fs.ts';

/** A pack is compacted once at most this share of it is still live (unless the caller says otherwise). */
const COMPACT_WHEN_LIVE_AT_MOST = 0.5;
/** Packs smaller than this are merged (each upload seals its own). */
const SMALL_PACK_BYTES = 4 * 1024 * 1024;
/** Compaction writes packs of about this size. */
const COMPACTED_PACK_BYTES = 256 * 1024 * 1024;
const LIST_PAGE = 1000;

/**
 * The local chunk store: chunks appended as zstd frames to pack files (`<root>/packs/*.pack`,
 * format in pack-format.ts), found through an SQLite index (`<root>/index.sqlite`). Writing a
 * chunk is one append by a writer thread, where a file per chunk cost a file creation (slow on
 * ext4: docs/benchmarks.md, 'castr directory against packs') and often a directory.
 *
 * Durability: `flush()` seals the packs being written (fdatasync, then the directory), and only
 * then indexes their frames, in one transaction. A crash before that leaves frames that no index
 * names; removeLeftovers deletes such packs once idle long enough that no writer appends to them
 * (pack-write-worker.ts). Deleting a chunk un-indexes it; its bytes are
 * reclaimed by `compact()`, which copies the live frames of mostly dead (or small) packs into a
 * new pack and deletes the old ones.
 */
export class PackChunkStore
  implements
    ChunkStore,
    FrameReads,
    FramePlaces,
    FreeSpace,
    WritePreparation,
    ConditionalDelete,
    LeftoverCleanup,
    Compaction
{
  readonly root: string;
  readonly packDir: string;
  readonly #index: PackIndex;
  readonly #files: PackFiles;
  /** One writer per core but the main thread's, which chunks and hashes. */
  readonly #writers = new WorkerPool<PackWriteRequest, PackWriteResult>(
    new URL('./pack-write-worker.ts', import.meta.url),
    Math.max(1, availableParallelism() - 1),
  );
  /** Frames written since the last flush, in write order, and the newest per chunk for lookups. */
  #unsealed: IndexedChunk[] = [];
  readonly #newest = new Map<string, IndexedChunk>();
  #flushing: Promise<void> = Promise.resolve();
  /** Packs sealed but not yet in the index, because recording them failed. */
  #sealedUnindexed: { name: string; bytes: number }[] = [];
  readonly #shared = new Map<SharedArrayBuffer, number>();

  /** See PACK_IDLE_LIMIT_MS; tests make it short. */
  readonly #idleLimitMs: number;

  constructor(root: string, options: { idleLimitMs?: number } = {}) {
    this.root = root;
    this.#idleLimitMs = options.idleLimitMs ?? PACK_IDLE_LIMIT_MS;
    this.packDir = join(root, 'packs');
    mkdirSync(this.packDir, { recursive: true });
    this.#index = new PackIndex(join(root, 'index.sqlite'));
    this.#files = new PackFiles(this.packDir);
  }

  #locate(id: Uint8Array): LocatedFrame | undefined {
    return this.#newest.get(chunkHex(id)) ?? this.#index.lookup(id);
  }

  async get(id: Uint8Array): Promise<Uint8Array> {
    return (await this.getFrames([id]))[0].stored;
  }

  /** #locate of each id, those not just written looked up in one statement. */
  #locateMany(ids: Uint8Array[]): (LocatedFrame | undefined)[] {
    const located: (LocatedFrame | undefined)[] = ids.map((id) => this.#newest.get(chunkHex(id)));
    const rest = located.flatMap((location, i) => (location === undefined ? [i] : []));
    const found = this.#index.lookupMany(rest.map((i) => ids[i]));
    for (const [k, i] of rest.entries()) located[i] = found[k];
    return located;
  }

  /** Where the frames of `ids` lie, in order, for readFramesSync on another thread; throws 'chunk-missing' for one absent. */
  locateFrames(ids: Uint8Array[]): PlacedFrames {
    const frames = this.#locateMany(ids).map((location, i) => {
      if (!location)
        throw new NarwhalError('chunk-missing', `chunk ${chunkHex(ids[i])} is missing from the chunk store`);
      return location;
    });
    return { dir: this.packDir, frames };
  }

  async getFrames(ids: Uint8Array[]): Promise<StoredFrame[]> {
    for (let attempt = 0; ; attempt++) {
      const locations = this.locateFrames(ids).frames;
      try {
        const frames = await this.#files.readMany(locations);
        return frames.map((stored, i) => ({ stored, crc: locations[i].crc }));
      } catch (err) {
        // Compaction moved the chunk and deleted its pack between the lookup and the open.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && attempt === 0) continue;
        throw err;
      }
    }
  }

  async recordCrc(id: Uint8Array, crc: number): Promise<void> {
    this.#index.recordCrc(id, crc);
  }

  async storedSize(id: Uint8Array): Promise<number | undefined> {
    return this.#locate(id)?.length;
  }

  async storedSizes(ids: Uint8Array[]): Promise<(number | undefined)[]> {
    return this.#locateMany(ids).map((location) => location?.length);
  }

  freeBytes(): Promise<number> {
    return freeBytesAt(this.root);
  }

  prepare(): void {
    this.#writers.start();
  }

  async put(id: Uint8Array, stored: Uint8Array): Promise<void> {
    await this.#write(id, stored, null);
  }

  encodeAndPut(id: Uint8Array, data: Uint8Array, level: number): Promise<number> {
    return this.#write(id, data, level);
  }

  async #write(id: Uint8Array, data: Uint8Array, level: number | null): Promise<number> {
    // Shared memory is named rather than cloned per message.
    const bytes =
      data.buffer instanceof SharedArrayBuffer
        ? { memory: this.#share(data.buffer), offset: data.byteOffset, length: data.byteLength }
        : data;
    let frame: WrittenFrame;
    try {
      // A copy of the id: a view is posted with its whole buffer.
      frame = (await this.#writers.run(
        { op: 'write', dir: this.packDir, id: id.slice(), data: bytes, level, idleLimitMs: this.#idleLimitMs },
        transferable(data),
      )) as WrittenFrame;
    } catch (err) {
      throw mapWriteError(err);
    }
    const chunk: IndexedChunk = { id: new Uint8Array(id), ...frame, writtenAt: Date.now() };
    this.#unsealed.push(chunk);
    this.#newest.set(chunkHex(id), chunk);
    return frame.length;
  }

  /** The number by which the writers know this shared memory, handed to them on first use. */
  #share(buffer: SharedArrayBuffer): number {
    const known = this.#shared.get(buffer);
    if (known !== undefined) return known;
    const memory = this.#shared.size;
    this.#shared.set(buffer, memory);
    // Sent before any write that names it, and each writer handles its messages in order.
    // A worker that fails fails the writes that follow; nothing to report here.
    this.#writers.broadcast({ op: 'share', memory, buffer }).catch(() => undefined);
    return memory;
  }

  /** Makes every put that has returned durable and indexed. Calls run one after another. */
  flush(): Promise<void> {
    const run = this.#flushing.then(() => this.#seal());
    this.#flushing = run.catch(() => undefined);
    return run;
  }

  async #seal(): Promise<void> {
    if (this.#unsealed.length === 0 && this.#sealedUnindexed.length === 0) return;
    let results: SealResult[];
    try {
      results = (await this.#writers.broadcast({ op: 'seal' })) as SealResult[];
    } catch (err) {
      throw mapWriteError(err);
    }
    // Packs sealed by an earlier flush that could not index them (the index's disk was full) are indexed now.
    const sealed = [...this.#sealedUnindexed, ...results.flatMap((r) => r.sealed)];
    this.#sealedUnindexed = sealed;
    const discarded = new Set(results.flatMap((r) => r.discarded));
    if (discarded.size > 0) this.#forgetPacks(discarded);
    const lost = new Set(results.flatMap((r) => r.abandoned));
    const done = new Set([...sealed.map((p) => p.name), ...lost]);
    if (sealed.length > 0) await syncPath(this.packDir);
    const chunks = this.#unsealed.filter((c) => done.has(c.pack) && !lost.has(c.pack));
    try {
      this.#index.recordSealed(sealed, chunks, Date.now());
    } catch (err) {
      // The sealed packs' frames stay readable here and are indexed by the next flush; lost ones go.
      this.#unsealed = this.#unsealed.filter((c) => !lost.has(c.pack));
      throw err;
    }
    this.#sealedUnindexed = [];
    this.#forgetPacks(done);
    if (lost.size > 0) {
      const why = results.flatMap((r) => (r.error ? [r.error] : [])).join('; ');
      throw new NarwhalError(
        'internal',
        `chunks written to ${[...lost].join(', ')} were lost: ${why || 'a write failed and could not be undone'}`,
      );
    }
  }

  /** Drops the unsealed frames of these packs (indexed now, or gone). */
  #forgetPacks(packs: Set<string>): void {
    this.#unsealed = this.#unsealed.filter((c) => !packs.has(c.pack));
    for (const [key, chunk] of this.#newest) if (packs.has(chunk.pack)) this.#newest.delete(key);
  }

  async delete(id: Uint8Array): Promise<void> {
    this.#forgetUnsealed(id);
    this.#index.delete(id);
  }

  /**
   * Un-indexes the chunk if its frame was written at or before `notAfter`. A frame written later
   * (still unsealed here, or indexed since) is a newer copy and stays.
   */
  async deleteUnlessNewer(id: Uint8Array, notAfter: number): Promise<number | undefined> {
    const unsealed = this.#newest.get(chunkHex(id));
    if (unsealed && unsealed.writtenAt > notAfter) return undefined;
    if (unsealed) this.#forgetUnsealed(id);
    return this.#index.deleteUnlessNewer(id, notAfter);
  }

  #forgetUnsealed(id: Uint8Array): void {
    const key = chunkHex(id);
    if (!this.#newest.delete(key)) return;
    this.#unsealed = this.#unsealed.filter((c) => chunkHex(c.id) !== key);
  }

  async *list(): AsyncIterable<StoredChunkInfo> {
    const unsealed = new Map(this.#newest);
    for (const chunk of unsealed.values()) yield info(chunk);
    let after: Uint8Array = new Uint8Array(0);
    for (;;) {
      const page = this.#index.page(after, LIST_PAGE);
      for (const chunk of page) if (!unsealed.has(chunkHex(chunk.id))) yield info(chunk);
      if (page.length < LIST_PAGE) return;
      after = page[page.length - 1].id;
    }
  }

  /**
   * Deletes pack files that no index names (left by a crash, or by failed uploads in a process
   * still running) last written at or before `notAfter`, and idle for twice the time after which a
   * writer stops appending to a pack: a pack this old is never written to again.
   */
  async removeLeftovers(notAfter: number): Promise<RemovedLeftovers> {
    notAfter = Math.min(notAfter, Date.now() - 2 * this.#idleLimitMs);
    const removed: RemovedLeftovers = { files: 0, bytes: 0 };
    const indexed = this.#index.packNames();
    const mine = new Set([...this.#unsealed.map((c) => c.pack), ...this.#sealedUnindexed.map((p) => p.name)]);
    for (const name of await readdir(this.packDir)) {
      if (!PACK_NAME.test(name) || indexed.has(name) || mine.has(name)) continue;
      const info = await stat(join(this.packDir, name)).catch(ignoreMissing);
      // Checked again: the pack may have been sealed since the index was read.
      if (!info || info.mtimeMs > notAfter || this.#index.hasPack(name)) continue;
      await rm(join(this.packDir, name), { force: true });
      removed.files++;
      removed.bytes += info.size;
    }
    return removed;
  }

  /**
   * Reclaims the space of deleted chunks: the live frames of packs sealed at or before `notAfter`
   * that are mostly dead, or small while others are too, are copied into new packs; then the old
   * packs are deleted, and the index's log emptied. A chunk deleted or rewritten meanwhile keeps its new state.
   */
  async compact(notAfter: number, options: CompactOptions = {}): Promise<CompactReport> {
    const report: CompactReport = { packs: 0, reclaimedBytes: 0 };
    const liveAtMost = options.liveAtMost ?? COMPACT_WHEN_LIVE_AT_MOST;
    const usage = this.#index.usage().filter((p) => p.sealedAt <= notAfter);
    const dead = usage.filter((p) => p.liveBytes <= p.bytes * liveAtMost);
    const small = usage.filter((p) => p.bytes < SMALL_PACK_BYTES && !dead.includes(p));
    // A small pack alone is left as it is, unless a new pack is being written anyway.
    const candidates = [...dead, ...(small.length >= 2 || dead.some((p) => p.liveChunks > 0) ? small : [])];
    /** Deletes a pack the index has forgotten. */
    const deletePack = async (pack: { name: string; bytes: number }): Promise<void> => {
      this.#files.forget(pack.name);
      await rm(join(this.packDir, pack.name), { force: true });
      report.packs++;
      report.reclaimedBytes += pack.bytes;
    };
    let output: PackWriter | undefined;
    const finishOutput = async (): Promise<void> => {
      if (!output) return;
      const written = await output.seal();
      for (const from of output.sources) {
        if (this.#index.relocate(from.name, written, from.moved, Date.now())) await deletePack(from);
      }
      report.reclaimedBytes -= written.bytes;
      output = undefined;
    };
    for (const pack of candidates) {
      if (pack.liveChunks === 0) {
        if (this.#index.forgetIfEmpty(pack.name)) await deletePack(pack);
        continue;
      }
      output ??= await PackWriter.create(this.packDir);
      try {
        await output.copyLive(pack, this.#index.chunksIn(pack.name), (location) => this.#files.read(location));
      } catch (err) {
        // A pack gone or cut short behind the store's back is verify's business, not a reason to stop.
        // What was copied of it stays dead in the new pack.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'ETRUNCATED')
          throw err;
      }
      if (output.bytes >= COMPACTED_PACK_BYTES) await finishOutput();
    }
    await finishOutput();
    // Rewrites since the last checkpoint (recompression, deltas, this) left the index's log as large
    // as the rows they touched, and a running server never empties it by itself.
    this.#index.checkpoint();
    return report;
  }

  async close(): Promise<void> {
    await this.flush();
    await this.#writers.close();
    await this.#files.closeAll();
    this.#index.close();
  }
}

/** A pack written by compaction on the main thread (it runs in the background, during GC). */
class PackWriter {
  readonly name: string;
  readonly sources: { name: string; bytes: number; moved: { id: Uint8Array; old: PackLocation; offset: number }[] }[] =
    [];
  bytes = 0;
  readonly #dir: string;
  readonly #handle: FileHandle;

  private constructor(dir: string, name: string, handle: FileHandle) {
    this.#dir = dir;
    this.name = name;
    this.#handle = handle;
  }

  static async create(dir: string): Promise<PackWriter> {
    const name = newPackName(randomBytes(6));
    return new PackWriter(dir, name, await open(join(dir, name), 'wx'));
  }

  async copyLive(
    from: PackUsage,
    chunks: IndexedChunk[],
    read: (location: PackLocation) => Promise<Uint8Array>,
  ): Promise<void> {
    const moved = [];
    for (const chunk of chunks) {
      const frame = await read(chunk);
      const { bytesWritten } = await this.#handle.writev([frameHeader(chunk.id), frame]);
      if (bytesWritten !== FRAME_HEADER_BYTES + frame.length) throw new Error(`short write to pack ${this.name}`);
      moved.push({
        id: chunk.id,
        old: { pack: chunk.pack, offset: chunk.offset, length: chunk.length },
        offset: this.bytes + FRAME_HEADER_BYTES,
      });
      this.bytes += FRAME_HEADER_BYTES + frame.length;
    }
    this.sources.push({ name: from.name, bytes: from.bytes, moved });
  }

  async seal(): Promise<{ name: string; bytes: number }> {
    try {
      await this.#handle.datasync();
    } finally {
      await this.#handle.close();
    }
    await syncPath(this.#dir);
    return { name: this.name, bytes: this.bytes };
  }
}

function info(chunk: IndexedChunk): StoredChunkInfo {
  return { id: chunk.id, storedSize: chunk.length, modifiedAt: chunk.writtenAt };
}
