/**
 * A NAR's chunk list, stored as the caibx table body: per chunk a u64 LE cumulative end offset
 * followed by the 32-byte chunk id (40 bytes an entry).
 */
export const CHUNK_ENTRY_SIZE = 40;

export class ChunkTableBuilder {
  #parts: Buffer[] = [];
  #current = Buffer.allocUnsafe(CHUNK_ENTRY_SIZE * 1024);
  #used = 0;
  count = 0;

  add(end: number, id: Uint8Array): void {
    if (this.#used === this.#current.length) {
      this.#parts.push(this.#current);
      this.#current = Buffer.allocUnsafe(this.#current.length);
      this.#used = 0;
    }
    this.#current.writeBigUInt64LE(BigInt(end), this.#used);
    this.#current.set(id, this.#used + 8);
    this.#used += CHUNK_ENTRY_SIZE;
    this.count++;
  }

  finish(): Uint8Array {
    return Buffer.concat([...this.#parts, this.#current.subarray(0, this.#used)]);
  }
}

export interface ChunkTableEntry {
  index: number;
  start: number;
  end: number;
  id: Uint8Array;
}

export function chunkCount(table: Uint8Array): number {
  return table.length / CHUNK_ENTRY_SIZE;
}

export function chunkEntry(table: Uint8Array, index: number): ChunkTableEntry {
  const view = Buffer.from(table.buffer, table.byteOffset, table.byteLength);
  const at = index * CHUNK_ENTRY_SIZE;
  const start = index === 0 ? 0 : Number(view.readBigUInt64LE(at - CHUNK_ENTRY_SIZE));
  const end = Number(view.readBigUInt64LE(at));
  return { index, start, end, id: view.subarray(at + 8, at + CHUNK_ENTRY_SIZE) };
}

/** The index of the chunk that holds byte `offset` (binary search over end offsets). */
export function chunkIndexAt(table: Uint8Array, offset: number): number {
  let low = 0;
  let high = chunkCount(table) - 1;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (chunkEntry(table, mid).end <= offset) low = mid + 1;
    else high = mid;
  }
  return low;
}

export function* chunkEntries(table: Uint8Array, from = 0): Generator<ChunkTableEntry> {
  const count = chunkCount(table);
  for (let i = from; i < count; i++) yield chunkEntry(table, i);
}
