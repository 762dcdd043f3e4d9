import { Duplex } from 'node:stream';

/**
 * A synchronous decoder driven by its consumer: it is handed input only after it has asked for
 * more, and each read() returns a bounded amount of output, so a stream around it can stop
 * decoding whenever its reader applies backpressure.
 */
export interface PullDecoder {
  /** Hands over the next input; only called after read() returned null. */
  write(input: Uint8Array): void;
  /**
   * The next decoded bytes (never empty), or null when more input is needed, or, after end(), when
   * everything is decoded. Throws NarwhalError on bad input.
   */
  read(): Uint8Array | null;
  /** No more input will come. read() then drains and throws if the input stopped too early. */
  end(): void;
}

/**
 * Wraps a PullDecoder into a Duplex (compressed bytes in, decoded bytes out) that decodes only
 * while its readable side wants data: a write completes once the decoder has consumed the chunk,
 * which happens only as fast as the output is read.
 */
export class PullDecoderStream extends Duplex {
  readonly #decoder: PullDecoder;
  #writeCallback: ((error?: Error | null) => void) | null = null;
  #finalCallback: ((error?: Error | null) => void) | null = null;
  #wanted = false;
  #pumping = false;

  constructor(decoder: PullDecoder) {
    super({ readableHighWaterMark: 65536 });
    this.#decoder = decoder;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      this.#decoder.write(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    this.#writeCallback = callback;
    this.#pump();
  }

  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.#decoder.end();
    } catch (error) {
      callback(error as Error);
      return;
    }
    this.#finalCallback = callback;
    this.#pump();
  }

  override _read(): void {
    this.#wanted = true;
    this.#pump();
  }

  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#wanted && !this.destroyed) {
        const output = this.#decoder.read();
        if (output !== null) {
          if (!this.push(output)) this.#wanted = false;
          continue;
        }
        const finalCallback = this.#finalCallback;
        if (finalCallback) {
          this.#finalCallback = null;
          this.push(null);
          finalCallback();
          break;
        }
        const writeCallback = this.#writeCallback;
        if (!writeCallback) break;
        this.#writeCallback = null;
        // The writer may hand over its next chunk synchronously; the loop then decodes it.
        writeCallback();
      }
    } catch (error) {
      this.#writeCallback = this.#finalCallback = null;
      this.destroy(error as Error);
    } finally {
      this.#pumping = false;
    }
  }
}
