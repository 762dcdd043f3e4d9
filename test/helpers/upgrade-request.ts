import { chunkEntries } from '../../src/chunking/chunk-table.ts';
import type { NarRecord } from '../../src/metadata/metadata-store.ts';
import type { WantedChunk } from '../../src/serving/chunk-frames-body.ts';
import { hintsAround, PlaceMap } from '../../src/serving/place-hints.ts';
import { hex } from './nar-chunks.ts';

/** What a substituter holding `from` asks for to assemble `to`: the chunks it lacks, hinted by place. */
export function upgradeRequest(from: NarRecord, to: NarRecord): WantedChunk[] {
  const old = [...chunkEntries(from.chunkTable)];
  const held = new Set(old.map((e) => hex(e.id)));
  const placed = (entries: { id: Uint8Array; end: number }[]) => entries.map((e) => ({ key: hex(e.id), end: e.end }));
  const places = new PlaceMap(placed(old), placed([...chunkEntries(to.chunkTable)]));
  return [...chunkEntries(to.chunkTable)]
    .filter((e) => !held.has(hex(e.id)))
    .map((e) => ({
      id: e.id,
      hints: hintsAround(old.length, (i) => old[i].end, places.place(e.start)).map((i) => old[i].id),
    }));
}
