/**
 * Fixed buffers in one SharedArrayBuffer that hold bytes on their way to another thread: the
 * thread reads them where they are instead of getting a copy, and the main thread allocates
 * nothing per chunk or block. (Allocating and dropping a buffer per chunk cost either peak RSS
 * or the time of collecting them.)
 */
export class SharedSlots {
  readonly memory: SharedArrayBuffer;
  readonly slotBytes: number;
  readonly #free: number[];
  readonly #waiting: (() => void)[] = [];

  constructor(count: number, slotBytes: number) {
    this.memory = new SharedArrayBuffer(count * slotBytes);
    this.slotBytes = slotBytes;
    this.#free = Array.from({ length: count }, (_, i) => count - 1 - i);
  }

  /**
   * A copy of `data` in a slot, and the function that gives the slot back. Waits while every
   * slot is taken; bytes larger than a slot get a buffer of their own.
   */
  async hold(data: Uint8Array): Promise<{ copy: Uint8Array; release: () => void }> {
    if (data.length > this.slotBytes) return { copy: new Uint8Array(data), release: () => {} };
    while (this.#free.length === 0) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    const slot = this.#free.pop()!;
    const copy = new Uint8Array(this.memory, slot * this.slotBytes, data.length);
    copy.set(data);
    let released = false;
    return {
      copy,
      release: () => {
        if (released) return;
        released = true;
        this.#free.push(slot);
        this.#waiting.shift()?.();
      },
    };
  }
}
