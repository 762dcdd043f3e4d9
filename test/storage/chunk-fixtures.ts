/** Chunks as ingest stores them, and small helpers the chunk store tests share. */
import { createHash, randomBytes } from 'node:crypto';
import { zstdCompressSync } from 'node:zlib';
import type { ChunkStore } from '../../src/storage/chunk-store.ts';

export interface StoredChunk {
  id: Uint8Array;
  data: Uint8Array;
  stored: Uint8Array;
}

/**
 * A stored chunk as ingest makes it: id = sha256 of the data, stored = its zstd frame. Tests put
 * copies: a store may take (detach) the buffer it is given, as LocalChunkStore does.
 */
export function chunk(size: number): StoredChunk {
  const data = randomBytes(size);
  return { id: sha256(data), data, stored: zstdCompressSync(data) };
}

/** Data zstd can shrink: random words repeated. */
export function compressible(size: number): Uint8Array {
  const words = Array.from({ length: 64 }, () => randomBytes(8).toString('hex'));
  const out = Buffer.alloc(size);
  for (let at = 0, i = 0; at < size; i++) at += out.write(`${words[(i * 7919) % 64]} `, at);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

export function sha256(data: Uint8Array): Uint8Array {
  return createHash('sha256').update(data).digest();
}

export function hex(id: Uint8Array): string {
  return Buffer.from(id).toString('hex');
}

export async function listedIds(store: ChunkStore): Promise<string[]> {
  const ids: string[] = [];
  for await (const info of store.list()) ids.push(hex(info.id));
  return ids.sort();
}

export async function runLimited<T>(items: T[], limit: number, run: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await run(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
