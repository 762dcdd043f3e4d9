import { createRequire } from 'node:module';
import { Duplex, PassThrough } from 'node:stream';
import zlib from 'node:zlib';
import { NarwhalError } from '../errors.ts';
import { Bzip2Decoder } from './bzip2/bzip2-decoder.ts';
import type { Compression } from './compression.ts';
import { Lz4FrameDecoder } from './lz4/lz4-frame-decoder.ts';
import { PullDecoderStream } from './pull-decoder-stream.ts';

/**
 * Streaming decompression of uploaded NARs. Every engine is driven with backpressure (it decodes
 * only as fast as the output is read) and with bounded memory whatever the input; bad input of any
 * kind (corrupt, truncated, trailing data, empty) makes the stream fail with NarwhalError
 * 'bad-compression' and a short message naming the format. Limiting the output size (bombs) is
 * the caller's job.
 */

/** Largest xz dictionary accepted: `xz -9` needs 65 MiB; larger ones are refused. */
const XZ_MEMORY_LIMIT = 80 * 1024 * 1024;
/**
 * liblzma (via lzma-native) decodes a whole input chunk at once without backpressure, so xz input
 * is handed over in small pieces: at most ~7000:1 expansion makes <= 28 MiB per piece.
 */
const XZ_INPUT_PIECE = 4096;
/** Output buffer size of the zlib engines: 16 KiB (Node's default) halves their throughput. */
const ZLIB_CHUNK = 128 * 1024;

interface Engine {
  readonly compression: Compression;
  readonly stream: Duplex;
  /** Largest piece of input written to the stream at once. */
  readonly piece: number;
  /** Input bytes consumed, for engines that silently ignore input after the end of their stream. */
  readonly consumed?: () => number;
  /** Whether input after the end of a stream begins another one (zstd frames). */
  readonly resumesAfterEnd: boolean;
}

interface LzmaNative {
  createStream(coder: 'streamDecoder', options: { flags: number; memlimit: number }): Duplex;
  readonly CONCATENATED: number;
}

let lzmaNative: LzmaNative | undefined;

function loadLzmaNative(): LzmaNative {
  lzmaNative ??= createRequire(import.meta.url)('lzma-native') as LzmaNative;
  return lzmaNative;
}

function zlibEngine(compression: Compression, stream: zlib.Zlib & Duplex, resumesAfterEnd = false): Engine {
  return { compression, stream, piece: Infinity, consumed: () => stream.bytesWritten, resumesAfterEnd };
}

function createEngine(compression: Compression): Engine {
  switch (compression) {
    case 'none':
      return { compression, stream: new PassThrough(), piece: Infinity, resumesAfterEnd: false };
    case 'gzip':
      return zlibEngine(compression, zlib.createGunzip({ chunkSize: ZLIB_CHUNK }));
    case 'br':
      return zlibEngine(compression, zlib.createBrotliDecompress({ chunkSize: ZLIB_CHUNK }));
    case 'zstd':
      return zlibEngine(compression, zlib.createZstdDecompress({ chunkSize: ZLIB_CHUNK }), true);
    case 'xz': {
      const lzma = loadLzmaNative();
      const stream = lzma.createStream('streamDecoder', { flags: lzma.CONCATENATED, memlimit: XZ_MEMORY_LIMIT });
      return { compression, stream, piece: XZ_INPUT_PIECE, resumesAfterEnd: false };
    }
    case 'bzip2':
      return {
        compression,
        stream: new PullDecoderStream(new Bzip2Decoder()),
        piece: Infinity,
        resumesAfterEnd: false,
      };
    case 'lz4':
      return {
        compression,
        stream: new PullDecoderStream(new Lz4FrameDecoder()),
        piece: Infinity,
        resumesAfterEnd: false,
      };
  }
}

function corrupt(compression: Compression, detail: string): NarwhalError {
  return new NarwhalError('bad-compression', `corrupt ${compression} stream: ${detail}`);
}

const lzmaMessages: Readonly<Record<string, string>> = {
  LZMA_BUF_ERROR: 'truncated',
  LZMA_DATA_ERROR: 'data is corrupt',
  LZMA_FORMAT_ERROR: 'not an xz stream',
  LZMA_OPTIONS_ERROR: 'unsupported options',
  LZMA_MEMLIMIT_ERROR: `needs more than ${XZ_MEMORY_LIMIT >> 20} MiB of memory`,
  LZMA_UNSUPPORTED_CHECK: 'unsupported integrity check',
};

/** Turns an engine's error into the NarwhalError to report. */
function engineError(compression: Compression, error: unknown): NarwhalError {
  if (error instanceof NarwhalError) return error;
  const e = error as { code?: unknown; name?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : typeof e.name === 'string' ? e.name : '';
  if (code === 'Z_MEM_ERROR' || code === 'LZMA_MEM_ERROR') {
    return new NarwhalError('internal', `out of memory decompressing ${compression}`, { cause: error });
  }
  const known = lzmaMessages[code];
  if (known !== undefined) return corrupt(compression, known);
  if (code === 'Z_BUF_ERROR') return corrupt(compression, 'truncated');
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : 'decoding failed';
  return corrupt(compression, message.charAt(0).toLowerCase() + message.slice(1));
}

/** gzip if the bytes begin with gzip's magic, else uncompressed. */
export function sniffCompression(head: Uint8Array): Compression {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b ? 'gzip' : 'none';
}

/**
 * A Duplex taking compressed bytes and giving the decompressed ones. With 'auto' the first two
 * bytes decide between gzip and none (Nix uploads both to a bare `.nar` URL).
 */
export class Decompressor extends Duplex {
  #engine: Engine | null = null;
  /** First bytes of an 'auto' stream, kept until there are enough to sniff. */
  #head: Buffer | null = null;
  /** Input bytes written to the engine. */
  #fed = 0;
  #finalCallback: ((error?: Error | null) => void) | null = null;
  /** A write to the engine is in flight. */
  #writing = false;
  /** The engine has ended its output. */
  #engineEnded = false;
  /** Input left over after a zstd frame, for the next engine. */
  #resume: { chunk: Buffer; offset: number; done: () => void } | null = null;

  constructor(compression: Compression | 'auto') {
    super({ readableHighWaterMark: 256 * 1024, writableHighWaterMark: 64 * 1024 });
    if (compression !== 'auto') this.#start(compression);
  }

  /** The compression being decoded; for 'auto', undefined until the first bytes are sniffed. */
  get compression(): Compression | undefined {
    return this.#engine?.compression;
  }

  #start(compression: Compression): Engine {
    const engine = createEngine(compression);
    const stream = engine.stream;
    stream.on('data', (chunk: Buffer) => {
      if (this.destroyed) return;
      if (!this.push(chunk)) stream.pause();
    });
    stream.on('end', () => {
      if (this.#engine === engine) this.#onEngineEnd();
    });
    stream.on('error', (error: unknown) => this.destroy(engineError(compression, error)));
    this.#engine = engine;
    this.#engineEnded = false;
    return engine;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#engine === null) {
      const head = this.#head === null ? Buffer.from(chunk) : Buffer.concat([this.#head, chunk]);
      if (head.length < 2) {
        this.#head = head;
        callback();
        return;
      }
      this.#head = null;
      this.#feed(this.#start(sniffCompression(head)), head, 0, callback);
      return;
    }
    this.#feed(this.#engine, chunk, 0, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    const finish = (): void => {
      this.#finalCallback = callback;
      this.#engine?.stream.end();
    };
    if (this.#engine === null) {
      const head = this.#head ?? Buffer.alloc(0);
      this.#head = null;
      this.#feed(this.#start(sniffCompression(head)), head, 0, finish);
      return;
    }
    finish();
  }

  override _read(): void {
    this.#engine?.stream.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#engine?.stream.destroy();
    this.#head = null;
    callback(error);
  }

  /** Writes chunk[offset..] to the engine piece by piece, then calls done. */
  #feed(engine: Engine, chunk: Buffer, offset: number, done: () => void): void {
    if (offset >= chunk.length) {
      done();
      return;
    }
    const piece = chunk.subarray(offset, Math.min(chunk.length, offset + engine.piece));
    const before = this.#fed;
    this.#fed += piece.length;
    this.#writing = true;
    engine.stream.write(piece, (error) => {
      this.#writing = false;
      // A failed write also emits 'error', which destroys this stream.
      if (error || this.destroyed) return;
      const consumed = engine.consumed?.() ?? this.#fed;
      if (consumed >= this.#fed) {
        this.#feed(engine, chunk, offset + piece.length, done);
        return;
      }
      if (!engine.resumesAfterEnd || consumed <= before) {
        this.destroy(corrupt(engine.compression, 'trailing data after the end of the stream'));
        return;
      }
      // A frame ended inside this piece; the engine then ends its output, and a fresh one takes
      // the rest once it has.
      this.#fed = consumed;
      this.#resume = { chunk, offset: offset + (consumed - before), done };
      if (this.#engineEnded) this.#afterEngineEnd();
    });
  }

  #onEngineEnd(): void {
    this.#engineEnded = true;
    // With a write in flight its callback decides what the end means.
    if (!this.#writing) this.#afterEngineEnd();
  }

  #afterEngineEnd(): void {
    const engine = this.#engine;
    if (this.destroyed || engine === null) return;
    const resume = this.#resume;
    if (resume !== null) {
      this.#resume = null;
      this.#fed = 0;
      this.#feed(this.#start(engine.compression), resume.chunk, resume.offset, resume.done);
      return;
    }
    const consumed = engine.consumed?.();
    if (consumed !== undefined && consumed < this.#fed) {
      this.destroy(corrupt(engine.compression, 'trailing data after the end of the stream'));
      return;
    }
    this.push(null);
    const callback = this.#finalCallback;
    this.#finalCallback = null;
    callback?.();
  }
}

/**
 * A stream decompressing `compression` (or, for 'auto', gzip or nothing as the first bytes tell).
 * Errors are NarwhalError('bad-compression', 'corrupt <format> stream: <detail>').
 */
export function createDecompressor(compression: Compression | 'auto'): Decompressor {
  return new Decompressor(compression);
}
