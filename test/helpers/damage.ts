import { copyFile, open, rm, stat, truncate, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { ChunkStore } from '../../src/storage/chunk-store.ts';
import { LocalChunkStore } from '../../src/storage/local-chunk-store.ts';
import { PackChunkStore } from '../../src/storage/pack-chunk-store.ts';
import { chunkFrame } from './pack-store-contents.ts';

/** The local stores the damage tests run on, by the --storage each is opened with. */
export const LOCAL_STORES = [
  { name: 'pack store', storage: (dir: string) => `pack:${join(dir, 'chunks')}` },
  { name: 'castr directory', storage: (dir: string) => join(dir, 'castr') },
];

export type Damage = 'flip' | 'truncate' | 'delete';

/**
 * Damages a stored chunk behind the store's back, as a disk or an operator might: flips 8 bytes
 * in the middle of its frame, cuts the frame to 100 bytes, or removes it. Written long enough ago
 * that repairs treat the damaged copy as old.
 */
export async function damageChunk(store: ChunkStore, id: Uint8Array, damage: Damage): Promise<void> {
  if (store instanceof LocalChunkStore) {
    const path = store.path(id);
    if (damage === 'delete') return rm(path);
    if (damage === 'flip') await flipBytes(path, 0, (await stat(path)).size);
    else await truncate(path, 100);
    const past = new Date(Date.now() - 3_600_000);
    await utimes(path, past, past);
    return;
  }
  if (!(store instanceof PackChunkStore)) throw new Error('damageChunk knows local stores only');
  if (damage === 'flip') {
    const frame = chunkFrame(store.root, id);
    await flipBytes(frame.path, frame.offset, frame.length);
  }
  // The index is where a pack store keeps what a file system keeps of a castr file: its length and time.
  const db = new DatabaseSync(join(store.root, 'index.sqlite'));
  try {
    if (damage === 'delete') db.prepare('DELETE FROM chunks WHERE id = ?').run(id);
    if (damage === 'truncate') db.prepare('UPDATE chunks SET length = 100 WHERE id = ?').run(id);
    db.prepare('UPDATE chunks SET written_at = written_at - 3600000 WHERE id = ?').run(id);
  } finally {
    db.close();
  }
}

/**
 * Makes the chunk `id` read as the stored frame of chunk `other` (a valid frame, the wrong
 * content), behind the store's back: a castr file copied over, or a pack index row that points
 * at the other frame.
 */
export async function misplaceChunk(store: ChunkStore, id: Uint8Array, other: Uint8Array): Promise<void> {
  if (store instanceof LocalChunkStore) return copyFile(store.path(other), store.path(id));
  if (!(store instanceof PackChunkStore)) throw new Error('misplaceChunk knows local stores only');
  const db = new DatabaseSync(join(store.root, 'index.sqlite'));
  try {
    db.prepare(
      'UPDATE chunks SET (pack, offset, length) = (SELECT pack, offset, length FROM chunks WHERE id = ?) WHERE id = ?',
    ).run(other, id);
  } finally {
    db.close();
  }
}

async function flipBytes(path: string, offset: number, length: number): Promise<void> {
  const file = await open(path, 'r+');
  try {
    const at = offset + Math.floor(length / 2);
    const bytes = Buffer.alloc(8);
    await file.read(bytes, 0, 8, at);
    for (let i = 0; i < bytes.length; i++) bytes[i] ^= 0x5a;
    await file.write(bytes, 0, 8, at);
  } finally {
    await file.close();
  }
}
