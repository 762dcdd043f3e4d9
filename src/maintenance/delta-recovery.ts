import { constants, zstdCompressSync } from 'node:zlib';
import { parseStored } from '../delta/stored-form.ts';
import type { PendingDelta } from '../metadata/metadata-store.ts';
import { isNarwhalError } from '../errors.ts';
import { checkStoredChunk } from '../serving/chunk-content.ts';
import { baseReader } from '../serving/chunk-damage.ts';
import { walkChunkPages } from './chunk-pages.ts';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * What a delta-encoding run (delta-encode.ts) cut short left: plain chunk records with bases
 * reserved. A chunk whose file is a delta by now is recorded as one; a chunk whose file is still
 * plain gets its reservation dropped. A delta that cannot be recorded any more (a base found
 * unused or damaged since) is written plain again, at `level`, and its record follows.
 */

const BATCH = 64;

export async function finishPendingDeltas(nw: Narwhal, level: number): Promise<{ recovered: number; undone: number }> {
  const result = { recovered: 0, undone: 0 };
  await walkChunkPages(
    (after, limit) => nw.meta.pendingDeltas(after, limit),
    BATCH,
    undefined,
    async (page) => {
      for (const pending of page) {
        const outcome = await finishOne(nw, pending, level);
        if (outcome === 'recorded') result.recovered++;
        if (outcome === 'undone') result.undone++;
      }
      return true;
    },
  );
  return result;
}

async function finishOne(nw: Narwhal, pending: PendingDelta, level: number): Promise<'recorded' | 'undone' | 'plain'> {
  let stored: Uint8Array;
  try {
    stored = await nw.chunks.get(pending.id);
  } catch (err) {
    if (!isNarwhalError(err, 'chunk-missing')) throw err;
    await nw.meta.dropDeltaBases([pending.id]); // verify's business
    return 'plain';
  }
  const form = parsedOrPlain(stored);
  if (form.kind === 'plain') {
    await nw.meta.dropDeltaBases([pending.id]);
    return 'plain';
  }
  const { depth } = await nw.meta.deltaChain(pending.id);
  const delta = {
    id: pending.id,
    oldStoredSize: pending.storedSize,
    storedSize: stored.byteLength,
    bases: form.bases.map((id) => id.slice()),
    depth,
    level,
  };
  if ((await nw.meta.recordDeltas([delta])) === 1) return 'recorded';
  await writePlain(nw, pending, stored, level);
  await nw.meta.dropDeltaBases([pending.id]);
  return 'undone';
}

/** The chunk written back as one plain frame, its record and its NARs' stored sizes following. */
async function writePlain(nw: Narwhal, pending: PendingDelta, stored: Uint8Array, level: number): Promise<void> {
  let data: Uint8Array | undefined;
  try {
    data = (await checkStoredChunk(pending.id, stored, pending.size, true, baseReader(nw))).data;
  } catch (err) {
    if (isNarwhalError(err, 'chunk-missing') || isNarwhalError(err, 'chunk-corrupt')) return; // verify's business
    throw err;
  }
  const plain = zstdCompressSync(data!, { params: { [constants.ZSTD_c_compressionLevel]: level } });
  const storedSize = plain.byteLength; // put may take the buffer over
  await nw.chunks.put(pending.id, plain);
  await nw.chunks.flush();
  await nw.meta.recordRecompressed([
    { id: pending.id, oldStoredSize: pending.storedSize, storedSize, zstdLevel: level },
  ]);
}

function parsedOrPlain(stored: Uint8Array): ReturnType<typeof parseStored> {
  try {
    return parseStored(stored);
  } catch {
    return { kind: 'plain' }; // malformed: verify's business
  }
}
