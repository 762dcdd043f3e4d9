import { chunkHex } from '../storage/chunk-store.ts';

/** Bytes of computed deltas kept at most (per server process). */
const MAX_BYTES = 32 << 20;
/** What an entry costs besides its bytes (key and map entry). */
const ENTRY_BYTES = 512;

/**
 * The deltas `chunk-frames` computed lately, by chunk and bases: machines upgrading from one
 * version to the next ask for the same chunks with the same hints, and a delta is a pure function
 * of the two, so all but the first get it without the work (most of a request's time). `null`
 * remembers that no delta was worth sending. The least recently used go beyond MAX_BYTES. What is
 * kept depends on chunk contents only; the caller checks what the requester may read first.
 */
export class ComputedDeltas {
  readonly #entries = new Map<string, Uint8Array | null>();
  #bytes = 0;

  static key(id: Uint8Array, bases: readonly Uint8Array[]): string {
    return [id, ...bases].map(chunkHex).join('');
  }

  get(key: string): Uint8Array | null | undefined {
    const found = this.#entries.get(key);
    if (found === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, found);
    return found;
  }

  set(key: string, delta: Uint8Array | null): void {
    if (this.#entries.has(key)) return;
    this.#entries.set(key, delta);
    this.#bytes += ENTRY_BYTES + (delta?.length ?? 0);
    for (const [oldest, old] of this.#entries) {
      if (this.#bytes <= MAX_BYTES) break;
      this.#entries.delete(oldest);
      this.#bytes -= ENTRY_BYTES + (old?.length ?? 0);
    }
  }
}
