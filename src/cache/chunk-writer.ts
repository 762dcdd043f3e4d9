import type { NewChunk } from '../metadata/metadata-store.ts';
import { encodeChunk } from './chunk-codec.ts';
import type { Narwhal } from './narwhal.ts';

/** Chunk writes in flight at once: enough to keep libuv's four pool threads compressing. */
const WRITE_CONCURRENCY = 6;

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

  /** Resolves when the write has started and there is room for another (backpressure). */
  async write(chunk: NewChunk, data: Uint8Array): Promise<void> {
    while (this.#inFlight.size >= WRITE_CONCURRENCY) await Promise.race(this.#inFlight);
    if (this.#error !== undefined) throw this.#error;
    const write: Promise<void> = this.#store(chunk, data)
      .catch((err: unknown) => {
        this.#error ??= err;
      })
      .finally(() => this.#inFlight.delete(write));
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

  async #store(chunk: NewChunk, data: Uint8Array): Promise<void> {
    const existing = await this.#nw.chunks.storedSize(chunk.id);
    if (existing !== undefined) {
      chunk.storedSize = existing;
      return;
    }
    const stored = await encodeChunk(data, this.#nw.options.zstdLevel);
    await this.#nw.chunks.put(chunk.id, stored);
    chunk.storedSize = stored.length;
  }
}
