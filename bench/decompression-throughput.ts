import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import type { Compression } from '../src/compression/compression.ts';
import { createDecompressor } from '../src/compression/decompress.ts';

/**
 * Decompression throughput on ~50 MB of a real binary, next to the CLI's. A measurement, not a
 * test; it asserts nothing about time.
 *   npx node --test bench/decompression-throughput.ts
 */
const size = 50 << 20;

type Packed = Exclude<Compression, 'none'>;
// Default levels as Nix uses them; brotli at 9 rather than 11 only to keep compression quick.
const compressors: Record<Packed, string[]> = {
  xz: ['xz', '-c', '-T1'],
  zstd: ['zstd', '-q', '-c'],
  bzip2: ['bzip2', '-c'],
  br: ['brotli', '-c', '-q', '9', '-w', '22'],
  gzip: ['gzip', '-c', '-n'],
  lz4: ['lz4', '-q', '-c'],
};
const decompressors: Record<Packed, string[]> = {
  xz: ['xz', '-dc'],
  zstd: ['zstd', '-dc'],
  bzip2: ['bzip2', '-dc'],
  br: ['brotli', '-dc'],
  gzip: ['gzip', '-dc'],
  lz4: ['lz4', '-dc'],
};

function run(command: string[], input: Uint8Array): Buffer {
  const result = spawnSync(command[0], command.slice(1), { input, maxBuffer: 1 << 30 });
  assert.equal(result.status, 0, `${command[0]} failed: ${result.stderr}`);
  return result.stdout;
}

test('decompression throughput on 50 MiB of a real binary', async (t) => {
  const input = Buffer.alloc(size);
  const fd = openSync(process.execPath, 'r');
  readSync(fd, input, 0, size, 16 << 20);
  closeSync(fd);
  const expected = createHash('sha256').update(input).digest('hex');
  for (const c of Object.keys(compressors) as Packed[]) {
    const packed = run(compressors[c], input);
    const chunks: Buffer[] = [];
    for (let i = 0; i < packed.length; i += 65536) chunks.push(packed.subarray(i, i + 65536));
    const hash = createHash('sha256');
    const started = performance.now();
    await pipeline(
      Readable.from(chunks),
      createDecompressor(c),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          hash.update(chunk);
          callback();
        },
      }),
    );
    const ours = performance.now() - started;
    assert.equal(hash.digest('hex'), expected, c);
    const cliStarted = performance.now();
    run(decompressors[c], packed);
    const cli = performance.now() - cliStarted;
    const mbps = (ms: number): string => ((size / 1e6 / ms) * 1000).toFixed(1);
    t.diagnostic(
      `${c.padEnd(5)} ratio ${(size / packed.length).toFixed(2)}: narwhal ${mbps(ours)} MB/s, ${decompressors[c][0]} CLI ${mbps(cli)} MB/s`,
    );
  }
});
