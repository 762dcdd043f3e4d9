/**
 * Worker that compresses chunks into one zstd frame each, for stores whose writes are not file
 * system calls (S3): compression is the CPU-heavy part of a put, so it runs beside the main thread.
 */
import { parentPort } from 'node:worker_threads';
import { constants, zstdCompressSync } from 'node:zlib';
import type { WorkerReply } from './worker-pool.ts';
import { garbageCollectorByVolume } from './gc-by-volume.ts';

export interface EncodeRequest {
  data: Uint8Array;
  level: number;
}

/** The zstd frame, in a buffer of its own (moved, not copied, back to the caller). */
export type EncodeResult = Uint8Array;

const collectGarbage = garbageCollectorByVolume();

parentPort!.on('message', ({ seq, data, level }: EncodeRequest & { seq: number }) => {
  let reply: WorkerReply<EncodeResult>;
  let transfer: ArrayBuffer[] = [];
  try {
    // The synchronous call: Node's async one builds a new context per call and is slower.
    const frame = zstdCompressSync(data, { params: { [constants.ZSTD_c_compressionLevel]: level } });
    // Posting a view copies its whole underlying buffer, which zlib may have allocated larger.
    const own = frame.byteOffset === 0 && frame.byteLength === frame.buffer.byteLength ? frame : new Uint8Array(frame);
    transfer = [own.buffer as ArrayBuffer];
    reply = { seq, result: own };
  } catch (err) {
    reply = { seq, error: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } };
  }
  parentPort!.postMessage(reply, transfer);
  collectGarbage(data.byteLength);
});
