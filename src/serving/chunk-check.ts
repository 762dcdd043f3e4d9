import { availableParallelism } from 'node:os';
import { NarwhalError } from '../errors.ts';
import { transferable, WorkerPool } from '../runtime/worker-pool.ts';
import type { PlacedFrames } from '../storage/chunk-store-capabilities.ts';
import type {
  CheckRequest,
  CheckResult,
  DeltaRunRequest,
  DeltaRunResult,
  WorkerRequest,
  WorkerResult,
} from './chunk-check-worker.ts';

/**
 * Started on first use; idle workers keep no process alive, and end after IDLE_MS without a
 * request, with the bases they keep.
 */
let workers: WorkerPool<WorkerRequest, WorkerResult> | undefined;
export const IDLE_MS = 30_000;
/** Workers the pool starts: one per core unless limited. */
let size: number | undefined;

/**
 * Makes the pool of this process `count` workers rather than one per core, before its first use:
 * for a process that checks chunks for one task at a time (`narwhal recompress`), where each
 * worker more is a V8 heap and kept bases more (docs/benchmarks.md, "Delta memory and serving speed").
 */
export function limitCheckWorkers(count: number): void {
  if (workers) throw new Error('the check workers have started already');
  size = count;
}

function pool(): WorkerPool<WorkerRequest, WorkerResult> {
  workers ??= new WorkerPool(new URL('./chunk-check-worker.ts', import.meta.url), size, { idleMs: IDLE_MS });
  return workers;
}

/**
 * Decompresses a stored chunk on a worker thread (a delta with `bases`, its bases' contents; see
 * chunk-content.ts) and checks its size (when known) and hash against its id
 * (throws 'chunk-corrupt'), so that downloads check every chunk on all cores without
 * holding up the event loop. `stored` is moved to the worker and back: use the returned one.
 * `trusted` (with `size`): the frame is as its store wrote it (asWritten), so only its size is checked.
 */
export async function checkChunk(
  id: Uint8Array,
  stored: Uint8Array,
  size: number | undefined,
  wantData: boolean,
  bases?: Uint8Array[],
  trusted = false,
): Promise<{ stored: Uint8Array; data?: Uint8Array }> {
  // A copy of the id: a view (ids are views of their NAR's chunk table) is posted with its whole buffer.
  // So would a frame read together with others be (pack-files.ts readMany): its own bytes go instead.
  // Bases are copied, not moved: other chunks of the batch may use them too.
  const own = transferable(stored).length > 0 ? stored : new Uint8Array(stored);
  return run({ id: id.slice(), stored: own, size, wantData, bases, trusted }, transferable(own));
}

/**
 * checkChunk of a delta whose bases (checked contents) are posted to a worker only the first time:
 * the worker their first id picks keeps them (`sent` remembers which, for one caller), so deltas
 * sharing bases do not each copy them. A worker that no longer keeps one is sent them all again.
 */
export async function checkDeltaKeepingBases(
  id: Uint8Array,
  stored: Uint8Array,
  bases: { id: Uint8Array; content: Uint8Array }[],
  sent: Set<string>,
): Promise<Uint8Array> {
  const baseIds = bases.map((base) => Buffer.from(base.id).toString('hex'));
  const affinity = bases[0].id[0] % (workers?.size ?? size ?? availableParallelism());
  const empty = new Uint8Array(0);
  const send = (all: boolean): Promise<{ stored: Uint8Array; data?: Uint8Array }> => {
    const contents = bases.map((base, i) => (all || !sent.has(`${affinity}:${baseIds[i]}`) ? base.content : empty));
    for (const hex of baseIds) sent.add(`${affinity}:${hex}`);
    // `stored` is copied, not moved: it is sent again if the worker lacks a base.
    return run({ id: id.slice(), stored, size: undefined, wantData: true, bases: contents, baseIds }, [], affinity);
  };
  try {
    return (await send(false)).data!;
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'bases-not-kept') throw err;
    return (await send(true)).data!;
  }
}

/**
 * Decodes chunks stored as deltas on one worker thread (`affinity` picks it), with the stored
 * frames of their chains sent so far (`chain`, by hex id; the worker keeps trusted bases it
 * decoded lately), and checks each one's size and, unless `trusted`, its hash against its id.
 * Gives per chunk its content as `data`, or with `served`, the frame a `.nar.zst` sends in its
 * place (views of one buffer for the run); or an error; or, when the worker lacks a base,
 * `pending`, with the ids of the bases lacking in `missing`, to be sent again with their frames.
 * The frames are copied into one buffer, the only one posted.
 */
export async function decodeDeltaRun(
  chunks: { id: Uint8Array; stored: Uint8Array; size: number }[],
  chain: Map<string, Uint8Array>,
  { trusted, served, affinity }: { trusted: boolean; served: boolean; affinity: number },
): Promise<{ outcomes: DeltaRunOutcome[]; missing: Uint8Array[] }> {
  const frames = new Uint8Array(
    chunks.reduce((sum, chunk) => sum + chunk.stored.length, 0) +
      [...chain.values()].reduce((sum, frame) => sum + frame.length, 0),
  );
  let at = 0;
  const place = (frame: Uint8Array): { at: number; length: number } => {
    frames.set(frame, at);
    at += frame.length;
    return { at: at - frame.length, length: frame.length };
  };
  const request: DeltaRunRequest = {
    frames,
    chunks: chunks.map(({ id, stored, size }) => ({ id: Buffer.from(id).toString('hex'), size, ...place(stored) })),
    chain: [...chain].map(([id, frame]) => ({ id, ...place(frame) })),
    trusted,
    servedFrame: served,
  };
  const result = (await pool().run({ run: request }, [frames.buffer], affinity)) as DeltaRunResult;
  return {
    outcomes: result.outcomes.map((outcome) =>
      'at' in outcome ? { data: result.data.subarray(outcome.at, outcome.at + outcome.length) } : outcome,
    ),
    missing: result.missing.map((hex) => Buffer.from(hex, 'hex')),
  };
}

/**
 * The stored frames at these places, read on a check worker (readFramesSync), in order: views of
 * one buffer, back to back. One message for a batch of frames costs the main thread less than a
 * read per frame (docs/benchmarks.md, "Serving old versions"). Throws the read's error (ENOENT
 * when compaction deleted a pack since the lookup).
 */
export async function readFramesOnWorker({ dir, frames }: PlacedFrames, affinity?: number): Promise<Uint8Array[]> {
  const places = frames.map(({ pack, offset, length }) => ({ pack, offset, length }));
  const data = (await pool().run({ read: { dir, frames: places } }, [], affinity)) as Uint8Array;
  let at = 0;
  return frames.map(({ length }) => data.subarray(at, (at += length)));
}

/** What decodeDeltaRun gives per chunk. */
export type DeltaRunOutcome = { data: Uint8Array } | { error: { message: string; code?: string } } | { pending: true };

/**
 * Ends the check workers, and with them the bases they keep; the next check starts new ones. A
 * damaged base is found by decoding a chunk built on it from its frame, which a kept copy of its
 * content spares.
 */
export async function stopCheckWorkers(): Promise<void> {
  const stopped = workers;
  workers = undefined;
  await stopped?.close();
}

async function run(request: CheckRequest, transfer: ArrayBuffer[], affinity?: number): Promise<CheckResult> {
  try {
    return (await pool().run(request, transfer, affinity)) as CheckResult;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'chunk-corrupt')
      throw new NarwhalError('chunk-corrupt', (err as Error).message);
    throw err;
  }
}
