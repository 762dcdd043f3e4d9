import { constants, ZstdCompress, zstdCompressSync } from 'node:zlib';

/** The parts of Node's zlib stream that zstdCompressSync itself drives (lib/zlib.js). */
interface ZlibInternals {
  _handle: { writeSync(flush: number, input: Uint8Array, inOffset: number, inLength: number, output: Uint8Array, outOffset: number, outLength: number): void } | null;
  /** After writeSync: [output bytes left free, input bytes left unread]. */
  _writeState: Uint32Array;
}

/** ZSTD_compressBound: the largest frame `size` bytes can compress to. */
export function zstdCompressBound(size: number): number {
  return size + (size >>> 8) + (size < 128 * 1024 ? (128 * 1024 - size) >>> 11 : 0);
}

/**
 * Compresses one chunk after another into a zstd frame each, with one compression context and
 * one output buffer for all of them. zstdCompressSync builds and drops a context per call: on
 * the benchmark's 1.5 GB that cost the pack writer 20% more time in zstd, and the native memory
 * it leaves behind took forced garbage collections to bound. The frames are the same bytes.
 *
 * Node exposes no public call that reuses a context synchronously, so this drives the stream's
 * handle the way zstdCompressSync does; where that handle is missing, it falls back to
 * zstdCompressSync.
 */
export class ZstdFrameEncoder {
  readonly level: number;
  #stream: (ZstdCompress & ZlibInternals) | undefined;
  #output = Buffer.allocUnsafe(zstdCompressBound(256 * 1024));

  constructor(level: number) {
    this.level = level;
  }

  /** The frame of `data`, in a buffer this encoder reuses: valid until the next call. */
  encode(data: Uint8Array): Uint8Array {
    const stream = (this.#stream ??= this.#open());
    const handle = stream._handle;
    if (!handle) return this.#fallback(data);
    const bound = zstdCompressBound(data.length);
    if (this.#output.length < bound) this.#output = Buffer.allocUnsafe(bound);
    handle.writeSync(constants.ZSTD_e_end, data, 0, data.length, this.#output, 0, this.#output.length);
    if (stream.errored) {
      this.#stream = undefined;
      throw stream.errored;
    }
    const [outputLeft, inputLeft] = stream._writeState;
    // With room for the bound, zstd ends the frame in one call; if it ever does not, start afresh.
    if (inputLeft !== 0 || outputLeft === 0) return this.#fallback(data);
    return this.#output.subarray(0, this.#output.length - outputLeft);
  }

  close(): void {
    this.#stream?.close();
    this.#stream = undefined;
  }

  #open(): ZstdCompress & ZlibInternals {
    const stream = new ZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: this.level } }) as ZstdCompress & ZlibInternals;
    // Errors are read from `errored` right after each call; the event would be unhandled.
    stream.on('error', () => undefined);
    return stream;
  }

  #fallback(data: Uint8Array): Uint8Array {
    this.close();
    return zstdCompressSync(data, { params: { [constants.ZSTD_c_compressionLevel]: this.level } });
  }
}

/** One encoder per level, for a worker thread that compresses at whatever level it is asked. */
export function encoderPerLevel(): (level: number) => ZstdFrameEncoder {
  const encoders = new Map<number, ZstdFrameEncoder>();
  return (level) => {
    let encoder = encoders.get(level);
    if (!encoder) encoders.set(level, (encoder = new ZstdFrameEncoder(level)));
    return encoder;
  };
}
