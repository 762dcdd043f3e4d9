import { crc32 } from 'node:zlib';

/**
 * The chunk store contract, in the layers desync uses: readers need only `ChunkReader`, ingest
 * needs `ChunkWriter`, GC and repair need `ChunkStore`. A chunk is addressed by its 32-byte id
 * (hex in names); what is stored is the chunk's encoded form (a zstd frame), opaque here. What
 * only some backends can do is in chunk-store-capabilities.ts.
 */
export interface ChunkReader {
  /** The stored bytes; throws NarwhalError('chunk-missing') when absent. */
  get(id: Uint8Array): Promise<Uint8Array>;
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
  delete(id: Uint8Array): Promise<void>;
  list(): AsyncIterable<StoredChunkInfo>;
  close(): Promise<void>;
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
