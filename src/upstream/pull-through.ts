import type { Readable } from 'node:stream';
import { NarwhalError } from '../errors.ts';
import { type Compression, compressionFromNarUrlSuffix, narUrlSuffix } from '../compression/compression.ts';
import type { CacheRecord, NarRecord } from '../metadata/metadata-store.ts';
import { serializeNarinfo, type NarInfo } from '../nix/narinfo.ts';
import { openNarByHash, type NarRequest } from '../serving/nar-downloads.ts';
import { renderNarinfo, signedByCache } from '../serving/render-narinfo.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { pullCounters } from './pull-counters.ts';
import { expectedFile, runningPull, pullWhole, startPull } from './pull-nar.ts';
import { upstreamGet } from './upstream-http.ts';
import { askUpstreams } from './upstream-narinfo.ts';

/**
 * The URL, relative to the cache, under which a path answered from an upstream has its NAR, in
 * the upstream's compression: `pull/<hashPart>.nar` plus the suffix Nix gives that compression
 * (gzip, which Nix serves under a bare `.nar` as it does none, gets `.gz`).
 */
export function pulledNarUrl(hashPart: string, compression: Compression): string {
  const suffix = compression === 'gzip' ? 'gz' : narUrlSuffix(compression);
  return `pull/${hashPart}.nar${suffix === '' ? '' : `.${suffix}`}`;
}

/** The compression a `pull/` URL's suffix (without its dot; '' for none) names, if any. */
export function pulledNarCompression(suffix: string): Compression | undefined {
  return suffix === 'gz' ? 'gzip' : compressionFromNarUrlSuffix(suffix);
}

/** Hash parts by NarHash (nix32) of narinfos answered from upstreams, so that a chunk list asked for can be pulled. */
const MAX_NAR_NAMES = 10_000;
const narNames = new WeakMap<Narwhal, Map<string, string>>();

/**
 * The narinfo of a path: as stored, or, for a cache with upstreams, as the first upstream that
 * has it signed it, with the NAR under pulledNarUrl: the upstream's own file (its Compression,
 * FileHash and FileSize kept), passed on as it arrives. Upstream signatures are kept, so clients
 * keep trusting the upstream's key; the cache's own key signs too.
 */
export async function narinfoWithUpstreams(
  nw: Narwhal,
  cache: CacheRecord,
  hashPart: string,
): Promise<string | undefined> {
  const stored = await renderNarinfo(nw, cache, hashPart);
  if (cache.upstreams.length === 0) return stored;
  const counters = pullCounters(nw);
  if (stored !== undefined) {
    counters.hits++;
    return stored;
  }
  counters.misses++;
  const found = await askUpstreams(nw, cache, hashPart);
  if (!found) return undefined;
  let names = narNames.get(nw);
  if (!names) narNames.set(nw, (names = new Map()));
  if (names.size >= MAX_NAR_NAMES) names.delete(names.keys().next().value!);
  names.set(`${cache.id}:${found.info.narHash}`, hashPart);
  const info: NarInfo = { ...found.info, url: pulledNarUrl(hashPart, found.compression) };
  return serializeNarinfo(signedByCache(nw, cache, info));
}

/**
 * What `pull/<hashPart>.nar<suffix>` answers with: the upstream's file as it arrives (from this
 * process's pull of it, or passed through from the upstream again for a path stored already), the
 * stored NAR (to be served in the compression asked for), or for HEAD the file's size if known.
 */
export type PulledNar =
  | { nar: NarRecord }
  | { file: Readable; fileSize: number | undefined }
  | { head: number | undefined };

/**
 * The NAR of a path in the compression its pull URL names. A pull running here is joined (every
 * reader follows the one upstream fetch). A stored path in a compression Narwhal does not keep
 * (a client asks with a narinfo it was given while the path was being pulled) is passed through
 * from the upstream again when it answers, as encoding xz here would be slow; else the caller
 * encodes the stored NAR. 'not-found' when no upstream has the path or the upstream fails before
 * its file starts arriving; HEAD does not pull.
 */
export async function openPulledNar(
  nw: Narwhal,
  request: NarRequest,
  hashPart: string,
  compression: Compression,
): Promise<PulledNar> {
  const { cache } = request;
  for (let attempt = 0; attempt < 2; attempt++) {
    const pull = runningPull(nw, cache, hashPart);
    if (pull && pull.compression === compression && !request.head) {
      const started = await pull.started.catch(() => undefined);
      // Only while the pull is still running here is its spool open: it may have ended meanwhile.
      if (started && !started.spool.failed && runningPull(nw, cache, hashPart) === pull) {
        return { file: started.spool.reader(), fileSize: started.fileSize };
      }
    }
    if (pull) await pull.settled.catch(() => undefined);
    const stored = await storedNar(nw, request, hashPart);
    if (stored) {
      if (compression === 'none' || compression === 'zstd' || request.head) return { nar: stored };
      const again = await passThrough(nw, cache, hashPart, compression);
      return again ?? { nar: stored };
    }
    if (cache.upstreams.length === 0) break;
    if (pull) continue;
    const found = await askUpstreams(nw, cache, hashPart);
    if (!found) break;
    if (request.head) return { head: found.compression === compression ? expectedFile(found).fileSize : undefined };
    const started = startPull(nw, cache, found);
    // Asked in another compression than the upstream's (a narinfo of an earlier answer): served once stored.
    if (found.compression !== compression) continue;
    const { spool, fileSize } = await started.started;
    return { file: spool.reader(), fileSize };
  }
  throw new NarwhalError('not-found', 'no such NAR');
}

/** The upstream's file of a stored path, fetched again and passed on, when the upstream has it in this compression. */
async function passThrough(
  nw: Narwhal,
  cache: CacheRecord,
  hashPart: string,
  compression: Compression,
): Promise<PulledNar | undefined> {
  const found = await askUpstreams(nw, cache, hashPart);
  if (!found || found.compression !== compression) return undefined;
  const answer = await upstreamGet(nw, found.narUrl).catch(() => undefined);
  return answer?.body && { file: answer.body, fileSize: expectedFile(found).fileSize };
}

async function storedNar(nw: Narwhal, request: NarRequest, hashPart: string): Promise<NarRecord | undefined> {
  const path = await nw.meta.getPath(request.cache.id, hashPart);
  return path && (await openNarByHash(nw, request, path.narHash));
}

/**
 * Pulls the NAR with this NarHash (`sha256:` + nix32), if this process answered a narinfo naming
 * it from an upstream: for a substituter, which asks for its chunk list before anything else.
 * False when this process knows of no such path.
 */
export async function pullByNarHash(nw: Narwhal, cache: CacheRecord, narHash: string): Promise<boolean> {
  const hashPart = narNames.get(nw)?.get(`${cache.id}:${narHash}`);
  if (cache.upstreams.length === 0 || hashPart === undefined) return false;
  await pullWhole(nw, cache, hashPart);
  return true;
}
