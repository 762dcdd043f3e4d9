import { serializeNarinfo, type NarInfo } from '../nix/narinfo.ts';
import { narinfoFingerprint, parseSecretKey, signFingerprint, type SecretKey } from '../nix/signing.ts';
import type { CacheRecord } from '../metadata/metadata-store.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { notePathAccess } from './access-times.ts';

/** The URL, relative to the cache, under which a NAR is served as back-to-back stored zstd frames. */
export function narUrl(narHash: string): string {
  return `nar/${narHash.slice('sha256:'.length)}.nar.zst`;
}

/**
 * The narinfo as served: it names what this server serves (zstd frames, their total size), and
 * carries the signatures uploaded with it plus the cache's own. FileHash is omitted: it is
 * optional, and computing it would mean reading every chunk.
 */
export async function renderNarinfo(nw: Narwhal, cache: CacheRecord, hashPart: string): Promise<string | undefined> {
  const recent = recentNarinfos(nw);
  const key = `${cache.id}/${hashPart}`;
  const now = Date.now();
  const hit = recent.get(key);
  if (hit && hit.until > now && hit.signingKey === cache.signingKey) return hit.text;
  const text = await render(nw, cache, hashPart);
  if (text !== undefined) {
    if (recent.size >= MAX_RECENT_NARINFOS) recent.delete(recent.keys().next().value!);
    recent.set(key, { text, signingKey: cache.signingKey, until: now + RECENT_NARINFO_TTL_MS });
  }
  return text;
}

/**
 * Served narinfos are kept for a few seconds: a lookup is then one map access instead of a
 * query, a signature and formatting (measured: 15k -> 31k lookups/s on one core). Only hits are
 * kept, so a new path is visible at once on every replica; changes made in this process (a
 * re-push, deletion, damage) call forgetNarinfo, other processes' within the TTL.
 */
const RECENT_NARINFO_TTL_MS = 5_000;
const MAX_RECENT_NARINFOS = 100_000;
const recentByNarwhal = new WeakMap<Narwhal, Map<string, { text: string; signingKey: string; until: number }>>();

function recentNarinfos(nw: Narwhal): Map<string, { text: string; signingKey: string; until: number }> {
  let recent = recentByNarwhal.get(nw);
  if (!recent) recentByNarwhal.set(nw, (recent = new Map()));
  return recent;
}

/** Drops kept narinfos: one path's, or (without hashPart) every one. */
export function forgetNarinfo(nw: Narwhal, cacheId?: number, hashPart?: string): void {
  if (cacheId === undefined || hashPart === undefined) recentByNarwhal.get(nw)?.clear();
  else recentByNarwhal.get(nw)?.delete(`${cacheId}/${hashPart}`);
}

async function render(nw: Narwhal, cache: CacheRecord, hashPart: string): Promise<string | undefined> {
  const path = await nw.meta.getPath(cache.id, hashPart);
  // A damaged NAR is not offered: the client falls back to another substituter until a
  // re-upload of the NAR repairs it.
  if (!path || path.narDamaged) return undefined;
  await notePathAccess(nw, path);
  const info: NarInfo = {
    storePath: path.storePath,
    url: narUrl(path.narHash),
    compression: 'zstd',
    fileSize: path.narStoredSize,
    narHash: path.narHash,
    narSize: path.narSize,
    references: path.references,
    deriver: path.deriver ?? undefined,
    system: path.system ?? undefined,
    sigs: path.sigs,
    ca: path.ca ?? undefined,
  };
  const secretKey = signingKey(cache.signingKey);
  const own = cachedSignature(narinfoFingerprint(info), cache.signingKey, secretKey);
  info.sigs = [...path.sigs.filter((sig) => !sig.startsWith(`${secretKey.name}:`)), own];
  return serializeNarinfo(info);
}

/** Signing costs ~50 µs, most of a narinfo lookup; a path's fingerprint never changes, so keep recent signatures. */
const signatures = new Map<string, string>();
const MAX_CACHED_SIGNATURES = 50_000;

function cachedSignature(fingerprint: string, keyText: string, key: SecretKey): string {
  const cacheKey = `${keyText}\n${fingerprint}`;
  let signature = signatures.get(cacheKey);
  if (signature === undefined) {
    signature = signFingerprint(fingerprint, key);
    if (signatures.size >= MAX_CACHED_SIGNATURES) signatures.delete(signatures.keys().next().value!);
    signatures.set(cacheKey, signature);
  }
  return signature;
}

const parsedKeys = new Map<string, SecretKey>();

/** Parsed keys are kept: parsing builds a KeyObject, which costs more than the signature itself. */
function signingKey(text: string): SecretKey {
  let key = parsedKeys.get(text);
  if (!key) {
    key = parseSecretKey(text);
    if (parsedKeys.size > 1000) parsedKeys.clear();
    parsedKeys.set(text, key);
  }
  return key;
}
