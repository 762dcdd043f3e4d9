import { Transform, type TransformCallback } from 'node:stream';
import { transferable, WorkerPool } from '../runtime/worker-pool.ts';
import type { Bzip2Level, Bzip2State } from './bzip2/bzip2-encoder.ts';
import type { EncodeRequest, EncodeResult } from './encode-worker.ts';
import type { Lz4BlockSize, Lz4State } from './lz4/lz4-frame-encoder.ts';

/** The codec and its setting: a bzip2 level or an lz4 block size. */
export type WorkerCodec = { codec: 'bzip2'; setting: Bzip2Level } | { codec: 'lz4'; setting: Lz4BlockSize };

/**
 * Input sent to a worker at a time: large enough that a message's cost is small beside the
 * encoding it asks for, small enough that a stream holds little (see WorkerEncoderStream).
 */
const BATCH = 1 << 20;

let pool: WorkerPool<EncodeRequest, EncodeResult> | undefined;

function encoders(): WorkerPool<EncodeRequest, EncodeResult> {
  return (pool ??= new WorkerPool<EncodeRequest, EncodeResult>(new URL('./encode-worker.ts', import.meta.url)));
}

/**
 * A bzip2 or lz4 encoder run on the worker pool as a Transform. Input is gathered into batches of
 * about 1 MiB; a batch goes to a worker with the state the previous one left, and comes back as
 * the stream's next bytes with the state for the next batch. One batch is encoded at a time, so
 * output stays in order; the next is gathered meanwhile, and input waits once it is full. Memory
 * is thus two batches, one batch's output and the encoder state (one block), whatever the size of
 * the stream; when the output is not read, the Transform stops taking input.
 */
export class WorkerEncoderStream extends Transform {
  readonly #codec: WorkerCodec;
  #state: Bzip2State | Lz4State | null = null;
  #parts: Buffer[] = [];
  #gathered = 0;
  /** The batch being encoded, if any. */
  #busy: Promise<void> | null = null;

  constructor(codec: WorkerCodec) {
    super();
    this.#codec = codec;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#parts.push(chunk);
    this.#gathered += chunk.length;
    if (this.#gathered < BATCH) {
      callback();
      return;
    }
    // Waits for the batch being encoded, sends this one, and takes input again while it encodes.
    void (this.#busy ?? Promise.resolve()).then(() => {
      if (this.destroyed) return callback();
      this.#busy = this.#send(false).catch((err: Error) => {
        this.destroy(err);
      });
      callback();
    });
  }

  override _flush(callback: TransformCallback): void {
    void (this.#busy ?? Promise.resolve())
      .then(() => (this.destroyed ? undefined : this.#send(true)))
      .then(() => callback(), callback);
  }

  /** Encodes what has been gathered, pushing its output; `end` finishes the stream. */
  async #send(end: boolean): Promise<void> {
    const input = new Uint8Array(this.#gathered);
    let at = 0;
    for (const part of this.#parts) {
      input.set(part, at);
      at += part.length;
    }
    this.#parts = [];
    this.#gathered = 0;
    const state = this.#state;
    const transfer = [...transferable(input)];
    if (state) transfer.push(...transferable('block' in state ? state.block : state.buffered));
    const request = { ...this.#codec, state, input, end } as EncodeRequest;
    const { output, state: next } = await encoders().run(request, transfer);
    this.#state = next;
    if (!this.destroyed && output.length > 0)
      this.push(Buffer.from(output.buffer, output.byteOffset, output.byteLength));
  }
}
