/**
 * The delta pass's worker (delta-encode-worker.ts), through a pool as the pass uses it: the delta
 * it sends decodes to the chunk with its bases as dictionary, each base comes as a frame or as its
 * content, a delta over the bound is not sent, and damage is 'chunk-corrupt'.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { constants, zstdCompressSync } from 'node:zlib';
import { decodeDelta, parseStored } from '../../../src/delta/stored-form.ts';
import type { DeltaRequest, DeltaResult } from '../../../src/maintenance/delta-encode-worker.ts';
import { WorkerPool } from '../../../src/runtime/worker-pool.ts';
import { assertSameBytes } from '../../helpers/bytes.ts';
import { realBinary } from '../../helpers/test-data.ts';

const frame = (data: Uint8Array): Uint8Array =>
  new Uint8Array(zstdCompressSync(data, { params: { [constants.ZSTD_c_compressionLevel]: 3 } }));
const idOf = (data: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(data).digest());

/** A 64 KiB chunk of a real binary, and a newer version of it with a byte changed every 4 KiB. */
function chunkAndBase(): { chunk: Uint8Array; base: Uint8Array } {
  const chunk = new Uint8Array(realBinary(64 * 1024));
  const base = chunk.slice();
  for (let i = 100; i < base.length; i += 4096) base[i] ^= 0x5a;
  return { chunk, base };
}

function request(chunk: Uint8Array, base: Uint8Array, changes: Partial<DeltaRequest> = {}): DeltaRequest {
  return {
    id: idOf(chunk),
    stored: frame(chunk),
    size: chunk.length,
    options: [[{ id: idOf(base), stored: frame(base) }]],
    level: 9,
    maxBytes: chunk.length,
    ...changes,
  };
}

test('the worker sends a delta that decodes to the chunk with its base, from a base frame or content alike', async () => {
  const pool = new WorkerPool<DeltaRequest, DeltaResult>(
    new URL('../../../src/maintenance/delta-encode-worker.ts', import.meta.url),
    1,
  );
  try {
    const { chunk, base } = chunkAndBase();
    const fromFrame = request(chunk, base);
    const storedBefore = fromFrame.stored.slice();
    const result = await pool.run(fromFrame);
    assertSameBytes(result.stored, storedBefore, 'the stored frame comes back');
    const form = parseStored(result.delta!);
    assert.ok(form.kind === 'delta');
    assert.deepEqual(form.bases, [idOf(base)]);
    assertSameBytes(decodeDelta(form.frame, [base], chunk.length + 1), chunk);
    assert.ok(result.delta!.length < frame(chunk).length / 4, 'a delta of a near copy is small');
    assert.ok(result.encodeMs >= 0);

    const fromContent = await pool.run(request(chunk, base, { options: [[{ id: idOf(base), content: base }]] }));
    assertSameBytes(fromContent.delta!, result.delta!, 'the same delta from the base content');

    // Several bases, a frame and a content: their contents concatenated in order are the dictionary.
    const other = new Uint8Array(realBinary(96 * 1024)).subarray(64 * 1024);
    const two = await pool.run(
      request(chunk, base, {
        options: [
          [
            { id: idOf(other), content: other },
            { id: idOf(base), stored: frame(base) },
          ],
        ],
      }),
    );
    const twoForm = parseStored(two.delta!);
    assert.ok(twoForm.kind === 'delta');
    assert.deepEqual(twoForm.bases, [idOf(other), idOf(base)]);
    assertSameBytes(decodeDelta(twoForm.frame, [other, base], chunk.length + 1), chunk);

    // Of several options the smallest delta is sent, naming its option.
    const best = await pool.run(
      request(chunk, base, {
        options: [[{ id: idOf(other), content: other }], [{ id: idOf(base), stored: frame(base) }]],
      }),
    );
    assert.equal(best.option, 1, 'the option whose base is the near copy');
    assertSameBytes(best.delta!, result.delta!);

    const over = await pool.run(request(chunk, base, { maxBytes: result.delta!.length - 1 }));
    assert.equal(over.delta, undefined, 'a delta over maxBytes is not sent');
    assertSameBytes(over.stored, storedBefore);
  } finally {
    await pool.close();
  }
});

test('the worker answers chunk-corrupt for a chunk or base that is not what its id says', async () => {
  const pool = new WorkerPool<DeltaRequest, DeltaResult>(
    new URL('../../../src/maintenance/delta-encode-worker.ts', import.meta.url),
    1,
  );
  const corrupt = (err: unknown): boolean => (err as { code?: unknown }).code === 'chunk-corrupt';
  try {
    const { chunk, base } = chunkAndBase();
    const other = chunk.slice();
    other[0] ^= 1;
    await assert.rejects(pool.run(request(chunk, base, { stored: frame(other) })), corrupt, 'another content');
    await assert.rejects(pool.run(request(chunk, base, { size: chunk.length - 1 })), corrupt, 'another size');
    await assert.rejects(pool.run(request(chunk, base, { stored: new Uint8Array(100) })), corrupt, 'not zstd');
    await assert.rejects(
      pool.run(request(chunk, base, { options: [[{ id: idOf(base), stored: frame(other) }]] })),
      corrupt,
      'a base that is not its id',
    );
    assert.ok((await pool.run(request(chunk, base))).delta, 'the worker goes on after refusals');
  } finally {
    await pool.close();
  }
});
