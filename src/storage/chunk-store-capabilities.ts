/**
 * What a chunk store can do beyond the ChunkStore contract, as named capabilities a backend has or
 * has not (as desync's Store / WriteStore / PruneStore): each backend names the ones it has in its
 * `implements` clause, and callers ask through the type guards below, never by probing methods.
 */
import type { ChunkReader, StoredFrame } from './chunk-store.ts';
import type { LocatedFrame } from './pack-index.ts';

/**
 * For stores that keep chunks side by side and record a CRC-32 of each frame (frameCrc) when they
 * write it. A frame read with the recorded CRC is known to be what was written, without decoding it.
 */
export interface FrameReads {
  /**
   * The stored frames of `ids`, in order, each with its recorded CRC (undefined for frames written
   * before the store recorded them); frames that lie close together are read at once. Throws
   * NarwhalError('chunk-missing') when one is absent.
   */
  getFrames(ids: Uint8Array[]): Promise<StoredFrame[]>;
  /** storedSize of each of `ids`, in order, looked up together. */
  storedSizes(ids: Uint8Array[]): Promise<(number | undefined)[]>;
  /**
   * Gives the chunk's frame the CRC `crc` if it has none (it was written before the store recorded
   * CRCs), after a frame of the chunk with that CRC was checked in full. Safe even if the frame was
   * replaced meanwhile: bytes with this CRC are a right frame of the chunk.
   */
  recordCrc(id: Uint8Array, crc: number): Promise<void>;
}

/** Frames of `dir`'s packs, where they lie, and the CRC each was written with. */
export interface PlacedFrames {
  dir: string;
  frames: LocatedFrame[];
}

/**
 * For stores whose frames lie in files another thread can read by place (readFramesSync in
 * pack-read.ts): a reader then makes one call to that thread for many frames.
 */
export interface FramePlaces {
  /** Where the frames of `ids` lie, in order; throws NarwhalError('chunk-missing') when one is absent. */
  locateFrames(ids: Uint8Array[]): PlacedFrames;
}

export interface ConditionalDelete {
  /**
   * Deletes the chunk only if it was last written at or before `notAfter` (ms since the epoch),
   * atomically with respect to a concurrent put of the same id: a copy written later always
   * survives. Returns the stored size deleted, or undefined when nothing was deleted.
   * Without this capability GC compares list()'s modifiedAt and calls delete() after noting the
   * deletion in the metadata store, which refuses the commit of an ingest that may have rewritten
   * the chunk meanwhile (src/maintenance/gc.ts).
   */
  deleteUnlessNewer(id: Uint8Array, notAfter: number): Promise<number | undefined>;
}

export interface RemovedLeftovers {
  files: number;
  bytes: number;
}

export interface LeftoverCleanup {
  /**
   * Cleans up after interrupted operations: removes temporary files of writes last modified at or
   * before `notAfter`, and puts back chunks an interrupted deleteUnlessNewer had moved aside.
   * Returns what it removed.
   */
  removeLeftovers(notAfter: number): Promise<RemovedLeftovers>;
}

export interface CompactReport {
  /** Packs whose live frames were copied into new packs, and deleted. */
  packs: number;
  /** Bytes of the deleted packs minus the bytes of the new ones. */
  reclaimedBytes: number;
}

export interface CompactOptions {
  /** Rewrite a file once at most this share of it is live (the store's own default otherwise). */
  liveAtMost?: number;
}

/** For stores that keep many chunks per file, where deleting a chunk leaves its bytes behind. */
export interface Compaction {
  /**
   * Gives back the space of deleted chunks, touching only what was written at or before
   * `notAfter`. Returns the files it deleted and the bytes it gave back.
   */
  compact(notAfter: number, options?: CompactOptions): Promise<CompactReport>;
}

export interface FreeSpace {
  /** The bytes the store can still write (a local file system's free space). */
  freeBytes(): Promise<number>;
}

export interface WritePreparation {
  /** Gets ready for writes (e.g. starts worker threads), so a server's first upload does not wait for it. */
  prepare(): void;
}

export const hasFrameReads = <S extends ChunkReader>(store: S): store is S & FrameReads =>
  hasMethods<FrameReads>(store, 'getFrames', 'storedSizes', 'recordCrc');
export const hasFramePlaces = <S extends ChunkReader>(store: S): store is S & FramePlaces =>
  hasMethods<FramePlaces>(store, 'locateFrames');
export const hasConditionalDelete = <S extends ChunkReader>(store: S): store is S & ConditionalDelete =>
  hasMethods<ConditionalDelete>(store, 'deleteUnlessNewer');
export const hasLeftoverCleanup = <S extends ChunkReader>(store: S): store is S & LeftoverCleanup =>
  hasMethods<LeftoverCleanup>(store, 'removeLeftovers');
export const hasCompaction = <S extends ChunkReader>(store: S): store is S & Compaction =>
  hasMethods<Compaction>(store, 'compact');
export const hasFreeSpace = <S extends ChunkReader>(store: S): store is S & FreeSpace =>
  hasMethods<FreeSpace>(store, 'freeBytes');
export const hasWritePreparation = <S extends ChunkReader>(store: S): store is S & WritePreparation =>
  hasMethods<WritePreparation>(store, 'prepare');

/** Whether the store has every method of a capability (a Proxy around a store answers for it). */
function hasMethods<Capability>(store: object, ...methods: (keyof Capability & string)[]): boolean {
  return methods.every((method) => typeof (store as Record<string, unknown>)[method] === 'function');
}
