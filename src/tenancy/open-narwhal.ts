import { join } from 'node:path';
import { isNarwhalError } from '../errors.ts';
import { defaultStorage, openChunkStore, openMetadataStore } from '../context/backends.ts';
import { createNarwhal, type Narwhal, type NarwhalOptions } from '../context/narwhal.ts';
import { createCache } from './caches.ts';

export interface OpenConfig {
  dataDir: string;
  /** `sqlite:PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`; defaults to `sqlite:<dataDir>/narwhal.sqlite`. */
  database?: string;
  /** `pack:DIR`, a directory or `s3://BUCKET/PREFIX?...` (see storage-url.ts); defaults to defaultStorage(dataDir). */
  storage?: string;
  options?: Partial<NarwhalOptions>;
}

/** Created public on first start, so a fresh server is usable at once. */
export const DEFAULT_CACHE = 'main';

/** Opens the stores a config names, builds the context over them, and makes the default cache if there is none. */
export async function openNarwhal(config: OpenConfig): Promise<Narwhal> {
  const meta = await openMetadataStore(config.database ?? `sqlite:${join(config.dataDir, 'narwhal.sqlite')}`);
  const chunks = await openChunkStore(config.storage ?? defaultStorage(config.dataDir));
  const nw = createNarwhal(meta, chunks, { dataDir: config.dataDir, ...config.options });
  if (!(await meta.getCache(DEFAULT_CACHE))) {
    await createCache(nw, DEFAULT_CACHE, { isPublic: true }).catch((err: unknown) => {
      if (!isNarwhalError(err, 'conflict')) throw err; // another process created it meanwhile
    });
  }
  return nw;
}
