/**
 * Reads a byte stream in pieces of exact lengths (the fields of a binary request body), holding
 * no more than the piece asked for and the part of one incoming buffer beyond it.
 */
export class ExactReader {
  readonly #source: AsyncIterator<Uint8Array>;
  #pending: Uint8Array = new Uint8Array(0);
  #offset = 0;
  /** Bytes handed out so far. */
  position = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#source = source[Symbol.asyncIterator]();
  }

  /** The next `length` bytes, or undefined if the stream ends first. */
  async read(length: number): Promise<Uint8Array | undefined> {
    const available = this.#pending.length - this.#offset;
    if (available >= length) {
      const piece = this.#pending.subarray(this.#offset, this.#offset + length);
      this.#offset += length;
      this.position += length;
      return piece;
    }
    const out = new Uint8Array(length);
    out.set(this.#pending.subarray(this.#offset));
    let filled = available;
    this.#pending = new Uint8Array(0);
    this.#offset = 0;
    while (filled < length) {
      const next = await this.#source.next();
      if (next.done) return undefined;
      const take = Math.min(length - filled, next.value.length);
      out.set(next.value.subarray(0, take), filled);
      filled += take;
      if (take < next.value.length) {
        this.#pending = next.value;
        this.#offset = take;
      }
    }
    this.position += length;
    return out;
  }

  /** Whether the stream has nothing more (reads ahead one buffer to know). */
  async atEnd(): Promise<boolean> {
    while (this.#offset >= this.#pending.length) {
      const next = await this.#source.next();
      if (next.done) return true;
      this.#pending = next.value;
      this.#offset = 0;
    }
    return false;
  }
}
