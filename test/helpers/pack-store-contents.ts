import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import { FRAME_HEADER_BYTES, readFrameHeader } from '../../src/storage/pack-format.ts';

export interface PackStoreContents {
  /** Chunks the index names, and the bytes of their frames. */
  chunks: number;
  bytes: number;
  /** Pack files on disk that the index does not name (left by a crash before a seal). */
  unindexedPacks: string[];
  /** Indexed chunks whose pack is missing or whose frame header names another chunk. */
  misplaced: string[];
}

/** What a pack store (`<data-dir>/chunks`) holds on disk, read behind its back. */
export async function packStoreContents(root: string): Promise<PackStoreContents> {
  const db = new DatabaseSync(join(root, 'index.sqlite'), { readOnly: true });
  try {
    const rows = db.prepare('SELECT id, pack, offset, length FROM chunks ORDER BY pack, offset').all() as {
      id: Uint8Array;
      pack: string;
      offset: number;
      length: number;
    }[];
    const indexedPacks = new Set(
      (db.prepare('SELECT name FROM packs').all() as { name: string }[]).map((row) => row.name),
    );
    const files = await readdir(join(root, 'packs'));
    const misplaced: string[] = [];
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    for (const row of rows) {
      const id = Buffer.from(row.id).toString('hex');
      const handle = await open(join(root, 'packs', row.pack), 'r').catch(() => undefined);
      if (!handle) {
        misplaced.push(`${id}: pack ${row.pack} is missing`);
        continue;
      }
      try {
        await handle.read(header, 0, FRAME_HEADER_BYTES, Number(row.offset) - FRAME_HEADER_BYTES);
        const named = readFrameHeader(header);
        if (!named || Buffer.from(named).toString('hex') !== id)
          misplaced.push(`${id}: the frame header in ${row.pack} names another chunk`);
      } finally {
        await handle.close();
      }
    }
    return {
      chunks: rows.length,
      bytes: rows.reduce((sum, row) => sum + Number(row.length), 0),
      unindexedPacks: files.filter((name) => !indexedPacks.has(name)),
      misplaced,
    };
  } finally {
    db.close();
  }
}

/** The pack file and byte range that hold a chunk's frame, from the index. */
export function chunkFrame(root: string, id: Uint8Array): { path: string; offset: number; length: number } {
  const db = new DatabaseSync(join(root, 'index.sqlite'), { readOnly: true });
  try {
    const row = db.prepare('SELECT pack, offset, length FROM chunks WHERE id = ?').get(id) as
      | { pack: string; offset: number; length: number }
      | undefined;
    if (!row) throw new Error(`chunk ${Buffer.from(id).toString('hex')} is not in the pack index`);
    return { path: join(root, 'packs', row.pack), offset: Number(row.offset), length: Number(row.length) };
  } finally {
    db.close();
  }
}

/** Runs one statement on a pack store's index, behind the store's back. */
export function editPackIndex(root: string, sql: string, ...params: SQLInputValue[]): void {
  const db = new DatabaseSync(join(root, 'index.sqlite'));
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}
