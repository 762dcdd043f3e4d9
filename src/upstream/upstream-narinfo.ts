import { NarwhalError } from '../errors.ts';
import { compressionFromNarinfo, type Compression } from '../compression/compression.ts';
import type { CacheRecord } from '../metadata/metadata-store.ts';
import { NARINFO_MAX_BYTES, parseNarinfo, type NarInfo } from '../nix/narinfo.ts';
import { narinfoFingerprint, verifySignature } from '../nix/signing.ts';
import { parseStorePath } from '../nix/store-path.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { pullCounters } from './pull-counters.ts';
import { readLimited, upstreamGet } from './upstream-http.ts';

/** A path an upstream has, with a narinfo signed by one of the cache's upstream keys. */
export interface UpstreamPath {
  hashPart: string;
  info: NarInfo;
  /** Where its NAR is, and how that is compressed. */
  narUrl: URL;
  compression: Compression;
}

interface Remembered {
  found: UpstreamPath | undefined;
  until: number;
}

/** Answers remembered per process, at most (the oldest go first). */
const MAX_REMEMBERED = 10_000;
const remembered = new WeakMap<Narwhal, Map<string, Remembered>>();

/**
 * The first answer of the cache's upstreams, asked in order, for the path with this hash part:
 * a narinfo for that very path, signed by one of the cache's upstream keys, whose NAR lies on
 * the same upstream. An upstream that fails, times out, or answers something unusable is passed
 * over like one that lacks the path. Answers, found or not, are remembered for the negative TTL
 * (`upstreamNegativeMs`), so that a lookup storm does not become one on the upstreams.
 */
export async function askUpstreams(
  nw: Narwhal,
  cache: CacheRecord,
  hashPart: string,
): Promise<UpstreamPath | undefined> {
  let memo = remembered.get(nw);
  if (!memo) remembered.set(nw, (memo = new Map()));
  const key = `${cache.id}:${hashPart}`;
  const known = memo.get(key);
  if (known && known.until > Date.now()) return known.found;
  let found: UpstreamPath | undefined;
  for (const upstream of cache.upstreams) {
    found = await askOne(nw, cache, upstream, hashPart).catch(() => undefined);
    if (found) break;
  }
  memo.delete(key);
  if (memo.size >= MAX_REMEMBERED) memo.delete(memo.keys().next().value!);
  memo.set(key, { found, until: Date.now() + nw.options.upstreamNegativeMs });
  return found;
}

/** Forgets the answer about this path, so that the next lookup asks the upstreams again. */
export function forgetUpstreamAnswer(nw: Narwhal, cache: CacheRecord, hashPart: string): void {
  remembered.get(nw)?.delete(`${cache.id}:${hashPart}`);
}

async function askOne(
  nw: Narwhal,
  cache: CacheRecord,
  upstream: string,
  hashPart: string,
): Promise<UpstreamPath | undefined> {
  const answer = await upstreamGet(nw, new URL(`${upstream}/${hashPart}.narinfo`));
  if (!answer.body) return undefined;
  const counters = pullCounters(nw);
  try {
    const info = parseNarinfo((await readLimited(answer.body, NARINFO_MAX_BYTES)).toString('utf8'));
    if (parseStorePath(info.storePath, 'bad-narinfo').hashPart !== hashPart) {
      throw new NarwhalError('bad-narinfo', 'the narinfo is for another path');
    }
    const fingerprint = narinfoFingerprint(info);
    if (!info.sigs.some((sig) => verifySignature(fingerprint, sig, cache.upstreamKeys))) {
      throw new NarwhalError('forbidden', 'no signature by a trusted upstream key');
    }
    const compression = compressionFromNarinfo(info.compression);
    if (!compression) throw new NarwhalError('bad-narinfo', `unknown compression ${info.compression}`);
    // The NAR is fetched only from the upstream itself: a narinfo cannot send this server elsewhere.
    const base = new URL(`${upstream}/`);
    const narUrl = new URL(info.url, base);
    if (narUrl.origin !== base.origin || !narUrl.pathname.startsWith(base.pathname)) {
      throw new NarwhalError('bad-narinfo', 'the NAR URL leaves the upstream');
    }
    return { hashPart, info, narUrl, compression };
  } catch (err) {
    counters.upstreamErrors++;
    throw err;
  }
}
