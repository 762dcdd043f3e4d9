import type { ChunkStore } from '../storage/chunk-store.ts';
import { hasFreeSpace } from '../storage/chunk-store-capabilities.ts';

/** Space that must have come free since the failure before uploads are let through again. */
const FREED_ENOUGH = 1024 * 1024;
/** How long after a failure uploads are refused early; Nix's retries come within seconds. */
const REFUSE_FOR_MS = 30_000;

/**
 * Remembers that an upload failed for lack of space, so that the next uploads can be refused
 * before their bodies are sent (an answer to `Expect: 100-continue`). Nix 2.8 retries a PUT that
 * got a 5xx with the same headers and no body; answered after the body, each retry would wait for
 * a body that never comes, and `nix copy` to a full server would hang for minutes. Once space
 * has come free (the store's free bytes grew by FREED_ENOUGH), or REFUSE_FOR_MS after the
 * failure (the database may be what was full, elsewhere), uploads go through again. Stores that
 * cannot tell their free space (S3) are never refused early.
 */
export class StorageFullGuard {
  readonly #chunks: ChunkStore;
  /** Free bytes when an upload last failed for lack of space, and when; undefined while none did. */
  #freeAtFailure: number | undefined;
  #failedAt = 0;

  constructor(chunks: ChunkStore) {
    this.#chunks = chunks;
  }

  async noteFull(): Promise<void> {
    this.#freeAtFailure = await this.#free();
    this.#failedAt = Date.now();
  }

  /** Whether an upload should be refused now, before its body. */
  async refuses(): Promise<boolean> {
    if (this.#freeAtFailure === undefined) return false;
    const free = Date.now() - this.#failedAt < REFUSE_FOR_MS ? await this.#free() : undefined;
    if (free === undefined || free >= this.#freeAtFailure + FREED_ENOUGH) {
      this.#freeAtFailure = undefined;
      return false;
    }
    return true;
  }

  async #free(): Promise<number | undefined> {
    try {
      return hasFreeSpace(this.#chunks) ? await this.#chunks.freeBytes() : undefined;
    } catch {
      return undefined; // cannot tell: never refuse on a guess
    }
  }
}
