import type { NewChunk } from '../metadata/metadata-store.ts';
import { DEFAULT_CHUNKER_PARAMS } from '../chunking/chunker.ts';
import { SharedSlots } from './shared-slots.ts';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * Chunks being compressed or written at once, per upload. Chosen when each chunk was a file whose
 * creation waited on the file system (more in flight hid the wait); with pack files, higher
 * values gain nothing (measured: docs/benchmarks.md, 'Ingest').
 */
const WRITE_CONCURRENCY = 32;

/**
 * Bytes of chunks written between flushes of the chunk store during one upload. A store keeps
 * what it has written but not flushed in memory (the pack store: each frame's place, until it is
 * indexed), which grew with the NAR (some hundred bytes of the main thread's heap per chunk).
 */
const FLUSH_EVERY_BYTES = 256 * 1024 * 1024;

/**
 * Shared memory for the bytes of every upload of this process, made on first use, as most
 * processes never ingest: blocks that request bodies are gathered into (chunks inside one are
 * written from where they are), and slots for the chunks that straddle two blocks. Two pools, so
 * that an upload waiting for a slot never waits on another upload's block.
 */
let blocks: SharedSlots | undefined;
let slots: SharedSlots | undefined;
/**
 * Shared blocks: per upload, the one being filled, those being chunked and those that chunks
 * being written lie in. Uploads beyond what they serve use blocks of their own (see ingest-nar.ts).
 */
export const INGEST_BLOCKS = 16;
const SLOTS = 16;

/** The process's pool of blocks of `bytes` that NarChunkWriter writes chunks from without a copy. */
export function ingestBlocks(bytes: number): SharedSlots {
  blocks ??= new SharedSlots(INGEST_BLOCKS, bytes);
  if (blocks.slotBytes !== bytes) throw new RangeError(`ingest blocks are ${blocks.slotBytes} bytes, not ${bytes}`);
  return blocks;
}

/**
 * Stores the new chunks of one upload with bounded concurrency. A chunk already in the store is
 * not written again; either way `storedSize` is filled in once its write settles.
 */
export class NarChunkWriter {
  readonly #nw: Narwhal;
  readonly #inFlight = new Set<Promise<void>>();
  #error: unknown;
  readonly #flushEveryBytes: number;
  #unflushedBytes = 0;
  #flushing: Promise<void> = Promise.resolve();

  constructor(nw: Narwhal, options: { flushEveryBytes?: number } = {}) {
    this.#nw = nw;
    this.#flushEveryBytes = options.flushEveryBytes ?? FLUSH_EVERY_BYTES;
  }

  /**
   * Resolves when the write has started and there is room for another (backpressure). `data` is
   * held in place if it lies in a block of ingestBlocks(), and copied otherwise, so the caller
   * may let go of its block, or reuse its own buffer, once this resolves.
   */
  async write(chunk: NewChunk, data: Uint8Array): Promise<void> {
    await this.#room();
    const inBlock = blocks?.retain(data);
    const { copy, release } = inBlock
      ? { copy: data, release: inBlock }
      : await (slots ??= new SharedSlots(SLOTS, DEFAULT_CHUNKER_PARAMS.max)).hold(data);
    const encodeAndPut = () => this.#nw.chunks.encodeAndPut(chunk.id, copy, this.#nw.options.zstdLevel);
    this.#track(this.#store(chunk, data.length, encodeAndPut), release);
  }

  /**
   * Like write, for a chunk given as a plain zstd frame already checked to decode to it (a pushed
   * chunk, src/push/commit-chunk-list.ts): the frame is stored as it is, not compressed again.
   * The frame is taken over (the store may move it to another thread).
   */
  async writeFrame(chunk: NewChunk, frame: Uint8Array): Promise<void> {
    await this.#room();
    const put = async (): Promise<number> => {
      const storedSize = frame.length;
      await this.#nw.chunks.put(chunk.id, frame);
      return storedSize;
    };
    this.#track(this.#store(chunk, chunk.size, put), () => {});
  }

  /** Resolves once fewer than WRITE_CONCURRENCY writes are under way; throws a write's failure. */
  async #room(): Promise<void> {
    while (this.#inFlight.size >= WRITE_CONCURRENCY) await Promise.race(this.#inFlight);
    if (this.#error !== undefined) throw this.#error;
  }

  #track(store: Promise<void>, release: () => void): void {
    const write: Promise<void> = store
      .catch((err: unknown) => {
        this.#error ??= err;
      })
      .finally(() => {
        release();
        this.#inFlight.delete(write);
      });
    this.#inFlight.add(write);
  }

  /** Waits for every write and flush; throws the first failure. */
  async finish(): Promise<void> {
    await Promise.all(this.#inFlight);
    await this.#flushing;
    if (this.#error !== undefined) throw this.#error;
  }

  /** Waits for writes and flushes under way so none outlives a failed upload. */
  async abandon(): Promise<void> {
    await Promise.allSettled([...this.#inFlight, this.#flushing]);
  }

  /**
   * Every `flushEveryBytes` written, flushes the writes that have settled, while this upload goes
   * on; finish() reports a failure. One flush at a time; the next waits for it.
   */
  #flushNowAndThen(bytes: number): void {
    this.#unflushedBytes += bytes;
    if (this.#unflushedBytes < this.#flushEveryBytes) return;
    this.#unflushedBytes = 0;
    this.#flushing = this.#flushing
      .then(() => this.#nw.chunks.flush())
      .catch((err: unknown) => {
        this.#error ??= err;
      });
  }

  /**
   * A chunk is reused only when a committed NAR vouches for it (its file was made durable before
   * that commit), it is not flagged damaged nor found unused by GC, and its file is still there;
   * anything else, such as a leftover of an upload that crashed, is written again. Rewriting a
   * damaged chunk is how a re-upload repairs it.
   */
  async #store(chunk: NewChunk, bytes: number, put: () => Promise<number>): Promise<void> {
    if (await this.#nw.meta.mayReuseChunk(chunk.id)) {
      const existing = await this.#nw.chunks.storedSize(chunk.id);
      if (existing !== undefined) {
        chunk.storedSize = existing;
        return;
      }
    }
    chunk.storedSize = await put();
    chunk.written = true;
    this.#flushNowAndThen(bytes);
  }
}
