/**
 * The pack file format: chunks' zstd frames back to back, each preceded by a zstd skippable frame
 * (magic 0x184D2A5E, length 32) that holds the chunk's id. A pack is therefore itself a valid zstd
 * stream of the chunks in order, and names every chunk it holds, so the index can be checked or
 * rebuilt from the packs alone.
 */
/** Bytes before each frame in a pack: a zstd skippable frame holding the chunk id. */
export const FRAME_HEADER_BYTES = 40;

const SKIPPABLE_MAGIC = 0x184d2a5e;
const ID_BYTES = 32;

export function frameHeader(id: Uint8Array): Uint8Array {
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  const view = new DataView(header.buffer);
  view.setUint32(0, SKIPPABLE_MAGIC, true);
  view.setUint32(4, ID_BYTES, true);
  header.set(id, 8);
  return header;
}

/** The chunk id in a frame header, or undefined when the bytes are not one. */
export function readFrameHeader(header: Uint8Array): Uint8Array | undefined {
  if (header.length < FRAME_HEADER_BYTES) return undefined;
  const view = new DataView(header.buffer, header.byteOffset, FRAME_HEADER_BYTES);
  if (view.getUint32(0, true) !== SKIPPABLE_MAGIC || view.getUint32(4, true) !== ID_BYTES) return undefined;
  return header.slice(8, 8 + ID_BYTES);
}

/** Pack names sort by creation time: `<ms since the epoch, base 36>-<12 hex>.pack`. */
export function newPackName(random: Uint8Array): string {
  return `${Date.now().toString(36).padStart(9, '0')}-${Buffer.from(random).toString('hex')}.pack`;
}

export const PACK_NAME = /^[0-9a-z]{9}-[0-9a-f]{12}\.pack$/;

/**
 * A writer appends to a pack only while it was written to within this time; an older one is
 * closed first. Unindexed packs twice this old are therefore safe for GC to delete.
 */
export const PACK_IDLE_LIMIT_MS = 10 * 60_000;
