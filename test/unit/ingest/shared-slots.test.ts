import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedSlots } from '../../../src/ingest/shared-slots.ts';

test('shared slots copy into shared memory, make a holder wait (tryTake refuses at once) while all are taken, and take each slot back once', async () => {
  const slots = new SharedSlots(2, 16);
  const source = Uint8Array.of(1, 2, 3);
  const a = await slots.hold(source);
  source[0] = 9;
  assert.deepEqual([...a.copy], [1, 2, 3], 'a copy, not a view of the source');
  assert.ok(a.copy.buffer instanceof SharedArrayBuffer);
  const b = await slots.hold(Uint8Array.of(4));
  assert.notEqual(a.copy.byteOffset, b.copy.byteOffset);
  assert.equal(slots.tryTake(), undefined, 'tryTake does not wait while both slots are held');

  let third: { copy: Uint8Array; release: () => void } | undefined;
  const waiting = slots.hold(Uint8Array.of(5, 6)).then((held) => (third = held));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(third, undefined, 'waits while both slots are held');
  a.release();
  a.release(); // a second release gives nothing back twice
  await waiting;
  assert.deepEqual([...third!.copy], [5, 6]);
  assert.equal(third!.copy.byteOffset, a.copy.byteOffset, 'reuses the released slot');

  let fourth = false;
  const blocked = slots.hold(Uint8Array.of(7)).then(() => (fourth = true));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(fourth, false, 'the double release did not free a second slot');
  b.release();
  await blocked;

  const big = await slots.hold(new Uint8Array(17).fill(3));
  assert.ok(big.copy.buffer instanceof ArrayBuffer, 'larger than a slot: a buffer of its own');
  assert.equal(big.copy.length, 17);
});

test('bytes in a taken slot can be retained where they lie, and the slot is free once every holder let go', () => {
  const slots = new SharedSlots(1, 16);
  const taken = slots.tryTake()!;
  const release = slots.retain(taken.bytes.subarray(1, 3));
  assert.ok(release);
  taken.release();
  assert.equal(slots.tryTake(), undefined, 'still held');
  release();
  assert.ok(slots.tryTake(), 'free once the last holder let go');
  assert.equal(slots.retain(new Uint8Array(4)), undefined, 'bytes elsewhere are not held');
});
