import { serializeNarinfo, type NarInfo } from '../nix/narinfo.ts';
import { narinfoFingerprint } from '../nix/signing.ts';
import type { CacheRecord, PathRecord } from '../metadata/metadata-store.ts';
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
  // Kept a few seconds (context/memos.ts NarinfoTexts says why); re-pushes, deletions and damage drop it.
  return nw.memos.narinfos.find(cache.id, hashPart, cache.signingKey, () => render(nw, cache, hashPart));
}

async function render(nw: Narwhal, cache: CacheRecord, hashPart: string): Promise<string | undefined> {
  const path = await nw.meta.getPath(cache.id, hashPart);
  // A damaged NAR is not offered: the client falls back to another substituter until a
  // re-upload of the NAR repairs it.
  if (!path || path.narDamaged) return undefined;
  await notePathAccess(nw, path);
  return serializeNarinfo(servedNarinfo(nw, cache, path));
}

/** The narinfo a path is served with, signatures included, without counting as an access (the web UI shows it). */
export function servedNarinfo(nw: Narwhal, cache: CacheRecord, path: PathRecord): NarInfo {
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
  return signedByCache(nw, cache, info);
}

/** The narinfo with the cache's own signature in place of any earlier one by the same key name. */
export function signedByCache(nw: Narwhal, cache: CacheRecord, info: NarInfo): NarInfo {
  const secretKey = nw.memos.signingKeys.parse(cache.signingKey);
  const own = nw.memos.signatures.sign(narinfoFingerprint(info), cache.signingKey, secretKey);
  return { ...info, sigs: [...info.sigs.filter((sig) => !sig.startsWith(`${secretKey.name}:`)), own] };
}
