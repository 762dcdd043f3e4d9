import type { Readable } from 'node:stream';
import { NarwhalError } from '../errors.ts';
import type { CacheRecord, NarRecord } from '../metadata/metadata-store.ts';
import { serializeNarinfo, type NarInfo } from '../nix/narinfo.ts';
import { openNarByHash, type NarRequest } from '../serving/nar-downloads.ts';
import { renderNarinfo, signedByCache } from '../serving/render-narinfo.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { pullCounters } from './pull-counters.ts';
import { runningPull, pullWhole, startPull } from './pull-nar.ts';
import { askUpstreams } from './upstream-narinfo.ts';

/** The URL, relative to the cache, under which a path's NAR is served plain, pulled first if need be. */
export function pulledNarUrl(hashPart: string): string {
  return `pull/${hashPart}.nar`;
}

/** Hash parts by NarHash (nix32) of narinfos answered from upstreams, so that a chunk list asked for can be pulled. */
const MAX_NAR_NAMES = 10_000;
const narNames = new WeakMap<Narwhal, Map<string, string>>();

/**
 * The narinfo of a path: as stored, or, for a cache with upstreams, as the first upstream that
 * has it signed it, naming the NAR under pulledNarUrl (served plain: NarHash is its FileHash).
 * Upstream signatures are kept, so clients keep trusting the upstream's key; the cache's own key
 * signs too.
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
  const info: NarInfo = {
    ...found.info,
    url: pulledNarUrl(hashPart),
    compression: 'none',
    fileHash: found.info.narHash,
    fileSize: found.info.narSize,
  };
  return serializeNarinfo(signedByCache(nw, cache, info));
}

/** What `pull/<hashPart>.nar` answers with: the stored NAR, or one being pulled as it arrives. */
export type PulledNar = { nar: NarRecord } | { pulling: Readable; narSize: number } | { head: number };

/**
 * The NAR of a path for `pull/<hashPart>.nar`: stored already, or pulled now from the first
 * upstream that has the path. Concurrent requests make one upstream fetch: the first reads along,
 * the others wait for it and are served what it stored. 'not-found' when no upstream has it or
 * the upstream fails before its NAR starts arriving; HEAD does not pull.
 */
export async function openPulledNar(nw: Narwhal, request: NarRequest, hashPart: string): Promise<PulledNar> {
  const { cache } = request;
  for (let attempt = 0; attempt < 2; attempt++) {
    const stored = await storedNar(nw, request, hashPart);
    if (stored) return { nar: stored };
    if (cache.upstreams.length === 0) break;
    const earlier = runningPull(nw, cache, hashPart);
    if (earlier) {
      await earlier.catch(() => undefined);
      continue;
    }
    const found = await askUpstreams(nw, cache, hashPart);
    if (!found) break;
    if (request.head) return { head: found.info.narSize };
    const pulling = await startPull(nw, cache, found);
    if (pulling) return { pulling, narSize: found.info.narSize };
  }
  throw new NarwhalError('not-found', 'no such NAR');
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
