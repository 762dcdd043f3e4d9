import { resolve } from 'node:path';
import { NarwhalError } from '../errors.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import { SqliteMetadata } from '../metadata/sqlite-metadata.ts';
import type { ChunkStore } from '../storage/chunk-store.ts';
import { LocalChunkStore } from '../storage/local-chunk-store.ts';

/** The one place a metadata backend is picked, from its URL. */
export async function openMetadataStore(url: string): Promise<MetadataStore> {
  if (url.startsWith('sqlite:')) return new SqliteMetadata(resolve(url.slice('sqlite:'.length)));
  throw new NarwhalError('bad-request', `unsupported database URL: ${url} (expected sqlite:PATH)`);
}

/** The one place a chunk store backend is picked, from its URL or path. */
export async function openChunkStore(url: string): Promise<ChunkStore> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new NarwhalError('bad-request', `unsupported storage URL: ${url} (expected a directory)`);
  }
  return new LocalChunkStore(resolve(url));
}
