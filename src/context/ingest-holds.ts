import { randomBytes } from 'node:crypto';
import type { MetadataStore } from '../metadata/metadata-store.ts';

/** How often a busy hold is renewed in the metadata store. */
export const HOLD_RENEW_MS = 60_000;
/** A hold not renewed for this long belongs to a process that died; GC ignores and removes it. */
export const HOLD_STALE_MS = 15 * 60_000;
/** Going idle is published this long after the last ingest ends, so a burst of uploads costs one write. */
const IDLE_AFTER_MS = 1_000;

/**
 * This process's ingest hold: how GC, here or in any other process, learns since when ingests
 * still running here may have written chunk files or chosen chunks for reuse (src/maintenance/gc.ts
 * explains why it needs that). Every ingest runs between `begin()` and the release it returns.
 *
 * The contract: once begin() has returned, the hold in the metadata store says "busy since" a
 * time at or before that ingest's start, and keeps saying so (renewed every HOLD_RENEW_MS) until
 * the ingest is released. It costs one write when the process goes from idle to busy, one per
 * HOLD_RENEW_MS while busy, and one when it has been idle for IDLE_AFTER_MS; none per NAR. GC in
 * this process asks `localFloor()` instead of its own published hold, which lags.
 */
export class IngestHolds {
  readonly holder = randomBytes(8).toString('hex');
  readonly #meta: MetadataStore;
  /** Start times of the running ingests. */
  readonly #running = new Map<number, number>();
  #next = 0;
  /** When the last ingest ended, or when this process started. */
  #lastEnded = Date.now();
  /** What the store says, or is about to: busy since this time, or null for idle. */
  #published: number | null = null;
  /** The publishing writes in order; never rejects. */
  #chain: Promise<void> = Promise.resolve();
  /** The last publishing write, as it settles. */
  #latest: Promise<void> = Promise.resolve();
  readonly #timer: NodeJS.Timeout;
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(meta: MetadataStore) {
    this.#meta = meta;
    this.#timer = setInterval(() => this.#renew(), HOLD_RENEW_MS);
    this.#timer.unref();
  }

  /** Registers an ingest; resolves once the hold covers it. Call the returned function when it ends. */
  async begin(): Promise<() => void> {
    const token = this.#next++;
    const start = Date.now();
    this.#running.set(token, start);
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    const release = (): void => {
      this.#running.delete(token);
      this.#lastEnded = Date.now();
      if (this.#running.size > 0 || this.#idleTimer) return;
      this.#idleTimer = setTimeout(() => {
        this.#idleTimer = undefined;
        this.#renew();
      }, IDLE_AFTER_MS);
      this.#idleTimer.unref();
    };
    try {
      if (this.#published === null) this.#publish(start);
      await this.#latest;
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }

  /** Since when no ingest has run in this process (the last one's end), or undefined while one runs. */
  idleSince(): number | undefined {
    return this.#running.size > 0 ? undefined : this.#lastEnded;
  }

  /** The start of the oldest ingest running in this process, if any. */
  localFloor(): number | undefined {
    let floor: number | undefined;
    for (const start of this.#running.values()) if (floor === undefined || start < floor) floor = start;
    return floor;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    clearTimeout(this.#idleTimer);
    await this.#chain;
    await this.#meta.releaseIngestHold(this.holder);
  }

  #renew(): void {
    if (this.#published === null) return;
    this.#publish(this.localFloor() ?? null);
  }

  #publish(busySince: number | null): void {
    this.#published = busySince;
    const write = this.#chain.then(() => this.#meta.renewIngestHold(this.holder, busySince, Date.now()));
    this.#latest = write;
    // A failed write fails the ingests waiting on it (begin rethrows); the next begin publishes again.
    this.#chain = write.catch(() => {
      this.#published = null;
    });
  }
}
