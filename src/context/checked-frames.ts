import { frameCrc } from '../storage/chunk-store.ts';

/**
 * For chunk stores that record no CRC of the frames they write (castr directories, S3, pack
 * indexes made before they did; see FrameReads.getFrames): the stored frames this process has
 * lately checked in full (decompressed, size and sha256 against the chunk id), each remembered by
 * its CRC-32. A frame read again with the same CRC is the same bytes, barring a change that CRC-32
 * misses (1 in 2^32), so it is passed on without the full check, which costs a decompression and a
 * hash of the chunk: most of a download's CPU, on the cores the client needs too. A chunk that is
 * in several NARs of a closure, or that many machines fetch, is checked once in full; a frame
 * rewritten since (recompression) or damaged on disk no longer matches and is checked in full again.
 *
 * Skipping the full check brings substitution close to nginx's time and cuts the server's CPU
 * to a fraction (measured: docs/benchmarks.md, 'Checking frames').
 */
const MAX_FRAMES = 65_536;

/** 32 bytes as a one-byte string, the most compact key a Map takes. */
function keyOf(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('latin1');
}

export class CheckedFrames {
  /** Chunk id (keyOf) -> CRC-32 of its stored frame, oldest first. */
  readonly #frames = new Map<string, number>();

  /** True when these stored bytes of the chunk are the ones checked in full before. */
  checkedBefore(id: Uint8Array, stored: Uint8Array): boolean {
    const key = keyOf(id);
    const crc = this.#frames.get(key);
    if (crc === undefined || crc !== frameCrc(stored)) return false;
    // Moved to the back of the queue: the frames read most recently are kept.
    this.#frames.delete(key);
    this.#frames.set(key, crc);
    return true;
  }

  /** Remembers stored bytes of the chunk that were just checked in full. */
  remember(id: Uint8Array, stored: Uint8Array): void {
    const key = keyOf(id);
    this.#frames.delete(key);
    this.#frames.set(key, frameCrc(stored));
    if (this.#frames.size > MAX_FRAMES) this.#frames.delete(this.#frames.keys().next().value!);
  }
}
