/**
 * Regroups a byte stream into pieces of exactly `size` bytes (the last one shorter, none when the
 * stream is empty). Each piece is a fresh buffer the caller may keep.
 */
export async function* fixedPieces(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let piece = Buffer.allocUnsafe(size);
  let filled = 0;
  for await (const part of source) {
    let offset = 0;
    while (offset < part.length) {
      const taken = Math.min(size - filled, part.length - offset);
      piece.set(part.subarray(offset, offset + taken), filled);
      filled += taken;
      offset += taken;
      if (filled === size) {
        yield piece;
        piece = Buffer.allocUnsafe(size);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield piece.subarray(0, filled);
}
