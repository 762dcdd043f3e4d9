import type { DeltaCandidate } from '../metadata/metadata-store.ts';
import { MAX_DELTA_DEPTH } from '../serving/chunk-content.ts';
import type { Narwhal } from '../context/narwhal.ts';

/**
 * The bases a chunk may be stored as a delta of (docs/storage.md, 'Delta storage'), each option a
 * list of base ids in dictionary order:
 * - by sketch: the one chunk sharing most super-features with it (then the newest);
 * - by place: the chunks of its package's next NAR at the same relative offset as the chunk in
 *   its own NAR, PLACE_CHUNKS of them around it (the study's "same place", which finds the bases
 *   of native code that sketches miss: relocated addresses change nearly every 32-byte window).
 * Every base is newer than the chunk (reverse deltas: no cycles), in use, not damaged, and keeps
 * the chunk's chain within MAX_DELTA_DEPTH. Lookups by index only.
 */

/** Similar chunks looked up per chunk. */
const SIMILAR = 8;
/** Chunks of the next NAR in a place dictionary (the study: 5 beat 1 and 3 on every series). */
export const PLACE_CHUNKS = 5;
/** Chunk tables kept between lookups: the chunks of a batch come from few NARs. */
const TABLES_KEPT = 8;
/** Bytes per chunk table entry: u64 end offset, then the 32-byte id (NarRecord.chunkTable). */
const ENTRY_BYTES = 40;
/** NARs whose package is recorded per query (recordMissingPackages). */
const PACKAGE_PAGE = 256;

export type BaseOption = { by: 'sketch' | 'place'; bases: Uint8Array[] };

export class DeltaBases {
  readonly #nw: Narwhal;
  readonly #tables = new Map<number, Uint8Array | undefined>();

  constructor(nw: Narwhal) {
    this.#nw = nw;
  }

  /** The options for this chunk: none, one or both (a place option only if it differs from the sketch's). */
  async options(chunk: DeltaCandidate): Promise<BaseOption[]> {
    const room = MAX_DELTA_DEPTH - 1 - (await this.#nw.meta.deltaChain(chunk.id)).height;
    if (room < 0) return [];
    const out: BaseOption[] = [];
    const sketchBase = await this.#bySketch(chunk, room);
    if (sketchBase) out.push({ by: 'sketch', bases: [sketchBase] });
    const place = await this.#byPlace(chunk, room);
    if (place.length > 0 && !(place.length === 1 && sketchBase && sameId(place[0], sketchBase)))
      out.push({ by: 'place', bases: place });
    return out;
  }

  /** Of the chunks most like this one that may be its base, the one sharing most super-features, then the newest. */
  async #bySketch(chunk: DeltaCandidate, room: number): Promise<Uint8Array | undefined> {
    const options = [];
    for (const similar of await this.#nw.meta.similarChunks(chunk.sketch, SIMILAR)) {
      const record = await this.#nw.meta.getChunk(similar.id);
      if (record === undefined || !this.#mayBeBase(record, chunk)) continue;
      options.push({ record, matches: similar.matches });
    }
    options.sort((a, b) => b.matches - a.matches || b.record.createdAt - a.record.createdAt);
    for (const { record } of options) if (await this.#fits(record.id, room)) return record.id;
    return undefined;
  }

  /** The chunks of the package's next NAR around the chunk's relative place, those that may be its bases. */
  async #byPlace(chunk: DeltaCandidate, room: number): Promise<Uint8Array[]> {
    const place = await this.#nw.meta.chunkPlace(chunk.id);
    if (!place) return [];
    const own = await this.#table(place.nar.id);
    const next = await this.#table(place.next.id);
    if (!own || !next || next.length === 0) return [];
    const at = startOf(own, chunk.id);
    if (at === undefined) return [];
    const centre = entryAt(next, Math.floor((at / Math.max(1, place.nar.narSize)) * place.next.narSize));
    const count = next.length / ENTRY_BYTES;
    const from = Math.max(0, Math.min(centre - (PLACE_CHUNKS >> 1), count - PLACE_CHUNKS));
    const bases: Uint8Array[] = [];
    for (let i = from; i < Math.min(count, from + PLACE_CHUNKS); i++) {
      const id = next.subarray(i * ENTRY_BYTES + 8, (i + 1) * ENTRY_BYTES);
      if (sameId(id, chunk.id) || bases.some((b) => sameId(b, id))) continue;
      const record = await this.#nw.meta.getChunk(id);
      if (record === undefined || !this.#mayBeBase(record, chunk) || !(await this.#fits(id, room))) continue;
      bases.push(id.slice());
    }
    return bases;
  }

  #mayBeBase(
    record: { createdAt: number; unreferencedSince: number | null; damagedAt: number | null },
    chunk: DeltaCandidate,
  ): boolean {
    return record.createdAt > chunk.createdAt && record.unreferencedSince === null && record.damagedAt === null;
  }

  /** The base's own chain leaves room for the chunk's (`room`: deltas the chunk's chain may still add below it). */
  async #fits(base: Uint8Array, room: number): Promise<boolean> {
    return (await this.#nw.meta.deltaChain(base)).depth <= room;
  }

  async #table(narId: number): Promise<Uint8Array | undefined> {
    if (this.#tables.has(narId)) return this.#tables.get(narId);
    const table = await this.#nw.meta.narChunkTable(narId);
    if (this.#tables.size >= TABLES_KEPT) this.#tables.delete(this.#tables.keys().next().value as number);
    this.#tables.set(narId, table);
    return table;
  }
}

/** Records the package of every NAR that a path names and that has none (a store made before packages were). */
export async function recordMissingPackages(nw: Narwhal): Promise<number> {
  let after = 0;
  let recorded = 0;
  for (;;) {
    const page = await nw.meta.narsWithoutPackage(after, PACKAGE_PAGE);
    if (page.length === 0) return recorded;
    after = page[page.length - 1].id;
    for (const nar of page) {
      if (nar.storePath === null) continue;
      await nw.meta.recordNarPackage(nar.id, nar.storePath);
      recorded++;
    }
  }
}

/** The offset in the NAR at which the chunk's first occurrence in the table starts. */
function startOf(table: Uint8Array, id: Uint8Array): number | undefined {
  const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
  let start = 0;
  for (let at = 0; at + ENTRY_BYTES <= table.length; at += ENTRY_BYTES) {
    if (sameId(table.subarray(at + 8, at + ENTRY_BYTES), id)) return start;
    start = Number(view.getBigUint64(at, true));
  }
  return undefined;
}

/** The index of the table entry that holds NAR offset `offset` (the last one if beyond). */
function entryAt(table: Uint8Array, offset: number): number {
  const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
  let lo = 0;
  let hi = table.length / ENTRY_BYTES - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (Number(view.getBigUint64(mid * ENTRY_BYTES, true)) > offset) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function sameId(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
