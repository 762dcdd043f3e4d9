import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Compression, compressionFromNarUrlSuffix, narUrlSuffix } from '../../../src/compression/compression.ts';

const all: Compression[] = ['none', 'xz', 'zstd', 'bzip2', 'br', 'gzip', 'lz4'];

test('NAR URL suffixes are the ones Nix 2.8 writes', () => {
  assert.deepEqual(
    all.map((c) => narUrlSuffix(c)),
    ['', 'xz', 'zst', 'bz2', 'br', '', 'lz4'],
  );
});

test('suffixes map back to their compression; a bare .nar reads as none', () => {
  for (const c of all) {
    const expected = c === 'gzip' ? 'none' : c;
    assert.equal(compressionFromNarUrlSuffix(narUrlSuffix(c)), expected);
  }
});

test('unknown suffixes are undefined', () => {
  for (const suffix of ['lzip', 'gz', 'zstd', 'bzip2', 'XZ', 'nar', '.xz', 'xz ', 'toString', '__proto__']) {
    assert.equal(compressionFromNarUrlSuffix(suffix), undefined, suffix);
  }
});
