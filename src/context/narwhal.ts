import { join } from 'node:path';
import { DEFAULT_ZSTD_LEVEL } from '../storage/chunk-codec.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import type { ChunkStore } from '../storage/chunk-store.ts';
import { defaultStorage, openMetadataStore, openChunkStore } from './backends.ts';
import { createCache } from '../tenancy/caches.ts';
import { IngestHolds } from './ingest-holds.ts';
import { TaskLimit } from '../runtime/task-limit.ts';
import { isNarwhalError } from '../errors.ts';

export interface NarwhalOptions {
  /** Largest uncompressed NAR accepted, in bytes: bounds decompression bombs. */
  maxNarSize: number;
  /** zstd level for new chunks. */
  zstdLevel: number;
}

export const DEFAULT_OPTIONS: NarwhalOptions = {
  maxNarSize: 64 * 1024 ** 3,
  zstdLevel: DEFAULT_ZSTD_LEVEL,
};

/** Everything a cache operation needs: the two stores and the settings. No HTTP in here. */
export interface Narwhal {
  meta: MetadataStore;
  chunks: ChunkStore;
  options: NarwhalOptions;
  /** What GC must spare for this process's running ingests. */
  holds: IngestHolds;
  /** NARs recompressed on the fly for their upload names: CPU-heavy, so only a few at once. */
  recompressions: TaskLimit;
}

/** Recompressions on the fly at once, and waiting beyond those (then 503). */
const RECOMPRESSIONS_RUNNING = 2;
const RECOMPRESSIONS_WAITING = 8;

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

export async function openNarwhal(config: OpenConfig): Promise<Narwhal> {
  const meta = await openMetadataStore(config.database ?? `sqlite:${join(config.dataDir, 'narwhal.sqlite')}`);
  const chunks = await openChunkStore(config.storage ?? defaultStorage(config.dataDir));
  const nw: Narwhal = {
    meta,
    chunks,
    options: { ...DEFAULT_OPTIONS, ...config.options },
    holds: new IngestHolds(meta),
    recompressions: new TaskLimit(RECOMPRESSIONS_RUNNING, RECOMPRESSIONS_WAITING, 'too many NARs are being recompressed; try again shortly'),
  };
  if (!(await meta.getCache(DEFAULT_CACHE))) {
    await createCache(nw, DEFAULT_CACHE, { isPublic: true }).catch((err: unknown) => {
      if (!isNarwhalError(err, 'conflict')) throw err; // another process created it meanwhile
    });
  }
  return nw;
}

export async function closeNarwhal(nw: Narwhal): Promise<void> {
  await nw.holds.close();
  await nw.chunks.close();
  await nw.meta.close();
}
