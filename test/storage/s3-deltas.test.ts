/**
 * Delta storage on the S3 store (Ceph RGW, see s3-test-server.ts), issue 19: the delta pass writes
 * its deltas into the bucket, every NAR is served whole from them, verify finds them whole;
 * `narwhal import` into a store holding deltas (NARs that reuse delta chunks); the real
 * `narwhal migrate-storage` binary copying a store with deltas out of S3; and GC taking deltas
 * and their bases in the right order.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { closeNarwhal, type Narwhal } from '../../src/context/narwhal.ts';
import { openNarwhal } from '../../src/tenancy/open-narwhal.ts';
import { ingestNar } from '../../src/ingest/ingest-nar.ts';
import { importCache } from '../../src/ingest/import-cache.ts';
import { openNar, readNarBytes, readStoredFrames } from '../../src/serving/nar-reader.ts';
import { recompressChunks } from '../../src/maintenance/recompress.ts';
import { runGc } from '../../src/maintenance/gc.ts';
import { verifyStore } from '../../src/maintenance/verify.ts';
import { parseStored } from '../../src/delta/stored-form.ts';
import { serializeNarinfo } from '../../src/nix/narinfo.ts';
import { writeNar } from '../../src/nix/nar-writer.ts';
import { assertSameBytes, collect } from '../helpers/bytes.ts';
import { unzstd } from '../helpers/zstd-cli.ts';
import { realBinary, versionNar } from '../helpers/test-data.ts';
import { addPath, bodyOf, narHashOf } from '../helpers/narwhal-fixtures.ts';
import { useS3TestBucket } from './s3-test-server.ts';

const execFileAsync = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../bin/narwhal.js');
const NOW = { graceMs: 0, clockMarginMs: 0 };
const hex = (id: Uint8Array): string => Buffer.from(id).toString('hex');

const testS3 = useS3TestBucket();

/** Every NAR opens, reads back exactly, and its `.nar.zst` is exactly its stored size and decodes to it. */
async function assertWhole(nw: Narwhal, nars: Iterable<Uint8Array>): Promise<void> {
  for (const nar of nars) {
    const opened = await openNar(nw, narHashOf(nar));
    assert.ok(opened, `NAR of ${nar.length} bytes opens`);
    assertSameBytes(await collect(readNarBytes(nw, opened)), nar);
    const frames = await collect(readStoredFrames(nw, opened));
    assert.equal(frames.length, opened.storedSize, '.nar.zst is FileSize bytes');
    assertSameBytes(unzstd(frames), nar);
  }
}

async function assertVerifyClean(nw: Narwhal): Promise<void> {
  const report = await verifyStore(nw);
  assert.deepEqual(
    [report.chunks.missing, report.chunks.corrupt, report.chunks.baseDamaged, report.nars.damaged],
    [0, 0, 0, 0],
    'verify is clean',
  );
}

async function deltaChunks(nw: Narwhal): Promise<Uint8Array[]> {
  const chunks = await nw.meta.listChunks(new Uint8Array(0), 100_000);
  return chunks.filter((c) => c.encoding === 'delta').map((c) => c.id);
}

/** A static binary cache directory as `nix copy --to file://DIR` writes it, with plain NARs. */
async function writeStaticCache(dir: string, paths: { hashPart: string; nar: Uint8Array }[]): Promise<void> {
  await mkdir(join(dir, 'nar'), { recursive: true });
  await writeFile(join(dir, 'nix-cache-info'), 'StoreDir: /nix/store\n');
  for (const { hashPart, nar } of paths) {
    const narHash = narHashOf(nar);
    const url = `nar/${narHash.slice('sha256:'.length)}.nar`;
    await writeFile(join(dir, url), nar);
    const narinfo = serializeNarinfo({
      storePath: `/nix/store/${hashPart}-imported`,
      url,
      compression: 'none',
      fileHash: narHash,
      fileSize: nar.length,
      narHash,
      narSize: nar.length,
      references: [],
      sigs: [],
    });
    await writeFile(join(dir, `${hashPart}.narinfo`), narinfo);
  }
}

describe('delta storage on S3, import and migrate-storage', () => {
  let dir: string;
  let nw: Narwhal;
  const prefix = 'deltas';
  // Three versions of one binary, oldest first; the pass stores older chunks as deltas of newer ones.
  const versions = [1000, 2000, 3000].map((seed) => versionNar(seed, 200_000));
  const paths: string[] = [];
  /** The oldest version with a file of its own added: it reuses the oldest version's chunks, deltas too. */
  const variant = writeNar({
    type: 'directory',
    entries: {
      tool: { type: 'regular', executable: true, contents: versionNarBinary(1000, 200_000) },
      extra: { type: 'regular', contents: Buffer.from('imported beside the deltas\n') },
    },
  });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'narwhal-s3-deltas-'));
    nw = await openNarwhal({ dataDir: dir, storage: testS3.bucket.url(prefix), options: { zstdLevel: 1 } });
    for (const nar of versions)
      paths.push(await addPath(nw, 'main', await ingestNar(nw, bodyOf(nar), { compression: 'none' })));
  });

  after(async () => {
    await closeNarwhal(nw);
    await rm(dir, { recursive: true, force: true });
  });

  test('the delta pass writes deltas into the bucket; every NAR is served whole; verify is clean', async () => {
    const report = await recompressChunks(nw, { level: 3, deltas: true, workers: 1 });
    assert.ok(report.deltas > 0, `the pass stored chunks as deltas (${report.deltas})`);
    const deltas = await deltaChunks(nw);
    assert.equal(deltas.length, report.deltas);
    for (const id of deltas) {
      const form = parseStored(await nw.chunks.get(id));
      assert.equal(form.kind, 'delta', 'the object in S3 is the delta');
    }
    assert.equal((await testS3.bucket.keys(prefix)).length, (await nw.meta.stats()).chunks, 'an object per chunk');
    await assertWhole(nw, versions);
    await assertVerifyClean(nw);
  });

  test('import into a store holding deltas: NARs reusing delta chunks are served whole, their FileSize exact', async () => {
    const cacheDir = join(dir, 'static-cache');
    const imported = { hashPart: 'x'.repeat(32), nar: variant };
    const again = { hashPart: 'y'.repeat(32), nar: versions[0] };
    await writeStaticCache(cacheDir, [imported, again]);
    const result = await importCache(nw, (await nw.meta.getCache('main'))!, cacheDir);
    assert.deepEqual([result.imported, result.failed], [2, 0], JSON.stringify(result.failures));
    const record = (await nw.meta.getNar(narHashOf(variant)))!;
    const deltaIds = new Set((await deltaChunks(nw)).map(hex));
    const reused = (await nw.meta.narChunks(record.id)).filter((c) => deltaIds.has(hex(c.id)));
    assert.ok(reused.length > 0, 'the imported NAR reuses chunks stored as deltas');
    await assertWhole(nw, [variant, ...versions]);
    // A second pass over the grown store keeps every NAR whole too.
    await recompressChunks(nw, { level: 3, deltas: true, workers: 1 });
    await assertWhole(nw, [variant, ...versions]);
    await assertVerifyClean(nw);
  });

  test('narwhal migrate-storage copies the deltas out of S3; the store serves every NAR from the copy', async () => {
    const packDir = join(dir, 'migrated');
    const from = `${testS3.bucket.url(prefix)}&region=us-east-1`;
    await execFileAsync(process.execPath, [BIN, 'migrate-storage', '--from', from, '--to', `pack:${packDir}`], {
      env: process.env,
    });
    const copy = await openNarwhal({ dataDir: dir, storage: `pack:${packDir}` });
    try {
      for (const id of await deltaChunks(copy)) assert.equal(parseStored(await copy.chunks.get(id)).kind, 'delta');
      await assertWhole(copy, [variant, ...versions]);
      await assertVerifyClean(copy);
    } finally {
      await closeNarwhal(copy);
    }
  });

  test('GC on S3 keeps the bases while their dependants live, then takes both', async () => {
    const main = (await nw.meta.getCache('main'))!;
    const newest = paths[2];
    const bases = new Set<string>();
    for (const id of await deltaChunks(nw)) {
      const form = parseStored(await nw.chunks.get(id));
      for (const base of form.kind === 'delta' ? form.bases : []) bases.add(hex(base));
    }
    // The newest version holds the bases at the top of every chain: it goes first.
    await nw.meta.deletePaths(main.id, [newest]);
    for (let i = 0; i < 3; i++) await runGc(nw, NOW);
    assert.equal(await nw.meta.getNar(narHashOf(versions[2])), undefined, 'the newest NAR is gone');
    for (const base of bases) assert.ok(await nw.meta.getChunk(Buffer.from(base, 'hex')), 'every base stays');
    await assertWhole(nw, [variant, versions[0], versions[1]]);
    await assertVerifyClean(nw);

    await nw.meta.deletePaths(main.id, [paths[0], paths[1], 'x'.repeat(32), 'y'.repeat(32)]);
    for (let i = 0; i < 4; i++) await runGc(nw, NOW);
    assert.deepEqual(await nw.meta.stats(), {
      paths: 0,
      nars: 0,
      narBytes: 0,
      chunks: 0,
      chunkBytes: 0,
      storedBytes: 0,
    });
    assert.deepEqual(await testS3.bucket.keys(prefix), [], 'every object deleted, deltas and bases alike');
  });
});

/** The binary inside versionNar(seed, stride). */
function versionNarBinary(seed: number, stride: number): Buffer {
  const binary = Buffer.from(realBinary(3_000_000));
  for (let i = seed; i < binary.length; i += stride) binary[i] ^= 0x5a;
  return binary;
}
