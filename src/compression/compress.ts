import { createRequire } from 'node:module';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { NarwhalError } from '../errors.ts';
import { Bzip2Encoder } from './bzip2/bzip2-encoder.ts';
import type { Compression } from './compression.ts';
import { Lz4FrameEncoder } from './lz4/lz4-frame-encoder.ts';

/**
 * Streaming compression of NARs served on the fly, in each format a Nix client may have pushed
 * with. Settings favour speed over ratio. Every stream respects backpressure and keeps memory
 * bounded whatever the input size: the zlib, brotli, zstd and xz engines run in the libuv thread
 * pool; the bzip2 and lz4 encoders run on the main thread one block at a time, yielding to the
 * event loop between blocks.
 */

/** gzip level 1: deflate's fastest. */
const GZIP_LEVEL = 1;
/** Brotli quality 2: faster than gzip -1 with 10% smaller output; quality 4 and up are much slower. */
const BROTLI_QUALITY = 2;
/** A 1 MiB window: no larger output than the default 4 MiB, and a quarter of the memory. */
const BROTLI_WINDOW_BITS = 20;
/** zstd level 1: the fastest regular level (level 3 is ~40% slower for ~10% smaller output). */
const ZSTD_LEVEL = 1;
/**
 * xz preset 0 (256 KiB dictionary): nearly twice as fast as preset 1, for ~6% larger output.
 * lzma-native ignores `preset: 0` in easyEncoder (falsy), hence an explicit LZMA2 filter.
 */
const XZ_PRESET = 0;
/**
 * bzip2 with 100 kB blocks: faster than 900 kB blocks (the sort touches less memory), ~3 MB of
 * working memory instead of ~29 MB, and each block occupies the event loop for only ~10 ms;
 * the output is ~10% larger than with 900 kB blocks.
 */
const BZIP2_LEVEL = 1;
/** 1 MiB lz4 blocks: the largest history is 64 KiB anyway, and a block takes a few ms. */
const LZ4_BLOCK_SIZE = 1048576;
/** Input handed to a main-thread encoder at a time, so that work is split into small steps. */
const PIECE = 65536;

interface LzmaNative {
  createStream(coder: 'streamEncoder', options: { filters: { id: number; options: { preset: number } }[]; check: number }): Transform;
  readonly FILTER_LZMA2: number;
  readonly CHECK_CRC64: number;
}

let lzmaNative: LzmaNative | undefined;

function loadLzmaNative(): LzmaNative {
  lzmaNative ??= createRequire(import.meta.url)('lzma-native') as LzmaNative;
  return lzmaNative;
}

/** An encoder that returns its output as it completes it. */
interface ChunkEncoder {
  update(data: Uint8Array): Uint8Array[];
  finish(): Uint8Array[];
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Runs a main-thread encoder as a Transform. An input chunk is fed in pieces; once a piece has
 * produced output (a block was compressed), the rest waits for the next turn of the event loop,
 * so that one large chunk cannot hold the loop for long.
 */
class EncoderStream extends Transform {
  readonly #encoder: ChunkEncoder;

  constructor(encoder: ChunkEncoder) {
    super();
    this.#encoder = encoder;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#feed(chunk, 0, callback);
  }

  override _flush(callback: TransformCallback): void {
    let outputs: Uint8Array[];
    try {
      outputs = this.#encoder.finish();
    } catch (error) {
      callback(error as Error);
      return;
    }
    for (const out of outputs) this.push(toBuffer(out));
    callback();
  }

  #feed(chunk: Buffer, offset: number, callback: TransformCallback): void {
    if (this.destroyed) {
      callback();
      return;
    }
    let produced = false;
    try {
      while (offset < chunk.length && !produced) {
        const end = Math.min(chunk.length, offset + PIECE);
        for (const out of this.#encoder.update(chunk.subarray(offset, end))) {
          this.push(toBuffer(out));
          produced = true;
        }
        offset = end;
      }
    } catch (error) {
      callback(error as Error);
      return;
    }
    if (offset < chunk.length) setImmediate(() => this.#feed(chunk, offset, callback));
    else callback();
  }
}

/**
 * A stream compressing what is written to it into `compression`'s format: a complete stream
 * (gzip member, xz stream, zstd frame, bzip2 stream, brotli stream, lz4 frame) that the usual
 * tools and Nix's libarchive decode. 'none' passes the bytes through.
 */
export function createCompressor(compression: Compression): Transform {
  switch (compression) {
    case 'none':
      return new PassThrough();
    case 'gzip':
      return zlib.createGzip({ level: GZIP_LEVEL });
    case 'br':
      return zlib.createBrotliCompress({
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
          [zlib.constants.BROTLI_PARAM_LGWIN]: BROTLI_WINDOW_BITS,
          [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_GENERIC,
        },
      });
    case 'zstd':
      return zlib.createZstdCompress({
        params: {
          [zlib.constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL,
          [zlib.constants.ZSTD_c_checksumFlag]: 1,
        },
      });
    case 'xz': {
      const lzma = loadLzmaNative();
      return lzma.createStream('streamEncoder', {
        filters: [{ id: lzma.FILTER_LZMA2, options: { preset: XZ_PRESET } }],
        check: lzma.CHECK_CRC64,
      });
    }
    case 'bzip2':
      return new EncoderStream(new Bzip2Encoder(BZIP2_LEVEL));
    case 'lz4':
      return new EncoderStream(new Lz4FrameEncoder(LZ4_BLOCK_SIZE));
    default:
      throw new NarwhalError('bad-compression', `unsupported compression ${String(compression)}`);
  }
}
