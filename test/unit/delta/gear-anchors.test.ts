import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { buildGearAnchorsWasm } from '../../../scripts/build-wasm.ts';
import { GearAnchors } from '../../../src/delta/gear-anchors.ts';
import { GEAR } from '../../../src/delta/resemblance.ts';
import { seededBytes } from '../../helpers/test-data.ts';

/** The definition, in JavaScript: positions from 31 on whose gear hash has the bits of `mask` zero. */
function anchorsByDefinition(data: Uint8Array, mask: number): [number, number][] {
  const found: [number, number][] = [];
  let h = 0;
  for (let i = 0; i < data.length; i++) {
    h = ((h << 1) + GEAR[data[i]]) | 0;
    if (i >= 31 && (h & mask) === 0) found.push([h, i]);
  }
  return found;
}

const scanned = (scanner: GearAnchors, data: Uint8Array): [number, number][] => {
  const found: [number, number][] = [];
  scanner.scan(data, (hash, at) => found.push([hash, at]));
  return found;
};

test('the anchors are those of the gear hash, block after block, whatever their sizes', () => {
  const scanner = new GearAnchors(127);
  const text = Buffer.from('the same line of text, over and over\n'.repeat(20_000));
  for (const data of [seededBytes(70_000, 1), seededBytes(5, 2), new Uint8Array(0), text, seededBytes(1_000_001, 3)]) {
    const expected = anchorsByDefinition(data, 127);
    assert.deepEqual(scanned(scanner, data), expected, `${data.length} bytes`);
    if (data.length > 10_000) assert.ok(expected.length > data.length / 1000, 'anchors are found at all');
  }
  // A block of zeros: every position from 31 on may be one; all are given.
  const zeros = new Uint8Array(300_000);
  assert.deepEqual(scanned(new GearAnchors(0), zeros).length, zeros.length - 31);
});

test('gear-anchors.wasm is what gear-anchors.wat builds to', async () => {
  const committed = await readFile(new URL('../../../src/delta/gear-anchors.wasm', import.meta.url));
  assert.ok(committed.equals(await buildGearAnchorsWasm()), 'run npm run build:wasm');
});
