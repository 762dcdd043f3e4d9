import { NarwhalError } from '../errors.ts';

/**
 * Runs at most `maxRunning` tasks at once, with at most `maxWaiting` more queued; a task beyond
 * that is refused at once with 'unavailable', so a flood of costly requests cannot pile up.
 */
export class TaskLimit {
  readonly #maxRunning: number;
  readonly #maxWaiting: number;
  readonly #busyMessage: string;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(maxRunning: number, maxWaiting: number, busyMessage: string) {
    this.#maxRunning = maxRunning;
    this.#maxWaiting = maxWaiting;
    this.#busyMessage = busyMessage;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running < this.#maxRunning) this.#running++;
    else if (this.#waiting.length < this.#maxWaiting) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else throw new NarwhalError('unavailable', this.#busyMessage);
    try {
      return await task();
    } finally {
      // The slot passes straight to the next waiter, so the count never dips and lets another in.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
