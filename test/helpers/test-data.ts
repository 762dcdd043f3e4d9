import assert from 'node:assert/strict';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { seededRandom } from './seeded-random.ts';
import { writeNar } from '../../src/nix/nar-writer.ts';

/** `size` bytes of a real executable (the running node binary), from 16 MiB in where it is big enough. */
export function realBinary(size: number): Buffer {
  const fd = openSync(process.execPath, 'r');
  try {
    const offset = Math.max(0, Math.min(16 << 20, fstatSync(fd).size - size));
    const buffer = Buffer.alloc(size);
    assert.equal(readSync(fd, buffer, 0, size, offset), size);
    return buffer;
  } finally {
    closeSync(fd);
  }
}

/** `n` reproducible pseudo-random bytes (incompressible data). */
export function seededBytes(n: number, seed: number): Buffer {
  const random = seededRandom(seed);
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(random() * 256);
  return out;
}

/** A NAR around 3 MB of a real binary, with a byte changed every `stride` bytes from `seed` on: versions that differ slightly. */
export function versionNar(seed: number, stride: number): Uint8Array {
  const binary = Buffer.from(realBinary(3_000_000));
  for (let i = seed; i < binary.length; i += stride) binary[i] ^= 0x5a;
  return writeNar({ type: 'directory', entries: { tool: { type: 'regular', contents: binary, executable: true } } });
}
