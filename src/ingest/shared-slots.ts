/**
 * Fixed buffers in one SharedArrayBuffer that hold bytes on their way to another thread: the
 * thread reads them where they are instead of getting a copy, and the main thread allocates
 * nothing per chunk or block. (Allocating and dropping a buffer per chunk cost either peak RSS
 * or the time of collecting them.) A slot is counted: every holder releases it once, and it is
 * free again when the last one has.
 */
export class SharedSlots {
  readonly memory: SharedArrayBuffer;
  readonly slotBytes: number;
  readonly #free: number[];
  readonly #holders: Uint32Array;
  readonly #waiting: (() => void)[] = [];

  constructor(count: number, slotBytes: number) {
    this.memory = new SharedArrayBuffer(count * slotBytes);
    this.slotBytes = slotBytes;
    this.#free = Array.from({ length: count }, (_, i) => count - 1 - i);
    this.#holders = new Uint32Array(count);
  }

  /** A whole free slot, to fill, and the function that gives it back. Waits while every slot is taken. */
  async take(): Promise<{ bytes: Uint8Array; release: () => void }> {
    for (;;) {
      const taken = this.tryTake();
      if (taken) return taken;
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
  }

  /** A whole free slot, as take() gives it, or undefined at once when every slot is taken. */
  tryTake(): { bytes: Uint8Array; release: () => void } | undefined {
    const slot = this.#free.pop();
    if (slot === undefined) return undefined;
    this.#holders[slot] = 1;
    return { bytes: new Uint8Array(this.memory, slot * this.slotBytes, this.slotBytes), release: this.#releaser(slot) };
  }

  /**
   * A copy of `data` in a slot, and the function that gives the slot back. Waits while every
   * slot is taken; bytes larger than a slot get a buffer of their own.
   */
  async hold(data: Uint8Array): Promise<{ copy: Uint8Array; release: () => void }> {
    if (data.length > this.slotBytes) return { copy: new Uint8Array(data), release: () => {} };
    const { bytes, release } = await this.take();
    bytes.set(data);
    return { copy: bytes.subarray(0, data.length), release };
  }

  /** Holds `data` where it is, if it lies in a taken slot: the function that lets it go. */
  retain(data: Uint8Array): (() => void) | undefined {
    const slot = this.#slotOf(data);
    if (slot === undefined) return undefined;
    this.#holders[slot]++;
    return this.#releaser(slot);
  }

  /** The taken slot `data` lies in, if it does. */
  #slotOf(data: Uint8Array): number | undefined {
    if (data.buffer !== this.memory || data.length === 0) return undefined;
    const slot = Math.floor(data.byteOffset / this.slotBytes);
    if (data.byteOffset + data.length > (slot + 1) * this.slotBytes || this.#holders[slot] === 0) return undefined;
    return slot;
  }

  #releaser(slot: number): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.#holders[slot] > 0) return;
      this.#free.push(slot);
      this.#waiting.shift()?.();
    };
  }
}
