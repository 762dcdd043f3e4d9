import { serializeNarinfo } from '../nix/narinfo.ts';
import type { CacheRecord } from '../metadata/metadata-store.ts';
import type { Narwhal } from './narwhal.ts';

/** The URL, relative to the cache, under which a NAR is served as back-to-back stored zstd frames. */
export function narUrl(narHash: string): string {
  return `nar/${narHash.slice('sha256:'.length)}.nar.zst`;
}

/**
 * The narinfo as served: it names what this server serves (zstd frames, their total size) and
 * carries the signatures uploaded with it. FileHash is omitted: it is optional, and computing it
 * would mean reading every chunk.
 */
export async function renderNarinfo(nw: Narwhal, cache: CacheRecord, hashPart: string): Promise<string | undefined> {
  const path = await nw.meta.getPath(cache.id, hashPart);
  if (!path) return undefined;
  const nar = await nw.meta.getNar(path.narHash);
  if (!nar) return undefined;
  return serializeNarinfo({
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
  });
}
