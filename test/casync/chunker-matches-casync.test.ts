/**
 * Oracle test: our chunker + caibx codec against the real `casync` binary on real files (ELF
 * binaries, shared libraries, a NAR). For each input, `casync make` writes a blob index and a chunk
 * store; we decode its index with decodeCaibx, chunk the same file with chunkStream, hash the
 * chunks, and require identical end offsets, IDs and header fields. Fails (never skips) when
 * casync or nix-store is missing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  lstatSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_CHUNKER_PARAMS, type ChunkerParams } from '../../src/chunking/chunker.ts';
import { chunkStream } from '../../src/chunking/chunk-stream.ts';
import { chunkEntries } from '../../src/chunking/chunk-table.ts';
import { ingestNar } from '../../src/ingest/ingest-nar.ts';
import { closeNarwhal } from '../../src/context/narwhal.ts';
import { openNarwhal } from '../../src/tenancy/open-narwhal.ts';
import {
  CASYNC_BLOB_FLAGS_SHA256,
  CASYNC_BLOB_FLAGS_SHA512_256,
  chunkDigestAlgorithm,
  decodeCaibx,
  type CaibxIndex,
} from '../../src/storage/caibx.ts';

const MiB = 1024 * 1024;
/** Lets Nix 2.8 run as root without a daemon or build users (design notes: nix-protocol.md). */
const NIX_CONFIG = 'build-users-group =\nsandbox = false\nsubstituters =';
let tmp = '';
let counter = 0;

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'narwhal-casync-'));
});

after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Runs a command to completion; stdout goes to `stdoutFile` (or is discarded), stderr is kept. */
function run(cmd: string, args: string[], stdoutFile?: string): Promise<void> {
  const out = stdoutFile === undefined ? 'ignore' : openSync(stdoutFile, 'w');
  return new Promise<void>((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', out, 'pipe'], env: { ...process.env, NIX_CONFIG: NIX_CONFIG } });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT'
          ? new Error(`'${cmd}' is not installed or not on PATH: this test needs the real ${cmd} binary as its oracle`)
          : err,
      );
    });
    child.on('close', (code, signal) => {
      if (code === 0) resolvePromise();
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`));
    });
  }).finally(() => {
    if (typeof out === 'number') closeSync(out);
  });
}

/** Runs `casync make` on a file and returns its decoded index and the chunk store path. */
async function casyncMake(
  file: string,
  options: { digest?: 'sha256'; chunkSize?: string } = {},
): Promise<{ index: CaibxIndex; store: string }> {
  const n = counter++;
  const store = join(tmp, `store-${n}`);
  const caibx = join(tmp, `index-${n}.caibx`);
  const args = ['make', `--store=${store}`];
  if (options.digest) args.push(`--digest=${options.digest}`);
  if (options.chunkSize) args.push(`--chunk-size=${options.chunkSize}`);
  args.push(caibx, file);
  await run('casync', args);
  return { index: decodeCaibx(readFileSync(caibx)), store };
}

/** Our side: stream the file through chunkStream in odd-sized reads, hash every chunk. */
async function ourChunks(
  file: string,
  params: ChunkerParams,
  digest: 'sha256' | 'sha512-256',
): Promise<{ end: number; id: Uint8Array }[]> {
  const out: { end: number; id: Uint8Array }[] = [];
  let end = 0;
  for await (const chunk of chunkStream(createReadStream(file, { highWaterMark: 100_003 }), params)) {
    end += chunk.length;
    out.push({ end, id: new Uint8Array(createHash(digest).update(chunk).digest()) });
  }
  return out;
}

function hex(id: Uint8Array): string {
  return Buffer.from(id).toString('hex');
}

async function assertSameAsCasync(
  file: string,
  options: { digest?: 'sha256'; chunkSize?: string; params?: ChunkerParams; flags?: bigint } = {},
): Promise<CaibxIndex> {
  const params = options.params ?? DEFAULT_CHUNKER_PARAMS;
  const { index, store } = await casyncMake(file, options);
  assert.equal(index.featureFlags, options.flags ?? CASYNC_BLOB_FLAGS_SHA256, 'feature flags');
  assert.deepEqual([index.chunkSizeMin, index.chunkSizeAvg, index.chunkSizeMax], [params.min, params.avg, params.max]);
  const ours = await ourChunks(file, params, chunkDigestAlgorithm(index.featureFlags));
  const n = Math.min(ours.length, index.chunks.length);
  for (let i = 0; i < n; i++) {
    const theirs = index.chunks[i];
    assert.equal(ours[i].end, theirs.end, `${file}: chunk ${i} ends at ${ours[i].end}, casync says ${theirs.end}`);
    assert.equal(hex(ours[i].id), hex(theirs.id), `${file}: chunk ${i} ID differs`);
  }
  assert.equal(ours.length, index.chunks.length, `${file}: chunk count`);
  for (const { id } of index.chunks) {
    const h = hex(id);
    assert.ok(existsSync(join(store, h.slice(0, 4), `${h}.cacnk`)), `casync store lacks ${h}`);
  }
  return index;
}

function isElf(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const magic = Buffer.alloc(4);
    return readSync(fd, magic, 0, 4, 0) === 4 && magic.toString('latin1') === '\x7fELF';
  } finally {
    closeSync(fd);
  }
}

/** The first `count` ELF files (not symlinks) in `dir` by name with a size in [minSize, maxSize]. */
function pickElfFiles(dir: string, minSize: number, maxSize: number, count: number): string[] {
  const picked: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (!st.isFile() || st.size < minSize || st.size > maxSize || !isElf(path)) continue;
    picked.push(path);
    if (picked.length === count) return picked;
  }
  throw new Error(`need ${count} ELF files of ${minSize}-${maxSize} bytes in ${dir}, found ${picked.length}`);
}

function chunkSizes(index: CaibxIndex): number[] {
  return index.chunks.map((c, i) => c.end - (i === 0 ? 0 : index.chunks[i - 1].end));
}

test('the Node binary (> 20 MB) chunks exactly as casync does', async () => {
  const file = realpathSync(process.execPath);
  assert.ok(lstatSync(file).size > 20 * MiB, `${file} should be larger than 20 MB`);
  const index = await assertSameAsCasync(file, { digest: 'sha256' });
  assert.ok(index.chunks.length > 100);
});

test('shared libraries chunk exactly as casync does', async () => {
  for (const file of pickElfFiles('/usr/lib/x86_64-linux-gnu', 4 * MiB, 40 * MiB, 2)) {
    await assertSameAsCasync(file, { digest: 'sha256' });
  }
});

test('an executable from /usr/bin chunks exactly as casync does', async () => {
  const [file] = pickElfFiles('/usr/bin', 4 * MiB, 40 * MiB, 1);
  await assertSameAsCasync(file, { digest: 'sha256' });
});

test('a NAR (> 20 MB) chunks exactly as casync does', async () => {
  const dir = resolve(import.meta.dirname, '../../node_modules/typescript');
  const nar = join(tmp, 'typescript.nar');
  await run('nix-store', ['--dump', dir], nar);
  assert.ok(lstatSync(nar).size > 20 * MiB, 'NAR should be larger than 20 MB');
  assert.equal(readFileSync(nar).subarray(8, 21).toString('latin1'), 'nix-archive-1');
  await assertSameAsCasync(nar, { digest: 'sha256' });
});

test('an ingested NAR (> 20 MB, through the chunking thread) has the chunks casync make cuts', async () => {
  const dir = resolve(import.meta.dirname, '../../node_modules/typescript');
  const nar = join(tmp, 'typescript-ingest.nar');
  await run('nix-store', ['--dump', dir], nar);
  const { index } = await casyncMake(nar, { digest: 'sha256' });
  const nw = await openNarwhal({ dataDir: join(tmp, 'narwhal') });
  try {
    const record = await ingestNar(nw, createReadStream(nar, { highWaterMark: 100_003 }), { compression: 'none' });
    const ours = [...chunkEntries(record.chunkTable)];
    assert.equal(ours.length, index.chunks.length, 'chunk count');
    for (const [i, theirs] of index.chunks.entries()) {
      assert.equal(ours[i].end, theirs.end, `chunk ${i} ends at ${ours[i].end}, casync says ${theirs.end}`);
      assert.equal(hex(ours[i].id), hex(theirs.id), `chunk ${i} ID differs`);
    }
  } finally {
    await closeNarwhal(nw);
  }
});

test('default digest (sha512-256) gives the same IDs and flags', async () => {
  const [file] = pickElfFiles('/usr/lib/x86_64-linux-gnu', 4 * MiB, 40 * MiB, 1);
  await assertSameAsCasync(file, { flags: CASYNC_BLOB_FLAGS_SHA512_256 });
});

test('non-default chunk sizes (4K/16K/64K) chunk exactly as casync does', async () => {
  const [file] = pickElfFiles('/usr/bin', 4 * MiB, 40 * MiB, 1);
  await assertSameAsCasync(file, {
    digest: 'sha256',
    chunkSize: '4096:16384:65536',
    params: { min: 4096, avg: 16384, max: 65536 },
  });
});

test('forced cuts at max and a short last chunk match casync', async () => {
  // Random megabytes separated by long zero runs, which contain no hash boundary.
  const data = new Uint8Array(6 * MiB + 12345);
  for (let off = 0; off < data.length; off += 1600 * 1024) {
    randomFillSync(data, off, Math.min(MiB, data.length - off));
  }
  const file = join(tmp, 'mixed.bin');
  writeFileSync(file, data);
  const index = await assertSameAsCasync(file, { digest: 'sha256' });
  const sizes = chunkSizes(index);
  assert.ok(sizes.includes(DEFAULT_CHUNKER_PARAMS.max), 'expected casync to force a cut at max');
});

test('empty and tiny files match casync', async () => {
  const empty = join(tmp, 'empty.bin');
  writeFileSync(empty, new Uint8Array(0));
  assert.equal((await assertSameAsCasync(empty, { digest: 'sha256' })).chunks.length, 0);
  const tiny = join(tmp, 'tiny.bin');
  writeFileSync(tiny, randomFillSync(new Uint8Array(1000)));
  assert.equal((await assertSameAsCasync(tiny, { digest: 'sha256' })).chunks.length, 1);
});
