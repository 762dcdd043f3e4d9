import { ChunkTableBuilder } from '../chunking/chunk-table.ts';
import type { Narwhal } from '../context/narwhal.ts';
import type { NarRecord, NewChunk, NewNar } from '../metadata/metadata-store.ts';

/**
 * A NAR's chunks as an ingest meets them, in order: its chunk table, and each distinct chunk
 * once (the record its write fills in). Shared by an upload chunked here (ingest-nar.ts) and one
 * given as its chunk list (src/push/commit-chunk-list.ts).
 */
export class IngestedChunks {
  readonly #table = new ChunkTableBuilder();
  readonly #distinct = new Map<string, NewChunk>();
  readonly #sequence: NewChunk[] = [];
  #end = 0;

  /** The NAR's next chunk; `chunk` is new when it is the first of its id in the NAR (it is then to be written). */
  add(id: Uint8Array, size: number): { chunk: NewChunk; first: boolean } {
    this.#end += size;
    this.#table.add(this.#end, id);
    const key = Buffer.from(id.buffer, id.byteOffset, id.length).toString('hex');
    let chunk = this.#distinct.get(key);
    const first = chunk === undefined;
    if (!chunk) {
      chunk = { id, size, storedSize: 0 };
      this.#distinct.set(key, chunk);
    }
    this.#sequence.push(chunk);
    return { chunk, first };
  }

  /** The bytes of the chunks so far. */
  get narSize(): number {
    return this.#end;
  }

  /** The NAR record's fields from its chunks, once every write has settled (their stored sizes are known). */
  nar(): Pick<NewNar, 'storedSize' | 'chunkTable' | 'chunks'> {
    return {
      storedSize: this.#sequence.reduce((sum, chunk) => sum + chunk.storedSize, 0),
      chunkTable: this.#table.finish(),
      chunks: [...this.#distinct.values()],
    };
  }
}

/**
 * Commits a NAR whose chunks are all written and whose checks passed: the chunks are made durable
 * first (a crash before the record leaves orphans that GC collects, never a NAR missing chunks),
 * then the record, then the ingest is counted in the metrics.
 */
export async function commitIngestedNar(
  nw: Narwhal,
  chunks: IngestedChunks,
  nar: Omit<NewNar, 'storedSize' | 'chunkTable' | 'chunks'> & { ingestStartedAt: number },
): Promise<NarRecord> {
  await nw.chunks.flush();
  const fields = chunks.nar();
  const record = await nw.meta.commitNar({ ...nar, ...fields });
  recordIngest(nw, record, nar.ingestStartedAt, fields.chunks);
  return record;
}

function recordIngest(nw: Narwhal, nar: NarRecord, startedAt: number, chunks: Iterable<NewChunk>): void {
  const figures = { newChunks: 0, newChunkBytes: 0, reusedChunks: 0, reusedChunkBytes: 0 };
  for (const chunk of chunks) {
    if (chunk.written) {
      figures.newChunks++;
      figures.newChunkBytes += chunk.size;
    } else {
      figures.reusedChunks++;
      figures.reusedChunkBytes += chunk.size;
    }
  }
  // A NAR made before this ingest began was stored already (commitNar kept the record).
  nw.metrics.recordIngest({ narNew: nar.createdAt >= startedAt, narBytes: nar.narSize, ...figures });
}
