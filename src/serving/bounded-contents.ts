/**
 * Values by key, least recently used dropped first once their sizes (as `sizeOf` counts them)
 * add up to more than `maxBytes`; a value larger than that alone is not kept.
 */
export class BoundedMap<V> {
  readonly #maxBytes: number;
  readonly #sizeOf: (value: V) => number;
  readonly #values = new Map<string, V>();
  #bytes = 0;

  constructor(maxBytes: number, sizeOf: (value: V) => number) {
    this.#maxBytes = maxBytes;
    this.#sizeOf = sizeOf;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get(key: string): V | undefined {
    if (!this.#values.has(key)) return undefined;
    const value = this.#values.get(key) as V;
    // Map keeps insertion order: moved to the end, it is the most recently used.
    this.#values.delete(key);
    this.#values.set(key, value);
    return value;
  }

  set(key: string, value: V): void {
    const size = this.#sizeOf(value);
    if (size > this.#maxBytes) return;
    if (this.#values.has(key)) {
      this.#bytes -= this.#sizeOf(this.#values.get(key) as V);
      this.#values.delete(key);
    }
    this.#values.set(key, value);
    this.#bytes += size;
    for (const [oldest, dropped] of this.#values) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#values.delete(oldest);
      this.#bytes -= this.#sizeOf(dropped);
    }
  }
}

/** Chunk contents by key, counted by their length. */
export class BoundedContents extends BoundedMap<Uint8Array> {
  constructor(maxBytes: number) {
    super(maxBytes, (content) => content.length);
  }
}
