/**
 * One behaviour suite for every MetadataStore backend: each backend's test file calls
 * metadataConformance with a function that opens a fresh, empty store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { rawFrameSize } from '../../src/delta/stored-form.ts';
import { SIMILAR_ROWS_PER_FEATURE } from '../../src/metadata/metadata-store.ts';
import type {
  CacheFile,
  CacheSettings,
  DeltaChunk,
  MetadataStore,
  NewChunk,
  NewNar,
  NewPath,
  TokenRecord,
} from '../../src/metadata/metadata-store.ts';

/** Files as schemas before pieces stored them, whole in one column: several pieces, one, none. */
export const LEGACY_FILES = [
  {
    name: 'log/big',
    content: new Uint8Array(randomBytes(3 * 262_144 + 5)),
    contentType: 'text/plain',
    contentEncoding: 'br',
  },
  {
    name: 'x.ls',
    content: new Uint8Array(randomBytes(262_144)),
    contentType: 'application/json',
    contentEncoding: null,
  },
  { name: 'log/empty', content: new Uint8Array(0), contentType: 'text/plain', contentEncoding: null },
];

/** After the migration, each of LEGACY_FILES reads back whole, in pieces of 256 KiB. */
export async function assertLegacyFilesReadable(meta: MetadataStore, cacheId: number): Promise<void> {
  for (const legacy of LEGACY_FILES) {
    const file = await meta.getFile(cacheId, legacy.name);
    assert.deepEqual(
      file && { ...file, contentId: 0 },
      {
        contentId: 0,
        size: legacy.content.length,
        contentType: legacy.contentType,
        contentEncoding: legacy.contentEncoding,
      },
      legacy.name,
    );
    const pieces = await readPieces(meta, file!.contentId);
    assert.ok(
      pieces.every((piece, i) => piece.length === (i < pieces.length - 1 ? 262_144 : piece.length) && piece.length > 0),
      legacy.name,
    );
    assert.deepEqual(Buffer.concat(pieces), Buffer.from(legacy.content), legacy.name);
  }
  // New contents get ids of their own.
  const upload = await meta.startFileUpload();
  await meta.appendFilePiece(upload, 0, new Uint8Array([1]));
  await meta.commitFile(cacheId, 'log/new', {
    contentId: upload,
    size: 1,
    contentType: 'text/plain',
    contentEncoding: null,
  });
  for (const legacy of LEGACY_FILES)
    assert.equal((await meta.getFile(cacheId, legacy.name))!.size, legacy.content.length);
}

export interface ConformanceTarget {
  /** A fresh, empty store; the suite closes it. */
  open(): Promise<MetadataStore>;
}

const SETTINGS: CacheSettings = {
  isPublic: true,
  priority: 40,
  signingKey: 'test-1:c2VjcmV0',
  trustedKeys: [],
  requireSignature: false,
  retention: 0,
  upstreams: [],
  upstreamKeys: [],
};

function chunkId(seed: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(seed).digest());
}

/** A NAR record of these chunks (sizes 1000 + index), with a well-formed chunk table. */
function newNar(name: string, chunks: NewChunk[], upload?: NewNar['upload']): NewNar {
  const table = new Uint8Array(chunks.length * 40);
  const view = new DataView(table.buffer);
  let end = 0;
  chunks.forEach((chunk, i) => {
    end += chunk.size;
    view.setBigUint64(i * 40, BigInt(end), true);
    table.set(chunk.id, i * 40 + 8);
  });
  return {
    narHash: `sha256:${name.padEnd(52, '0')}`,
    narSize: end,
    storedSize: chunks.reduce((sum, chunk) => sum + chunk.storedSize, 0),
    chunkTable: table,
    chunks,
    upload,
  };
}

/** Stores a file through the upload methods, one piece per element, and returns its record. */
async function putFile(
  meta: MetadataStore,
  cacheId: number,
  name: string,
  pieces: Uint8Array[],
  contentEncoding: string | null = null,
): Promise<CacheFile> {
  const contentId = await meta.startFileUpload();
  for (const [seq, piece] of pieces.entries()) await meta.appendFilePiece(contentId, seq, piece);
  await meta.commitFile(cacheId, name, {
    contentId,
    size: pieces.reduce((sum, p) => sum + p.length, 0),
    contentType: 'text/plain',
    contentEncoding,
  });
  return (await meta.getFile(cacheId, name))!;
}

async function readPieces(meta: MetadataStore, contentId: number): Promise<Uint8Array[]> {
  const pieces: Uint8Array[] = [];
  for (let piece: Uint8Array | undefined; (piece = await meta.getFilePiece(contentId, pieces.length)); ) {
    pieces.push(new Uint8Array(piece));
  }
  return pieces;
}

/** An upload of one byte, written a few milliseconds from now. */
async function delayedUpload(meta: MetadataStore): Promise<number> {
  await delay(5);
  const contentId = await meta.startFileUpload();
  await meta.appendFilePiece(contentId, 0, new Uint8Array([7]));
  return contentId;
}

function chunk(seed: string, extra: Partial<NewChunk> = {}): NewChunk {
  return { id: chunkId(seed), size: 1000 + seed.length, storedSize: 500 + seed.length, ...extra };
}

function hashPart(seed: string): string {
  const alphabet = '0123456789abcdfghijklmnpqrsvwxyz';
  const digest = createHash('sha256').update(seed).digest();
  return Array.from(digest.subarray(0, 32), (b) => alphabet[b & 31]).join('');
}

function newPath(cacheId: number, seed: string, narId: number, references: string[] = []): NewPath {
  const h = hashPart(seed);
  return {
    cacheId,
    hashPart: h,
    storePath: `/nix/store/${h}-${seed}`,
    narId,
    references,
    deriver: null,
    system: 'x86_64-linux',
    sigs: ['k:sig'],
    ca: null,
  };
}

function baseName(seed: string): string {
  return `${hashPart(seed)}-${seed}`;
}

function assertSameTable(actual: Uint8Array | undefined, expected: Uint8Array): void {
  assert.ok(actual !== undefined);
  assert.equal(Buffer.from(actual).toString('hex'), Buffer.from(expected).toString('hex'));
}

function hex(id: Uint8Array): string {
  return Buffer.from(id).toString('hex');
}

export function metadataConformance(backend: string, target: ConformanceTarget): void {
  const withStore = (name: string, body: (meta: MetadataStore) => Promise<void>) =>
    test(`${backend}: ${name}`, async () => {
      const meta = await target.open();
      try {
        await body(meta);
      } finally {
        await meta.close();
      }
    });

  withStore('schema version is set on open', async (meta) => {
    assert.ok((await meta.schemaVersion()) >= 1);
  });

  withStore('caches: create, get, update, list, delete', async (meta) => {
    assert.equal(await meta.getCache('a'), undefined);
    const created = await meta.createCache('b', SETTINGS);
    assert.ok(created);
    assert.equal(created.name, 'b');
    assert.equal(created.isPublic, true);
    assert.equal(created.priority, 40);
    assert.equal(typeof created.id, 'number');
    assert.equal(typeof created.createdAt, 'number');
    assert.equal(await meta.createCache('b', SETTINGS), undefined, 'a taken name');
    await meta.createCache('a', {
      ...SETTINGS,
      isPublic: false,
      trustedKeys: ['k1:AAA', 'k2:BBB'],
      requireSignature: true,
      retention: 3600,
      upstreams: ['https://cache.example.org', 'http://10.0.0.1:8080/main'],
      upstreamKeys: ['up-1:CCC'],
    });
    const a = await meta.getCache('a');
    assert.deepEqual(
      { ...a, id: 0, createdAt: 0 },
      {
        id: 0,
        createdAt: 0,
        name: 'a',
        isPublic: false,
        priority: 40,
        signingKey: SETTINGS.signingKey,
        trustedKeys: ['k1:AAA', 'k2:BBB'],
        requireSignature: true,
        retention: 3600,
        upstreams: ['https://cache.example.org', 'http://10.0.0.1:8080/main'],
        upstreamKeys: ['up-1:CCC'],
      },
    );
    const updated = await meta.updateCache('a', { priority: 10, isPublic: true, trustedKeys: [], upstreams: [] });
    assert.equal(updated?.priority, 10);
    assert.deepEqual(updated?.upstreams, []);
    assert.deepEqual(updated?.upstreamKeys, ['up-1:CCC']);
    assert.deepEqual(await meta.getCache('a'), updated);
    assert.equal(await meta.updateCache('nope', { priority: 1 }), undefined);
    assert.deepEqual(
      (await meta.listCaches()).map((c) => c.name),
      ['a', 'b'],
    );
    assert.equal(await meta.deleteCache('a'), true);
    assert.equal(await meta.deleteCache('a'), false);
    assert.deepEqual(
      (await meta.listCaches()).map((c) => c.name),
      ['b'],
    );
  });

  withStore('tokens: create, find by secret hash, list, revoke', async (meta) => {
    const token: TokenRecord = {
      id: 'tok1',
      name: 'ci',
      caches: ['main', 'team-*'],
      perms: ['pull', 'push'],
      createdAt: 1000,
      expiresAt: 5000,
      revokedAt: null,
    };
    const secret = new Uint8Array(randomBytes(32));
    await meta.createToken(token, secret);
    await meta.createToken(
      { ...token, id: 'tok2', caches: [], perms: [], createdAt: 2000, expiresAt: null },
      new Uint8Array(randomBytes(32)),
    );
    assert.deepEqual(await meta.findTokenBySecretHash(secret), token);
    assert.equal(await meta.findTokenBySecretHash(new Uint8Array(32)), undefined);
    assert.deepEqual(
      (await meta.listTokens()).map((t) => [t.id, t.caches, t.perms]),
      [
        ['tok1', ['main', 'team-*'], ['pull', 'push']],
        ['tok2', [], []],
      ],
    );
    assert.equal(await meta.revokeToken('tok1', 3000), true);
    assert.equal(await meta.revokeToken('tok1', 4000), true);
    assert.equal((await meta.findTokenBySecretHash(secret))?.revokedAt, 3000, 'the first revocation time stays');
    assert.equal(await meta.revokeToken('nope', 1), false);
    await assert.rejects(meta.createToken({ ...token, id: 'tok3' }, secret), 'a secret hash is unique');
  });

  withStore('commitNar records a NAR and its chunks, idempotently', async (meta) => {
    const chunks = [chunk('c1'), chunk('c2'), chunk('c3')];
    const input = newNar('n1', chunks, { fileHash: 'fh1', suffix: '.xz', fileSize: 777 });
    const nar = await meta.commitNar(input);
    assert.equal(nar.narHash, input.narHash);
    assert.equal(nar.narSize, input.narSize);
    assert.equal(nar.chunkCount, 3);
    assert.equal(nar.storedSize, input.storedSize);
    assert.deepEqual(nar.chunkTable, input.chunkTable);
    assert.equal(nar.damagedAt, null);
    assert.deepEqual(await meta.getNar(input.narHash), nar);
    assert.equal(await meta.getNar('sha256:nope'), undefined);
    assert.deepEqual(await meta.getNarByUpload('fh1', '.xz'), nar);
    assert.equal(await meta.getNarByUpload('fh1', '.zst'), undefined);
    const again = await meta.commitNar({ ...input, upload: { fileHash: 'fh2', suffix: '', fileSize: 5 } });
    assert.deepEqual(again, nar, 'the NAR already recorded is kept');
    assert.deepEqual(await meta.getNarByUpload('fh2', ''), nar, 'the upload name is recorded either way');
    assert.deepEqual((await meta.narChunks(nar.id)).map((c) => hex(c.id)).sort(), chunks.map((c) => hex(c.id)).sort());
    for (const c of chunks) assert.equal(await meta.mayReuseChunk(c.id), true);
    assert.equal(await meta.mayReuseChunk(chunkId('other')), false);
    const stats = await meta.stats();
    assert.deepEqual(stats, {
      paths: 0,
      nars: 1,
      narBytes: input.narSize,
      chunks: 3,
      chunkBytes: chunks.reduce((s, c) => s + c.size, 0),
      storedBytes: chunks.reduce((s, c) => s + c.storedSize, 0),
    });
  });

  withStore('concurrent commits of the same NAR record it once', async (meta) => {
    const input = newNar('same', [chunk('s1'), chunk('s2'), chunk('shared')]);
    const other = newNar('other', [chunk('shared'), chunk('o1')]);
    const results = await Promise.all([
      ...Array.from({ length: 8 }, (_, i) =>
        meta.commitNar({ ...input, upload: { fileHash: `f${i}`, suffix: '', fileSize: i } }),
      ),
      meta.commitNar(other),
    ]);
    const ids = new Set(results.slice(0, 8).map((nar) => nar.id));
    assert.equal(ids.size, 1);
    for (let i = 0; i < 8; i++) assert.equal((await meta.getNarByUpload(`f${i}`, ''))?.id, results[0].id);
    const stats = await meta.stats();
    assert.equal(stats.nars, 2);
    assert.equal(stats.chunks, 4);
    assert.equal((await meta.narChunks(results[0].id)).length, 3);
  });

  withStore('paths: put, get, existing, list, pin, references, delete', async (meta) => {
    const cache = (await meta.createCache('main', SETTINGS))!;
    const other = (await meta.createCache('other', SETTINGS))!;
    const nar = await meta.commitNar(newNar('p1', [chunk('pc1')]));
    const dep = newPath(cache.id, 'dep', nar.id);
    assert.equal(await meta.putPath(newPath(cache.id, 'top', nar.id, [baseName('dep')])), 'missing-reference');
    assert.equal(await meta.putPath({ ...dep, narId: nar.id + 1000 }), 'no-nar');
    assert.equal(await meta.putPath(dep), 'stored');
    const top = newPath(cache.id, 'top', nar.id, [baseName('dep'), baseName('top')]);
    assert.equal(await meta.putPath(top), 'stored', 'a self-reference needs nothing');
    const got = await meta.getPath(cache.id, top.hashPart);
    assert.ok(got);
    assert.deepEqual(
      { ...got, createdAt: 0, lastAccess: 0 },
      {
        ...top,
        createdAt: 0,
        lastAccess: 0,
        narHash: nar.narHash,
        narSize: nar.narSize,
        narStoredSize: nar.storedSize,
        pinned: false,
        narDamaged: false,
      },
    );
    assert.equal(got.createdAt, got.lastAccess);
    assert.equal(await meta.getPath(other.id, top.hashPart), undefined, 'paths belong to one cache');
    assert.deepEqual(
      await meta.existingPaths(cache.id, [top.hashPart, hashPart('absent'), dep.hashPart]),
      new Map([
        [top.hashPart, top.storePath],
        [dep.hashPart, dep.storePath],
      ]),
    );
    assert.deepEqual(await meta.existingPaths(cache.id, []), new Map());
    assert.deepEqual(
      (await meta.listPaths(cache.id)).map((p) => p.storePath),
      [dep.storePath, top.storePath].sort(),
    );
    assert.equal(await meta.cacheHasNar(cache.id, nar.id), true);
    assert.equal(await meta.cacheHasNar(other.id, nar.id), false);
    assert.equal(await meta.cacheHasChunk(cache.id, chunkId('pc1')), true);
    assert.equal(await meta.cacheHasChunk(other.id, chunkId('pc1')), false);
    assert.equal(await meta.cacheHasChunk(cache.id, chunkId('nope')), false);

    assert.equal(await meta.setPathPinned(cache.id, top.hashPart, true), true);
    assert.equal(await meta.setPathPinned(cache.id, hashPart('absent'), true), false);
    assert.equal(await meta.putPath({ ...top, sigs: ['k:other'] }), 'stored');
    assert.deepEqual(
      (await meta.getPath(cache.id, top.hashPart))?.sigs,
      ['k:sig', 'k:other'],
      'the same path gains the signatures it lacks',
    );
    assert.equal(await meta.putPath({ ...top, sigs: ['k:other'] }), 'unchanged');
    const changed = { ...top, deriver: `${hashPart('drv')}-top.drv` };
    assert.equal(await meta.putPath(changed), 'exists', 'a different path is not replaced by default');
    assert.equal((await meta.getPath(cache.id, top.hashPart))?.deriver, null);
    assert.equal(await meta.putPath(changed, { replace: true }), 'stored');
    const replaced = await meta.getPath(cache.id, top.hashPart);
    assert.deepEqual(replaced?.deriver, changed.deriver);
    assert.deepEqual(replaced?.sigs, ['k:sig']);
    assert.equal(replaced?.pinned, true, 'replacing keeps the pin');

    assert.deepEqual(await meta.deletePaths(cache.id, [dep.hashPart]), { deleted: [], referrers: [top.hashPart] });
    assert.ok(await meta.getPath(cache.id, dep.hashPart));
    const both = await meta.deletePaths(cache.id, [top.hashPart, dep.hashPart, hashPart('absent')]);
    assert.deepEqual(both, { deleted: [top.hashPart, dep.hashPart], referrers: [] });
    assert.deepEqual(await meta.listPaths(cache.id), []);
    assert.equal((await meta.stats()).paths, 0);
  });

  withStore('narOwners: caches whose paths use a NAR, and those it was uploaded to', async (meta) => {
    const a = (await meta.createCache('a', SETTINGS))!;
    const b = (await meta.createCache('b', SETTINGS))!;
    const nar = await meta.commitNar({ ...newNar('v1', [chunk('vc1')]), uploadedTo: a.id });
    assert.deepEqual(await meta.narOwners(nar.id), { usedBy: [], uploadedTo: [a.id] });
    await meta.commitNar({ ...newNar('v1', [chunk('vc1')]), uploadedTo: a.id });
    assert.deepEqual(await meta.narOwners(nar.id), { usedBy: [], uploadedTo: [a.id] }, 'recorded once');
    assert.equal(await meta.putPath(newPath(b.id, 'vb', nar.id)), 'stored');
    assert.equal(await meta.putPath(newPath(b.id, 'vb2', nar.id)), 'stored');
    assert.deepEqual(await meta.narOwners(nar.id), { usedBy: [b.id], uploadedTo: [a.id] }, 'each cache once');
    const unused = await meta.commitNar(newNar('v2', [chunk('vc2')]));
    assert.deepEqual(await meta.narOwners(unused.id), { usedBy: [], uploadedTo: [] });
    await meta.deleteCache('a');
    assert.deepEqual(
      await meta.narOwners(nar.id),
      { usedBy: [b.id], uploadedTo: [] },
      'a deleted cache keeps no upload',
    );
    assert.deepEqual(await meta.narOwners(nar.id + 1000), { usedBy: [], uploadedTo: [] });
  });

  withStore('deleting a cache deletes its paths and files, not its NARs', async (meta) => {
    const cache = (await meta.createCache('gone', SETTINGS))!;
    const nar = await meta.commitNar(newNar('d1', [chunk('dc1')]));
    await meta.putPath(newPath(cache.id, 'x', nar.id));
    await putFile(meta, cache.id, 'log/x', [new Uint8Array([1])]);
    assert.equal(await meta.deleteCache('gone'), true);
    assert.equal(await meta.getPath(cache.id, hashPart('x')), undefined);
    assert.equal(await meta.getFile(cache.id, 'log/x'), undefined);
    assert.ok(await meta.getNar(nar.narHash));
    assert.deepEqual(await meta.stats(), { ...(await meta.stats()), paths: 0, nars: 1 });
  });

  withStore('access times: recorded only when stale', async (meta) => {
    const cache = (await meta.createCache('main', SETTINGS))!;
    const nar = await meta.commitNar(newNar('a1', [chunk('ac1')]));
    const path = newPath(cache.id, 'acc', nar.id);
    await meta.putPath(path);
    const t0 = (await meta.getPath(cache.id, path.hashPart))!.lastAccess;
    await meta.recordPathAccess(cache.id, path.hashPart, t0 + 10, t0);
    assert.equal((await meta.getPath(cache.id, path.hashPart))!.lastAccess, t0, 'not stale: unchanged');
    await meta.recordPathAccess(cache.id, path.hashPart, t0 + 10, t0 + 1);
    assert.equal((await meta.getPath(cache.id, path.hashPart))!.lastAccess, t0 + 10);
    await meta.recordNarAccess(cache.id, nar.id, t0 + 20, t0 + 10);
    assert.equal((await meta.getPath(cache.id, path.hashPart))!.lastAccess, t0 + 10, 'not stale: unchanged');
    await meta.recordNarAccess(cache.id, nar.id, t0 + 20, t0 + 11);
    assert.equal((await meta.getPath(cache.id, path.hashPart))!.lastAccess, t0 + 20);
  });

  withStore('files: a multi-piece file reads back piece by piece with its type and encoding', async (meta) => {
    const cache = (await meta.createCache('main', SETTINGS))!;
    assert.equal(await meta.getFile(cache.id, 'log/a'), undefined);
    const pieces = [randomBytes(300_000), randomBytes(300_000), randomBytes(1234)].map((b) => new Uint8Array(b));
    const file = await putFile(meta, cache.id, 'log/a', pieces, 'br');
    assert.deepEqual(file, {
      contentId: file.contentId,
      size: 601_234,
      contentType: 'text/plain',
      contentEncoding: 'br',
    });
    assert.deepEqual(await readPieces(meta, file.contentId), pieces);
    const empty = await putFile(meta, cache.id, 'log/empty', []);
    assert.equal(empty.size, 0);
    assert.equal(await meta.getFilePiece(empty.contentId, 0), undefined);
  });

  withStore('files: a replacement leaves the old content readable until the switch, then deletes it', async (meta) => {
    const cache = (await meta.createCache('main', SETTINGS))!;
    const old = await putFile(meta, cache.id, 'log/a', [new Uint8Array([1, 2, 3])]);
    const next = await meta.startFileUpload();
    assert.notEqual(next, old.contentId);
    await meta.appendFilePiece(next, 0, new Uint8Array([4, 5]));
    await meta.appendFilePiece(next, 1, new Uint8Array([6]));
    assert.deepEqual(await meta.getFile(cache.id, 'log/a'), old, 'not switched yet');
    assert.deepEqual(await readPieces(meta, old.contentId), [new Uint8Array([1, 2, 3])]);
    await assert.rejects(
      meta.commitFile(cache.id, 'log/a', {
        contentId: next,
        size: 4,
        contentType: 'text/plain',
        contentEncoding: null,
      }),
      /upload it again/,
      'a size its pieces do not add up to',
    );
    assert.deepEqual(await meta.getFile(cache.id, 'log/a'), old);
    await meta.commitFile(cache.id, 'log/a', {
      contentId: next,
      size: 3,
      contentType: 'application/json',
      contentEncoding: null,
    });
    assert.deepEqual(await meta.getFile(cache.id, 'log/a'), {
      contentId: next,
      size: 3,
      contentType: 'application/json',
      contentEncoding: null,
    });
    assert.deepEqual(await readPieces(meta, next), [new Uint8Array([4, 5]), new Uint8Array([6])]);
    assert.equal(await meta.getFilePiece(old.contentId, 0), undefined, 'the replaced content is gone');
    assert.deepEqual(
      await meta.deleteAbandonedFileContents(Date.now() + 1000, 100),
      { contents: 0, bytes: 0 },
      'nothing left behind',
    );
  });

  withStore('files: a discarded upload leaves no pieces and the file as it was', async (meta) => {
    const cache = (await meta.createCache('main', SETTINGS))!;
    const kept = await putFile(meta, cache.id, 'log/a', [new Uint8Array([9])]);
    const upload = await meta.startFileUpload();
    await meta.appendFilePiece(upload, 0, new Uint8Array(1000));
    await meta.discardFileUpload(upload);
    assert.equal(await meta.getFilePiece(upload, 0), undefined);
    await assert.rejects(meta.appendFilePiece(upload, 1, new Uint8Array(1)), /upload it again/);
    await assert.rejects(
      meta.commitFile(cache.id, 'log/a', {
        contentId: upload,
        size: 1000,
        contentType: 'text/plain',
        contentEncoding: null,
      }),
      /upload it again/,
    );
    assert.deepEqual(await meta.getFile(cache.id, 'log/a'), kept);
    await meta.discardFileUpload(kept.contentId);
    assert.deepEqual(
      await readPieces(meta, kept.contentId),
      [new Uint8Array([9])],
      'a content a file uses is never discarded',
    );
    assert.deepEqual(await meta.deleteAbandonedFileContents(Date.now() + 1000, 100), { contents: 0, bytes: 0 });
  });

  withStore('files: abandoned contents go once old enough; used ones and fresh uploads stay', async (meta) => {
    const cache = (await meta.createCache('main', SETTINGS))!;
    const used = await putFile(meta, cache.id, 'log/used', [new Uint8Array(10)]);
    const abandoned = await meta.startFileUpload();
    await meta.appendFilePiece(abandoned, 0, new Uint8Array(100));
    await meta.appendFilePiece(abandoned, 1, new Uint8Array(20));
    const writtenAt = Date.now();
    assert.deepEqual(
      await meta.deleteAbandonedFileContents(writtenAt - 60_000, 100),
      { contents: 0, bytes: 0 },
      'written since',
    );
    const fresh = await delayedUpload(meta);
    assert.deepEqual(await meta.deleteAbandonedFileContents(writtenAt, 100), { contents: 1, bytes: 120 });
    assert.equal(await meta.getFilePiece(abandoned, 0), undefined);
    assert.deepEqual(await readPieces(meta, used.contentId), [new Uint8Array(10)]);
    assert.deepEqual(await readPieces(meta, fresh), [new Uint8Array([7])], 'written after the cutoff');
    await meta.deleteCache('main');
    const first = await meta.deleteAbandonedFileContents(Date.now() + 1000, 1);
    const second = await meta.deleteAbandonedFileContents(Date.now() + 1000, 1);
    assert.deepEqual(
      [first.contents, second.contents, first.bytes + second.bytes],
      [1, 1, 11],
      'a deleted cache leaves its contents to GC, in batches',
    );
  });

  withStore('damage: chunks and NARs flagged, listed, healed by a re-upload', async (meta) => {
    const cache = (await meta.createCache('main', SETTINGS))!;
    const n1 = await meta.commitNar(newNar('dm1', [chunk('bad'), chunk('good1')]));
    const n2 = await meta.commitNar(newNar('dm2', [chunk('bad'), chunk('good2')]));
    const n3 = await meta.commitNar(newNar('dm3', [chunk('good3')]));
    await meta.putPath(newPath(cache.id, 'uses-n1', n1.id));
    assert.equal(await meta.damagedNarCount(), 0);
    assert.equal(await meta.markChunksDamaged([chunkId('bad'), chunkId('good1')], 5000), 2);
    assert.equal(await meta.markChunksDamaged([chunkId('bad')], 6000), 0, 'already flagged');
    assert.equal(await meta.damagedNarCount(), 2);
    assert.equal((await meta.getNar(n1.narHash))?.damagedAt, 5000);
    assert.equal((await meta.getNar(n3.narHash))?.damagedAt, null);
    assert.equal((await meta.getPath(cache.id, hashPart('uses-n1')))?.narDamaged, true);
    assert.equal(await meta.mayReuseChunk(chunkId('bad')), false);

    await meta.setChunksDamaged([chunkId('good1')], false, 0);
    assert.equal((await meta.narChunks(n1.id)).find((c) => hex(c.id) === hex(chunkId('good1')))?.damagedAt, null);
    await meta.setChunksDamaged([chunkId('good3')], true, 7000);
    await meta.setChunksDamaged([chunkId('good3')], true, 8000);
    assert.equal((await meta.narChunks(n3.id))[0].damagedAt, 7000, 'the first flag time stays');
    assert.equal((await meta.getNar(n3.narHash))?.damagedAt, null, 'its NAR is not flagged');
    await meta.setChunksDamaged([chunkId('good3')], false, 0);

    // n1 uploaded again, rewriting the bad chunk: both NARs using it heal.
    await meta.commitNar(newNar('dm1', [chunk('bad', { written: true }), chunk('good1')]));
    assert.equal((await meta.getNar(n1.narHash))?.damagedAt, null);
    assert.equal((await meta.getNar(n2.narHash))?.damagedAt, null);
    assert.equal(await meta.damagedNarCount(), 0);
    assert.equal(await meta.mayReuseChunk(chunkId('bad')), true);

    // A new NAR reusing a chunk still flagged is flagged itself.
    await meta.setChunksDamaged([chunkId('good2')], true, 9000);
    const n4 = await meta.commitNar(newNar('dm4', [chunk('good2'), chunk('fresh')]));
    assert.notEqual(n4.damagedAt, null);
    await meta.setNarDamaged(n4.id, false, 0);
    assert.equal((await meta.getNar(n4.narHash))?.damagedAt, null);
    await meta.setNarDamaged(n4.id, true, 1234);
    await meta.setNarDamaged(n4.id, true, 5678);
    assert.equal((await meta.getNar(n4.narHash))?.damagedAt, 1234);
  });

  withStore('listChunks and listNars page in ascending order', async (meta) => {
    const seeds = Array.from({ length: 7 }, (_, i) => `lc${i}`);
    for (const [i, seed] of seeds.entries()) await meta.commitNar(newNar(`ln${i}`, [chunk(seed)]));
    const all = seeds.map((seed) => hex(chunkId(seed))).sort();
    const seen: string[] = [];
    let after: Uint8Array = new Uint8Array(0);
    for (;;) {
      const page = await meta.listChunks(after, 3);
      if (page.length === 0) break;
      for (const c of page) {
        assert.ok(c.id instanceof Uint8Array);
        assert.equal(c.size, 1000 + 3);
        assert.equal(c.unreferencedSince, null);
        seen.push(hex(c.id));
      }
      after = page[page.length - 1].id;
    }
    assert.deepEqual(seen, all);
    const high = new Uint8Array(32).fill(0x80);
    assert.deepEqual(
      (await meta.listChunks(high, 100)).map((c) => hex(c.id)),
      all.filter((h) => h > hex(high)),
      'bytewise order',
    );
    const nars = await meta.listNars(0, 100);
    assert.equal(nars.length, 7);
    assert.deepEqual(
      nars.map((n) => n.id),
      [...nars.map((n) => n.id)].sort((a, b) => a - b),
    );
    assert.deepEqual(
      (await meta.listNars(nars[4].id, 100)).map((n) => n.id),
      nars.slice(5).map((n) => n.id),
    );
    assert.deepEqual(
      (await meta.listNars(0, 2)).map((n) => n.id),
      nars.slice(0, 2).map((n) => n.id),
    );
  });

  withStore('GC: expire by retention keeps pins and closures', async (meta) => {
    const cache = (await meta.createCache('main', SETTINGS))!;
    const nar = await meta.commitNar(newNar('g1', [chunk('gc1')]));
    for (const seed of ['lib', 'app', 'old', 'pinned-dep', 'pinned']) {
      const refs = seed === 'app' ? [baseName('lib')] : seed === 'pinned' ? [baseName('pinned-dep')] : [];
      assert.equal(await meta.putPath(newPath(cache.id, seed, nar.id, refs)), 'stored');
    }
    const t = (await meta.getPath(cache.id, hashPart('lib')))!.lastAccess;
    await meta.setPathPinned(cache.id, hashPart('pinned'), true);
    await meta.recordPathAccess(cache.id, hashPart('app'), t + 100_000, t + 100_000);
    // Everything but app was last used at t; app (and lib through it) is live.
    assert.equal(await meta.expirePaths(cache.id, t + 50_000), 1);
    assert.deepEqual(
      (await meta.listPaths(cache.id)).map((p) => p.hashPart).sort(),
      ['lib', 'app', 'pinned-dep', 'pinned'].map(hashPart).sort(),
    );
  });

  withStore('GC: the paths it would expire next are listed without deleting them', async (meta) => {
    const cache = (await meta.createCache('main', SETTINGS))!;
    const nar = await meta.commitNar(newNar('g2', [chunk('gc2')]));
    for (const seed of ['lib', 'app', 'old', 'pinned']) {
      assert.equal(
        await meta.putPath(newPath(cache.id, seed, nar.id, seed === 'app' ? [baseName('lib')] : [])),
        'stored',
      );
    }
    const t = (await meta.getPath(cache.id, hashPart('lib')))!.lastAccess;
    await meta.setPathPinned(cache.id, hashPart('pinned'), true);
    await meta.recordPathAccess(cache.id, hashPart('app'), t + 100_000, t + 100_000);
    const next = await meta.expirablePaths(cache.id, t + 50_000, 10);
    assert.deepEqual(
      next.map((p) => p.hashPart),
      [hashPart('old')],
    );
    assert.equal((await meta.listPaths(cache.id)).length, 4, 'nothing deleted');
    assert.equal(await meta.expirePaths(cache.id, t + 50_000), next.length);
  });

  withStore('web: usage, recent, pinned, search, referrers, closure size, storage samples', async (meta) => {
    const cache = (await meta.createCache('main', SETTINGS))!;
    const other = (await meta.createCache('other', SETTINGS))!;
    const a = await meta.commitNar(newNar('w1', [chunk('shared'), chunk('w1-only')]));
    const b = await meta.commitNar(newNar('w2', [chunk('shared'), chunk('w2-only')]));
    await meta.putPath(newPath(cache.id, 'hello-2.12', a.id));
    await delay(2);
    await meta.putPath(newPath(cache.id, 'Hello_world-1', b.id, [baseName('hello-2.12')]));
    await meta.putPath(newPath(other.id, 'hello-other', b.id));
    await meta.setPathPinned(cache.id, hashPart('hello-2.12'), true);

    const usage = await meta.cacheUsage(cache.id);
    assert.equal(usage.paths, 2);
    assert.equal(usage.narBytes, a.narSize + b.narSize);
    const sharedStored = chunk('shared').storedSize;
    assert.equal(
      usage.storedBytes,
      a.storedSize + b.storedSize - sharedStored,
      'a chunk shared by two NARs counts once',
    );
    assert.deepEqual(await meta.cacheUsage(999), { paths: 0, narBytes: 0, storedBytes: 0 });

    assert.deepEqual(
      (await meta.recentPaths(cache.id, 10)).map((p) => p.hashPart),
      [hashPart('Hello_world-1'), hashPart('hello-2.12')],
    );
    assert.equal((await meta.recentPaths(cache.id, 1)).length, 1);
    assert.deepEqual(
      (await meta.pinnedPaths(cache.id, 10)).map((p) => p.hashPart),
      [hashPart('hello-2.12')],
    );
    assert.equal((await meta.searchPaths(cache.id, 'HELLO', 10)).length, 2, 'any case');
    assert.deepEqual(
      (await meta.searchPaths(cache.id, 'o_w', 10)).map((p) => p.hashPart),
      [hashPart('Hello_world-1')],
      '_ is no wildcard',
    );
    assert.equal((await meta.searchPaths(cache.id, '%', 10)).length, 0, '% is no wildcard');
    assert.equal((await meta.searchPaths(cache.id, 'hello', 1)).length, 1, 'limit');
    assert.deepEqual(
      (await meta.referrersOf(cache.id, hashPart('hello-2.12'), 10)).map((p) => p.hashPart),
      [hashPart('Hello_world-1')],
    );
    assert.deepEqual(await meta.closureSize(cache.id, hashPart('Hello_world-1')), {
      paths: 2,
      narBytes: a.narSize + b.narSize,
    });
    assert.deepEqual(await meta.closureSize(cache.id, hashPart('hello-2.12')), { paths: 1, narBytes: a.narSize });

    await meta.recordStorageSample(cache.id, { at: 1000, ...usage });
    await meta.recordStorageSample(cache.id, { at: 1000, ...usage, paths: 99 });
    await meta.putPath(newPath(cache.id, 'late', a.id));
    await meta.recordStorageSample(cache.id, { at: 2000, ...(await meta.cacheUsage(cache.id)) });
    await meta.recordStorageSample(other.id, { at: 2000, ...(await meta.cacheUsage(other.id)) });
    const samples = await meta.storageSamples(cache.id, 0, 10);
    assert.deepEqual(samples, [
      { at: 1000, ...usage },
      { at: 2000, ...usage, paths: 3, narBytes: usage.narBytes + a.narSize },
    ]);
    assert.deepEqual(
      (await meta.storageSamples(cache.id, 0, 1)).map((s) => s.at),
      [2000],
      'the latest ones',
    );
    await meta.deleteStorageSamples(1500);
    assert.deepEqual(
      (await meta.storageSamples(cache.id, 0, 10)).map((s) => s.at),
      [2000],
    );
    assert.equal((await meta.storageSamples(other.id, 0, 10)).length, 1);
  });

  withStore('GC: unreferenced NARs and chunks are marked, then deleted', async (meta) => {
    const cache = (await meta.createCache('main', SETTINGS))!;
    const kept = await meta.commitNar(newNar('k', [chunk('shared'), chunk('kept-only')]));
    const doomed = await meta.commitNar(newNar('d', [chunk('shared'), chunk('doomed-only')]));
    await meta.putPath(newPath(cache.id, 'keeper', kept.id));
    assert.equal(await meta.markUnreferencedNars(1000), 1);
    assert.equal(await meta.markUnreferencedNars(2000), 0, 'already marked');
    assert.deepEqual(
      await meta.deleteUnreferencedNars(999, 3000, 10),
      { nars: 0, narBytes: 0 },
      'found unused after the cutoff',
    );
    assert.deepEqual(await meta.deleteUnreferencedNars(1000, 3000, 10), { nars: 1, narBytes: doomed.narSize });
    assert.equal(await meta.getNar(doomed.narHash), undefined);
    const doomedChunk = (await meta.listChunks(new Uint8Array(0), 100)).find(
      (c) => hex(c.id) === hex(chunkId('doomed-only')),
    );
    assert.equal(doomedChunk?.unreferencedSince, 3000);
    assert.equal(await meta.mayReuseChunk(chunkId('doomed-only')), false);
    assert.equal(await meta.mayReuseChunk(chunkId('shared')), true);
    assert.deepEqual(await meta.deleteUnreferencedChunks(2999, 10), []);
    const deleted = await meta.deleteUnreferencedChunks(3000, 10);
    assert.deepEqual(
      deleted.map((c) => hex(c.id)),
      [hex(chunkId('doomed-only'))],
    );
    assert.equal(deleted[0].size, chunk('doomed-only').size);
    assert.deepEqual(
      await meta.existingChunks([chunkId('shared'), chunkId('doomed-only'), chunkId('kept-only')]),
      new Set([hex(chunkId('shared')), hex(chunkId('kept-only'))]),
    );
    assert.deepEqual(await meta.existingChunks([]), new Set());
  });

  withStore('GC: a re-upload or a new path revives a marked NAR', async (meta) => {
    const cache = (await meta.createCache('main', SETTINGS))!;
    const a = await meta.commitNar(newNar('ra', [chunk('ra1')]));
    const b = await meta.commitNar(newNar('rb', [chunk('rb1')]));
    assert.equal(await meta.markUnreferencedNars(1000), 2);
    await meta.commitNar(newNar('ra', [chunk('ra1')]));
    await meta.putPath(newPath(cache.id, 'uses-b', b.id));
    await meta.deletePaths(cache.id, [hashPart('uses-b')]);
    assert.deepEqual(await meta.deleteUnreferencedNars(5000, 6000, 10), { nars: 0, narBytes: 0 });
    assert.ok(await meta.getNar(a.narHash));
    // A chunk found unused is referenced again by a NAR that uses it.
    assert.equal(await meta.markUnreferencedNars(7000), 2);
    assert.equal((await meta.deleteUnreferencedNars(7000, 8000, 1)).nars, 1, 'limit');
    assert.equal((await meta.deleteUnreferencedNars(7000, 8000, 10)).nars, 1);
    assert.equal(await meta.mayReuseChunk(chunkId('ra1')), false);
    await meta.commitNar(newNar('rc', [chunk('ra1', { written: true })]));
    assert.equal(await meta.mayReuseChunk(chunkId('ra1')), true);
    assert.deepEqual(await meta.deleteUnreferencedChunks(9000, 10).then((cs) => cs.map((c) => hex(c.id))), [
      hex(chunkId('rb1')),
    ]);
  });

  withStore('ingest holds: renew, floor, release, stale holds forgotten', async (meta) => {
    assert.equal(await meta.ingestHoldFloor(0, 'me'), undefined);
    await meta.renewIngestHold('me', 100, 1000);
    await meta.renewIngestHold('a', 300, 1000);
    await meta.renewIngestHold('b', 200, 1000);
    await meta.renewIngestHold('idle', null, 1000);
    assert.equal(await meta.ingestHoldFloor(1000, 'me'), 200);
    await meta.renewIngestHold('b', null, 2000);
    assert.equal(await meta.ingestHoldFloor(1000, 'me'), 300);
    await meta.releaseIngestHold('a');
    assert.equal(await meta.ingestHoldFloor(1000, 'me'), undefined);
    await meta.renewIngestHold('old', 50, 500);
    assert.equal(await meta.ingestHoldFloor(1000, 'me'), undefined, 'renewed before aliveSince: dead');
    assert.equal(await meta.ingestHoldFloor(0, 'me'), undefined, 'and forgotten');
    assert.equal(await meta.ingestHoldFloor(0, 'nobody'), 100);
  });

  withStore('leases: one holder at a time, renewal, release, expiry', async (meta) => {
    assert.equal(await meta.tryAcquireLease('gc', 'a', 60_000), true, 'no lease: taken');
    assert.equal(await meta.tryAcquireLease('gc', 'b', 60_000), false, 'held by a: refused');
    assert.equal(await meta.tryAcquireLease('gc', 'a', 60_000), true, 'same holder renews');
    assert.equal(await meta.tryAcquireLease('other', 'b', 60_000), true, 'leases are per name');
    await meta.releaseLease('gc', 'b');
    assert.equal(
      await meta.tryAcquireLease('gc', 'b', 60_000),
      false,
      'releasing a lease one does not hold does nothing',
    );
    await meta.releaseLease('gc', 'a');
    assert.equal(await meta.tryAcquireLease('gc', 'b', 1), true, 'released: another gets it');
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(await meta.tryAcquireLease('gc', 'c', 60_000), true, 'expired: another gets it');
    assert.equal(await meta.tryAcquireLease('gc', 'b', 60_000), false, 'and the old holder is refused');
  });

  withStore(
    'chunk deletion notices: only for chunks without a record; refuse commits they may have robbed',
    async (meta) => {
      const kept = chunk('recorded');
      await meta.commitNar(newNar('keeper', [kept]));
      const [a, b, c] = [chunk('orphan-a'), chunk('orphan-b'), chunk('orphan-c')];
      const noted = await meta.noteChunkDeletions([a.id, kept.id, b.id, c.id], 1000);
      assert.deepEqual(
        noted.map(hex).sort(),
        [a, b, c].map((x) => hex(x.id)).sort(),
        'a chunk with a record is not noted',
      );

      await assert.rejects(
        meta.commitNar({ ...newNar('uses-a', [kept, a]), ingestStartedAt: 2000 }),
        (err: Error & { code?: string }) => err.code === 'unavailable',
        'a deletion still running refuses the commit',
      );
      assert.equal(await meta.getNar(newNar('uses-a', []).narHash), undefined, 'nothing committed');
      await meta.commitNar({ ...newNar('uses-kept', [kept]), ingestStartedAt: 2000 });

      await meta.finishChunkDeletions([a.id, b.id], 3000);
      await assert.rejects(
        meta.commitNar({ ...newNar('uses-b', [b]), ingestStartedAt: 3000 }),
        /upload it again/,
        'finished after the ingest started',
      );
      await meta.commitNar({ ...newNar('uses-a', [a]), ingestStartedAt: 3001 });
      assert.deepEqual(await meta.noteChunkDeletions([a.id], 4000), [], 'a now has a record: never noted again');
      await meta.commitNar(newNar('uses-c', [c]));
      assert.ok(
        await meta.getNar(newNar('uses-c', []).narHash),
        'a commit without a start time (not an ingest) is not checked',
      );

      // c's deletion was never finished (its GC died): tidying finishes it now and forgets the old ones.
      const d = chunk('orphan-d');
      await meta.noteChunkDeletions([d.id], 5000);
      await meta.tidyChunkDeletions(3500, 6000);
      await meta.commitNar({ ...newNar('uses-b-late', [b]), ingestStartedAt: 2000 });
      await assert.rejects(
        meta.commitNar({ ...newNar('uses-d', [d]), ingestStartedAt: 5999 }),
        /upload it again/,
        'an unfinished deletion is finished at tidy time',
      );
      await meta.commitNar({ ...newNar('uses-d', [d]), ingestStartedAt: 6001 });
    },
  );

  withStore('recompression: chunk sizes and levels recorded, NAR stored sizes follow every use', async (meta) => {
    const [a, b, c] = [chunk('rc-a'), chunk('rc-b'), chunk('rc-c')];
    // x uses a twice (a repeated chunk, like a run of zeros), y uses a once and c; z only c.
    const x = await meta.commitNar({ ...newNar('rc-x', [a, b, a]), chunks: [a, b] });
    const y = await meta.commitNar(newNar('rc-y', [a, c]));
    const z = await meta.commitNar(newNar('rc-z', [c]));
    assert.equal(x.storedSize, 2 * a.storedSize + b.storedSize);
    const todo = await meta.chunksToRecompress(new Uint8Array(0), 10);
    assert.deepEqual(todo.map((r) => hex(r.id)).sort(), [a, b, c].map((r) => hex(r.id)).sort());
    assert.ok(todo.every((r) => r.zstdLevel === null));
    assert.deepEqual(
      (await meta.narsToRecompress(0, 10)).map((n) => n.narHash),
      [x, y, z].map((n) => n.narHash),
      'every NAR using such a chunk, in id order',
    );
    assert.deepEqual(
      (await meta.narsToRecompress(x.id, 1)).map((n) => n.narHash),
      [y.narHash],
      'ids above afterId, up to limit',
    );

    const recorded = await meta.recordRecompressed([
      { id: a.id, oldStoredSize: a.storedSize, storedSize: a.storedSize - 100, zstdLevel: 19 },
      { id: c.id, oldStoredSize: c.storedSize + 1, storedSize: 10, zstdLevel: 19 }, // changed meanwhile: left alone
    ]);
    assert.equal(recorded, 1);
    assert.equal((await meta.getNar(x.narHash))!.storedSize, x.storedSize - 200, 'both uses of a count');
    assert.equal((await meta.getNar(y.narHash))!.storedSize, y.storedSize - 100);
    assert.equal((await meta.getNar(z.narHash))!.storedSize, z.storedSize, 'c was not recorded');
    const recA = (await meta.getChunk(a.id))!;
    assert.deepEqual([recA.storedSize, recA.zstdLevel], [a.storedSize - 100, 19]);
    assert.equal(await meta.getChunk(chunkId('never stored')), undefined);

    await meta.setChunkLevels([b.id], 19);
    assert.deepEqual(
      (await meta.chunksToRecompress(new Uint8Array(0), 10)).map((r) => hex(r.id)),
      [hex(c.id)],
    );
    assert.deepEqual(await meta.chunksToRecompress(c.id, 10), [], 'ids above `after` only');
    assert.deepEqual(
      (await meta.narsToRecompress(0, 10)).map((n) => n.narHash),
      [y, z].map((n) => n.narHash),
      'x has no chunk left as ingested',
    );

    // An ingest writes a back at its ingest size (a repair): the record and every NAR using it follow.
    const w = await meta.commitNar({ ...newNar('rc-w', [{ ...a, written: true }]), ingestStartedAt: Date.now() });
    assert.equal(w.storedSize, a.storedSize, 'the new NAR counts the size it wrote');
    const again = (await meta.getChunk(a.id))!;
    assert.deepEqual([again.storedSize, again.zstdLevel], [a.storedSize, null], 'as ingested again');
    assert.equal((await meta.getNar(x.narHash))!.storedSize, x.storedSize);
    assert.equal((await meta.getNar(y.narHash))!.storedSize, y.storedSize);
  });

  withStore('deltas: recorded with their bases, NAR sizes follow, a rewrite makes them plain again', async (meta) => {
    const [a, b, base, other] = [chunk('dl-a'), chunk('dl-b'), chunk('dl-base'), chunk('dl-other')];
    const old = await meta.commitNar({ ...newNar('dl-old', [a, b, a]), chunks: [a, b] });
    const fresh = await meta.commitNar(newNar('dl-new', [base]));
    await meta.commitNar(newNar('dl-other', [other]));
    for (const x of [a, b]) assert.equal(await meta.reserveDeltaBases(x.id, [base.id]), true);
    const recorded = await meta.recordDeltas([
      { id: a.id, oldStoredSize: a.storedSize, storedSize: 40, bases: [base.id], depth: 1, level: 9 },
      { id: b.id, oldStoredSize: b.storedSize + 1, storedSize: 40, bases: [base.id], depth: 1, level: 9 }, // changed meanwhile
      {
        id: other.id,
        oldStoredSize: other.storedSize,
        storedSize: 40,
        bases: [chunkId('no such base')],
        depth: 1,
        level: 9,
      },
    ]);
    assert.equal(recorded, 1);
    const recA = (await meta.getChunk(a.id))!;
    assert.deepEqual([recA.encoding, recA.storedSize, recA.zstdLevel, recA.deltaDepth], ['delta', 40, 9, 1]);
    assert.equal((await meta.getChunk(other.id))!.encoding, 'zstd', 'a base without a record is refused');
    assert.equal(await meta.reserveDeltaBases(a.id, [base.id]), false, 'a delta cannot be reserved again');
    await meta.dropDeltaBases([b.id]);
    const served = rawFrameSize(a.size);
    assert.equal((await meta.getNar(old.narHash))!.storedSize, old.storedSize + 2 * (served - a.storedSize));
    assert.equal((await meta.getNar(fresh.narHash))!.storedSize, fresh.storedSize);
    assert.equal(
      await meta.recordDeltas([{ id: a.id, oldStoredSize: 40, storedSize: 30, bases: [base.id], depth: 1, level: 9 }]),
      0,
      'already a delta',
    );
    assert.deepEqual(
      (await meta.chunksToRecompress(new Uint8Array(0), 10)).map((r) => hex(r.id)).includes(hex(a.id)),
      false,
      'a delta is never recompressed',
    );
    // A new NAR that reuses the delta counts it as served.
    const reuser = await meta.commitNar(newNar('dl-reuser', [{ ...a, storedSize: 40 }]));
    assert.equal(reuser.storedSize, served);

    // The base's damage is its dependants': they and their NARs are flagged.
    await meta.markChunksDamaged([base.id], 100);
    assert.notEqual((await meta.getChunk(a.id))!.damagedAt, null);
    assert.notEqual((await meta.getNar(old.narHash))!.damagedAt, null);
    assert.notEqual((await meta.getNar(reuser.narHash))!.damagedAt, null);

    // An upload writes a again, plain: the record, its bases and the NARs follow, and it heals.
    await meta.commitNar({ ...newNar('dl-old', [a, b, a]), chunks: [{ ...a, written: true }, b] });
    const plain = (await meta.getChunk(a.id))!;
    assert.deepEqual(
      [plain.encoding, plain.storedSize, plain.zstdLevel, plain.deltaDepth, plain.damagedAt],
      ['zstd', a.storedSize, null, 0, null],
    );
    assert.equal((await meta.getNar(old.narHash))!.storedSize, old.storedSize);
    assert.equal((await meta.getNar(old.narHash))!.damagedAt, null);
    assert.equal((await meta.getNar(reuser.narHash))!.storedSize, a.storedSize);
  });

  withStore('GC: a base outlives the chunks stored as deltas on it', async (meta) => {
    const [dependant, base] = [chunk('gc-dependant'), chunk('gc-base')];
    const keeper = await meta.commitNar(newNar('gc-keeper', [dependant]));
    const doomed = await meta.commitNar(newNar('gc-doomed', [base]));
    await meta.reserveDeltaBases(dependant.id, [base.id]);
    assert.equal(
      await meta.recordDeltas([
        { id: dependant.id, oldStoredSize: dependant.storedSize, storedSize: 10, bases: [base.id], depth: 1, level: 9 },
      ]),
      1,
    );
    assert.equal(await meta.markUnreferencedNars(1000), 2, 'no path uses either');
    // Only the base's NAR goes; its chunk is unused but a base.
    assert.equal((await meta.deleteUnreferencedNars(1000, 1000, 10)).nars, 2);
    assert.equal(await meta.getNar(doomed.narHash), undefined);
    assert.equal(await meta.getNar(keeper.narHash), undefined);
    // Both chunks are unused now: the dependant goes first, the base in a later batch.
    const first = (await meta.deleteUnreferencedChunks(1000, 10)).map((c) => hex(c.id));
    assert.deepEqual(first, [hex(dependant.id)]);
    assert.deepEqual(
      (await meta.deleteUnreferencedChunks(1000, 10)).map((c) => hex(c.id)),
      [hex(base.id)],
    );
  });

  withStore('GC: a base survives while a live NAR uses its dependant', async (meta) => {
    const [dependant, base] = [chunk('live-dependant'), chunk('live-base')];
    const live = await meta.commitNar(newNar('live-keeper', [dependant]));
    await meta.commitNar(newNar('live-doomed', [base]));
    await meta.reserveDeltaBases(dependant.id, [base.id]);
    await meta.recordDeltas([
      { id: dependant.id, oldStoredSize: dependant.storedSize, storedSize: 10, bases: [base.id], depth: 1, level: 9 },
    ]);
    const cache = (await meta.createCache('gc-live', SETTINGS))!;
    assert.equal(await meta.putPath(newPath(cache.id, 'live', live.id)), 'stored');
    await meta.markUnreferencedNars(1000);
    assert.equal((await meta.deleteUnreferencedNars(1000, 1000, 10)).nars, 1);
    assert.deepEqual(await meta.deleteUnreferencedChunks(1000, 10), [], 'the base stays');
    assert.ok(await meta.getChunk(base.id));
  });
  withStore('sketches: commitNar records those of chunks without one, once', async (meta) => {
    const sa = Uint32Array.of(1, 2, 3, 4);
    const sb = Uint32Array.of(5, 6, 7, 8);
    const [a, b, c] = [chunk('sk-a', { sketch: sa }), chunk('sk-b', { sketch: sb }), chunk('sk-c')];
    await meta.commitNar(newNar('sk-x', [a, b, c]));
    assert.deepEqual(await similar(meta, sa, 10), [[hex(a.id), 4]]);
    assert.deepEqual(await similar(meta, sb, 10), [[hex(b.id), 4]]);
    assert.deepEqual(
      (await meta.chunksWithoutSketch(new Uint8Array(0), 10)).map((r) => hex(r.id)),
      [hex(c.id)],
    );
    // Committed again, by the same NAR or another, with the same sketch or (were it ever to differ) another: kept as recorded.
    await meta.commitNar(newNar('sk-x', [a, b, c]));
    await meta.commitNar(newNar('sk-y', [{ ...a, sketch: Uint32Array.of(1, 2, 3, 9), written: true }, c]));
    assert.deepEqual(await similar(meta, sa, 10), [[hex(a.id), 4]]);
    assert.deepEqual(await similar(meta, Uint32Array.of(0, 0, 0, 9), 10), [], 'the other sketch was not recorded');
    // A chunk committed without one gets it when committed with one.
    await meta.commitNar(newNar('sk-z', [{ ...c, sketch: Uint32Array.of(9, 9, 9, 9) }]));
    assert.deepEqual(await similar(meta, Uint32Array.of(9, 9, 9, 9), 10), [[hex(c.id), 4]]);
    assert.deepEqual(await meta.chunksWithoutSketch(new Uint8Array(0), 10), []);
  });

  withStore(
    'sketches: chunksWithoutSketch pages the chunks in use without one; recordSketches fills them',
    async (meta) => {
      const chunks = ['bf-1', 'bf-2', 'bf-3', 'bf-4'].map((seed) => chunk(seed));
      const sorted = chunks.map((c) => hex(c.id)).sort();
      await meta.commitNar(newNar('bf-x', chunks));
      const first = await meta.chunksWithoutSketch(new Uint8Array(0), 3);
      assert.deepEqual(
        first.map((r) => hex(r.id)),
        sorted.slice(0, 3),
      );
      assert.deepEqual(
        (await meta.chunksWithoutSketch(first[2].id, 3)).map((r) => hex(r.id)),
        sorted.slice(3),
      );
      const damaged = Buffer.from(sorted[0], 'hex');
      await meta.setChunksDamaged([damaged], true, 1000);
      const gone = chunkId('bf-never-recorded');
      await meta.recordSketches([
        { id: Buffer.from(sorted[1], 'hex'), sketch: Uint32Array.of(11, 12, 13, 14) },
        { id: gone, sketch: Uint32Array.of(11, 12, 13, 15) },
      ]);
      await meta.recordSketches([]);
      assert.deepEqual(
        (await meta.chunksWithoutSketch(new Uint8Array(0), 10)).map((r) => hex(r.id)),
        sorted.slice(2),
        'neither the damaged chunk nor the one just sketched',
      );
      assert.deepEqual(
        await similar(meta, Uint32Array.of(11, 12, 13, 15), 10),
        [[sorted[1], 3]],
        'no row for a chunk with no record',
      );
    },
  );

  withStore('sketches: similarChunks by shared super-features, most first, bounded', async (meta) => {
    const x = chunk('sim-x', { sketch: Uint32Array.of(1, 2, 3, 4) });
    const y = chunk('sim-y', { sketch: Uint32Array.of(1, 2, 3, 40) });
    const z = chunk('sim-z', { sketch: Uint32Array.of(10, 20, 30, 4) });
    const w = chunk('sim-w', { sketch: Uint32Array.of(2, 1, 4, 3) }); // the same values at other indexes
    await meta.commitNar(newNar('sim', [x, y, z, w]));
    assert.deepEqual(await similar(meta, Uint32Array.of(1, 2, 3, 4), 10), [
      [hex(x.id), 4],
      [hex(y.id), 3],
      [hex(z.id), 1],
    ]);
    assert.deepEqual(await similar(meta, Uint32Array.of(1, 2, 3, 4), 2), [
      [hex(x.id), 4],
      [hex(y.id), 3],
    ]);
    assert.deepEqual(await similar(meta, Uint32Array.of(0xffffffff, 0, 7, 7), 10), []);

    // A value that very many chunks share: each feature reads a bounded number of rows, and a chunk
    // that matches on other features still comes first (counted for its other features at least).
    const common = Array.from({ length: SIMILAR_ROWS_PER_FEATURE + 20 }, (_, i) =>
      chunk(`sim-common-${i}`, { sketch: Uint32Array.of(0xabc, 1000 + i, 2000 + i, 3000 + i) }),
    );
    const near = chunk('sim-near', { sketch: Uint32Array.of(0xabc, 77, 78, 3) });
    await meta.commitNar(newNar('sim-common', [...common, near]));
    const found = await meta.similarChunks(Uint32Array.of(0xabc, 77, 78, 0), 5);
    assert.equal(hex(found[0].id), hex(near.id));
    assert.ok(found[0].matches >= 2);
    assert.equal(found.length, 5);
    assert.ok(found.slice(1).every((f) => f.matches === 1));
    assert.equal((await meta.similarChunks(Uint32Array.of(0xabc, 0, 0, 0), 10_000)).length, common.length + 1);
    assert.equal((await meta.similarChunks(Uint32Array.of(0xabc, 0, 0, 0), 3)).length, 3);
  });

  withStore('sketches: a chunk GC deletes takes its sketch with it', async (meta) => {
    const kept = chunk('gc-sk-kept', { sketch: Uint32Array.of(1, 2, 3, 4) });
    const doomed = chunk('gc-sk-doomed', { sketch: Uint32Array.of(1, 2, 3, 5) });
    const cache = (await meta.createCache('main', SETTINGS))!;
    const k = await meta.commitNar(newNar('gc-sk-k', [kept]));
    await meta.putPath(newPath(cache.id, 'gc-sk-keeper', k.id));
    await meta.commitNar(newNar('gc-sk-d', [doomed]));
    assert.equal((await similar(meta, Uint32Array.of(1, 2, 3, 4), 10)).length, 2);
    assert.equal(await meta.markUnreferencedNars(1000), 1);
    assert.equal((await meta.deleteUnreferencedNars(1000, 2000, 10)).nars, 1);
    assert.deepEqual(
      await similar(meta, Uint32Array.of(1, 2, 3, 4), 10),
      [
        [hex(kept.id), 4],
        [hex(doomed.id), 3],
      ],
      'a chunk not yet deleted keeps it',
    );
    assert.equal((await meta.deleteUnreferencedChunks(2000, 10)).length, 1);
    assert.deepEqual(await similar(meta, Uint32Array.of(1, 2, 3, 5), 10), [[hex(kept.id), 3]]);
  });

  withStore(
    'delta bases by place: packages, the next NAR of a package, candidates newest first, the tried mark',
    async (meta) => {
      const cache = (await meta.createCache('main', SETTINGS))!;
      const sketch = (i: number): Uint32Array => Uint32Array.of(100 + i, 200 + i, 300 + i, 400 + i);
      const old = [chunk('pl-o0', { sketch: sketch(0) }), chunk('pl-o1', { sketch: sketch(1) })];
      const mid = [chunk('pl-m0', { sketch: sketch(10) }), chunk('pl-m1', { sketch: sketch(11) })];
      const oldNar = await meta.commitNar(newNar('pl-old', old));
      await delay(5);
      const other = await meta.commitNar(newNar('pl-other', [chunk('pl-x', { sketch: sketch(20) })]));
      await delay(5);
      const midNar = await meta.commitNar(newNar('pl-mid', [old[0], ...mid]));
      const ids = (list: { id: Uint8Array }[]): string[] => list.map((x) => hex(x.id));

      // Newest first (each age by id).
      const byId = (list: NewChunk[]): string[] => ids(list).sort();
      const olderFirst = [...byId(mid), hex(chunkId('pl-x')), ...byId(old)];
      assert.deepEqual(ids(await meta.deltaCandidates(undefined, 10)), olderFirst);
      const firstTwo = await meta.deltaCandidates(undefined, 2);
      const last = firstTwo[1];
      assert.deepEqual(
        ids(await meta.deltaCandidates({ createdAt: last.createdAt, id: last.id }, 10)),
        olderFirst.slice(2),
      );

      // Packages: none until a path names the NAR; then the package's next NAR is found from a chunk.
      assert.deepEqual(
        (await meta.narsWithoutPackage(0, 10)).map((n) => [n.id, n.storePath]),
        [oldNar.id, other.id, midNar.id].sort((a, b) => a - b).map((id) => [id, null]),
      );
      assert.equal(await meta.chunkPlace(old[1].id), undefined);
      await meta.putPath(newPath(cache.id, 'tool-1.0', oldNar.id));
      await meta.putPath(newPath(cache.id, 'tool-2.0', midNar.id));
      await meta.putPath(newPath(cache.id, 'other-tool-1.0', other.id));
      assert.deepEqual(await meta.narsWithoutPackage(0, 10), []);
      const place = await meta.chunkPlace(old[1].id);
      assert.deepEqual(place && [place.nar.id, place.next.id, place.nar.narSize], [
        oldNar.id,
        midNar.id,
        oldNar.narSize,
      ]);
      assert.equal(await meta.chunkPlace(old[0].id), undefined, 'its newest NAR is the newest of the package');
      assert.equal(await meta.chunkPlace(chunkId('pl-x')), undefined, 'another package');
      assertSameTable(await meta.narChunkTable(midNar.id), midNar.chunkTable);
      assert.equal(await meta.narChunkTable(999_999), undefined);
      // The other NARs of a package (deltas prepared for upgrades), the newest first, each with a path.
      assert.deepEqual(
        (await meta.otherNarsOfPackage(midNar.id, 10)).map((n) => [n.id, n.storePath.endsWith('-tool-1.0')]),
        [[oldNar.id, true]],
      );
      assert.deepEqual(
        (await meta.otherNarsOfPackage(oldNar.id, 10)).map((n) => n.id),
        [midNar.id],
      );
      assert.deepEqual(await meta.otherNarsOfPackage(other.id, 10), [], 'alone in its package');
      assert.deepEqual(await meta.otherNarsOfPackage(999_999, 10), []);

      // The tried mark keeps chunks out of the candidates until something could give them a base.
      await meta.markDeltaTried([old[1].id, mid[0].id, mid[1].id], 1000);
      assert.deepEqual(ids(await meta.deltaCandidates(undefined, 10)), [hex(chunkId('pl-x')), hex(old[0].id)]);
      await meta.recordSketches([{ id: chunkId('pl-new'), sketch: sketch(1) }]); // no such chunk: nothing changes
      assert.equal((await meta.deltaCandidates(undefined, 10)).length, 2);
      await delay(5);
      const lateNar = await meta.commitNar(newNar('pl-late', [chunk('pl-l0'), chunk('pl-l1')]));
      await meta.recordSketches([{ id: chunkId('pl-l0'), sketch: Uint32Array.of(9, 9, 300 + 11, 9) }]);
      assert.ok(
        ids(await meta.deltaCandidates(undefined, 10)).includes(hex(mid[1].id)),
        'a new chunk shares a super-feature',
      );
      assert.ok(!ids(await meta.deltaCandidates(undefined, 10)).includes(hex(mid[0].id)));
      await meta.putPath(newPath(cache.id, 'tool-3.0', lateNar.id));
      const candidates = ids(await meta.deltaCandidates(undefined, 10));
      assert.ok(
        candidates.includes(hex(mid[0].id)),
        "a newer NAR of its package: the previous NAR's chunks are tried again",
      );
      assert.ok(!candidates.includes(hex(old[1].id)), 'not those of NARs before that');
    },
  );

  withStore('delta encoding: candidates, reserved bases, chains', async (meta) => {
    const [a, b, c] = ['de-a', 'de-b', 'de-c'].map((seed, i) =>
      chunk(seed, { sketch: Uint32Array.of(i, 7, 8, 2 ** 32 - 1) }),
    );
    const bare = chunk('de-bare');
    await meta.commitNar(newNar('de', [a, b, c, bare]));
    const ids = (list: { id: Uint8Array }[]): string[] => list.map((x) => hex(x.id));
    const sorted = [a, b, c].map((x) => hex(x.id)).sort();
    const candidates = await meta.deltaCandidates(undefined, 10);
    assert.deepEqual(ids(candidates), sorted, 'plain chunks with a sketch, of one age by id');
    const candA = candidates.find((x) => hex(x.id) === hex(a.id))!;
    assert.deepEqual([...candA.sketch], [0, 7, 8, 2 ** 32 - 1]);
    assert.ok(candA.createdAt > 0);
    assert.deepEqual(ids(await meta.deltaCandidates(undefined, 2)), sorted.slice(0, 2));
    const cursor = { createdAt: candA.createdAt, id: Buffer.from(sorted[0], 'hex') };
    assert.deepEqual(ids(await meta.deltaCandidates(cursor, 10)), sorted.slice(1));

    // b is being rewritten on c: its base is reserved while it stays plain.
    assert.equal(await meta.reserveDeltaBases(b.id, [c.id]), true);
    assert.equal(await meta.reserveDeltaBases(b.id, [a.id]), false, 'one pass at a time encodes a chunk');
    const pending = await meta.pendingDeltas(new Uint8Array(0), 10);
    assert.deepEqual(ids(pending), [hex(b.id)]);
    assert.deepEqual(ids(pending[0].bases.map((id) => ({ id }))), [hex(c.id)]);
    assert.deepEqual(await meta.deltaChain(b.id), { depth: 1, height: 0 });
    assert.deepEqual(await meta.deltaChain(c.id), { depth: 0, height: 1 });
    const delta = (x: NewChunk, base: NewChunk, depth: number): DeltaChunk => ({
      id: x.id,
      oldStoredSize: x.storedSize,
      storedSize: 40,
      bases: [base.id],
      depth,
      level: 9,
    });
    assert.equal(await meta.recordDeltas([delta(b, a, 1)]), 0, 'only with the bases reserved');
    assert.equal(await meta.recordDeltas([delta(b, c, 1)]), 1, 'the reserved rows are taken as they are');
    assert.deepEqual(await meta.pendingDeltas(new Uint8Array(0), 10), []);
    assert.equal((await meta.getChunk(b.id))!.encoding, 'delta');
    assert.deepEqual(ids(await meta.deltaCandidates(undefined, 10)), [a, c].map((x) => hex(x.id)).sort());

    // c becomes a delta too: b, built on it, is one deeper.
    const d = chunk('de-d');
    await meta.commitNar(newNar('de-d', [d]));
    assert.equal(await meta.recordDeltas([delta(c, d, 1)]), 0, 'not reserved');
    await meta.reserveDeltaBases(c.id, [d.id]);
    assert.equal(await meta.recordDeltas([delta(c, d, 1)]), 1);
    assert.deepEqual([(await meta.getChunk(b.id))!.deltaDepth, (await meta.getChunk(c.id))!.deltaDepth], [2, 1]);
    assert.deepEqual(await meta.deltaChain(b.id), { depth: 2, height: 0 });

    // a on b: a chain of three below a, of two above c.
    await meta.reserveDeltaBases(a.id, [b.id]);
    assert.deepEqual(await meta.deltaChain(a.id), { depth: 3, height: 0 });
    assert.deepEqual(await meta.deltaChain(c.id), { depth: 1, height: 2 });
    await meta.dropDeltaBases([a.id, b.id]);
    assert.deepEqual(await meta.pendingDeltas(new Uint8Array(0), 10), [], "a plain chunk's rows go");
    assert.deepEqual(await meta.deltaChain(b.id), { depth: 2, height: 0 }, "a delta's stay");

    // Several chunks reserved at once: a on d, and e on a.
    const e = chunk('de-e');
    await meta.commitNar(newNar('de-e', [e]));
    await meta.reserveDeltaBasesOf([
      { id: a.id, bases: [d.id] },
      { id: e.id, bases: [a.id] },
    ]);
    assert.deepEqual(ids(await meta.pendingDeltas(new Uint8Array(0), 10)), [a, e].map((x) => hex(x.id)).sort());
    assert.deepEqual(await meta.deltaChain(e.id), { depth: 2, height: 0 });
    assert.deepEqual(await meta.deltaChain(d.id), { depth: 0, height: 2 }, 'b on c on d, e on a on d');
    await meta.reserveDeltaBasesOf([]);
    await meta.dropDeltaBases([a.id, e.id]);
    assert.deepEqual(await meta.pendingDeltas(new Uint8Array(0), 10), []);
  });
}

async function similar(meta: MetadataStore, sketch: Uint32Array, limit: number): Promise<[string, number][]> {
  return (await meta.similarChunks(sketch, limit)).map((s) => [hex(s.id), s.matches]);
}
