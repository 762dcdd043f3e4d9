/**
 * Worker that compresses chunks into one zstd frame each, for stores whose writes are not file
 * system calls (S3): compression is the CPU-heavy part of a put, so it runs beside the main thread.
 */
import { parentPort } from 'node:worker_threads';
import type { WorkerReply } from '../runtime/worker-pool.ts';
import { scavengerByVolume } from '../runtime/v8-scavenge.ts';
import { encodeAllWithDictionary, encodeWithDictionary, encoderPerLevel } from './zstd-frames.ts';

export interface EncodeRequest {
  data: Uint8Array;
  level: number;
  /** Compress with this dictionary (a delta against its content) rather than the level's kept encoder. */
  dictionary?: Uint8Array;
}

/** Chunks compressed each into a frame of its own with one dictionary, built once for them all. */
export interface EncodeAllRequest {
  all: Uint8Array[];
  level: number;
  dictionary: Uint8Array;
}

/** The zstd frame, in a buffer of its own (moved, not copied, back to the caller). */
export type EncodeResult = Uint8Array;
/** A frame per chunk of an EncodeAllRequest, in order. */
export type EncodeAllResult = Uint8Array[];

const scavenge = scavengerByVolume(undefined, 16 * 1024 * 1024);
const encoder = encoderPerLevel();

parentPort!.on('message', (request: (EncodeRequest | EncodeAllRequest) & { seq: number }) => {
  if ('all' in request) {
    encodeAll(request);
    return;
  }
  const { seq, data, level, dictionary } = request;
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

function encodeAll({ seq, all, level, dictionary }: EncodeAllRequest & { seq: number }): void {
  let reply: WorkerReply<EncodeAllResult>;
  let transfer: ArrayBuffer[] = [];
  try {
    // Each frame is a buffer of its own, moved back.
    const frames = encodeAllWithDictionary(all, dictionary, level);
    transfer = frames.map((frame) => frame.buffer as ArrayBuffer);
    reply = { seq, result: frames };
  } catch (err) {
    reply = { seq, error: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } };
  }
  parentPort!.postMessage(reply, transfer);
  scavenge(all.reduce((sum, data) => sum + data.byteLength, 0) + dictionary.byteLength);
}
