import { NarwhalError } from '../errors.ts';
import type { CacheFile, CacheRecord } from '../metadata/metadata-store.ts';
import type { Narwhal } from './narwhal.ts';

/** Largest build log, listing, realisation or debuginfo file accepted. */
export const MAX_CACHE_FILE_SIZE = 64 * 1024 * 1024;

/**
 * Build logs (`log/<drv>`), NAR listings (`<hash>.ls`), realisations (`realisations/...doi`,
 * `build-trace-v2/.../<out>.doi`) and debuginfo links: small files stored as uploaded, with the
 * Content-Type and Content-Encoding the client gave, and served back the same way.
 */
export async function putCacheFile(nw: Narwhal, cache: CacheRecord, name: string, file: CacheFile): Promise<void> {
  if (file.content.length > MAX_CACHE_FILE_SIZE) {
    throw new NarwhalError('too-large', `${name} is larger than ${MAX_CACHE_FILE_SIZE} bytes`);
  }
  if (name.endsWith('.doi') || name.endsWith('.debug')) checkJson(name, file);
  await nw.meta.putFile(cache.id, name, file);
}

export async function getCacheFile(nw: Narwhal, cache: CacheRecord, name: string): Promise<CacheFile | undefined> {
  return nw.meta.getFile(cache.id, name);
}

function checkJson(name: string, file: CacheFile): void {
  if (file.contentEncoding !== null && file.contentEncoding !== 'identity') return;
  try {
    JSON.parse(Buffer.from(file.content).toString('utf8'));
  } catch {
    throw new NarwhalError('bad-request', `${name} must be a JSON document`);
  }
}
