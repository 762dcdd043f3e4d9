/**
 * How `narwhal push` picks what a chunk is sent as a delta of (src/client/push-bases.ts) and
 * which chunks share a dictionary (src/client/nar-push.ts). What arrives is checked end to end
 * in test/e2e/push-deltas.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { sharingBases } from '../../../src/client/nar-push.ts';
import { AnchorIndex, bestBucket, type OldChunk } from '../../../src/client/push-bases.ts';
import { MAX_SENT_BASES } from '../../../src/push/chunk-list-body.ts';

const old = (n: number): OldChunk => ({
  id: new Uint8Array(createHash('sha256').update(`old ${n}`).digest()),
  data: new Uint8Array(100).fill(n),
  start: n * 100,
});

test('chunks share a dictionary holding all of each one’s bases, 8 at most, in old-NAR order; a chunk without bases goes alone', () => {
  const olds = Array.from({ length: 40 }, (_, n) => old(n));
  // Bases sliding along the old NAR, some found far away, and two chunks with none.
  const sending = Array.from({ length: 30 }, (_, at) => ({
    at,
    data: new Uint8Array(10).fill(at),
    bases:
      at % 11 === 5
        ? []
        : at % 7 === 0
          ? [olds[39 - at], olds[38 - at], olds[37 - at]]
          : [olds[at], olds[at + 1], olds[at + 2]],
  }));
  const groups = sharingBases(sending);
  assert.deepEqual(
    groups.flatMap((g) => g.members.map((m) => m.at)).sort((a, b) => a - b),
    sending.map((s) => s.at),
    'every chunk is sent once',
  );
  for (const { members, bases } of groups) {
    assert.ok(bases.length <= MAX_SENT_BASES);
    assert.deepEqual(
      bases.map((b) => b.start),
      bases.map((b) => b.start).sort((a, b) => a - b),
    );
    assert.equal(new Set(bases).size, bases.length, 'no base twice');
    for (const member of members)
      for (const base of member.bases) assert.ok(bases.includes(base), `chunk ${member.at}`);
    if (bases.length === 0) assert.equal(members.length, 1);
  }
  assert.ok(groups.length < sending.length / 2, `${groups.length} dictionaries for ${sending.length} chunks`);
});

test('the anchor index finds an anchor seen once in the old content held, not one seen twice nor one dropped', () => {
  const index = new AnchorIndex();
  // Hashes with their low 7 bits zero, as anchors have.
  const hashes = Array.from({ length: 100_000 }, (_, i) => (Math.imul(i + 1, 0x9e3779b1) & ~127) | 0);
  for (const [i, hash] of hashes.entries()) index.add(hash, i * 128);
  index.add(hashes[10], 99_999_999);
  let found = 0;
  for (const [i, hash] of hashes.entries()) {
    const at = index.find(hash);
    if (i === 10) assert.equal(at, -1, 'seen twice');
    else if (at >= 0) {
      assert.equal(at, i * 128);
      found++;
    }
  }
  assert.ok(found > hashes.length * 0.95, `${found} of ${hashes.length} found`);
  index.forgetBefore(50_000 * 128);
  assert.equal(index.find(hashes[49_999]), -1, 'dropped');
  assert.equal(index.find(hashes[50_001]), 50_001 * 128);
  assert.equal(index.find(12345 << 7), -1, 'never seen');
});

test('the place is where most anchors agree, within a bucket either side, and only when 3 do', () => {
  assert.equal(bestBucket(Int32Array.from([7, 7])), undefined);
  assert.equal(bestBucket(Int32Array.from([-3, 2, 7, 7, 8, 40, 40])), 7);
  assert.equal(bestBucket(Int32Array.from([1, 5, 5, 5, 9, 9, 10, 10])), 9, '2 + 2 beside it beat 3');
  assert.equal(bestBucket(new Int32Array(0)), undefined);
});
