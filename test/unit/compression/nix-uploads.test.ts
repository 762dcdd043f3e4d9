import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, test } from 'node:test';
import { type Compression, compressionFromNarUrlSuffix } from '../../../src/compression/compression.ts';
import { createDecompressor } from '../../../src/compression/decompress.ts';

/**
 * The real client as oracle: Nix 2.8 compresses NARs with `nix copy --to file://...?compression=X`
 * exactly as it does for an HTTP upload; we must decode every one of them, choosing the decoder
 * from the NAR URL as the server will. Uses a private chroot store, so /nix/store is untouched.
 */
const dir = mkdtempSync(join(tmpdir(), 'narwhal-nix-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const env = {
  ...process.env,
  XDG_CACHE_HOME: join(dir, 'xdg-cache'),
  NIX_CONFIG: 'build-users-group =\nsandbox = false\nexperimental-features = nix-command\nsubstituters =\n',
};
const store = join(dir, 'root');

function nix(args: string[]): Buffer {
  const result = spawnSync(args[0], args.slice(1), { env, maxBuffer: 1 << 30 });
  assert.equal(result.status, 0, `${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

function realBinary(size: number): Buffer {
  const fd = openSync(process.execPath, 'r');
  try {
    const buffer = Buffer.alloc(size);
    assert.equal(readSync(fd, buffer, 0, size, 8 << 20), size);
    return buffer;
  } finally {
    closeSync(fd);
  }
}

/** Adds a small package-like tree to the private store; returns its path and its NAR. */
function addPath(name: string, blobSize: number): { path: string; nar: Buffer } {
  const root = join(dir, name);
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'share', 'doc'), { recursive: true });
  writeFileSync(join(root, 'bin', 'blob'), realBinary(blobSize));
  chmodSync(join(root, 'bin', 'blob'), 0o755);
  writeFileSync(join(root, 'share', 'doc', 'README'), 'narwhal test package\n'.repeat(50));
  symlinkSync('../bin/blob', join(root, 'share', 'link'));
  const path = nix(['nix-store', '--store', store, '--add', root]).toString().trim();
  return { path, nar: nix(['nix-store', '--dump', join(store, path)]) };
}

async function decompress(mode: Compression | 'auto', input: Buffer): Promise<{ output: Buffer; used?: Compression }> {
  const pieces: Buffer[] = [];
  for (let i = 0, n = 1; i < input.length; i += n, n = (n * 7 + 13) % 50000) pieces.push(input.subarray(i, i + n));
  const d = createDecompressor(mode);
  const output: Buffer[] = [];
  await pipeline(
    Readable.from(pieces),
    d,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        output.push(chunk);
        callback();
      },
    }),
  );
  return { output: Buffer.concat(output), used: d.compression };
}

const compressions: Compression[] = ['none', 'xz', 'zstd', 'bzip2', 'br', 'gzip', 'lz4'];

test('every compression `nix copy` (Nix 2.8) writes is decoded, the decoder chosen by NAR URL', async () => {
  // Over 4 MiB, so that lz4 needs two of libarchive's 4 MiB blocks; brotli (quality 11) gets a
  // smaller path only to keep the test quick.
  const big = addPath('big', 4_500_000);
  const small = addPath('small', 300_000);
  for (const c of compressions) {
    const { path, nar } = c === 'br' ? small : big;
    const cache = join(dir, `cache-${c}`);
    nix(['nix', 'copy', '--store', store, '--to', `file://${cache}?compression=${c}`, path]);
    const narinfoName = readdirSync(cache).find((f) => f.endsWith('.narinfo'));
    assert.ok(narinfoName, `${c}: no narinfo`);
    const narinfo = readFileSync(join(cache, narinfoName), 'utf8');
    const url = /^URL: (nar\/[0-9a-z]+\.nar(?:\.([a-z0-9]+))?)$/m.exec(narinfo);
    assert.ok(url, `${c}: URL line in ${narinfo}`);
    assert.match(narinfo, new RegExp(`^Compression: ${c}$`, 'm'));
    const fromUrl = compressionFromNarUrlSuffix(url[2] ?? '');
    assert.ok(fromUrl !== undefined, `${c}: unknown suffix ${url[2]}`);
    const mode = fromUrl === 'none' ? 'auto' : fromUrl;
    const file = readFileSync(join(cache, url[1]));
    if (c === 'lz4') {
      // libarchive's defaults: independent blocks, content checksum, 4 MiB blocks.
      assert.deepEqual([...file.subarray(0, 6)], [0x04, 0x22, 0x4d, 0x18, 0x64, 0x70]);
    }
    const { output, used } = await decompress(mode, file);
    assert.ok(output.equals(nar), `${c}: decoded NAR differs`);
    assert.equal(used, c, `${c}: decoded as ${used}`);
  }
});
