import type { NarRecord } from '../metadata/metadata-store.ts';
import type { NarSource } from '../nix/nar-listing.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { readNarBytes } from './nar-reader.ts';

/** Bytes read ahead of a small read: NAR headers are short and close together. */
const WINDOW = 64 * 1024;

/**
 * The NAR as a NarSource: each read takes its range from the chunks that hold it (readNarBytes,
 * each chunk checked), keeping one window of bytes so that consecutive header reads cost one
 * chunk read. Memory is one window plus the largest single read asked for.
 */
export function narSource(nw: Narwhal, nar: NarRecord): NarSource {
  let windowStart = 0;
  let window = new Uint8Array(0);
  return {
    size: nar.narSize,
    async read(offset, length) {
      if (offset < windowStart || offset + length > windowStart + window.length) {
        const end = Math.min(nar.narSize, offset + Math.max(length, WINDOW));
        const parts: Uint8Array[] = [];
        for await (const part of readNarBytes(nw, nar, offset, end)) parts.push(part);
        window = Buffer.concat(parts);
        windowStart = offset;
      }
      return window.subarray(offset - windowStart, offset - windowStart + length);
    },
  };
}
