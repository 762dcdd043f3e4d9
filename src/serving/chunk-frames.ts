import type { Narwhal } from '../context/narwhal.ts';
import { deltaDictionary, deltaStoredForm, parseStored } from '../delta/stored-form.ts';
import { isNarwhalError } from '../errors.ts';
import type { CacheRecord } from '../metadata/metadata-store.ts';
import { chunkHex } from '../storage/chunk-store.ts';
import { transferable, WorkerPool } from '../runtime/worker-pool.ts';
import { encodeChunk } from '../storage/chunk-codec.ts';
import type { EncodeRequest, EncodeResult } from '../storage/zstd-encode-worker.ts';
import { readCheckedChunk } from './chunk-damage.ts';
import { IDLE_MS } from './chunk-check.ts';
import { encodeChunkFrame, type WantedChunk } from './chunk-frames-body.ts';
import { PLACE_HINTS } from './place-hints.ts';
import { deltaKey, preparedDeltasOf } from './prepared-deltas.ts';

/** Deltas computed per request at most (each costs a zstd pass with a dictionary); the rest go plain. */
export const MAX_COMPUTED_DELTAS = 256;
/** Hints used as bases of a computed delta (a substituter names PLACE_HINTS). */
const MAX_BASES = PLACE_HINTS;
/** zstd level of computed deltas and of frames made for chunks stored as deltas. */
const DELTA_LEVEL = 3;
const FRAME_LEVEL = 1;
/** A computed delta is sent only when at most this share of the chunk's plain frame. */
const DELTA_MARGIN = 0.8;
/** Answers prepared ahead of the one being sent (their deltas computed at once on the workers). */
const AHEAD = 8;

/** Receives, while preparing an upgrade, each delta decided on by its key (null: none pays). */
export type DeltaSink = (key: Uint8Array, delta: Uint8Array | null) => void;

/** Computes deltas beside the main thread, which a request's deltas would otherwise hold for seconds. */
let encoders: WorkerPool<EncodeRequest, EncodeResult> | undefined;
const encodeOnWorker = (data: Uint8Array, dictionary: Uint8Array, level: number): Promise<Uint8Array> => {
  encoders ??= new WorkerPool<EncodeRequest, EncodeResult>(
    new URL('../storage/zstd-encode-worker.ts', import.meta.url),
    undefined,
    { idleMs: IDLE_MS },
  );
  return encoders.run({ data, dictionary, level }, transferable(dictionary));
};

/**
 * The answers to a chunk request (chunk-frames-body.ts), one per chunk wanted, in order. Only
 * chunks of NARs a path of this cache uses are given, and only such chunks serve as bases (so an
 * answer depends on nothing the caller could not read through the cache). A chunk stored as a
 * delta whose bases the client holds goes as stored; otherwise a delta is computed against the
 * chunks the client says resemble it where that is clearly smaller; else a plain zstd frame.
 * A delta prepared ahead (prepared-deltas.ts) under the same chunk and bases is sent as kept.
 * Each answer is counted in the metrics, unless `prepared` is given: then the request is the
 * server's own, preparing an upgrade, and every delta decided on goes to it.
 */
export async function* chunkFrames(
  nw: Narwhal,
  cache: CacheRecord,
  wanted: readonly WantedChunk[],
  prepared?: DeltaSink,
): AsyncGenerator<Uint8Array> {
  const recorded = prepared === undefined;
  const kept = preparedDeltasOf(nw);
  await kept?.refresh();
  type Answer = Parameters<typeof nw.metrics.recordChunkAnswer>[0];
  const reply = (id: Uint8Array, answer: Answer, payload: Uint8Array): Uint8Array => {
    if (recorded) nw.metrics.recordChunkAnswer(answer);
    const kind = answer === 'frame' || answer === 'absent' ? answer : 'delta';
    return encodeChunkFrame(id, kind, payload);
  };
  const visible = new Map<string, Promise<boolean>>();
  const isVisible = (id: Uint8Array): Promise<boolean> => {
    const key = chunkHex(id);
    let known = visible.get(key);
    if (!known) {
      known = nw.meta.cacheHasChunk(cache.id, id);
      visible.set(key, known);
    }
    return known;
  };
  const held = new Set<string>();
  for (const { hints } of wanted) {
    for (const hint of hints) if (await isVisible(hint)) held.add(chunkHex(hint));
  }
  const contents = new Map<string, Promise<Uint8Array | undefined>>();
  const content = (id: Uint8Array): Promise<Uint8Array | undefined> => {
    const key = chunkHex(id);
    let known = contents.get(key);
    if (!known) {
      known = readContent(nw, id);
      contents.set(key, known);
    }
    return known;
  };
  let computed = 0;
  const answer = async (id: Uint8Array, bases: Uint8Array[]): Promise<Uint8Array> => {
    const record = (await isVisible(id)) ? await nw.meta.getChunk(id) : undefined;
    if (!record) return reply(id, 'absent', new Uint8Array(0));
    const key = bases.length > 0 ? deltaKey(id, bases) : undefined;
    const keptDelta = key === undefined || !kept ? undefined : await kept.get(key);
    if (keptDelta !== undefined) prepared?.(key!, keptDelta);
    if (keptDelta) return reply(id, 'kept-delta', keptDelta);
    const read = await readCheckedChunk(nw, { index: 0, id, start: 0, end: record.size }, true).catch(absentIfDamaged);
    if (!read) return reply(id, 'absent', new Uint8Array(0));
    const form = read.delta ? parseStored(read.stored) : undefined;
    if (form?.kind === 'delta' && form.bases.every((base) => held.has(chunkHex(base)))) {
      return reply(id, 'stored-delta', read.stored);
    }
    const plain = read.delta ? await encodeChunk(read.data!, FRAME_LEVEL) : read.stored;
    const found = [];
    for (const hint of keptDelta === null ? [] : bases) {
      const baseContent = await content(hint);
      if (baseContent) found.push({ id: hint, content: baseContent });
    }
    if (found.length > 0) {
      const frame = await encodeOnWorker(read.data!, deltaDictionary(found.map((b) => b.content)), DELTA_LEVEL);
      const delta = deltaStoredForm(
        found.map((b) => b.id),
        frame,
      );
      const pays = delta.length <= DELTA_MARGIN * plain.length;
      prepared?.(key!, pays ? delta : null);
      if (pays) return reply(id, 'computed-delta', delta);
    }
    return reply(id, 'frame', plain);
  };
  const pending: Promise<Uint8Array>[] = [];
  let next = 0;
  while (next < wanted.length || pending.length > 0) {
    while (next < wanted.length && pending.length < AHEAD) {
      const { id, hints } = wanted[next++];
      // Decided in order, so that the first MAX_COMPUTED_DELTAS chunks with bases get deltas.
      let bases = hints.filter((h) => held.has(chunkHex(h))).slice(0, MAX_BASES);
      if (bases.length > 0 && computed++ >= MAX_COMPUTED_DELTAS) bases = [];
      const done = answer(id, bases);
      done.catch(() => {});
      pending.push(done);
    }
    yield await pending.shift()!;
  }
}

async function readContent(nw: Narwhal, id: Uint8Array): Promise<Uint8Array | undefined> {
  const record = await nw.meta.getChunk(id);
  if (!record) return undefined;
  const read = await readCheckedChunk(nw, { index: 0, id, start: 0, end: record.size }, true).catch(absentIfDamaged);
  return read?.data;
}

function absentIfDamaged(err: unknown): undefined {
  if (isNarwhalError(err, 'chunk-missing') || isNarwhalError(err, 'chunk-corrupt')) return undefined;
  throw err;
}
