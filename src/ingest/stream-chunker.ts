import { WorkerPool } from '../runtime/worker-pool.ts';
import type { SharedSlots } from './shared-slots.ts';
import type { BlockCuts, StreamChunkRequest, StreamChunkResult, StreamEnd } from './stream-chunk-worker.ts';

export type { BlockCuts, StreamEnd };

/** One thread chunks and hashes the streams of every upload of this process, started on first use. */
let pool: WorkerPool<StreamChunkRequest, StreamChunkResult> | undefined;
let streams = 0;

function chunkPool(): WorkerPool<StreamChunkRequest, StreamChunkResult> {
  return (pool ??= new WorkerPool(new URL('./stream-chunk-worker.ts', import.meta.url), 1));
}

/** Starts the chunking thread now rather than at the first upload, which would wait for it to load. */
export function prepareStreamChunking(): void {
  chunkPool().start();
}

/**
 * Cuts a stream into casync chunks (default parameters) and hashes each chunk and the whole
 * stream, on another thread: on the main thread these three passes over every byte took half of
 * an upload's time, and with them elsewhere it checks the NAR and stores chunks meanwhile.
 * Blocks in `blocks` are read where they lie and held until the thread is done with them;
 * anything else is copied. Blocks are chunked in the order they are pushed.
 */
export class StreamChunker {
  readonly #blocks: SharedSlots;
  readonly #stream = streams++;
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(blocks: SharedSlots) {
    this.#blocks = blocks;
  }

  /** The cuts in `block` and the ids of the chunks they end (the first may have begun in earlier blocks). */
  push(block: Uint8Array): Promise<BlockCuts> {
    const release = this.#blocks.retain(block);
    const bytes = release ? block : new Uint8Array(block);
    const cuts = chunkPool().run(
      { op: 'block', stream: this.#stream, bytes },
      release ? [] : [bytes.buffer as ArrayBuffer],
    ) as Promise<BlockCuts>;
    const settled = cuts.then(
      () => undefined,
      () => undefined,
    );
    this.#inFlight.add(settled);
    void settled.then(() => {
      release?.();
      this.#inFlight.delete(settled);
    });
    return cuts;
  }

  /** The stream's hash, and the id of the chunk after the last cut if it is not empty. */
  end(): Promise<StreamEnd> {
    return chunkPool().run({ op: 'end', stream: this.#stream }) as Promise<StreamEnd>;
  }

  /** Forgets the stream, after waiting for the thread to let go of its blocks. */
  async abandon(): Promise<void> {
    await chunkPool()
      .run({ op: 'drop', stream: this.#stream })
      .catch(() => undefined);
    await Promise.all(this.#inFlight);
  }
}
