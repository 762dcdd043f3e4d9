import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { constants, zstdCompress, zstdDecompress } from 'node:zlib';
import { NarwhalError } from '../errors.ts';
import { chunkHex } from './chunk-store.ts';

const compress = promisify(zstdCompress);
const decompress = promisify(zstdDecompress);

/**
 * Chunk ids are SHA-256 of the uncompressed chunk: casync's `--digest=sha256`, faster than its
 * default SHA-512/256 in Node (measured: docs/chunk-ids.md). The caibx feature flags
 * therefore leave CA_FORMAT_SHA512_256 unset.
 */
export function chunkId(data: Uint8Array): Uint8Array {
  return createHash('sha256').update(data).digest();
}

/**
 * The level chunks are stored at as uploaded. Low, because pushes wait for it and recompression
 * rewrites chunks at a high level once uploads pause, and level 1 ingests faster than 3 (measured:
 * docs/benchmarks.md, 'Ingest').
 */
export const DEFAULT_ZSTD_LEVEL = 1;

/** One zstd frame per chunk (casync's `.cacnk`), compressed on libuv's thread pool. */
export async function encodeChunk(data: Uint8Array, level = DEFAULT_ZSTD_LEVEL): Promise<Uint8Array> {
  return compress(data, { params: { [constants.ZSTD_c_compressionLevel]: level } });
}

/** Decodes a stored chunk and checks it against its id: wrong bytes are never passed on. */
export async function decodeChunk(id: Uint8Array, stored: Uint8Array, expectedSize?: number): Promise<Uint8Array> {
  let data: Uint8Array;
  try {
    data = await decompress(stored);
  } catch (err) {
    throw new NarwhalError('chunk-corrupt', `chunk ${chunkHex(id)} does not decompress`, { cause: err });
  }
  if ((expectedSize !== undefined && data.length !== expectedSize) || !sameBytes(chunkId(data), id)) {
    throw new NarwhalError('chunk-corrupt', `chunk ${chunkHex(id)} does not match its hash`);
  }
  return data;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
