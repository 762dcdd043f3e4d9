/**
 * Worker of PackChunkStore: compresses chunks (unless they come compressed) and appends them to
 * a pack file of its own, one frame after another, with a write per chunk and no file creation.
 * `seal` makes the pack durable and closes it; the next write starts a new pack.
 *
 * A pack left open and idle (the uploads that wrote to it failed, so none sealed it) is closed
 * at the next write instead of written to: a GC in another process may delete an unindexed pack
 * that has been idle long enough (removeLeftovers), and frames appended to a deleted pack would
 * be lost. It is reported at the next seal: sealed, or discarded if it was deleted (its frames
 * belonged to failed uploads only: a running upload's GC hold spares what it writes).
 */
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, openSync, writevSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';
import type { WorkerReply } from '../runtime/worker-pool.ts';
import { frameCrc } from './chunk-store.ts';
import { frameHeader, newPackName } from './pack-format.ts';
import { encoderPerLevel } from './zstd-frames.ts';

export type PackWriteRequest =
  | {
      op: 'write';
      dir: string;
      id: Uint8Array;
      /** The chunk's bytes, or where they are in shared memory handed over before. */
      data: Uint8Array | SharedBytes;
      /** zstd level to compress with first; null stores the bytes as given. */
      level: number | null;
      /** A pack not written to for this long is closed rather than written to. */
      idleLimitMs: number;
    }
  | { op: 'seal' }
  /** Shared memory that later writes name by `memory`: a view of it would be cloned per message. */
  | { op: 'share'; memory: number; buffer: SharedArrayBuffer };

export interface SharedBytes {
  memory: number;
  offset: number;
  length: number;
}

/** Where a written frame went, and its frameCrc, by which reads check it is unchanged. */
export interface WrittenFrame {
  pack: string;
  offset: number;
  length: number;
  crc: number;
}

/**
 * What a seal did since the last one: the packs it made durable (the open one, and idle ones
 * closed meanwhile); idle packs found deleted, whose frames are gone and were of failed uploads
 * only; and packs abandoned, whose frames are lost (a failed write could not be undone, or the
 * pack could not be made durable).
 */
export interface SealResult {
  sealed: { name: string; bytes: number }[];
  discarded: string[];
  abandoned: string[];
  /** Why packs were abandoned. */
  error?: string;
}

export type PackWriteResult = WrittenFrame | SealResult | null;

interface OpenPack {
  name: string;
  fd: number;
  bytes: number;
  lastWrite: number;
}

let current: OpenPack | undefined;
let sealed: { name: string; bytes: number }[] = [];
let discarded: string[] = [];
let lastError: string | undefined;
const sharedMemory = new Map<number, SharedArrayBuffer>();
let abandoned: string[] = [];
/** Compression contexts, one per level, kept from chunk to chunk. */
const encoder = encoderPerLevel();

parentPort!.on('message', (request: PackWriteRequest & { seq: number }) => {
  let reply: WorkerReply<PackWriteResult>;
  try {
    if (request.op === 'write') {
      const { data } = request;
      const bytes =
        data instanceof Uint8Array ? data : new Uint8Array(sharedMemory.get(data.memory)!, data.offset, data.length);
      reply = { seq: request.seq, result: write(request.dir, request.id, bytes, request.level, request.idleLimitMs) };
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
});

function write(dir: string, id: Uint8Array, data: Uint8Array, level: number | null, idleLimitMs: number): WrittenFrame {
  const frame = level === null ? data : encoder(level).encode(data);
  if (current && Date.now() - current.lastWrite > idleLimitMs) {
    const idle = current;
    current = undefined;
    if (fstatSync(idle.fd).nlink === 0) {
      closeSync(idle.fd);
      discarded.push(idle.name);
    } else {
      closePack(idle);
    }
  }
  const pack = current ?? (current = openPack(dir));
  const header = frameHeader(id);
  try {
    let written = 0;
    const total = header.length + frame.length;
    while (written < total) {
      // Positioned: after a failed write is cut off below, the next one must start where it did.
      const parts =
        written < header.length ? [header.subarray(written), frame] : [frame.subarray(written - header.length)];
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
  pack.lastWrite = Date.now();
  return { pack: pack.name, offset, length: frame.length, crc: frameCrc(frame) };
}

function seal(): SealResult {
  if (current) closePack(current);
  current = undefined;
  const result: SealResult = { sealed, discarded, abandoned, ...(lastError === undefined ? {} : { error: lastError }) };
  sealed = [];
  discarded = [];
  abandoned = [];
  lastError = undefined;
  return result;
}

/** Makes the pack durable and closes it, noting it as sealed, or as abandoned when that fails. */
function closePack(pack: OpenPack): void {
  try {
    if (fstatSync(pack.fd).nlink === 0) throw new Error(`pack ${pack.name} was deleted while open`);
    fdatasyncSync(pack.fd);
    sealed.push({ name: pack.name, bytes: pack.bytes });
  } catch (err) {
    abandoned.push(pack.name);
    lastError = (err as Error).message;
  } finally {
    closeSync(pack.fd);
  }
}

/** A new pack in `dir`, which PackChunkStore made when it opened. */
function openPack(dir: string): OpenPack {
  const name = newPackName(randomBytes(6));
  return { name, fd: openSync(join(dir, name), 'wx'), bytes: 0, lastWrite: Date.now() };
}
