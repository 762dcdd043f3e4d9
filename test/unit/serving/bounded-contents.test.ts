import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedContents } from '../../../src/serving/bounded-contents.ts';

const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

test('drops the least recently used contents once over its bound, and keeps the rest', () => {
  const kept = new BoundedContents(100);
  kept.set('a', bytes(40, 1));
  kept.set('b', bytes(40, 2));
  assert.equal(kept.get('a')?.[0], 1); // a is now the most recently used
  kept.set('c', bytes(40, 3));
  assert.equal(kept.get('b'), undefined, 'b, the least recently used, went');
  assert.deepEqual([kept.get('a')?.[0], kept.get('c')?.[0]], [1, 3]);
  assert.equal(kept.bytes, 80);
});

test('a content larger than the bound is not kept, and replacing one counts its new size', () => {
  const kept = new BoundedContents(100);
  kept.set('big', bytes(101, 1));
  assert.equal(kept.get('big'), undefined);
  kept.set('a', bytes(60, 1));
  kept.set('a', bytes(30, 2));
  assert.equal(kept.bytes, 30);
  assert.equal(kept.get('a')?.[0], 2);
});
