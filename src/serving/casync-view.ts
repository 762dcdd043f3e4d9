import { CASYNC_BLOB_FLAGS_SHA256, encodeCaibx } from '../storage/caibx.ts';
import type { NarRecord } from '../metadata/metadata-store.ts';
import { DEFAULT_CHUNKER_PARAMS } from '../chunking/chunker.ts';
import { chunkEntries } from '../chunking/chunk-table.ts';

/** The NAR as a casync index over the chunk store's castr layout. */
export function renderCaibx(nar: NarRecord): Uint8Array {
  return encodeCaibx({
    // What `casync make --digest=sha256` writes for a blob index: SHA512_256 clear.
    featureFlags: CASYNC_BLOB_FLAGS_SHA256,
    chunkSizeMin: DEFAULT_CHUNKER_PARAMS.min,
    chunkSizeAvg: DEFAULT_CHUNKER_PARAMS.avg,
    chunkSizeMax: DEFAULT_CHUNKER_PARAMS.max,
    chunks: [...chunkEntries(nar.chunkTable)].map(({ end, id }) => ({ end, id })),
  });
}
