/**
 * What the header of a zstd frame a pusher sent says (RFC 8878, 3.1.1): its content size, and
 * whether the bytes are exactly one plain frame, which the store can keep as they came.
 */

const ZSTD_MAGIC = 0xfd2fb528;
const BLOCK_HEADER_BYTES = 3;
const CHECKSUM_BYTES = 4;
const BLOCK_RAW = 0;
const BLOCK_RLE = 1;
const BLOCK_COMPRESSED = 2;

interface FrameHeader {
  /** Bytes of the header (magic included). */
  length: number;
  contentSize: number | undefined;
  checksum: boolean;
  dictionary: boolean;
}

function frameHeader(frame: Uint8Array): FrameHeader | undefined {
  if (frame.length < 6) return undefined;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (view.getUint32(0, true) !== ZSTD_MAGIC) return undefined;
  const descriptor = frame[4];
  const singleSegment = (descriptor & 0x20) !== 0;
  const sizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][descriptor >> 6];
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 3];
  const at = 5 + (singleSegment ? 0 : 1) + dictionaryBytes;
  const length = at + sizeBytes;
  if (frame.length < length) return undefined;
  let contentSize: number | undefined;
  if (sizeBytes === 1) contentSize = frame[at];
  else if (sizeBytes === 2) contentSize = view.getUint16(at, true) + 256;
  else if (sizeBytes === 4) contentSize = view.getUint32(at, true);
  else if (sizeBytes === 8) {
    const size = view.getBigUint64(at, true);
    contentSize = size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : undefined;
  }
  return { length, contentSize, checksum: (descriptor & 0x04) !== 0, dictionary: dictionaryBytes > 0 };
}

/** The content size a zstd frame's header declares, if it declares one. */
export function frameContentSize(frame: Uint8Array): number | undefined {
  return frameHeader(frame)?.contentSize;
}

/**
 * Whether `frame` is one zstd frame and nothing else (no skippable frame, no second frame, no
 * trailing bytes), made without a dictionary, declaring `size` as its content size: the form a
 * store keeps a plain chunk in (src/delta/stored-form.ts tells a stored form by its first bytes).
 * Its blocks are walked by their headers, not decoded; that it decodes to the chunk is checked apart.
 */
export function isSinglePlainFrame(frame: Uint8Array, size: number): boolean {
  const header = frameHeader(frame);
  if (!header || header.dictionary || header.contentSize !== size) return false;
  let at = header.length;
  for (;;) {
    if (frame.length < at + BLOCK_HEADER_BYTES) return false;
    const block = frame[at] | (frame[at + 1] << 8) | (frame[at + 2] << 16);
    const last = (block & 1) !== 0;
    const type = (block >> 1) & 3;
    const blockSize = block >>> 3;
    at += BLOCK_HEADER_BYTES;
    if (type === BLOCK_RAW || type === BLOCK_COMPRESSED) at += blockSize;
    else if (type === BLOCK_RLE) at += 1;
    else return false;
    if (last) break;
  }
  return frame.length === at + (header.checksum ? CHECKSUM_BYTES : 0);
}
