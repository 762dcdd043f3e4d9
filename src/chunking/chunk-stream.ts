import { DEFAULT_CHUNKER_PARAMS, type ChunkerParams } from './chunker.ts';
import { WASM_BLOCK_BYTES, WasmChunker } from './wasm-chunker.ts';

/**
 * Splits a byte stream into casync chunks. Each yielded chunk is a fresh Uint8Array owned by the
 * consumer (never a view of an input buffer, so sources may reuse their buffers); the last chunk
 * may be shorter than min; an empty stream yields nothing. Buffers at most one max-size chunk.
 */
export async function* chunkStream(
  source: AsyncIterable<Uint8Array>,
  params: ChunkerParams = DEFAULT_CHUNKER_PARAMS,
): AsyncGenerator<Uint8Array> {
  for await (const view of chunkViews(source, params)) yield new Uint8Array(view);
}

/**
 * The chunks as views, of the source's buffer or of one kept here, valid only until the next one
 * is asked for (nor may the source reuse its buffer before that).
 */
async function* chunkViews(
  source: AsyncIterable<Uint8Array>,
  params: ChunkerParams = DEFAULT_CHUNKER_PARAMS,
): AsyncGenerator<Uint8Array> {
  const chunker = new WasmChunker(params);
  const pending = new Uint8Array(chunker.params.max);
  let pendingLength = 0;
  for await (const data of source) {
    for (let at = 0; at < data.length; at += WASM_BLOCK_BYTES) {
      const block = data.subarray(at, at + WASM_BLOCK_BYTES);
      let pos = 0;
      for (const cut of chunker.cuts(block)) {
        if (pendingLength === 0) {
          yield block.subarray(pos, cut);
        } else {
          pending.set(block.subarray(pos, cut), pendingLength);
          const length = pendingLength + cut - pos;
          pendingLength = 0;
          yield pending.subarray(0, length);
        }
        pos = cut;
      }
      pending.set(block.subarray(pos), pendingLength);
      pendingLength += block.length - pos;
    }
  }
  if (pendingLength > 0) yield pending.subarray(0, pendingLength);
}
