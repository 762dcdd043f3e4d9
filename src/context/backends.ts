import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NarwhalError } from '../errors.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import { SqliteMetadata } from '../metadata/sqlite-metadata.ts';
import type { ChunkStore } from '../storage/chunk-store.ts';
import { LocalChunkStore } from '../storage/local-chunk-store.ts';
import { PackChunkStore } from '../storage/pack-chunk-store.ts';
import { parseStorageUrl } from '../storage/storage-url.ts';

/** The one place a metadata backend is picked, from its URL. */
export async function openMetadataStore(url: string): Promise<MetadataStore> {
  if (url.startsWith('sqlite:')) return new SqliteMetadata(resolve(url.slice('sqlite:'.length)));
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    // Loaded only when used, like the S3 store: most deployments never need pg.
    const { PostgresMetadata } = await import('../metadata/postgres-metadata.ts');
    return PostgresMetadata.open(url);
  }
  throw new NarwhalError(
    'bad-request',
    `unsupported database URL (expected sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB)`,
  );
}

/**
 * The one place a chunk store backend is picked, from its URL or path (see storage-url.ts):
 * `pack:DIR`, a directory, or `s3://BUCKET/PREFIX?endpoint=URL&region=R&path-style=1`.
 */
export async function openChunkStore(url: string): Promise<ChunkStore> {
  const location = parseStorageUrl(url);
  if (location.kind === 's3') {
    // Loaded only when used: the AWS SDK slows every start (docs/benchmarks.md, 'Start-up').
    const { openS3ChunkStore } = await import('../storage/s3-chunk-store.ts');
    return openS3ChunkStore(location);
  }
  if (location.kind === 'pack') return new PackChunkStore(resolve(location.path));
  return new LocalChunkStore(resolve(location.path));
}

/**
 * The chunk store of a data dir without --storage: the pack store `DIR/chunks`, unless the data
 * dir has the castr directory that versions before the pack store used (kept as it is).
 */
export function defaultStorage(dataDir: string): string {
  const castr = join(dataDir, 'castr');
  return existsSync(castr) ? castr : `pack:${join(dataDir, 'chunks')}`;
}
