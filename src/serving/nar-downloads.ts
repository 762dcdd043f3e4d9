import { NarwhalError } from '../errors.ts';
import { compressionFromNarUrlSuffix, type Compression } from '../compression/compression.ts';
import type { CacheRecord, NarRecord, TokenRecord } from '../metadata/metadata-store.ts';
import { mayAccess } from '../tenancy/access.ts';
import { noteNarAccess } from './access-times.ts';
import { renderCaibx } from './casync-view.ts';
import { assertChunksPresent } from './nar-reader.ts';
import { readCheckedChunk } from './chunk-damage.ts';
import { encodeChunk } from '../storage/chunk-codec.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { findVisibleNar } from '../tenancy/nar-visibility.ts';

/**
 * What a request for `nar/...`, `.caibx` or a chunk file of a cache gets: the decisions about
 * who sees what, beneath HTTP. A NAR flagged damaged is absent, also for the HEAD before an
 * upload, so that a client pushing it again sends it (which repairs it). HEAD answers from
 * metadata alone; GET first makes sure every chunk is there and notes the access.
 */
export interface NarRequest {
  cache: CacheRecord;
  token: TokenRecord | undefined;
  head: boolean;
}

/** The NAR named `nar/<narhash>.nar<suffix>` (the names narinfos give): zstd frames or plain. */
export async function openNarByHash(nw: Narwhal, request: NarRequest, narHash: string): Promise<NarRecord | undefined> {
  const nar = await findVisibleNar(nw, request.cache, request.token, narHash);
  return nar && openFound(nw, request, nar);
}

/**
 * The NAR a client uploaded as `nar/<filehash>.nar<suffix>`, with the compression that name
 * stands for: a pushing Nix remembers the narinfo it wrote and later downloads that name expecting
 * that compression. Except for zstd (served as the stored frames) that means recompressing it on
 * the fly, which costs seconds of CPU per NAR: only callers who may push to the cache get it (the
 * Nix that pushed sends its credentials), and Narwhal.recompressions bounds how many run at once.
 */
export async function openNarByUploadName(
  nw: Narwhal,
  request: NarRequest,
  fileHash: string,
  suffix: string,
): Promise<{ nar: NarRecord; compression: Compression } | undefined> {
  // A bare `.nar` upload name is gzip: a plain upload's name is its NarHash (openNarByHash).
  const compression = suffix === '' ? 'gzip' : compressionFromNarUrlSuffix(suffix.slice(1));
  if (!compression) return undefined;
  if (compression !== 'zstd' && !mayAccess(request.token, request.cache, 'push')) return undefined;
  const uploaded = await nw.meta.getNarByUpload(fileHash, suffix);
  const nar = uploaded && (await openNarByHash(nw, request, uploaded.narHash));
  return nar && { nar, compression };
}

async function openFound(nw: Narwhal, { cache, head }: NarRequest, nar: NarRecord): Promise<NarRecord | undefined> {
  if (nar.damagedAt !== null) return undefined;
  if (!head) {
    await assertChunksPresent(nw, nar);
    await noteNarAccess(nw, cache, nar);
  }
  return nar;
}

/** The casync index of a NAR a path of this cache uses. */
export async function caibxOf(nw: Narwhal, cache: CacheRecord, narHash: string): Promise<Uint8Array> {
  const nar = await nw.meta.getNar(narHash);
  if (!nar || !(await nw.meta.cacheHasNar(cache.id, nar.id))) throw new NarwhalError('not-found', 'no such NAR');
  return renderCaibx(nar);
}

/**
 * A chunk file (its size alone for HEAD), when a NAR a path of this cache uses contains it: as
 * stored when that is a plain zstd frame; a chunk stored as a delta is decoded with its bases,
 * checked, and compressed as a frame of its own at level 1, since casync knows no dictionaries.
 */
export async function chunkFileOf(
  nw: Narwhal,
  cache: CacheRecord,
  id: Uint8Array,
  head: boolean,
): Promise<Uint8Array | number> {
  if (!(await nw.meta.cacheHasChunk(cache.id, id))) throw new NarwhalError('not-found', 'no such chunk');
  const record = await nw.meta.getChunk(id);
  if (record?.encoding === 'delta') {
    const { data } = await readCheckedChunk(nw, { index: 0, id, start: 0, end: record.size }, true).catch(
      notFoundIfMissing,
    );
    const frame = await encodeChunk(data!, CASYNC_DELTA_LEVEL);
    return head ? frame.length : frame;
  }
  const stored = head ? await nw.chunks.storedSize(id) : await nw.chunks.get(id).catch(notFoundIfMissing);
  if (stored === undefined) throw new NarwhalError('not-found', 'no such chunk');
  return stored;
}

/** The level a delta chunk is compressed at for casync: fast, as it is done per request. */
const CASYNC_DELTA_LEVEL = 1;

function notFoundIfMissing(err: unknown): never {
  if (err instanceof NarwhalError && err.code === 'chunk-missing') throw new NarwhalError('not-found', 'no such chunk');
  throw err;
}
