/**
 * Worker that runs the bzip2 and lz4 encoders (ours, in JavaScript: CPU-heavy) beside the main
 * thread. It keeps no stream of its own: each request carries the state its stream's previous
 * request left (worker-encoder-stream.ts), so any worker of the pool can take any request, and the
 * scratch space of one encoder per setting serves every stream.
 */
import { parentPort } from 'node:worker_threads';
import { scavengerByVolume } from '../runtime/v8-scavenge.ts';
import type { WorkerReply } from '../runtime/worker-pool.ts';
import { Bzip2Encoder, type Bzip2Level, type Bzip2State } from './bzip2/bzip2-encoder.ts';
import { Lz4FrameEncoder, type Lz4BlockSize, type Lz4State } from './lz4/lz4-frame-encoder.ts';

export type EncodeRequest =
  | { codec: 'bzip2'; setting: Bzip2Level; state: Bzip2State | null; input: Uint8Array; end: boolean }
  | { codec: 'lz4'; setting: Lz4BlockSize; state: Lz4State | null; input: Uint8Array; end: boolean };

export interface EncodeResult {
  /** The stream's next bytes, in a buffer of their own (moved, not copied, back to the caller). */
  output: Uint8Array;
  /** Where to resume from; null once the request ended the stream. */
  state: Bzip2State | Lz4State | null;
}

/** What both encoders offer: streaming, and resuming a stream suspended elsewhere. */
interface ResumableEncoder<S> {
  reset(): void;
  restore(state: S): void;
  update(data: Uint8Array): Uint8Array[];
  finish(): Uint8Array[];
  suspend(): { output: Uint8Array; state: S };
}

const bzip2Encoders = new Map<Bzip2Level, Bzip2Encoder>();
const lz4Encoders = new Map<Lz4BlockSize, Lz4FrameEncoder>();
const collectGarbage = scavengerByVolume();

function encoderFor(request: EncodeRequest): ResumableEncoder<Bzip2State> | ResumableEncoder<Lz4State> {
  if (request.codec === 'bzip2') {
    let encoder = bzip2Encoders.get(request.setting);
    if (!encoder) bzip2Encoders.set(request.setting, (encoder = new Bzip2Encoder(request.setting)));
    return encoder;
  }
  let encoder = lz4Encoders.get(request.setting);
  if (!encoder) lz4Encoders.set(request.setting, (encoder = new Lz4FrameEncoder(request.setting)));
  return encoder;
}

function encode<S>(encoder: ResumableEncoder<S>, state: S | null, input: Uint8Array, end: boolean): EncodeResult {
  if (state) encoder.restore(state);
  else encoder.reset();
  const parts = encoder.update(input);
  let next: S | null = null;
  if (end) {
    parts.push(...encoder.finish());
  } else {
    const suspended = encoder.suspend();
    parts.push(suspended.output);
    next = suspended.state;
  }
  let size = 0;
  for (const part of parts) size += part.length;
  const output = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    output.set(part, at);
    at += part.length;
  }
  return { output, state: next as Bzip2State | Lz4State | null };
}

parentPort!.on('message', (request: EncodeRequest & { seq: number }) => {
  let reply: WorkerReply<EncodeResult>;
  const transfer: ArrayBuffer[] = [];
  try {
    const encoder = encoderFor(request);
    const result = encode(
      encoder as ResumableEncoder<Bzip2State | Lz4State>,
      request.state,
      request.input,
      request.end,
    );
    transfer.push(result.output.buffer as ArrayBuffer);
    if (result.state)
      transfer.push(('block' in result.state ? result.state.block : result.state.buffered).buffer as ArrayBuffer);
    reply = { seq: request.seq, result };
  } catch (err) {
    reply = { seq: request.seq, error: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } };
  }
  parentPort!.postMessage(reply, transfer);
  collectGarbage(request.input.byteLength);
});
