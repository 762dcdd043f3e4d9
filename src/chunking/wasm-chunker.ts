import { readFileSync } from 'node:fs';
import { BUZHASH_TABLE } from './buzhash-table.ts';
import {
  CHUNKER_WINDOW_SIZE,
  DEFAULT_CHUNKER_PARAMS,
  TABLE_ROL16,
  chunkerDiscriminator,
  divisibilityTest,
  validateChunkerParams,
  type ChunkerParams,
} from './chunker.ts';

/** Bytes scanned per call: blocks are copied into the module's memory in pieces of this size. */
export const WASM_BLOCK_BYTES = 1024 * 1024;
/** Where a block starts in memory: after the two tables and the window before it. */
const BLOCK_AT = 4096;
const PAGE_BYTES = 65536;

interface ChunkerExports {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  configure(min: number, max: number, d: number, inverse: number, shift: number, limit: number): void;
  reset(): void;
  next(pos: number, end: number): number;
}

/** The part of the WebAssembly global used here (TypeScript declares it only in its DOM library). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const { WebAssembly } = globalThis as unknown as { WebAssembly: WebAssemblyApi };

const MODULE = new WebAssembly.Module(readFileSync(new URL('./buzhash-chunker.wasm', import.meta.url)));

/**
 * The chunker of chunker.ts running as WebAssembly (buzhash-chunker.wat): the same cut points,
 * faster (docs/benchmarks.md, 'Chunker'). Each block is copied into the module's memory once; the 48 bytes
 * before it stay just below it, so the rolling window reads across blocks without a copy of its own.
 */
export class WasmChunker {
  readonly params: Readonly<ChunkerParams>;
  readonly #exports: ChunkerExports;
  readonly #memory: Uint8Array;
  /** Length of the block now in memory (0 before the first). */
  #blockLength = 0;

  constructor(params: ChunkerParams = DEFAULT_CHUNKER_PARAMS) {
    validateChunkerParams(params);
    this.params = Object.freeze({ min: params.min, avg: params.avg, max: params.max });
    this.#exports = new WebAssembly.Instance(MODULE, {}).exports as unknown as ChunkerExports;
    const { memory } = this.#exports;
    memory.grow(Math.ceil((BLOCK_AT + WASM_BLOCK_BYTES) / PAGE_BYTES) - memory.buffer.byteLength / PAGE_BYTES);
    this.#memory = new Uint8Array(memory.buffer);
    const tables = new Uint32Array(memory.buffer, 0, 512);
    tables.set(BUZHASH_TABLE, 0);
    tables.set(TABLE_ROL16, 256);
    const d = chunkerDiscriminator(params);
    const test = divisibilityTest(d);
    this.#exports.configure(params.min, params.max, d, test.inverse, test.shift, test.limit);
  }

  /**
   * Continues the stream with `block` (at most WASM_BLOCK_BYTES) and returns the offsets in it just
   * after each cut, in order; bytes after the last cut belong to the next chunk.
   */
  cuts(block: Uint8Array): number[] {
    if (block.length > WASM_BLOCK_BYTES) throw new RangeError(`a block holds at most ${WASM_BLOCK_BYTES} bytes`);
    const memory = this.#memory;
    // The window's bytes before this block: the last 48 of the stream so far.
    const previous = this.#blockLength;
    if (previous >= CHUNKER_WINDOW_SIZE)
      memory.copyWithin(BLOCK_AT - CHUNKER_WINDOW_SIZE, BLOCK_AT + previous - CHUNKER_WINDOW_SIZE, BLOCK_AT + previous);
    else
      memory.copyWithin(BLOCK_AT - CHUNKER_WINDOW_SIZE, BLOCK_AT - CHUNKER_WINDOW_SIZE + previous, BLOCK_AT + previous);
    memory.set(block, BLOCK_AT);
    this.#blockLength = block.length;
    const cuts: number[] = [];
    const end = BLOCK_AT + block.length;
    for (let pos = BLOCK_AT, cut: number; (cut = this.#exports.next(pos, end)) !== 0; pos = cut)
      cuts.push(cut - BLOCK_AT);
    return cuts;
  }
}
