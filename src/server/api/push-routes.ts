import { NarwhalError } from '../../errors.ts';
import { CHUNK_LIST_VERSION, CHUNK_LIST_VERSION_HEADER } from '../../push/chunk-list-body.ts';
import { commitChunkList, MissingBasesError, MissingChunksError } from '../../push/commit-chunk-list.ts';
import { MAX_CHUNKS_ASKED, missingChunks } from '../../push/missing-chunks.ts';
import { requireCacheAccess } from '../../tenancy/access.ts';
import { findCache } from '../../tenancy/caches.ts';
import { chunkHex } from '../../storage/chunk-store.ts';
import { readBody, requestBody } from '../body.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Narwhal } from '../../context/narwhal.ts';
import type { TokenRecord } from '../../metadata/metadata-store.ts';
import { sendJson } from './send-json.ts';

/**
 * What `narwhal push` asks of a cache (docs/http-api.md, "Pushing by chunks"): which chunks it
 * lacks, and a NAR committed as a chunk list with those chunks sent along. Push permission on
 * the cache, as for PUT.
 */
export async function handlePushApi(
  nw: Narwhal,
  req: IncomingMessage,
  res: ServerResponse,
  token: TokenRecord | undefined,
  cacheName: string,
  what: string,
): Promise<boolean> {
  if (req.method !== 'POST' || (what !== 'missing-chunks' && what !== 'nars')) return false;
  const cache = await findCache(nw, cacheName);
  if (!cache) throw new NarwhalError('not-found', 'no such cache');
  requireCacheAccess(token, cache, 'push');
  if (what === 'missing-chunks') {
    const missing = await missingChunks(nw, cache, token, await readBody(req, 32 * MAX_CHUNKS_ASKED));
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': missing.length,
      [CHUNK_LIST_VERSION_HEADER]: CHUNK_LIST_VERSION,
    });
    res.end(missing);
    return true;
  }
  const query = new URL(req.url ?? '/', 'http://narwhal').searchParams;
  try {
    const nar = await commitChunkList(nw, cache, token, requestBody(req), {
      narHash: query.get('narHash') ?? '',
      narSize: Number(query.get('narSize') ?? ''),
    });
    sendJson(res, 201, { narHash: nar.narHash, narSize: nar.narSize });
  } catch (err) {
    if (err instanceof MissingBasesError) {
      sendJson(res, 409, { error: err.message, missingBases: err.ids.map(chunkHex) }, true);
      return true;
    }
    if (!(err instanceof MissingChunksError)) throw err;
    sendJson(res, 409, { error: err.message, missing: err.ids.map(chunkHex) }, true);
  }
  return true;
}
