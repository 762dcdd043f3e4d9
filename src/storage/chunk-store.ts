import { crc32 } from 'node:zlib';

/**
 * The chunk store contract, in the layers desync uses: readers need only `ChunkReader`, ingest
 * needs `ChunkWriter`, GC and repair need `ChunkStore`. A chunk is addressed by its 32-byte id
 * (hex in names); what is stored is the chunk's encoded form (a zstd frame), opaque here.
 */
export interface ChunkReader {
  /** The stored bytes; throws NarwhalError('chunk-missing') when absent. */
  get(id: Uint8Array): Promise<Uint8Array>;
  /**
   * Optional, for stores that keep chunks side by side and record a CRC-32 of each frame when
   * they write it: the stored frames of `ids`, in order, each with that CRC (undefined for frames
   * written before the store recorded them); frames that lie close together are read at once.
   * Throws NarwhalError('chunk-missing') when one is absent. A frame read with the recorded CRC
   * is known to be what was written, without decoding it.
   */
  getFrames?(ids: Uint8Array[]): Promise<StoredFrame[]>;
  /** The size of the stored chunk, or undefined when it is absent. */
  storedSize(id: Uint8Array): Promise<number | undefined>;
}

/**
 * Writers may take over (detach) the buffers given to put and encodeAndPut, e.g. by moving them
 * to a worker thread: callers must not use them afterwards.
 */
export interface ChunkWriter extends ChunkReader {
  /** Stores the bytes atomically: readers see either nothing or the whole file. Idempotent. */
  put(id: Uint8Array, stored: Uint8Array): Promise<void>;
  /**
   * Compresses the chunk's data as one zstd frame at `level` and stores it like put; returns the
   * stored size. Each backend runs the compression where it is cheapest for it.
   */
  encodeAndPut(id: Uint8Array, data: Uint8Array, level: number): Promise<number>;
  /** Makes every put that has returned durable (survives power loss). */
  flush(): Promise<void>;
  /**
   * Optional, for stores that record frames' CRCs (getFrames): gives the chunk's frame the CRC
   * `crc` if it has none (it was written before the store recorded CRCs), after a frame of the
   * chunk with that CRC was checked in full. Safe even if the frame was replaced meanwhile: bytes
   * with this CRC are a right frame of the chunk.
   */
  recordCrc?(id: Uint8Array, crc: number): Promise<void>;
}

export interface StoredFrame {
  stored: Uint8Array;
  /** frameCrc of the bytes written. */
  crc?: number;
}

/** The CRC-32 of a stored frame as stores record it: a signed 32-bit integer, as SQLite gives it back. */
export function frameCrc(bytes: Uint8Array): number {
  return crc32(bytes) | 0;
}

export interface StoredChunkInfo {
  id: Uint8Array;
  storedSize: number;
  modifiedAt: number;
}

export interface ChunkStore extends ChunkWriter {
  /** Optional: the bytes the store can still write (a local file system's free space). */
  freeBytes?(): Promise<number>;
  /** Optional: gets ready for writes (e.g. starts worker threads), so a server's first upload does not wait for it. */
  prepare?(): void;
  delete(id: Uint8Array): Promise<void>;
  list(): AsyncIterable<StoredChunkInfo>;
  close(): Promise<void>;
  /**
   * Deletes the chunk only if it was last written at or before `notAfter` (ms since the epoch),
   * atomically with respect to a concurrent put of the same id: a copy written later always
   * survives. Returns the stored size deleted, or undefined when nothing was deleted.
   * Optional: without it GC compares list()'s modifiedAt and calls delete() after noting the
   * deletion in the metadata store, which refuses the commit of an ingest that may have rewritten
   * the chunk meanwhile (src/cache/gc.ts).
   */
  deleteUnlessNewer?(id: Uint8Array, notAfter: number): Promise<number | undefined>;
  /**
   * Optional: cleans up after interrupted operations: removes temporary files of writes last
   * modified at or before `notAfter`, and puts back chunks an interrupted deleteUnlessNewer had
   * moved aside. Returns what it removed.
   */
  removeLeftovers?(notAfter: number): Promise<{ files: number; bytes: number }>;
  /**
   * Optional, for stores that keep many chunks per file: gives back the space of deleted chunks,
   * touching only what was written at or before `notAfter`. Returns the files it deleted and the
   * bytes it gave back.
   */
  compact?(notAfter: number): Promise<{ packs: number; reclaimedBytes: number }>;
}

/** A chunk id as 64 lowercase hex digits, as in names and messages. */
export function chunkHex(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');
}

/** The castr key of a chunk: `<first 4 hex>/<64 hex>.cacnk`. */
export function castrKey(id: Uint8Array): string {
  const hex = chunkHex(id);
  return `${hex.slice(0, 4)}/${hex}.cacnk`;
}
