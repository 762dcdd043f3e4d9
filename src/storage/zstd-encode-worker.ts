/**
 * Worker that compresses chunks into one zstd frame each, for stores whose writes are not file
 * system calls (S3): compression is the CPU-heavy part of a put, so it runs beside the main thread.
 */
import { parentPort } from 'node:worker_threads';
import type { WorkerReply } from '../runtime/worker-pool.ts';
import { scavengerByVolume } from '../runtime/v8-scavenge.ts';
import { encodeWithDictionary, encoderPerLevel } from './zstd-frames.ts';

export interface EncodeRequest {
  data: Uint8Array;
  level: number;
  /** Compress with this dictionary (a delta against its content) rather than the level's kept encoder. */
  dictionary?: Uint8Array;
}

/** The zstd frame, in a buffer of its own (moved, not copied, back to the caller). */
export type EncodeResult = Uint8Array;

const scavenge = scavengerByVolume();
const encoder = encoderPerLevel();

parentPort!.on('message', ({ seq, data, level, dictionary }: EncodeRequest & { seq: number }) => {
  let reply: WorkerReply<EncodeResult>;
  let transfer: ArrayBuffer[] = [];
  try {
    // The encoder reuses its buffer: the frame moves back in a copy of its own.
    const own = new Uint8Array(
      dictionary ? encodeWithDictionary(data, dictionary, level) : encoder(level).encode(data),
    );
    transfer = [own.buffer as ArrayBuffer];
    reply = { seq, result: own };
  } catch (err) {
    reply = { seq, error: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } };
  }
  parentPort!.postMessage(reply, transfer);
  scavenge(data.byteLength + (dictionary?.byteLength ?? 0));
});
