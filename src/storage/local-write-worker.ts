/**
 * Worker of LocalChunkStore: compresses a chunk (unless it comes compressed) and writes it under a
 * temporary name, then renames it into place. File creation is the slow part of a put on ext4 (a few hundred
 * microseconds), so it runs here, beside the main thread, not on it.
 */
import { closeSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { WorkerReply } from '../runtime/worker-pool.ts';
import { encoderPerLevel } from './zstd-frames.ts';

export interface WriteRequest {
  dir: string;
  path: string;
  data: Uint8Array;
  /** zstd level to compress with first; null stores the bytes as given. */
  level: number | null;
}

/** Stored size of the chunk file. */
export type WriteResult = number;

const knownDirs = new Set<string>();

/** Compression contexts, one per level, kept from chunk to chunk. */
const encoder = encoderPerLevel();

parentPort!.on('message', ({ seq, dir, path, data, level }: WriteRequest & { seq: number }) => {
  let reply: WorkerReply<WriteResult>;
  try {
    const stored = level === null ? data : encoder(level).encode(data);
    writeAtomically(dir, path, stored);
    reply = { seq, result: stored.length };
  } catch (err) {
    reply = { seq, error: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } };
  }
  parentPort!.postMessage(reply);
});

function writeAtomically(dir: string, path: string, bytes: Uint8Array): void {
  if (!knownDirs.has(dir)) {
    mkdirSync(dir, { recursive: true });
    knownDirs.add(dir);
  }
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const fd = openSync(temp, 'wx');
    try {
      for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (err) {
    try {
      unlinkSync(temp);
    } catch {
      // never created, or already gone
    }
    throw err;
  }
}
