import { NarwhalError } from '../errors.ts';
import type { NarRecord } from '../metadata/metadata-store.ts';
import { chunkEntries, chunkEntry, chunkIndexAt, type ChunkTableEntry } from '../chunking/chunk-table.ts';
import { checkChunkPresent, readCheckedChunks, type CheckedChunk } from './chunk-damage.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { countedPlainFrames, servedFrame } from './served-frames.ts';
import { hasFrameReads } from '../storage/chunk-store-capabilities.ts';

/** Chunks are read and checked in batches of up to this many bytes of NAR, or this many chunks. */
const BATCH_NAR_BYTES = 1024 * 1024;
const BATCH_CHUNKS = 32;
/** Bytes to send a `.nar.zst` batch aims at (BATCH_NAR_BYTES of NAR compressed 4 fold). */
const SERVED_BATCH_BYTES = 256 * 1024;
/** Batches read and checked ahead of the one being sent (the checks run on worker threads). */
const READ_AHEAD = 2;
/** Existence checks in flight at once before a download starts. */
const CHECK_CONCURRENCY = 32;

/**
 * Finds a NAR for reading and makes sure every chunk it needs is in the chunk store, so that a
 * download never starts that cannot finish: a missing chunk throws 'chunk-missing' before any
 * byte is sent (and flags the NAR damaged). A NAR already flagged damaged is not offered.
 */
export async function openNar(nw: Narwhal, narHash: string): Promise<NarRecord | undefined> {
  const nar = await nw.meta.getNar(narHash);
  if (!nar || nar.damagedAt !== null) return undefined;
  await assertChunksPresent(nw, nar);
  return nar;
}

export async function assertChunksPresent(nw: Narwhal, nar: NarRecord): Promise<void> {
  // A chunk stored as a delta needs its bases too, at every depth.
  const ids = [
    ...Array.from(chunkEntries(nar.chunkTable), (entry) => entry.id),
    ...(await nw.meta.narDeltaBases(nar.id)),
  ];
  if (hasFrameReads(nw.chunks)) {
    // All looked up at once; those absent are looked at again one by one, which flags them.
    const sizes = await nw.chunks.storedSizes(ids);
    for (const [i, size] of sizes.entries()) if (size === undefined) await checkChunkPresent(nw, ids[i], nar.narHash);
    return;
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < ids.length) await checkChunkPresent(nw, ids[next++], nar.narHash);
  };
  await Promise.all(Array.from({ length: Math.min(CHECK_CONCURRENCY, ids.length) }, worker));
}

/**
 * The stored zstd frames of the NAR, back to back: together they are one zstd stream of the NAR,
 * exactly `nar.storedSize` bytes long (its Content-Length). Each frame is checked before it is
 * passed on: against the CRC-32 its store recorded when writing it, or else decompressed and
 * checked against its chunk id (unless this process did so lately for the same bytes,
 * checked-frames.ts). A damaged chunk ends the stream with an error rather than sending wrong
 * bytes. A chunk stored as a delta is decoded with its bases and sent as a frame of raw blocks
 * (rawZstdFrame), whose length its NAR's stored size counts (recordDeltas), or, if it became a
 * delta during the read, compressed to fit its plain frame's count (served-frames.ts). Recompression may
 * shrink a frame while it is read; the bytes it saved are made up at the end with a skippable
 * frame, which zstd decoders skip.
 */
export async function* readStoredFrames(nw: Narwhal, nar: NarRecord): AsyncGenerator<Uint8Array> {
  let sent = 0;
  const counted = await countedPlainFrames(nw, nar);
  // A NAR served mostly as raw frames (deltas) has smaller batches, so that a batch holds about as
  // many bytes to send as one of compressed frames: memory goes with the bytes held per download.
  const servedRatio = nar.narSize === 0 ? 0 : nar.storedSize / nar.narSize;
  const batchNarBytes = Math.max(SERVED_BATCH_BYTES, Math.min(BATCH_NAR_BYTES, SERVED_BATCH_BYTES / servedRatio));
  for await (const batch of readChecked(nw, chunkEntries(nar.chunkTable), false, batchNarBytes)) {
    // One write to the socket per batch rather than per frame.
    const frames = joined(await Promise.all(batch.map((chunk) => servedFrame(chunk, counted))));
    sent += frames.length;
    if (sent > nar.storedSize) throw framesChanged(nar);
    yield frames;
  }
  if (sent === nar.storedSize) return;
  if (nar.storedSize - sent < SKIPPABLE_HEADER) throw framesChanged(nar);
  yield skippableFrame(nar.storedSize - sent);
}

const SKIPPABLE_HEADER = 8;

/**
 * The frames back to back: the view they already are when they lie so in one buffer (the raw
 * frames of a run of deltas, decoded in one worker call), else a copy. Every buffer the main
 * thread lets go of stays in memory until its next collection.
 */
function joined(frames: Uint8Array[]): Uint8Array {
  const [first] = frames;
  let end = first === undefined ? 0 : first.byteOffset + first.length;
  for (const frame of frames.slice(1)) {
    if (frame.buffer !== first.buffer || frame.byteOffset !== end) return Buffer.concat(frames);
    end += frame.length;
  }
  return first === undefined
    ? new Uint8Array(0)
    : new Uint8Array(first.buffer, first.byteOffset, end - first.byteOffset);
}

/** A zstd skippable frame of `length` bytes in all (RFC 8878, 3.1.2), its content zeros. */
export function skippableFrame(length: number): Uint8Array {
  const frame = new Uint8Array(length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, 0x184d2a50, true);
  view.setUint32(4, length - SKIPPABLE_HEADER, true);
  return frame;
}

function framesChanged(nar: NarRecord): NarwhalError {
  return new NarwhalError('unavailable', `the chunks of NAR ${nar.narHash} were rewritten while it was read; retry`);
}

/**
 * The uncompressed NAR bytes [start, end), each chunk checked against its id before it is passed
 * on: a corrupt chunk ends the stream with 'chunk-corrupt' rather than sending wrong bytes.
 */
export async function* readNarBytes(
  nw: Narwhal,
  nar: NarRecord,
  start = 0,
  end = nar.narSize,
): AsyncGenerator<Uint8Array> {
  if (start >= end) return;
  const first = chunkIndexAt(nar.chunkTable, start);
  const last = chunkIndexAt(nar.chunkTable, end - 1);
  const wanted = (function* () {
    for (let i = first; i <= last; i++) yield chunkEntry(nar.chunkTable, i);
  })();
  for await (const batch of readChecked(nw, wanted, true)) {
    for (const { entry, data } of batch) {
      const from = Math.max(start, entry.start) - entry.start;
      const to = Math.min(end, entry.end) - entry.start;
      yield data!.subarray(from, to);
    }
  }
}

/** Chunks read and checked in order, in batches; a damaged one is flagged (chunk-damage.ts). */
function readChecked(
  nw: Narwhal,
  entries: Iterable<ChunkTableEntry>,
  wantData: boolean,
  batchNarBytes = BATCH_NAR_BYTES,
): AsyncGenerator<CheckedChunk[]> {
  return mapAhead(toAsync(batches(entries, batchNarBytes)), (batch) => readCheckedChunks(nw, batch, wantData));
}

function* batches(entries: Iterable<ChunkTableEntry>, narBytes: number): Generator<ChunkTableEntry[]> {
  let batch: ChunkTableEntry[] = [];
  for (const entry of entries) {
    if (batch.length > 0 && (batch.length === BATCH_CHUNKS || entry.end - batch[0].start > narBytes)) {
      yield batch;
      batch = [];
    }
    batch.push(entry);
  }
  if (batch.length > 0) yield batch;
}

/** Maps in order with up to READ_AHEAD operations running ahead of the consumer. */
async function* mapAhead<T, U>(source: AsyncIterable<T>, map: (item: T) => Promise<U>): AsyncGenerator<U> {
  const pending: Promise<U>[] = [];
  try {
    for await (const item of source) {
      const promise = map(item);
      promise.catch(() => undefined); // awaited below in order; avoid an unhandled rejection meanwhile
      pending.push(promise);
      if (pending.length >= READ_AHEAD) yield await pending.shift()!;
    }
    while (pending.length > 0) yield await pending.shift()!;
  } finally {
    await Promise.allSettled(pending);
  }
}

async function* toAsync<T>(items: Iterable<T>): AsyncGenerator<T> {
  yield* items;
}
