/**
 * Tasks running at once, at most `limit`: add waits for a free slot, and throws once a task has
 * failed (the others run on); settled waits for every one. Results come in the order tasks end.
 */
export class InFlight<T> {
  readonly #limit: number;
  readonly #running = new Set<Promise<void>>();
  readonly #results: T[] = [];
  #failure: { error: unknown } | undefined;

  constructor(limit: number) {
    this.#limit = limit;
  }

  async add(task: () => Promise<T>): Promise<void> {
    while (this.#running.size >= this.#limit) await Promise.race(this.#running);
    this.throwIfFailed();
    const running: Promise<void> = task().then(
      (result) => {
        this.#results.push(result);
      },
      (error: unknown) => {
        this.#failure ??= { error };
      },
    );
    this.#running.add(running);
    void running.then(() => this.#running.delete(running));
  }

  async settled(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running);
  }

  results(): T[] {
    return this.#results;
  }

  throwIfFailed(): void {
    if (this.#failure) throw this.#failure.error;
  }
}
