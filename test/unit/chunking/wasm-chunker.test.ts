import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import fc from 'fast-check';
import { Chunker, type ChunkerParams } from '../../../src/chunking/chunker.ts';
import { WASM_BLOCK_BYTES, WasmChunker } from '../../../src/chunking/wasm-chunker.ts';
import { buildChunkerWasm } from '../../../scripts/build-wasm.ts';
import { fuzzParameters } from '../../fuzz/fuzz-settings.ts';
import { seededBytes } from '../../helpers/test-data.ts';

/** Cut offsets in the stream by the JavaScript chunker, fed the same pieces. */
function jsCuts(pieces: Uint8Array[], params: ChunkerParams): number[] {
  const chunker = new Chunker(params);
  const cuts: number[] = [];
  let base = 0;
  for (const piece of pieces) {
    for (let pos = 0, cut: number; pos < piece.length && (cut = chunker.next(piece, pos, piece.length)) >= 0; pos = cut)
      cuts.push(base + cut);
    base += piece.length;
  }
  return cuts;
}

function wasmCuts(pieces: Uint8Array[], params: ChunkerParams): number[] {
  const chunker = new WasmChunker(params);
  const cuts: number[] = [];
  let base = 0;
  for (const piece of pieces) {
    for (const cut of chunker.cuts(piece)) cuts.push(base + cut);
    base += piece.length;
  }
  return cuts;
}

/** Bytes with long runs (forced max cuts), repeats and noise, so every path of the scan is taken. */
const streamBytes = fc
  .array(
    fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 3000 }),
      fc
        .record({ byte: fc.integer({ min: 0, max: 255 }), length: fc.integer({ min: 1, max: 9000 }) })
        .map(({ byte, length }) => new Uint8Array(length).fill(byte)),
      fc.integer({ min: 1, max: 1 << 30 }).map((seed) => seededBytes(20_000, seed)),
    ),
    { maxLength: 12 },
  )
  .map((parts) => Buffer.concat(parts));

const chunkerParams = fc
  .tuple(fc.integer({ min: 48, max: 3000 }), fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 9000 }))
  .map(([min, extraAvg, extraMax]): ChunkerParams => ({ min, avg: min + extraAvg, max: min + extraAvg + extraMax }));

function split(data: Uint8Array, sizes: number[]): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let at = 0, k = 0; at < data.length; k++) {
    const n = sizes.length === 0 ? data.length : sizes[k % sizes.length];
    pieces.push(data.subarray(at, at + n));
    at += n;
  }
  return pieces;
}

test('the WebAssembly chunker cuts where the JavaScript chunker does, however the stream is split', () => {
  fc.assert(
    fc.property(
      streamBytes,
      chunkerParams,
      fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 5 }),
      (data, params, sizes) => {
        const pieces = split(data, sizes);
        assert.deepEqual(wasmCuts(pieces, params), jsCuts(pieces, params));
      },
    ),
    fuzzParameters(300),
  );
});

test('the WebAssembly chunker agrees on default parameters over full-size blocks of real-looking data', () => {
  const data = Buffer.concat([seededBytes(1_500_000, 7), Buffer.alloc(600_000, 0x41), seededBytes(700_000, 8)]);
  const pieces = split(data, [WASM_BLOCK_BYTES, 5, WASM_BLOCK_BYTES - 7]);
  const cuts = wasmCuts(pieces, { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 });
  assert.ok(cuts.length > 20);
  assert.deepEqual(cuts, jsCuts(pieces, { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 }));
  assert.throws(() => new WasmChunker().cuts(new Uint8Array(WASM_BLOCK_BYTES + 1)), RangeError);
});

test('buzhash-chunker.wasm is what buzhash-chunker.wat builds to', async () => {
  const committed = await readFile(new URL('../../../src/chunking/buzhash-chunker.wasm', import.meta.url));
  assert.ok(committed.equals(await buildChunkerWasm()), 'run npm run build:wasm');
});
