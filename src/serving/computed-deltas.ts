import { chunkHex } from '../storage/chunk-store.ts';
import { BoundedMap } from './bounded-contents.ts';

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
export class ComputedDeltas extends BoundedMap<Uint8Array | null> {
  constructor() {
    super(MAX_BYTES, (delta) => ENTRY_BYTES + (delta?.length ?? 0));
  }

  static key(id: Uint8Array, bases: readonly Uint8Array[]): string {
    return [id, ...bases].map(chunkHex).join('');
  }
}
