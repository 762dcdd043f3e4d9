/**
 * Chunk contents by key, least recently used dropped first once they hold more than `maxBytes`.
 */
export class BoundedContents {
  readonly #maxBytes: number;
  readonly #contents = new Map<string, Uint8Array>();
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get(key: string): Uint8Array | undefined {
    const content = this.#contents.get(key);
    if (content === undefined) return undefined;
    // Map keeps insertion order: moved to the end, it is the most recently used.
    this.#contents.delete(key);
    this.#contents.set(key, content);
    return content;
  }

  set(key: string, content: Uint8Array): void {
    if (content.length > this.#maxBytes) return;
    const old = this.#contents.get(key);
    if (old !== undefined) {
      this.#contents.delete(key);
      this.#bytes -= old.length;
    }
    this.#contents.set(key, content);
    this.#bytes += content.length;
    for (const [oldest, dropped] of this.#contents) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#contents.delete(oldest);
      this.#bytes -= dropped.length;
    }
  }
}
