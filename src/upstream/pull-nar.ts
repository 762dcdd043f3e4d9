import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { createDecompressor } from '../compression/decompress.ts';
import { createXzProcessDecompressor } from '../compression/xz-process.ts';
import { NarwhalError } from '../errors.ts';
import { ingestNar } from '../ingest/ingest-nar.ts';
import type { CacheRecord } from '../metadata/metadata-store.ts';
import { parseStorePathBaseName } from '../nix/store-path.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { pullCounters } from './pull-counters.ts';
import { askUpstreams, forgetUpstreamAnswer, type UpstreamPath } from './upstream-narinfo.ts';
import { upstreamGet } from './upstream-http.ts';

/**
 * Bytes buffered between the stages of a pull (decompression, ingest, the reader), so that each
 * works while the next one is busy rather than in turn; bounded, so memory does not grow with
 * the NAR.
 */
const STAGE_BUFFER_BYTES = 1024 * 1024;

/** Pulls running in this process, by cache and hash part: each settles when its path is stored, or not. */
const running = new WeakMap<Narwhal, Map<string, Promise<void>>>();

function pullsOf(nw: Narwhal): Map<string, Promise<void>> {
  let pulls = running.get(nw);
  if (!pulls) running.set(nw, (pulls = new Map()));
  return pulls;
}

/** The pull of this path running in this process, if any. */
export function runningPull(nw: Narwhal, cache: CacheRecord, hashPart: string): Promise<void> | undefined {
  return pullsOf(nw).get(`${cache.id}:${hashPart}`);
}

/**
 * Starts pulling the path from its upstream: the upstream's NAR is decompressed and, in one pass,
 * sent to the returned stream (the NAR, plain) and ingested like an upload (validated, chunked,
 * stored), and the path is stored with the upstream's narinfo once the NAR is whole and has the
 * NarHash and NarSize the signed narinfo gives. The stream ends only once the NAR passed those
 * checks; if anything fails before, it is destroyed instead, so a reader never takes a NAR cut
 * short for a whole one; and nothing of the path is stored unless all of it is. The reader may stop reading at any time; the pull goes on without it.
 *
 * Resolves once the upstream has answered the NAR request with a 200 (throws 'not-found' when it
 * does not), or with undefined when a pull of the path is already running here: the caller waits
 * for that one (runningPull) and serves what it stored.
 */
export async function startPull(nw: Narwhal, cache: CacheRecord, found: UpstreamPath): Promise<Readable | undefined> {
  const pulls = pullsOf(nw);
  const key = `${cache.id}:${found.hashPart}`;
  if (pulls.has(key)) return undefined;
  const settled = Promise.withResolvers<void>();
  settled.promise.catch(() => undefined);
  pulls.set(key, settled.promise);
  const finish = (err?: unknown): void => {
    pulls.delete(key);
    if (err === undefined) settled.resolve();
    else settled.reject(err);
  };
  let body: Readable;
  try {
    await pullMissingReferences(nw, cache, found);
    const answer = await upstreamGet(nw, found.narUrl);
    if (!answer.body) throw new NarwhalError('not-found', `the upstream answered ${answer.status} for the NAR`);
    body = answer.body;
  } catch (err) {
    finish(err);
    if (err instanceof NarwhalError && err.code === 'not-found') throw err;
    throw new NarwhalError('not-found', `the upstream NAR is not available: ${(err as Error).message}`);
  }
  const toReader = new PassThrough({ highWaterMark: STAGE_BUFFER_BYTES });
  toReader.on('error', () => undefined);
  ingestAndStore(nw, cache, found, body, toReader).then(
    () => {
      pullCounters(nw).narsPulled++;
      finish();
    },
    (err: unknown) => {
      pullCounters(nw).upstreamErrors++;
      finish(err);
      // Cut short unless the reader already has the whole NAR, checked (only storing it failed).
      if (!toReader.writableEnded) toReader.destroy(err as Error);
    },
  );
  return toReader;
}

/**
 * Pulls the path whole, with nobody reading along (a reference of a path being pulled, or a NAR a
 * substituter asks the chunks of). Resolves once it is stored; throws 'not-found' when it cannot be.
 */
export async function pullWhole(nw: Narwhal, cache: CacheRecord, hashPart: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const earlier = runningPull(nw, cache, hashPart);
    if (earlier) {
      await earlier.catch(() => undefined);
    } else {
      if ((await nw.meta.existingPaths(cache.id, [hashPart])).size > 0) return;
      const found = await askUpstreams(nw, cache, hashPart);
      if (!found) throw new NarwhalError('not-found', `no upstream has ${hashPart}`);
      const stream = await startPull(nw, cache, found);
      if (stream) {
        stream.resume();
        await runningPull(nw, cache, hashPart);
      }
    }
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

let xzFound: boolean | undefined;

/** Whether the `xz` program is on PATH (looked up once). */
function hasXz(): boolean {
  xzFound ??= (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, 'xz')));
  return xzFound;
}

/**
 * Decompresses and ingests the upstream body, passing each piece on to the reader (after the one
 * before it, so the last piece is held back until the whole NAR is known to be the signed one:
 * then the reader's stream ends, while the NAR is made durable and committed), and stores the path.
 */
async function ingestAndStore(
  nw: Narwhal,
  cache: CacheRecord,
  found: UpstreamPath,
  body: Readable,
  toReader: PassThrough,
): Promise<void> {
  // xz, what cache.nixos.org and `nix copy` serve by default, is decoded by the xz program: faster.
  const decompressor =
    found.compression === 'none'
      ? undefined
      : found.compression === 'xz' && hasXz()
        ? createXzProcessDecompressor()
        : createDecompressor(found.compression);
  const decompressed = new PassThrough({ highWaterMark: STAGE_BUFFER_BYTES });
  if (decompressor) {
    body.on('error', (err) => decompressor.destroy(err));
    decompressor.on('error', (err) => decompressed.destroy(err));
    body.pipe(decompressor).pipe(decompressed);
  } else {
    body.on('error', (err) => decompressed.destroy(err));
    body.pipe(decompressed);
  }
  let held: Uint8Array | undefined;
  const pass = async (data: Uint8Array): Promise<void> => {
    if (toReader.destroyed || toReader.writableEnded) return;
    if (toReader.write(data)) return;
    const waiting = new AbortController();
    const { signal } = waiting;
    await Promise.race([once(toReader, 'drain', { signal }), once(toReader, 'close', { signal })]).catch(
      () => undefined,
    );
    waiting.abort();
  };
  async function* teed(): AsyncGenerator<Uint8Array> {
    for await (const data of decompressed as AsyncIterable<Uint8Array>) {
      if (held) await pass(held);
      held = data;
      yield data;
    }
  }
  const { info } = found;
  try {
    const nar = await ingestNar(nw, Readable.from(teed(), { objectMode: false }), {
      compression: 'none',
      uploadedTo: cache.id,
      expected: { narHash: info.narHash, narSize: info.narSize },
      verified: () => {
        if (!toReader.destroyed) toReader.end(held);
      },
    });
    const result = await nw.meta.putPath({
      cacheId: cache.id,
      hashPart: found.hashPart,
      storePath: info.storePath,
      narId: nar.id,
      references: info.references,
      deriver: info.deriver ?? null,
      system: info.system ?? null,
      sigs: info.sigs,
      ca: info.ca ?? null,
    });
    if (result === 'no-nar' || result === 'missing-reference') {
      throw new NarwhalError('unavailable', `${info.storePath} could not be stored (${result}); try again`);
    }
  } catch (err) {
    decompressed.destroy();
    decompressor?.destroy();
    body.destroy();
    throw err;
  } finally {
    nw.memos.narinfos.forget(cache.id, found.hashPart);
    forgetUpstreamAnswer(nw, cache, found.hashPart);
  }
}
