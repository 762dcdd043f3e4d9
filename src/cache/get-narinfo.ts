import { serializeNarinfo, type NarInfo } from '../nix/narinfo.ts';
import { narinfoFingerprint, parseSecretKey, signFingerprint, type SecretKey } from '../nix/signing.ts';
import type { CacheRecord } from '../metadata/metadata-store.ts';
import type { Narwhal } from './narwhal.ts';

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
  const path = await nw.meta.getPath(cache.id, hashPart);
  if (!path) return undefined;
  const nar = await nw.meta.getNar(path.narHash);
  if (!nar) return undefined;
  const info: NarInfo = {
    storePath: path.storePath,
    url: narUrl(nar.narHash),
    compression: 'zstd',
    fileSize: nar.storedSize,
    narHash: nar.narHash,
    narSize: nar.narSize,
    references: path.references,
    deriver: path.deriver ?? undefined,
    system: path.system ?? undefined,
    sigs: path.sigs,
    ca: path.ca ?? undefined,
  };
  const key = signingKey(cache.signingKey);
  const own = signFingerprint(narinfoFingerprint(info), key);
  info.sigs = [...path.sigs.filter((sig) => !sig.startsWith(`${key.name}:`)), own];
  return serializeNarinfo(info);
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
