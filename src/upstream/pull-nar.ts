import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Compression } from '../compression/compression.ts';
import { createDecompressor } from '../compression/decompress.ts';
import { createXzProcessDecompressor } from '../compression/xz-process.ts';
import { NarwhalError } from '../errors.ts';
import { TaskLimit } from '../runtime/task-limit.ts';
import { ingestNar } from '../ingest/ingest-nar.ts';
import { newPath } from '../ingest/put-narinfo.ts';
import { parseSha256 } from '../nix/hash.ts';
import type { CacheRecord, NarRecord } from '../metadata/metadata-store.ts';
import { parseStorePathBaseName } from '../nix/store-path.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { pullCounters } from './pull-counters.ts';
import { askUpstreams, forgetUpstreamAnswer, type UpstreamPath } from './upstream-narinfo.ts';
import { upstreamGet } from './upstream-http.ts';
import { type ExpectedFile, NarSpool } from './nar-spool.ts';

/** A pull running in this process: the upstream's NAR file arriving in a spool, then stored. */
export interface Pull {
  /** How the upstream compressed the file the spool holds. */
  compression: Compression;
  /** Resolves once the upstream answered with a 200 and its file is arriving in the spool. */
  started: Promise<PullStarted>;
  /** Settles when the path is stored, or not. */
  settled: Promise<void>;
}

export interface PullStarted {
  spool: NarSpool;
  /** The file's size, when the narinfo gives it. */
  fileSize: number | undefined;
}

/**
 * Pulled files ingested at once per process: each takes about a core (xz decoding in its own
 * process, chunking and compressing on threads), and the other half of the cores stay free for
 * serving. The rest wait their turn, their files kept in their spools.
 */
const INGESTS_AT_ONCE = Math.max(1, Math.floor(availableParallelism() / 2));
const ingests = new WeakMap<Narwhal, TaskLimit>();

function ingestsOf(nw: Narwhal): TaskLimit {
  let limit = ingests.get(nw);
  if (!limit) ingests.set(nw, (limit = new TaskLimit(INGESTS_AT_ONCE, Number.MAX_SAFE_INTEGER, 'too many pulls')));
  return limit;
}

/** Pulls running in this process, by cache and hash part. */
const running = new WeakMap<Narwhal, Map<string, Pull>>();

function pullsOf(nw: Narwhal): Map<string, Pull> {
  let pulls = running.get(nw);
  if (!pulls) running.set(nw, (pulls = new Map()));
  return pulls;
}

/** The pull of this path running in this process, if any. */
export function runningPull(nw: Narwhal, cache: CacheRecord, hashPart: string): Pull | undefined {
  return pullsOf(nw).get(`${cache.id}:${hashPart}`);
}

/**
 * Pulls the path from its upstream, or joins the pull of it already running here. The upstream's
 * NAR file goes, as it arrives, into a spool (nar-spool.ts) that readers follow at their own pace:
 * a client is sent the upstream's own bytes, so it waits for nothing but the upstream. Once the
 * file is whole, it is decompressed and ingested like an upload (validated, chunked, stored), and the path
 * is stored with the upstream's narinfo once the NAR is whole and has the NarHash and NarSize the
 * signed narinfo gives and its references are stored. Nothing of the path is stored unless all of
 * it is. A pull whose file fails leaves the running pulls at once, so the next request starts anew.
 *
 * `started` rejects with 'not-found' when the upstream does not answer the NAR with a 200.
 */
export function startPull(nw: Narwhal, cache: CacheRecord, found: UpstreamPath): Pull {
  const pulls = pullsOf(nw);
  const key = `${cache.id}:${found.hashPart}`;
  const earlier = pulls.get(key);
  if (earlier) return earlier;
  const started = Promise.withResolvers<PullStarted>();
  const settled = Promise.withResolvers<void>();
  started.promise.catch(() => undefined);
  settled.promise.catch(() => undefined);
  const pull: Pull = { compression: found.compression, started: started.promise, settled: settled.promise };
  pulls.set(key, pull);
  const leave = (): void => {
    if (pulls.get(key) === pull) pulls.delete(key);
  };
  const counters = pullCounters(nw);
  void (async () => {
    let spool: NarSpool | undefined;
    try {
      const answer = await upstreamGet(nw, found.narUrl).catch((err: unknown) => {
        throw new NarwhalError('not-found', `the upstream NAR is not available: ${(err as Error).message}`);
      });
      if (!answer.body) throw new NarwhalError('not-found', `the upstream answered ${answer.status} for the NAR`);
      spool = NarSpool.create();
      const expected = expectedFile(found);
      const filled = spool.fill(answer.body, expected);
      const stored = storePulled(nw, cache, found, spool, filled);
      started.resolve({ spool, fileSize: expected.fileSize });
      // A file that fails leaves the running pulls at once, while the ingest behind it winds down.
      const checked = filled.catch((err: unknown) => {
        leave();
        throw err;
      });
      await Promise.all([checked, stored]);
      counters.narsPulled++;
      leave();
      settled.resolve();
    } catch (err) {
      // Failures before the file arrives (no answer, an error status) upstreamGet counted itself.
      if (spool) counters.upstreamErrors++;
      leave();
      started.reject(err);
      settled.reject(err);
    } finally {
      spool?.close();
    }
  })();
  return pull;
}

/**
 * What the upstream's file must be: its narinfo's FileSize and FileHash, which for an uncompressed
 * NAR are its NarSize and NarHash. Nix checks the NarHash of what it is sent in any case.
 */
export function expectedFile({ info, compression }: UpstreamPath): ExpectedFile {
  const plain = compression === 'none';
  const fileHash = info.fileHash ?? (plain ? info.narHash : undefined);
  return {
    fileSize: info.fileSize ?? (plain ? info.narSize : undefined),
    fileHash: fileHash === undefined ? undefined : parseSha256(fileHash, 'bad-narinfo'),
  };
}

/**
 * Pulls the path whole, with nobody reading along (a reference of a path being pulled, or a NAR a
 * substituter asks the chunks of). Resolves once it is stored; throws 'not-found' when it cannot be.
 */
export async function pullWhole(nw: Narwhal, cache: CacheRecord, hashPart: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    let pull = runningPull(nw, cache, hashPart);
    if (!pull) {
      if ((await nw.meta.existingPaths(cache.id, [hashPart])).size > 0) return;
      const found = await askUpstreams(nw, cache, hashPart);
      if (!found) throw new NarwhalError('not-found', `no upstream has ${hashPart}`);
      pull = startPull(nw, cache, found);
    }
    await pull.settled.catch(() => undefined);
    if ((await nw.meta.existingPaths(cache.id, [hashPart])).size > 0) return;
  }
  throw new NarwhalError('not-found', `${hashPart} could not be pulled`);
}

/** Nix fetches references first, but not every client does: a path is stored only with its references. */
async function pullMissingReferences(nw: Narwhal, cache: CacheRecord, found: UpstreamPath): Promise<void> {
  const others = found.info.references
    .map((ref) => parseStorePathBaseName(ref, 'bad-narinfo').hashPart)
    .filter((hashPart) => hashPart !== found.hashPart);
  const present = await nw.meta.existingPaths(cache.id, others);
  for (const hashPart of others) if (!present.has(hashPart)) await pullWhole(nw, cache, hashPart);
}

/** The niceness of the xz process that decodes a pulled file behind its clients. */
const BEHIND_CLIENTS_NICENESS = 10;

let xzFound: boolean | undefined;

/** Whether the `xz` program is on PATH (looked up once). */
function hasXz(): boolean {
  xzFound ??= (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, 'xz')));
  return xzFound;
}

/**
 * Stores the pulled path: once its file is whole, decompresses and ingests it (INGESTS_AT_ONCE
 * at a time in this process, so that this work, which clients do not wait for, leaves cores to
 * serving them), and stores the path once its references are stored too.
 */
async function storePulled(
  nw: Narwhal,
  cache: CacheRecord,
  found: UpstreamPath,
  spool: NarSpool,
  filled: Promise<void>,
): Promise<void> {
  const { info } = found;
  try {
    const references = pullMissingReferences(nw, cache, found);
    references.catch(() => undefined);
    await filled;
    const nar = await ingestsOf(nw).run(() => ingestPulledFile(nw, cache, found, spool.reader()));
    await references;
    const result = await nw.meta.putPath(newPath(cache, found.hashPart, nar.id, info));
    if (result === 'no-nar' || result === 'missing-reference') {
      throw new NarwhalError('unavailable', `${info.storePath} could not be stored (${result}); try again`);
    }
  } finally {
    nw.memos.narinfos.forget(cache.id, found.hashPart);
    forgetUpstreamAnswer(nw, cache, found.hashPart);
  }
}

/** Decompresses and ingests a pulled file, checking it is the NAR the signed narinfo names. */
async function ingestPulledFile(
  nw: Narwhal,
  cache: CacheRecord,
  found: UpstreamPath,
  file: Readable,
): Promise<NarRecord> {
  // xz, what cache.nixos.org and `nix copy` serve by default, is decoded by the xz program: faster.
  // It runs niced: clients have the file already, and decoding it again must not slow theirs.
  const decompressor =
    found.compression === 'none'
      ? undefined
      : found.compression === 'xz' && hasXz()
        ? createXzProcessDecompressor({ niceness: BEHIND_CLIENTS_NICENESS })
        : createDecompressor(found.compression);
  let nar: Readable = file;
  if (decompressor) {
    file.on('error', (err) => decompressor.destroy(err));
    nar = file.pipe(decompressor);
  }
  try {
    return await ingestNar(nw, nar, {
      compression: 'none',
      uploadedTo: cache.id,
      expected: { narHash: found.info.narHash, narSize: found.info.narSize },
    });
  } catch (err) {
    decompressor?.destroy();
    file.destroy();
    throw err;
  }
}
