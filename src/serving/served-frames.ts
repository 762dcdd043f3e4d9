import { zstdDecompressSync } from 'node:zlib';
import { rawZstdFrame } from '../delta/stored-form.ts';
import type { NarRecord } from '../metadata/metadata-store.ts';
import { encodeChunk } from '../storage/chunk-codec.ts';
import type { CheckedChunk } from './chunk-damage.ts';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * The frame a `.nar.zst` sends for each chunk, within what the NAR's stored size (its
 * Content-Length) counted for it: a plain chunk its stored frame, a delta a frame of raw blocks
 * (recordDeltas counts those). A chunk the delta pass rewrote while the NAR was read was counted
 * at its plain frame's size, which a raw frame exceeds: it is compressed again at the level of
 * that frame (which rebuilds it) or, failing that, at the highest level.
 */

/** The level tried when the plain frame's own level does not give a frame small enough. */
const FALLBACK_LEVEL = 19;

/** What the NAR's stored size counted for its plain chunks when the read began: by chunk id (hex), size and level. */
export type CountedPlainFrames = Map<string, { storedSize: number; level: number }>;

export async function countedPlainFrames(nw: Narwhal, nar: NarRecord): Promise<CountedPlainFrames> {
  const counted: CountedPlainFrames = new Map();
  for (const chunk of await nw.meta.narChunks(nar.id))
    if (chunk.encoding === 'zstd')
      counted.set(Buffer.from(chunk.id).toString('hex'), {
        storedSize: chunk.storedSize,
        level: chunk.zstdLevel ?? nw.options.zstdLevel,
      });
  return counted;
}

export async function servedFrame(chunk: CheckedChunk, counted: CountedPlainFrames): Promise<Uint8Array> {
  if (!chunk.delta) return chunk.stored;
  const raw = chunk.served ?? rawZstdFrame(chunk.data!);
  const plain = counted.get(Buffer.from(chunk.entry.id).toString('hex'));
  if (plain === undefined) return raw;
  const content = chunk.data ?? zstdDecompressSync(raw);
  const frame = await encodeChunk(content, plain.level);
  if (frame.length <= plain.storedSize || plain.level >= FALLBACK_LEVEL) return frame;
  return encodeChunk(content, FALLBACK_LEVEL);
}
