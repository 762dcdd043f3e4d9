/**
 * Worker of StreamChunker: per stream, the chunker, the SHA-256 of the whole stream and that of
 * the chunk being cut. Each block is chunked and hashed where it lies (shared memory) in the
 * order the blocks come, and the reply names the cuts in it and the id of each chunk they end.
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { WASM_BLOCK_BYTES, WasmChunker } from '../chunking/wasm-chunker.ts';
import type { WorkerReply } from '../runtime/worker-pool.ts';
import { scavengerByVolume } from '../runtime/v8-scavenge.ts';

export type StreamChunkRequest =
  | { op: 'block'; stream: number; bytes: Uint8Array }
  | { op: 'end'; stream: number }
  | { op: 'drop'; stream: number };

/** For 'block': the offsets just after each cut in the block, and the 32-byte ids of the chunks they end. */
export interface BlockCuts {
  cuts: Uint32Array;
  ids: Uint8Array;
}

/** For 'end': the stream's SHA-256, and the id of its last chunk if bytes follow the last cut. */
export interface StreamEnd {
  streamHash: Uint8Array;
  tailId: Uint8Array | null;
}

export type StreamChunkResult = BlockCuts | StreamEnd | null;

interface StreamState {
  chunker: WasmChunker;
  streamHash: Hash;
  chunkHash: Hash;
  /** Bytes of the chunk being cut, fed to chunkHash so far. */
  pending: number;
}

const streams = new Map<number, StreamState>();

/**
 * A full collection every STREAMS_PER_COLLECTION streams ended: each stream's chunker holds a
 * WebAssembly memory of about WASM_BLOCK_BYTES outside the JS heap, and this thread allocates so
 * little on the heap that V8 otherwise left those of every upload so far (24 MB after 20 uploads,
 * growing: docs/benchmarks.md, "Delta memory and serving speed").
 */
const STREAMS_PER_COLLECTION = 8;
const collect = scavengerByVolume(STREAMS_PER_COLLECTION * WASM_BLOCK_BYTES, STREAMS_PER_COLLECTION * WASM_BLOCK_BYTES);

function stateOf(stream: number): StreamState {
  let state = streams.get(stream);
  if (!state) {
    state = {
      chunker: new WasmChunker(),
      streamHash: createHash('sha256'),
      chunkHash: createHash('sha256'),
      pending: 0,
    };
    streams.set(stream, state);
  }
  return state;
}

function chunkBlock(state: StreamState, block: Uint8Array): BlockCuts {
  state.streamHash.update(block);
  const found = state.chunker.cuts(block);
  const cuts = new Uint32Array(found);
  const ids = new Uint8Array(32 * found.length);
  let pos = 0;
  for (let i = 0; i < found.length; i++) {
    const id = state.chunkHash.update(block.subarray(pos, found[i])).digest();
    ids.set(id, 32 * i);
    state.chunkHash = createHash('sha256');
    pos = found[i];
  }
  state.chunkHash.update(block.subarray(pos));
  state.pending = found.length > 0 ? block.length - pos : state.pending + block.length;
  return { cuts, ids };
}

function endStream(stream: number): StreamEnd {
  const state = stateOf(stream);
  streams.delete(stream);
  return {
    streamHash: new Uint8Array(state.streamHash.digest()),
    tailId: state.pending > 0 ? new Uint8Array(state.chunkHash.digest()) : null,
  };
}

parentPort!.on('message', (request: StreamChunkRequest & { seq: number }) => {
  let reply: WorkerReply<StreamChunkResult>;
  let transfer: ArrayBuffer[] = [];
  try {
    if (request.op === 'block') {
      const result = chunkBlock(stateOf(request.stream), request.bytes);
      transfer = [result.cuts.buffer as ArrayBuffer, result.ids.buffer as ArrayBuffer];
      reply = { seq: request.seq, result };
    } else if (request.op === 'end') {
      reply = { seq: request.seq, result: endStream(request.stream) };
    } else {
      streams.delete(request.stream);
      reply = { seq: request.seq, result: null };
    }
  } catch (err) {
    reply = { seq: request.seq, error: { message: (err as Error).message } };
  }
  parentPort!.postMessage(reply, transfer);
  if (request.op !== 'block') collect(WASM_BLOCK_BYTES);
});
