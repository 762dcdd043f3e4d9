import { createRequire } from 'node:module';
import { PassThrough, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import { NarwhalError } from '../errors.ts';
import type { Bzip2Level } from './bzip2/bzip2-encoder.ts';
import type { Compression } from './compression.ts';
import type { Lz4BlockSize } from './lz4/lz4-frame-encoder.ts';
import { WorkerEncoderStream } from './worker-encoder-stream.ts';

/**
 * Streaming compression of NARs served on the fly, in each format a Nix client may have pushed
 * with. Settings favour speed over ratio. Every stream respects backpressure and keeps memory
 * bounded whatever the input size: the zlib, brotli, zstd and xz engines run in the libuv thread
 * pool; our bzip2 and lz4 encoders run on the worker pool (worker-encoder-stream.ts).
 */

/** gzip level 1: deflate's fastest. */
const GZIP_LEVEL = 1;
/** Brotli quality 2: faster than gzip -1 with smaller output; quality 4 and up are much slower. */
const BROTLI_QUALITY = 2;
/** A 1 MiB window: no larger output than the default 4 MiB, and a quarter of the memory. */
const BROTLI_WINDOW_BITS = 20;
/** zstd level 1: the fastest regular level (level 3 is much slower for little smaller output). */
const ZSTD_LEVEL = 1;
/**
 * xz preset 0 (256 KiB dictionary): much faster than preset 1, for slightly larger output.
 * lzma-native ignores `preset: 0` in easyEncoder (falsy), hence an explicit LZMA2 filter.
 */
const XZ_PRESET = 0;
/**
 * bzip2 with 100 kB blocks: faster than 900 kB blocks (the sort touches less memory) and a
 * ninth of their working memory, for somewhat larger output.
 */
const BZIP2_LEVEL: Bzip2Level = 1;
/**
 * 1 MiB lz4 blocks: the largest history is 64 KiB anyway. Measured, with the other settings
 * above: docs/benchmarks.md, 'Served upload names'.
 */
const LZ4_BLOCK_SIZE: Lz4BlockSize = 1048576;

interface LzmaNative {
  createStream(
    coder: 'streamEncoder',
    options: { filters: { id: number; options: { preset: number } }[]; check: number },
  ): Transform;
  readonly FILTER_LZMA2: number;
  readonly CHECK_CRC64: number;
}

let lzmaNative: LzmaNative | undefined;

function loadLzmaNative(): LzmaNative {
  lzmaNative ??= createRequire(import.meta.url)('lzma-native') as LzmaNative;
  return lzmaNative;
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
      return new WorkerEncoderStream({ codec: 'bzip2', setting: BZIP2_LEVEL });
    case 'lz4':
      return new WorkerEncoderStream({ codec: 'lz4', setting: LZ4_BLOCK_SIZE });
    default:
      throw new NarwhalError('bad-compression', `unsupported compression ${String(compression)}`);
  }
}
