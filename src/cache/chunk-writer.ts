import type { NewChunk } from '../metadata/metadata-store.ts';
import { DEFAULT_CHUNKER_PARAMS } from '../chunking/chunker.ts';
import { SharedSlots } from './shared-slots.ts';
import type { Narwhal } from './narwhal.ts';

/**
 * Chunks being compressed or written at once, per upload. Chosen when each chunk was a file whose
 * creation waited on the file system (8 gave 76 MB/s, 32 gave 100-126 MB/s on 2 cores); with
 * pack files 32, 128 and 512 ingested the benchmark's 1.5 GB equally fast (7.0-7.4 s).
 */
const WRITE_CONCURRENCY = 32;

/** Slots for the chunks of every upload of this process: made on first use, as most processes never ingest. */
let slots: SharedSlots | undefined;
const SLOTS = 2 * WRITE_CONCURRENCY;

/**
 * Stores the new chunks of one upload with bounded concurrency. A chunk already in the store is
 * not written again; either way `storedSize` is filled in once its write settles.
 */
export class ChunkWriter {
  readonly #nw: Narwhal;
  readonly #inFlight = new Set<Promise<void>>();
  #error: unknown;

  constructor(nw: Narwhal) {
    this.#nw = nw;
  }

  /**
   * Resolves when the write has started and there is room for another (backpressure). `data` is
   * copied before that, so the caller may reuse its buffer once this resolves.
   */
  async write(chunk: NewChunk, data: Uint8Array): Promise<void> {
    while (this.#inFlight.size >= WRITE_CONCURRENCY) await Promise.race(this.#inFlight);
    if (this.#error !== undefined) throw this.#error;
    const { copy, release } = await (slots ??= new SharedSlots(SLOTS, DEFAULT_CHUNKER_PARAMS.max)).hold(data);
    const write: Promise<void> = this.#store(chunk, copy)
      .catch((err: unknown) => {
        this.#error ??= err;
      })
      .finally(() => {
        release();
        this.#inFlight.delete(write);
      });
    this.#inFlight.add(write);
  }

  /** Waits for every write; throws the first failure. */
  async finish(): Promise<void> {
    await Promise.all(this.#inFlight);
    if (this.#error !== undefined) throw this.#error;
  }

  /** Waits for writes under way so none outlives a failed upload. */
  async abandon(): Promise<void> {
    await Promise.allSettled(this.#inFlight);
  }

  /**
   * A chunk is reused only when a committed NAR vouches for it (its file was made durable before
   * that commit), it is not flagged damaged nor found unused by GC, and its file is still there;
   * anything else, such as a leftover of an upload that crashed, is written again. Rewriting a
   * damaged chunk is how a re-upload repairs it.
   */
  async #store(chunk: NewChunk, data: Uint8Array): Promise<void> {
    if (await this.#nw.meta.mayReuseChunk(chunk.id)) {
      const existing = await this.#nw.chunks.storedSize(chunk.id);
      if (existing !== undefined) {
        chunk.storedSize = existing;
        return;
      }
    }
    chunk.storedSize = await this.#nw.chunks.encodeAndPut(chunk.id, data, this.#nw.options.zstdLevel);
    chunk.written = true;
  }
}
