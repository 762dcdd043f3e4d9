/** What a backend's test gives the chunk store conformance suite, and how the suite runs a test on it. */
import { test, type TestContext } from 'node:test';
import type { ChunkStore } from '../../src/storage/chunk-store.ts';
import {
  hasCompaction,
  hasConditionalDelete,
  hasFramePlaces,
  hasFrameReads,
  hasFreeSpace,
  hasLeftoverCleanup,
  hasWritePreparation,
} from '../../src/storage/chunk-store-capabilities.ts';

/** Every capability of chunk-store-capabilities.ts by its interface's name, with its type guard. */
export const CAPABILITY_GUARDS = {
  FrameReads: hasFrameReads,
  FramePlaces: hasFramePlaces,
  ConditionalDelete: hasConditionalDelete,
  LeftoverCleanup: hasLeftoverCleanup,
  Compaction: hasCompaction,
  FreeSpace: hasFreeSpace,
  WritePreparation: hasWritePreparation,
};

export type CapabilityName = keyof typeof CAPABILITY_GUARDS;

export interface ConformanceTarget {
  name: string;
  /** A new, empty store of its own. */
  open(): Promise<ChunkStore>;
  /** A new, empty store whose location is the first's with a suffix (`dir-x`, `prefix-x`). */
  openSibling(store: ChunkStore): Promise<ChunkStore>;
  /** For stores in casync's castr layout (a file or object per chunk): access behind the store's back. */
  castr?: {
    /** Every stored name under the store's root, relative to it, sorted. */
    rawNames(store: ChunkStore): Promise<string[]>;
    /** Stores bytes under a name relative to the store's root, behind the store's back. */
    putRaw(store: ChunkStore, name: string, bytes: Uint8Array): Promise<void>;
  };
  /** Chunks the listing test stores: over 1000 where the backend lists in pages of 1000. */
  listCount: number;
  /** Frees whatever `open` made (after close). */
  discard(store: ChunkStore): Promise<void>;
  /** The capabilities the backend has: the suite fails when its stores' type guards say otherwise. */
  capabilities: CapabilityName[];
  /**
   * Access behind the store's back for the capability tests, each needed by a backend with the
   * capability named. Times are ms since the epoch, whole seconds (file times keep them exactly).
   */
  hooks?: {
    /** ConditionalDelete: makes the stored chunk look last written at `at`. */
    backdate?(store: ChunkStore, id: Uint8Array, at: number): Promise<void>;
    /** LeftoverCleanup: leaves what a write interrupted by a crash leaves, last modified at `at`; returns its size. */
    leaveWriteLeftover?(store: ChunkStore, at: number): Promise<number>;
    /** LeftoverCleanup, where deleteUnlessNewer moves a chunk aside first: leaves the chunk moved aside, as a crash there does. */
    moveAside?(store: ChunkStore, id: Uint8Array): Promise<void>;
    /** FrameReads: drops the chunk's recorded CRC, as for a frame written before the store recorded them. */
    forgetCrc?(store: ChunkStore, id: Uint8Array): Promise<void>;
    /** Compaction: the bytes of the files that hold the store's chunks. */
    chunkFileBytes?(store: ChunkStore): Promise<number>;
  };
}

export type StoreTestBody = (store: ChunkStore, t: TestContext) => Promise<void>;

/** Registers a test that runs on a new store of the target's, closed and discarded after. */
export function storeTest(target: ConformanceTarget, name: string, body: StoreTestBody): void {
  test(name, async (t) => {
    const store = await target.open();
    try {
      await body(store, t);
    } finally {
      await store.close();
      await target.discard(store);
    }
  });
}

/** The target's hook `name`, which a test of a capability the backend has cannot do without. */
export function requiredHook<Name extends keyof NonNullable<ConformanceTarget['hooks']>>(
  target: ConformanceTarget,
  name: Name,
): NonNullable<NonNullable<ConformanceTarget['hooks']>[Name]> {
  const hook = target.hooks?.[name];
  if (!hook) throw new Error(`${target.name} has the capability but its conformance target has no ${name} hook`);
  return hook;
}
