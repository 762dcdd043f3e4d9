import { readFileSync } from 'node:fs';
import { GEAR } from './resemblance.ts';

interface AnchorExports {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  scan(at: number, length: number, out: number, mask: number): number;
}

/** The part of the WebAssembly global used here (TypeScript declares it only in its DOM library). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const { WebAssembly } = globalThis as unknown as { WebAssembly: WebAssemblyApi };

const MODULE = new WebAssembly.Module(readFileSync(new URL('./gear-anchors.wasm', import.meta.url)));
/** Where a block starts in memory: after the table. */
const BLOCK_AT = 1024;
const PAGE_BYTES = 65536;

/**
 * The anchors of blocks of bytes (gear-anchors.wat): each position from 31 on where the gear hash
 * of resemblance.ts, started at 0 at the block's start, has the bits of `mask` zero. One instance
 * per user; its memory grows to the largest block scanned.
 */
export class GearAnchors {
  readonly #exports: AnchorExports;
  readonly #mask: number;
  #room = 0;
  #memory!: Uint8Array;
  #words!: Int32Array;

  constructor(mask: number) {
    this.#exports = new WebAssembly.Instance(MODULE, {}).exports as unknown as AnchorExports;
    this.#mask = mask;
    this.#fit(0);
    new Int32Array(this.#exports.memory.buffer, 0, 256).set(GEAR);
  }

  /**
   * Calls `found(hash, at)` for each anchor of `data` in order: the gear hash of the 32 bytes
   * ending at position `at`.
   */
  scan(data: Uint8Array, found: (hash: number, at: number) => void): void {
    this.#fit(data.length);
    this.#memory.set(data, BLOCK_AT);
    const out = BLOCK_AT + this.#room;
    const count = this.#exports.scan(BLOCK_AT, data.length, out, this.#mask);
    const words = this.#words;
    for (let i = 0, w = out >> 2; i < count; i++, w += 2) found(words[w], words[w + 1]);
  }

  /** Room for a block of `length` bytes and the most anchors it can have (two words per byte). */
  #fit(length: number): void {
    if (length <= this.#room && this.#memory) return;
    // A multiple of 8: the anchors that follow the block are read as aligned words.
    const room = Math.ceil(Math.max(length, 256 * 1024) / 8) * 8;
    const needed = BLOCK_AT + room + 8 * room;
    const { memory } = this.#exports;
    const pages = Math.ceil(needed / PAGE_BYTES) - memory.buffer.byteLength / PAGE_BYTES;
    if (pages > 0) memory.grow(pages);
    this.#room = room;
    this.#memory = new Uint8Array(memory.buffer);
    this.#words = new Int32Array(memory.buffer);
  }
}
