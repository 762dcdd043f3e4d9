import type { Narwhal } from '../context/narwhal.ts';
import { NarwhalError } from '../errors.ts';
import type { CacheRecord, TokenRecord } from '../metadata/metadata-store.ts';
import { chunkVisibility } from '../tenancy/nar-visibility.ts';

/** Chunk ids one query may ask about: bounds the work of a request (a few lookups an id). */
export const MAX_CHUNKS_ASKED = 4096;
const ID_BYTES = 32;

/**
 * Of the chunk ids asked about (32 bytes each, back to back), those a push through the cache
 * cannot count on (chunkVisibility), in the order asked: what the client must send. A chunk stored
 * only for caches the caller cannot read counts as missing, so the answer reveals nothing of them.
 */
export async function missingChunks(
  nw: Narwhal,
  cache: CacheRecord,
  token: TokenRecord | undefined,
  asked: Uint8Array,
): Promise<Uint8Array> {
  if (asked.length % ID_BYTES !== 0) throw new NarwhalError('bad-request', 'chunk ids are 32 bytes each');
  const count = asked.length / ID_BYTES;
  if (count > MAX_CHUNKS_ASKED) {
    throw new NarwhalError('too-large', `at most ${MAX_CHUNKS_ASKED} chunk ids per request, not ${count}`);
  }
  const ids = Array.from({ length: count }, (_, i) => asked.subarray(ID_BYTES * i, ID_BYTES * (i + 1)));
  const shown = chunkVisibility(nw, cache, token);
  const missing: Uint8Array[] = [];
  for (const id of ids) if (!(await shown(id))) missing.push(id);
  const out = new Uint8Array(ID_BYTES * missing.length);
  for (const [i, id] of missing.entries()) out.set(id, ID_BYTES * i);
  return out;
}
