import { getCacheInfo, putCacheInfo } from './handlers/cache-info.ts';
import { getFile, putFile } from './handlers/cache-file.ts';
import { getNarinfo, putNarinfo } from './handlers/narinfo.ts';
import { getCaibx, getChunk, getNar, getPulledNar, putNar } from './handlers/nar.ts';
import type { Handler } from './request-context.ts';
import { postChunkFrames } from './handlers/chunk-frames.ts';

export interface Route {
  /** What metrics and logs call it: a fixed word, never part of the path. */
  name: string;
  /** Matched against the path below `/<cache>/`, percent-escapes left as sent. */
  pattern: RegExp;
  /** Serves GET and HEAD. */
  get?: Handler;
  put?: Handler;
  /** Serves POST, under the same access rule as GET. */
  post?: Handler;
}

const NIX32 = '[0-9a-df-np-sv-z]';
const HASH_PART = `${NIX32}{32}`;
const STORE_NAME = '[A-Za-z0-9+\\-._?=]+';

/**
 * The binary cache protocol of one cache. Every name a route accepts is matched whole against a
 * strict pattern, so no request can name anything outside what the pattern allows (no `..`,
 * no encoded slashes). Routes whose last group is the whole file name store it as a cache file.
 */
export const CACHE_INFO_ROUTE: Route = {
  name: 'nix-cache-info',
  pattern: /^nix-cache-info$/,
  get: getCacheInfo,
  put: putCacheInfo,
};

export const CACHE_ROUTES: readonly Route[] = [
  CACHE_INFO_ROUTE,
  { name: 'narinfo', pattern: new RegExp(`^(${HASH_PART})\\.narinfo$`), get: getNarinfo, put: putNarinfo },
  {
    name: 'pull',
    pattern: new RegExp(`^pull/(${HASH_PART})\\.nar(\\.xz|\\.zst|\\.bz2|\\.br|\\.lz4|\\.gz|)$`),
    get: getPulledNar,
  },
  {
    name: 'nar',
    pattern: new RegExp(`^nar/(${NIX32}{52})\\.nar(\\.xz|\\.zst|\\.bz2|\\.br|\\.lz4|)$`),
    get: getNar,
    put: putNar,
  },
  { name: 'caibx', pattern: new RegExp(`^nar/(${NIX32}{52})\\.caibx$`), get: getCaibx },
  { name: 'chunk', pattern: /^castr\/([0-9a-f]{4})\/([0-9a-f]{64})\.cacnk$/, get: getChunk },
  { name: 'chunk-frames', pattern: /^chunk-frames$/, post: postChunkFrames },
  { name: 'listing', pattern: new RegExp(`^(${HASH_PART}\\.ls)$`), get: getFile, put: putFile },
  { name: 'log', pattern: new RegExp(`^(log/${HASH_PART}-${STORE_NAME})$`), get: getFile, put: putFile },
  {
    name: 'realisation',
    pattern: new RegExp(`^(realisations/sha256:[0-9a-f]{64}!${STORE_NAME}\\.doi)$`),
    get: getFile,
    put: putFile,
  },
  {
    name: 'build-trace',
    pattern: new RegExp(`^(build-trace-v2/${HASH_PART}-${STORE_NAME}\\.drv/${STORE_NAME}\\.doi)$`),
    get: getFile,
    put: putFile,
  },
  { name: 'debuginfo', pattern: /^(debuginfo\/[0-9a-f]{2,128}(?:\.debug)?)$/, get: getFile, put: putFile },
];

/** Undoes the escapes clients may apply to the characters realisation names contain. */
export function normalizeCachePath(path: string): string {
  return path.replace(/%3A/gi, ':').replace(/%21/g, '!');
}

export function matchRoute(path: string): { route: Route; params: string[] } | undefined {
  for (const route of CACHE_ROUTES) {
    const match = route.pattern.exec(path);
    if (match) return { route, params: match.slice(1) };
  }
  return undefined;
}
