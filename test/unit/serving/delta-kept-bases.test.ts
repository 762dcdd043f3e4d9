/**
 * Deltas of a pushed chunk list decoded on the check workers with bases posted once
 * (checkDeltaKeepingBases): each decodes to its own bytes, whether its worker keeps the bases or
 * not, and a delta that decodes to other bytes is still refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { constants, zstdCompressSync } from 'node:zlib';
import { deltaDictionary, deltaStoredForm } from '../../../src/delta/stored-form.ts';
import { checkDeltaKeepingBases } from '../../../src/serving/chunk-check.ts';
import { seededBytes } from '../../helpers/test-data.ts';

const idOf = (data: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(data).digest());
const bases = [1, 2, 3].map((seed) => {
  const content = new Uint8Array(seededBytes(50_000, seed));
  return { id: idOf(content), content };
});
/** A chunk like the bases, edited, and its delta's stored form. */
function editedDelta(seed: number): { id: Uint8Array; data: Uint8Array; stored: Uint8Array } {
  const data = new Uint8Array(bases[seed % 3].content);
  data.set(seededBytes(200, 100 + seed), 1000 * seed);
  const frame = zstdCompressSync(data, {
    dictionary: deltaDictionary(bases.map((b) => b.content)),
    params: { [constants.ZSTD_c_compressionLevel]: 3 },
  } as Parameters<typeof zstdCompressSync>[1]);
  return {
    id: idOf(data),
    data,
    stored: deltaStoredForm(
      bases.map((b) => b.id),
      frame,
    ),
  };
}

test('deltas sharing bases each decode to their own bytes, the bases posted once', async () => {
  const sent = new Set<string>();
  const deltas = Array.from({ length: 6 }, (_, i) => editedDelta(i + 1));
  const decoded = await Promise.all(deltas.map((d) => checkDeltaKeepingBases(d.id, d.stored, bases, sent)));
  for (const [i, d] of deltas.entries()) assert.deepEqual(new Uint8Array(decoded[i]), d.data, `delta ${i}`);
  assert.equal(sent.size, bases.length, 'each base went to one worker');
});

test('a worker that does not keep the bases is sent them again, and the delta still decodes', async () => {
  // Bases never posted to any worker, though `sent` says they were, to every one.
  const unseen = [4, 5].map((seed) => {
    const content = new Uint8Array(seededBytes(50_000, seed));
    return { id: idOf(content), content };
  });
  const data = new Uint8Array(unseen[1].content);
  data.set(seededBytes(300, 9), 20_000);
  const frame = zstdCompressSync(data, {
    dictionary: deltaDictionary(unseen.map((b) => b.content)),
    params: { [constants.ZSTD_c_compressionLevel]: 3 },
  } as Parameters<typeof zstdCompressSync>[1]);
  const stored = deltaStoredForm(
    unseen.map((b) => b.id),
    frame,
  );
  const sent = new Set(
    Array.from({ length: 256 }, (_, w) => unseen.map((b) => `${w}:${Buffer.from(b.id).toString('hex')}`)).flat(),
  );
  assert.deepEqual(new Uint8Array(await checkDeltaKeepingBases(idOf(data), stored, unseen, sent)), data);
});

test('a delta that decodes to other bytes than its id is refused as corrupt', async () => {
  const d = editedDelta(8);
  const wrongId = idOf(new Uint8Array([1, 2, 3]));
  await assert.rejects(checkDeltaKeepingBases(wrongId, d.stored, bases, new Set()), { code: 'chunk-corrupt' });
});
