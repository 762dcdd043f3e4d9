/**
 * One zstd frame per chunk, compressed or decompressed through a context kept from chunk to chunk.
 * zstdCompressSync and zstdDecompressSync build and drop a context per call, which cost the pack
 * writer and the chunk checkers more time in zstd (measured: docs/benchmarks.md, 'zstd contexts'),
 * and the native memory left behind took forced garbage
 * collections to bound. The frames are the same bytes.
 *
 * Node has no public call that reuses a context synchronously, so these drive a zlib stream's
 * handle the way zstdCompressSync does (lib/zlib.js); where the handle is missing, or a call ends
 * in a way it should not, they fall back to the one-shot calls.
 */
import { constants, ZstdCompress, zstdCompressSync, ZstdDecompress, zstdDecompressSync } from 'node:zlib';

interface ZlibInternals {
  _handle: {
    writeSync(
      flush: number,
      input: Uint8Array,
      inOffset: number,
      inLength: number,
      output: Uint8Array,
      outOffset: number,
      outLength: number,
    ): void;
    reset(): void;
  } | null;
  /** After writeSync: [output bytes left free, input bytes left unread]. */
  _writeState: Uint32Array;
}

type KeptStream = (ZstdCompress | ZstdDecompress) & ZlibInternals;

/** ZSTD_compressBound: the largest frame `size` bytes can compress to. */
export function zstdCompressBound(size: number): number {
  return size + (size >>> 8) + (size < 128 * 1024 ? (128 * 1024 - size) >>> 11 : 0);
}

/** Runs one whole frame through the stream; undefined when it did not end as one call should. */
function runFrame(stream: KeptStream, input: Uint8Array, output: Uint8Array): number | undefined {
  const handle = stream._handle;
  if (!handle) return undefined;
  handle.writeSync(constants.ZSTD_e_end, input, 0, input.length, output, 0, output.length);
  if (stream.errored) throw stream.errored;
  const [outputLeft, inputLeft] = stream._writeState;
  return inputLeft === 0 && outputLeft > 0 ? output.length - outputLeft : undefined;
}

function keep<S extends ZstdCompress | ZstdDecompress>(stream: S): S & ZlibInternals {
  // Errors are read from `errored` right after each call; the event would go unhandled.
  stream.on('error', () => undefined);
  return stream as S & ZlibInternals;
}

export class ZstdFrameEncoder {
  readonly level: number;
  #stream: (ZstdCompress & ZlibInternals) | undefined;
  #output = Buffer.allocUnsafe(zstdCompressBound(256 * 1024));

  constructor(level: number) {
    this.level = level;
  }

  /** The frame of `data`, in a buffer this encoder reuses: valid until the next call. */
  encode(data: Uint8Array): Uint8Array {
    const stream = (this.#stream ??= keep(
      new ZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: this.level } }),
    ));
    // One byte more than the bound, so that a full buffer always means something went wrong.
    const room = zstdCompressBound(data.length) + 1;
    if (this.#output.length < room) this.#output = Buffer.allocUnsafe(room);
    let length: number | undefined;
    try {
      length = runFrame(stream, data, this.#output);
    } catch (err) {
      this.close();
      throw err;
    }
    if (length !== undefined) return this.#output.subarray(0, length);
    this.close();
    return zstdCompressSync(data, { params: { [constants.ZSTD_c_compressionLevel]: this.level } });
  }

  close(): void {
    this.#stream?.close();
    this.#stream = undefined;
  }
}

/** A zstd context compressing at `level` with `dictionary`, for encodeWithDictionary and encodeAllWithDictionary. */
function dictionaryEncoder(dictionary: Uint8Array, level: number): ZstdCompress & ZlibInternals {
  return keep(
    new ZstdCompress({
      dictionary,
      params: { [constants.ZSTD_c_compressionLevel]: level },
    } as ConstructorParameters<typeof ZstdCompress>[0]),
  );
}

/**
 * One frame of `data` compressed at `level` with `dictionary`, its context closed at once: a
 * context per call left to the collector grew a worker by tens of MB, as for decoding (below).
 * With `into` large enough (zstdCompressBound + 1), the frame is a view of it.
 */
export function encodeWithDictionary(
  data: Uint8Array,
  dictionary: Uint8Array,
  level: number,
  into?: Uint8Array,
): Uint8Array {
  const stream = dictionaryEncoder(dictionary, level);
  try {
    const room = zstdCompressBound(data.length) + 1;
    const output = into && into.length >= room ? into : Buffer.allocUnsafeSlow(room);
    const length = runFrame(stream, data, output);
    if (length === undefined) throw new RangeError('the frame did not fit its bound');
    return output.subarray(0, length);
  } finally {
    stream.close();
  }
}

/**
 * One frame for each of `chunks`, each compressed at `level` with `dictionary` alone (frames
 * decode independently), in one context: the dictionary's tables are built once for them all,
 * which was most of the cost of a frame (docs/benchmarks.md, "Push speed").
 */
export function encodeAllWithDictionary(
  chunks: readonly Uint8Array[],
  dictionary: Uint8Array,
  level: number,
): Uint8Array[] {
  const stream = dictionaryEncoder(dictionary, level);
  try {
    return chunks.map((data) => {
      const output = Buffer.allocUnsafeSlow(zstdCompressBound(data.length) + 1);
      const length = runFrame(stream, data, output);
      if (length === undefined) throw new RangeError('the frame did not fit its bound');
      return output.subarray(0, length);
    });
  } finally {
    stream.close();
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

/** How far past its expected size a frame is decoded, to say how much it holds, before it throws. */
const OVERSHOOT_BYTES = 4 * 1024 * 1024;

export class ZstdFrameDecoder {
  #stream: (ZstdDecompress & ZlibInternals) | undefined;

  /**
   * The bytes of `frame`, which should decode to `size` bytes. They land in `into` when it has room
   * for `size + 1` bytes, else in a buffer of their own (which can be moved to another thread).
   * Returns fewer or more bytes when the frame holds fewer or more, so that the caller's size
   * check sees it; throws when it is not zstd, or holds over OVERSHOOT_BYTES more.
   */
  decode(frame: Uint8Array, size: number, into?: Uint8Array): Uint8Array {
    const stream = (this.#stream ??= keep(new ZstdDecompress()));
    // Each frame starts from a clean state, whatever the one before left.
    stream._handle?.reset();
    // One byte more than expected, so that a full buffer means the frame holds too much.
    const output = into && into.length > size ? into : Buffer.allocUnsafeSlow(size + 1);
    let length: number | undefined;
    try {
      length = runFrame(stream, frame, output);
    } catch (err) {
      this.close();
      throw err;
    }
    if (length !== undefined) return output.subarray(0, length);
    // The frame holds more than `size` bytes, or more than one frame: the one-shot call says what,
    // within a bound, so that a small frame of gigabytes (a pusher's, say) throws, not inflates.
    this.close();
    return new Uint8Array(zstdDecompressSync(frame, { maxOutputLength: size + OVERSHOOT_BYTES }));
  }

  close(): void {
    this.#stream?.close();
    this.#stream = undefined;
  }
}

/**
 * One frame compressed with `dictionary` (a delta, src/delta/stored-form.ts), decoded through a
 * context made for it and freed right after: zstdDecompressSync leaves each call's context and
 * output to the garbage collector, which young-generation collections did not reclaim, so that
 * a worker decoding deltas grew by tens of MB. The bytes land in `into` when it has room for
 * `size + 1`, else in a buffer of their own; more than `size` bytes, or not zstd, throws.
 */
export function decodeWithDictionary(
  frame: Uint8Array,
  dictionary: Uint8Array,
  size: number,
  into?: Uint8Array,
): Uint8Array {
  const stream = keep(new ZstdDecompress({ dictionary } as ConstructorParameters<typeof ZstdDecompress>[0]));
  try {
    const output = into && into.length > size ? into : Buffer.allocUnsafeSlow(size + 1);
    const length = runFrame(stream, frame, output);
    if (length === undefined || length > size)
      throw new RangeError('the frame does not decode to at most the size expected');
    return output.subarray(0, length);
  } finally {
    stream.close();
  }
}
