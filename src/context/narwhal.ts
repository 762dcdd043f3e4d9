import { DEFAULT_ZSTD_LEVEL } from '../storage/chunk-codec.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import type { ChunkStore } from '../storage/chunk-store.ts';
import { IngestHolds } from './ingest-holds.ts';
import { TaskLimit } from '../runtime/task-limit.ts';
import { Memos } from './memos.ts';
import { NarwhalMetrics } from '../metrics/narwhal-metrics.ts';

export interface NarwhalOptions {
  /** Largest uncompressed NAR accepted, in bytes: bounds decompression bombs. */
  maxNarSize: number;
  /** zstd level for new chunks. */
  zstdLevel: number;
  /** An upstream that sends nothing for this long is given up on (src/upstream/). */
  upstreamTimeoutMs: number;
  /** How long an upstream's "no such path" (or failure) is remembered before asking again. */
  upstreamNegativeMs: number;
  /** A netrc file with credentials for upstreams (machine, login, password). */
  netrcFile?: string;
  /** The data dir, where a process keeps files of its own beside the stores (serving/prepared-deltas.ts). */
  dataDir?: string;
  /** Bytes of upgrade deltas prepared ahead kept on disk under the data dir at most. */
  upgradeDeltaBytes: number;
}

export const DEFAULT_OPTIONS: NarwhalOptions = {
  maxNarSize: 64 * 1024 ** 3,
  zstdLevel: DEFAULT_ZSTD_LEVEL,
  upstreamTimeoutMs: 10_000,
  upstreamNegativeMs: 60_000,
  upgradeDeltaBytes: 1024 ** 3,
};

/** Everything an operation needs: the two stores, the settings and this process's state beside them. No HTTP in here. */
export interface Narwhal {
  meta: MetadataStore;
  chunks: ChunkStore;
  options: NarwhalOptions;
  /** What GC must spare for this process's running ingests. */
  holds: IngestHolds;
  /** NARs recompressed on the fly for their upload names: CPU-heavy, so only a few at once. */
  recompressions: TaskLimit;
  /** What this process remembers between requests (memos.ts). */
  memos: Memos;
  /** This process's figures, which `/metrics` answers (src/metrics). */
  metrics: NarwhalMetrics;
}

/** Recompressions on the fly at once, and waiting beyond those (then 503). */
const RECOMPRESSIONS_RUNNING = 2;
const RECOMPRESSIONS_WAITING = 8;

/**
 * The context over two open stores, with fresh in-memory state. tenancy/open-narwhal.ts opens the
 * stores and makes the default cache; tests and tools that hold stores already call this directly.
 */
export function createNarwhal(meta: MetadataStore, chunks: ChunkStore, options: Partial<NarwhalOptions> = {}): Narwhal {
  const metrics = new NarwhalMetrics();
  metrics.watchStore(() => meta.stats());
  return {
    meta,
    chunks,
    options: { ...DEFAULT_OPTIONS, ...options },
    holds: new IngestHolds(meta),
    recompressions: new TaskLimit(
      RECOMPRESSIONS_RUNNING,
      RECOMPRESSIONS_WAITING,
      'too many NARs are being recompressed; try again shortly',
    ),
    memos: new Memos(),
    metrics,
  };
}

export async function closeNarwhal(nw: Narwhal): Promise<void> {
  await nw.holds.close();
  await nw.chunks.close();
  await nw.meta.close();
}
