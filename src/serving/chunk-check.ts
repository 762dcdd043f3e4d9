import { availableParallelism } from 'node:os';
import { NarwhalError } from '../errors.ts';
import { transferable, WorkerPool } from '../runtime/worker-pool.ts';
import type { CheckRequest, CheckResult } from './chunk-check-worker.ts';

/** Started on first use; idle workers keep no process alive. */
let pool: WorkerPool<CheckRequest, CheckResult> | undefined;

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
  const workers = pool?.size ?? availableParallelism();
  const affinity = bases[0].id[0] % workers;
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
 * Decodes a chunk stored as a delta on a worker thread, with the stored frames of its chain
 * sent so far (`chain`, by hex id; the worker keeps trusted bases it decoded lately), and checks
 * its size and, unless `trusted`, its hash against its id (throws 'chunk-corrupt'). Gives the
 * content as `data`, or with `served`, the frame a `.nar.zst` sends in its place; or, when the
 * worker lacks a base, the ids of those it lacks (`missing`), to be sent again with their frames.
 * Only the frames' own bytes are posted, not the buffers they were read into. `affinity` picks
 * the worker.
 */
export async function decodeDeltaChain(
  id: Uint8Array,
  stored: Uint8Array,
  size: number,
  chain: Map<string, Uint8Array>,
  { trusted, served, affinity }: { trusted: boolean; served: boolean; affinity: number },
): Promise<{ stored: Uint8Array; data?: Uint8Array; missing?: Uint8Array[] }> {
  // Copies of their own (new Uint8Array: a Buffer's slice would be a view of the same memory).
  const frames = [...chain].map(([key, frame]) => ({ id: key, stored: new Uint8Array(frame) }));
  const own = new Uint8Array(stored);
  const request = { id: id.slice(), stored: own, size, wantData: !served, chain: frames, trusted, servedFrame: served };
  return run(request, [own.buffer, ...frames.map((frame) => frame.stored.buffer)], affinity);
}

/**
 * Ends the check workers, and with them the bases they keep; the next check starts new ones. A
 * damaged base is found by decoding a chunk built on it from its frame, which a kept copy of its
 * content spares.
 */
export async function stopCheckWorkers(): Promise<void> {
  const stopped = pool;
  pool = undefined;
  await stopped?.close();
}

async function run(request: CheckRequest, transfer: ArrayBuffer[], affinity?: number): Promise<CheckResult> {
  pool ??= new WorkerPool<CheckRequest, CheckResult>(new URL('./chunk-check-worker.ts', import.meta.url));
  try {
    return await pool.run(request, transfer, affinity);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'chunk-corrupt')
      throw new NarwhalError('chunk-corrupt', (err as Error).message);
    throw err;
  }
}
