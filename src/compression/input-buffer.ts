/**
 * Pending input of a pull decoder, kept contiguous so that a decoder can parse a whole block in
 * place. A chunk appended to an empty buffer is referenced, not copied; detach() copies what is
 * still unread before the decoder hands control back to its writer (who may then reuse the chunk).
 * The buffer grows only to what the decoder asks to have at once (one compressed block at most).
 */
export class InputBuffer {
  #buf: Uint8Array = new Uint8Array(0);
  #start = 0;
  #end = 0;
  #owned = false;

  /** The bytes; unread ones are bytes[start, end). Valid until the next append() or detach(). */
  get bytes(): Uint8Array {
    return this.#buf;
  }

  get start(): number {
    return this.#start;
  }

  get end(): number {
    return this.#end;
  }

  get available(): number {
    return this.#end - this.#start;
  }

  append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const pending = this.#end - this.#start;
    if (pending === 0) {
      this.#buf = chunk;
      this.#start = 0;
      this.#end = chunk.length;
      this.#owned = false;
      return;
    }
    const needed = pending + chunk.length;
    if (this.#owned && this.#buf.length - this.#end >= chunk.length) {
      this.#buf.set(chunk, this.#end);
      this.#end += chunk.length;
      return;
    }
    if (this.#owned && this.#buf.length >= needed) {
      this.#buf.copyWithin(0, this.#start, this.#end);
    } else {
      const grown = new Uint8Array(Math.max(needed, 2 * pending, 65536));
      grown.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = grown;
      this.#owned = true;
    }
    this.#buf.set(chunk, pending);
    this.#start = 0;
    this.#end = needed;
  }

  /** Marks n unread bytes as read. */
  consume(n: number): void {
    this.#start += n;
  }

  /** Copies the unread bytes if they still live in a chunk the writer owns. */
  detach(): void {
    const pending = this.#end - this.#start;
    if (pending === 0) {
      this.#buf = new Uint8Array(0);
      this.#start = this.#end = 0;
      this.#owned = false;
    } else if (!this.#owned) {
      this.#buf = this.#buf.slice(this.#start, this.#end);
      this.#start = 0;
      this.#end = pending;
      this.#owned = true;
    }
  }
}
