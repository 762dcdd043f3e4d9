/**
 * Worker of checkChunk (chunk-check.ts): decompresses a stored chunk and checks its size and hash.
 * It decompresses synchronously, through one kept context (zstd-frames.ts): Node's async call
 * builds a new context per call and runs markedly slower (measured: docs/benchmarks.md,
 * 'zstd contexts').
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { transferable, type WorkerReply } from '../runtime/worker-pool.ts';
import { chunkHex } from '../storage/chunk-store.ts';
import { ZstdFrameDecoder } from '../storage/zstd-frames.ts';
import { scavengerByVolume } from '../runtime/v8-scavenge.ts';

export interface CheckRequest {
  id: Uint8Array;
  stored: Uint8Array;
  size: number;
  /** Send the decompressed bytes back (else only the stored ones). */
  wantData: boolean;
}

/** The stored bytes, moved back, and the chunk's bytes when asked for. */
export interface CheckResult {
  stored: Uint8Array;
  data?: Uint8Array;
}

const decoder = new ZstdFrameDecoder();
/** Where chunks are decoded when only their check is wanted, not their bytes. */
let scratch = new Uint8Array(0);
const scavenge = scavengerByVolume();

parentPort!.on('message', ({ seq, id, stored, size, wantData }: CheckRequest & { seq: number }) => {
  let reply: WorkerReply<CheckResult>;
  const transfer: ArrayBuffer[] = [];
  try {
    let data: Uint8Array;
    try {
      if (!wantData && scratch.length <= size) scratch = new Uint8Array(size + 1);
      data = decoder.decode(stored, size, wantData ? undefined : scratch);
    } catch {
      throw Object.assign(new Error(`chunk ${chunkHex(id)} does not decompress`), { code: 'chunk-corrupt' });
    }
    if (data.length !== size || !createHash('sha256').update(data).digest().equals(id)) {
      throw Object.assign(new Error(`chunk ${chunkHex(id)} does not match its hash`), { code: 'chunk-corrupt' });
    }
    transfer.push(...transferable(stored));
    const result: CheckResult = { stored };
    if (wantData) {
      // The decoder gives each chunk a buffer of its own, which moves along rather than being copied.
      result.data = data;
      transfer.push(data.buffer as ArrayBuffer);
    }
    reply = { seq, result };
  } catch (err) {
    reply = { seq, error: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } };
  }
  parentPort!.postMessage(reply, transfer);
  scavenge(size);
});
