/**
 * Worker of PackChunkStore: compresses chunks (unless they come compressed) and appends them to
 * a pack file of its own, one frame after another, with a write per chunk and no file creation.
 * `seal` makes the pack durable and closes it; the next write starts a new pack.
 */
import { closeSync, fdatasyncSync, ftruncateSync, mkdirSync, openSync, writevSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { constants, zstdCompressSync } from 'node:zlib';
import type { WorkerReply } from './worker-pool.ts';
import { garbageCollectorByVolume } from './gc-by-volume.ts';
import { frameHeader, newPackName } from './pack-format.ts';

export type PackWriteRequest =
  | {
      op: 'write';
      dir: string;
      id: Uint8Array;
      /** The chunk's bytes, or where they are in shared memory handed over before. */
      data: Uint8Array | SharedBytes;
      /** zstd level to compress with first; null stores the bytes as given. */
      level: number | null;
    }
  | { op: 'seal' }
  /** Shared memory that later writes name by `memory`: a view of it would be cloned per message. */
  | { op: 'share'; memory: number; buffer: SharedArrayBuffer };

export interface SharedBytes {
  memory: number;
  offset: number;
  length: number;
}

/** Where a written frame went. */
export interface WrittenFrame {
  pack: string;
  offset: number;
  length: number;
}

/**
 * What a seal did: the pack it made durable (if one was open), and packs given up since the last
 * seal after a failed write could not be undone; their frames are lost.
 */
export interface SealResult {
  sealed: { name: string; bytes: number } | undefined;
  abandoned: string[];
  /** Why the open pack could not be made durable. */
  error?: string;
}

export type PackWriteResult = WrittenFrame | SealResult | null;

interface OpenPack {
  name: string;
  fd: number;
  bytes: number;
}

let current: OpenPack | undefined;
const sharedMemory = new Map<number, SharedArrayBuffer>();
let abandoned: string[] = [];
const knownDirs = new Set<string>();
const collectGarbage = garbageCollectorByVolume();

parentPort!.on('message', (request: PackWriteRequest & { seq: number }) => {
  let reply: WorkerReply<PackWriteResult>;
  try {
    if (request.op === 'write') {
      const { data } = request;
      const bytes = data instanceof Uint8Array ? data : new Uint8Array(sharedMemory.get(data.memory)!, data.offset, data.length);
      reply = { seq: request.seq, result: write(request.dir, request.id, bytes, request.level) };
    } else if (request.op === 'share') {
      sharedMemory.set(request.memory, request.buffer);
      reply = { seq: request.seq, result: null };
    } else {
      reply = { seq: request.seq, result: seal() };
    }
  } catch (err) {
    reply = { seq: request.seq, error: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } };
  }
  parentPort!.postMessage(reply);
  if (request.op === 'write') collectGarbage(request.data instanceof Uint8Array ? request.data.byteLength : request.data.length);
});

function write(dir: string, id: Uint8Array, data: Uint8Array, level: number | null): WrittenFrame {
  // The synchronous zstd call: Node's async one builds a new context per call and is slower.
  const frame = level === null ? data : zstdCompressSync(data, { params: { [constants.ZSTD_c_compressionLevel]: level } });
  const pack = current ?? (current = openPack(dir));
  const header = frameHeader(id);
  try {
    let written = 0;
    const total = header.length + frame.length;
    while (written < total) {
      // Positioned: after a failed write is cut off below, the next one must start where it did.
      const parts = written < header.length ? [header.subarray(written), frame] : [frame.subarray(written - header.length)];
      written += writevSync(pack.fd, parts, pack.bytes + written);
    }
  } catch (err) {
    // Leave the pack as it was before this frame, so the frames after it stay where we say.
    try {
      ftruncateSync(pack.fd, pack.bytes);
    } catch {
      closeSync(pack.fd);
      current = undefined;
      abandoned.push(pack.name);
    }
    throw err;
  }
  const offset = pack.bytes + header.length;
  pack.bytes += header.length + frame.length;
  return { pack: pack.name, offset, length: frame.length };
}

function seal(): SealResult {
  const pack = current;
  const result: SealResult = { sealed: undefined, abandoned };
  abandoned = [];
  if (!pack) return result;
  current = undefined;
  try {
    fdatasyncSync(pack.fd);
  } catch (err) {
    result.abandoned.push(pack.name);
    closeSync(pack.fd);
    // Reported, not thrown: the caller must learn which frames were lost.
    result.error = (err as Error).message;
    return result;
  }
  closeSync(pack.fd);
  result.sealed = { name: pack.name, bytes: pack.bytes };
  return result;
}

function openPack(dir: string): OpenPack {
  if (!knownDirs.has(dir)) {
    mkdirSync(dir, { recursive: true });
    knownDirs.add(dir);
  }
  const name = newPackName(randomBytes(6));
  return { name, fd: openSync(join(dir, name), 'wx'), bytes: 0 };
}
