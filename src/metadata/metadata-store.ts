/**
 * The metadata contract. Backends (SQLite, PostgreSQL) implement it; the operations above it
 * use nothing else. Every method is atomic on its own: a method either commits all it writes or
 * nothing. NARs and chunks are global and content-addressed; paths and files belong to one cache.
 */

export interface CacheSettings {
  isPublic: boolean;
  priority: number;
  /** The cache's own signing key, Nix secret key text (`name:base64`). */
  signingKey: string;
  /** Public keys (`name:base64`) whose signatures uploads may be required to carry. */
  trustedKeys: string[];
  /** Refuse narinfo uploads without a valid signature by one of trustedKeys. */
  requireSignature: boolean;
  /** Seconds since a path's last access or upload after which GC drops it; 0 keeps paths forever. */
  retention: number;
  /** Binary caches asked, in order, for the paths this one lacks (src/upstream/); empty: none. */
  upstreams: string[];
  /** Public keys (`name:base64`) one of which must have signed a narinfo taken from an upstream. */
  upstreamKeys: string[];
}

export interface CacheRecord extends CacheSettings {
  id: number;
  name: string;
  createdAt: number;
}

export type Permission = 'pull' | 'push' | 'delete' | 'admin';

export interface TokenRecord {
  id: string;
  name: string;
  /** Cache names or globs (`*` matches any run of characters). */
  caches: string[];
  perms: Permission[];
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

export interface NarRecord {
  id: number;
  /** sha256 of the uncompressed NAR, `sha256:` + nix-base32. */
  narHash: string;
  narSize: number;
  chunkCount: number;
  /** Sum of the stored (compressed) sizes of the NAR's chunks, counting repeats: the size of the `.nar.zst` we serve. */
  storedSize: number;
  /** The chunk table: per chunk, u64 LE cumulative end offset then the 32-byte chunk id (caibx table layout). */
  chunkTable: Uint8Array;
  createdAt: number;
  /** When a chunk of it was found missing or corrupt; null while it is whole. Its narinfos answer 404 meanwhile. */
  damagedAt: number | null;
}

export interface NewChunk {
  id: Uint8Array;
  size: number;
  storedSize: number;
  /** True when this ingest wrote the chunk file (rather than reusing the stored one): it repairs a damaged chunk. */
  written?: boolean;
  /** The chunk's resemblance sketch (src/delta/resemblance.ts), recorded if the chunk has none yet. */
  sketch?: Uint32Array;
}

export interface ChunkRecord {
  id: Uint8Array;
  size: number;
  storedSize: number;
  damagedAt: number | null;
  /** When GC found that no NAR uses it any more; null while one does. */
  unreferencedSince: number | null;
  /** The zstd level its file was recompressed at (or found not worth it at); null as ingested. */
  zstdLevel: number | null;
  /** 'zstd': one plain zstd frame; 'delta': a delta against its bases (src/delta/stored-form.ts). */
  encoding: 'zstd' | 'delta';
  /** Deltas in its chain: 0 for a plain frame, else 1 + its deepest base's. */
  deltaDepth: number;
  createdAt: number;
}

/** A plain chunk in use, not damaged, with its resemblance sketch (MetadataStore.deltaCandidates). */
export interface DeltaCandidate extends ChunkRecord {
  sketch: Uint32Array;
}

/** Where a walk over deltaCandidates stands: the last chunk it was given. */
export interface DeltaCursor {
  createdAt: number;
  id: Uint8Array;
}

/** A plain chunk with bases recorded (reserveDeltaBases): a delta being written, or one a crash cut short. */
export interface PendingDelta extends ChunkRecord {
  bases: Uint8Array[];
}

/** A chunk file rewritten as a delta (MetadataStore.recordDeltas). */
export interface DeltaChunk {
  id: Uint8Array;
  /** The stored size the record had when the chunk was read. */
  oldStoredSize: number;
  /** Bytes stored (the delta). */
  storedSize: number;
  /** Its bases, in dictionary order. */
  bases: Uint8Array[];
  depth: number;
  /** The zstd level of the delta's frame. */
  level: number;
}

/** A NAR as delta bases by place see it (MetadataStore.chunkPlace). */
export interface NarPlace {
  id: number;
  narSize: number;
  createdAt: number;
}

/** A NAR with no package recorded yet (MetadataStore.narsWithoutPackage). */
export interface NarWithoutPackage {
  id: number;
  /** A store path naming it, or null while none does. */
  storePath: string | null;
}

/** A chunk file rewritten smaller by recompression. */
export interface RecompressedChunk {
  id: Uint8Array;
  /** The stored size the record had when the chunk was read. */
  oldStoredSize: number;
  storedSize: number;
  zstdLevel: number;
}

export interface ChunkSketch {
  id: Uint8Array;
  sketch: Uint32Array;
}

export interface SimilarChunk {
  id: Uint8Array;
  /** Super-features its sketch shares with the one looked up. */
  matches: number;
}

/** similarChunks reads at most this many chunks per super-feature (or `limit`, if higher). */
export const SIMILAR_ROWS_PER_FEATURE = 256;

export interface NewNar {
  narHash: string;
  narSize: number;
  storedSize: number;
  chunkTable: Uint8Array;
  /** Every distinct chunk the table names, with its sizes. */
  chunks: NewChunk[];
  /** The name the client uploaded it under (`nar/<fileHash>.nar<ext>`), so HEAD on it can answer. */
  upload?: { fileHash: string; suffix: string; fileSize: number };
  /** The cache it was uploaded to: its pushers may then name it in a narinfo (see narOwners). */
  uploadedTo?: number;
  /**
   * When the ingest started. The commit is refused with 'unavailable' when GC deleted the file of
   * one of its chunks at or after this time, or is deleting it (see noteChunkDeletions): the file
   * this ingest wrote may be gone.
   */
  ingestStartedAt?: number;
}

export interface PathRecord {
  cacheId: number;
  hashPart: string;
  storePath: string;
  narId: number;
  narHash: string;
  narSize: number;
  /** Stored size of the NAR's chunks, counting repeats: the size of the `.nar.zst` served. */
  narStoredSize: number;
  /** Basenames of the referenced store paths. */
  references: string[];
  deriver: string | null;
  system: string | null;
  sigs: string[];
  ca: string | null;
  createdAt: number;
  /** Last time its narinfo or NAR was served, or it was uploaded. */
  lastAccess: number;
  /** A pinned path and its closure survive retention. */
  pinned: boolean;
  /** Whether its NAR is flagged damaged (then its narinfo answers 404). */
  narDamaged: boolean;
}

export type NewPath = Omit<
  PathRecord,
  'createdAt' | 'narHash' | 'narSize' | 'narStoredSize' | 'lastAccess' | 'pinned' | 'narDamaged'
>;

/** Cache ids: those a path of which uses a NAR, and those the NAR was uploaded to. */
export interface NarOwners {
  usedBy: number[];
  uploadedTo: number[];
}

/**
 * What putPath did: stored it (new, replaced, or the same path with signatures added), found
 * the same path already stored with these signatures ('unchanged'), found a different path
 * under the hash part and was not allowed to replace it ('exists'), or found its NAR or one of
 * its references gone.
 */
export type PutPathResult = 'stored' | 'unchanged' | 'exists' | 'no-nar' | 'missing-reference';

/** A cache file's record: its content is read piece by piece (getFilePiece). */
export interface CacheFile {
  /** The content it points to (see startFileUpload). */
  contentId: number;
  /** Bytes of content: the sum of its pieces' lengths. */
  size: number;
  contentType: string;
  contentEncoding: string | null;
}

export interface StoreStats {
  paths: number;
  nars: number;
  narBytes: number;
  chunks: number;
  chunkBytes: number;
  storedBytes: number;
}

/** What a cache holds: its paths, their NARs' bytes, and the stored bytes of the distinct chunks those use. */
export interface CacheUsage {
  paths: number;
  narBytes: number;
  storedBytes: number;
}

/** A cache's usage at one moment (MetadataStore.recordStorageSample). */
export interface StorageSample extends CacheUsage {
  at: number;
}

/** A path's closure within its cache: the paths in it (itself included) and their NAR bytes. */
export interface ClosureSize {
  paths: number;
  narBytes: number;
}

export interface MetadataStore {
  close(): Promise<void>;
  /**
   * Optional: folds the write-ahead log into the database and empties it, for quiet times (SQLite;
   * its log otherwise keeps the size of its busiest moment).
   */
  checkpoint?(): Promise<void>;
  /** How many schema migrations have been applied (opening a store applies the missing ones). */
  schemaVersion(): Promise<number>;

  getCache(name: string): Promise<CacheRecord | undefined>;
  /** Creates the cache; returns undefined when the name is taken. */
  createCache(name: string, settings: CacheSettings): Promise<CacheRecord | undefined>;
  /** Changes the given settings; returns undefined when there is no such cache. */
  updateCache(name: string, changes: Partial<CacheSettings>): Promise<CacheRecord | undefined>;
  /** Deletes the cache with its paths and files (NARs and chunks stay for GC). */
  deleteCache(name: string): Promise<boolean>;
  listCaches(): Promise<CacheRecord[]>;

  createToken(token: TokenRecord, secretHash: Uint8Array): Promise<void>;
  findTokenBySecretHash(secretHash: Uint8Array): Promise<TokenRecord | undefined>;
  listTokens(): Promise<TokenRecord[]>;
  /** Marks the token revoked; returns false when there is no such token. */
  revokeToken(id: string, at: number): Promise<boolean>;

  /** Whether some path of this cache uses the NAR. */
  cacheHasNar(cacheId: number, narId: number): Promise<boolean>;
  /** The caches a path of which uses the NAR, and those it was uploaded to (NewNar.uploadedTo). */
  narOwners(narId: number): Promise<NarOwners>;
  /**
   * narOwners of the NARs containing the chunk; only a bounded number of those NARs is looked at
   * (CHUNK_OWNER_NARS), so a chunk that many NARs share may show fewer owners than it has.
   */
  chunkOwners(chunkId: Uint8Array): Promise<NarOwners>;
  /** Whether a NAR that some path of this cache uses contains the chunk. */
  cacheHasChunk(cacheId: number, chunkId: Uint8Array): Promise<boolean>;

  getNar(narHash: string): Promise<NarRecord | undefined>;
  /**
   * Whether an ingest may reuse the stored chunk instead of writing it: a committed NAR uses it
   * (so its file was made durable), it is not flagged damaged, and GC has not found it unused.
   */
  mayReuseChunk(id: Uint8Array): Promise<boolean>;
  /** The NAR that was uploaded as `nar/<fileHash>.nar<suffix>`, if any. */
  getNarByUpload(fileHash: string, suffix: string): Promise<NarRecord | undefined>;
  /**
   * Records a NAR and its chunks. Idempotent: a NAR already recorded is kept (its chunks were
   * recorded with it); the upload name is recorded either way. In the same transaction: the NAR
   * and its chunks count as referenced again (GC starts their grace anew); chunks with `written`
   * lose their damage flag, and NARs left with no damaged chunk lose theirs; a NAR that uses a
   * chunk still flagged damaged is flagged itself.
   */
  commitNar(nar: NewNar): Promise<NarRecord>;

  getPath(cacheId: number, hashPart: string): Promise<PathRecord | undefined>;
  /** Of these hash parts, those this cache holds, each with its store path. */
  existingPaths(cacheId: number, hashParts: string[]): Promise<Map<string, string>>;
  /**
   * Inserts the path, checking in the same transaction that its NAR and every reference other
   * than itself are still there (GC may delete them meanwhile). A path already stored under the
   * hash part with the same store path, NAR, references, deriver, system and CA only gains the
   * signatures it lacks; a different one is replaced (keeping its pin) only with `replace`.
   */
  putPath(path: NewPath, options?: { replace?: boolean }): Promise<PutPathResult>;
  /** The cache's paths, by store path. */
  listPaths(cacheId: number): Promise<PathRecord[]>;
  /** Sets or clears the pin; false when there is no such path. */
  setPathPinned(cacheId: number, hashPart: string, pinned: boolean): Promise<boolean>;
  /**
   * Deletes these paths, unless a path of the cache outside the set refers to one of them: then
   * nothing is deleted and those referrers are returned. `deleted` lists the hash parts removed.
   */
  deletePaths(cacheId: number, hashParts: string[]): Promise<{ deleted: string[]; referrers: string[] }>;
  /** Sets the path's last access to `at` if it is before `staleBefore`. */
  recordPathAccess(cacheId: number, hashPart: string, at: number, staleBefore: number): Promise<void>;
  /** Sets the last access of the cache's paths that use the NAR to `at` where it is before `staleBefore`. */
  recordNarAccess(cacheId: number, narId: number, at: number, staleBefore: number): Promise<void>;

  // Cache files (src/tenancy/cache-files.ts): build logs, listings, realisations, debuginfo. A file
  // points to a content, stored as pieces numbered from 0; an upload writes a new content piece by
  // piece, each its own short transaction, and commitFile switches the file to it.

  /** The file's record, without its content. */
  getFile(cacheId: number, name: string): Promise<CacheFile | undefined>;
  /**
   * Piece `seq` of the content, or undefined when there is none: past its end, or the content
   * was deleted (its file replaced) meanwhile.
   */
  getFilePiece(contentId: number, seq: number): Promise<Uint8Array | undefined>;
  /** Creates an empty content for an upload and returns its id; no file uses it yet. */
  startFileUpload(): Promise<number>;
  /**
   * Adds piece `seq` to the content and renews its written time, in one short transaction. Throws
   * 'unavailable' when the content is gone (GC took it for abandoned).
   */
  appendFilePiece(contentId: number, seq: number, data: Uint8Array): Promise<void>;
  /**
   * In one transaction: points the file (created or replaced, with `file`'s type and encoding) at
   * `file.contentId`, and deletes the content it pointed to before. Throws 'unavailable', changing
   * nothing, when that content is gone or does not hold `file.size` bytes.
   */
  commitFile(cacheId: number, name: string, file: CacheFile): Promise<void>;
  /** Deletes the content of an upload that failed, with its pieces, unless a file uses it. */
  discardFileUpload(contentId: number): Promise<void>;
  /**
   * Deletes up to `limit` contents that no file uses and that were last written at or before
   * `before` (uploads a crash or a lost connection abandoned), with their pieces.
   */
  deleteAbandonedFileContents(before: number, limit: number): Promise<{ contents: number; bytes: number }>;

  stats(): Promise<StoreStats>;

  // What the web UI shows (src/web/).

  cacheUsage(cacheId: number): Promise<CacheUsage>;
  /** The cache's paths last uploaded first, at most `limit`. */
  recentPaths(cacheId: number, limit: number): Promise<PathRecord[]>;
  /** The cache's pinned paths by store path, at most `limit`. */
  pinnedPaths(cacheId: number, limit: number): Promise<PathRecord[]>;
  /** The cache's paths whose store path contains `text` (ASCII letters in any case), by store path, at most `limit`. */
  searchPaths(cacheId: number, text: string, limit: number): Promise<PathRecord[]>;
  /** The cache's paths that refer to the path, by hash part, at most `limit`. */
  referrersOf(cacheId: number, hashPart: string, limit: number): Promise<PathRecord[]>;
  /** The path's closure within the cache (references followed as far as the cache has them). */
  closureSize(cacheId: number, hashPart: string): Promise<ClosureSize>;
  /** Records a sample of the cache's usage (a sample already there at that time is kept). */
  recordStorageSample(cacheId: number, sample: StorageSample): Promise<void>;
  /** The cache's samples taken at or after `since`, oldest first: the latest `limit` of them. */
  storageSamples(cacheId: number, since: number, limit: number): Promise<StorageSample[]>;
  /** Deletes the samples taken before `before`. */
  deleteStorageSamples(before: number): Promise<void>;

  // Integrity (src/maintenance/verify.ts, src/serving/chunk-damage.ts).

  /**
   * Flags the chunks damaged, with every chunk stored as a delta on one of them (through any
   * chain), and every NAR that uses one of those; returns how many NARs were newly flagged.
   */
  markChunksDamaged(ids: Uint8Array[], at: number): Promise<number>;
  /** Sets or clears the damage flag of these chunks only (not of their NARs). */
  setChunksDamaged(ids: Uint8Array[], damaged: boolean, at: number): Promise<void>;
  /** Up to `limit` chunks with ids above `after` (bytewise; an empty array starts at the first), ascending. */
  listChunks(after: Uint8Array, limit: number): Promise<ChunkRecord[]>;
  /** Up to `limit` NARs with ids above `afterId`, ascending. */
  listNars(afterId: number, limit: number): Promise<NarRecord[]>;
  /** The distinct chunks the NAR uses, as recorded. */
  narChunks(narId: number): Promise<ChunkRecord[]>;
  /** The bases, at every depth, of the NAR's chunks stored as deltas (and of those reserved to be), once each. */
  narDeltaBases(narId: number): Promise<Uint8Array[]>;
  setNarDamaged(narId: number, damaged: boolean, at: number): Promise<void>;
  damagedNarCount(): Promise<number>;

  // Garbage collection (src/maintenance/gc.ts).

  /**
   * Deletes the cache's paths that are not live, and returns how many. Live: pinned, or last
   * accessed after `accessedBefore`, or referred to (transitively) by a live path of the cache.
   */
  expirePaths(cacheId: number, accessedBefore: number): Promise<number>;
  /** The paths expirePaths would delete now, the longest unused first, at most `limit`. */
  expirablePaths(cacheId: number, accessedBefore: number, limit: number): Promise<PathRecord[]>;
  /** Sets unreferenced_since to `at` on NARs no path uses that have none yet; returns how many. */
  markUnreferencedNars(at: number): Promise<number>;
  /**
   * Deletes up to `limit` NARs that no path uses and that were found unused at or before
   * `before`; in the same transaction, the chunks they leave unused get unreferenced_since `at`.
   */
  deleteUnreferencedNars(before: number, at: number, limit: number): Promise<{ nars: number; narBytes: number }>;
  /**
   * Deletes up to `limit` chunk records that no NAR uses, no chunk uses as a base, and that were
   * found unused at or before `before`, and returns them. Their files are the caller's to delete.
   */
  deleteUnreferencedChunks(before: number, limit: number): Promise<ChunkRecord[]>;
  /** The chunk's record, if any. */
  getChunk(id: Uint8Array): Promise<ChunkRecord | undefined>;

  // Recompression (src/maintenance/recompress.ts).

  /** Up to `limit` plain chunks as ingested (zstdLevel null), in use and not damaged, with ids above `after`, ascending. */
  chunksToRecompress(after: Uint8Array, limit: number): Promise<ChunkRecord[]>;
  /** Up to `limit` NARs with ids above `afterId`, ascending, that use a chunk chunksToRecompress would list. */
  narsToRecompress(afterId: number, limit: number): Promise<NarRecord[]>;
  /**
   * In one transaction: records the new stored sizes and levels of chunks whose record still has
   * `oldStoredSize` (the others changed meanwhile and are left alone), and moves the stored size
   * of every NAR that uses them by the difference, counting each use in its chunk table. Returns
   * how many chunks it recorded.
   */
  recordRecompressed(chunks: RecompressedChunk[]): Promise<number>;
  /**
   * In one transaction: records as deltas the chunks whose record still has `oldStoredSize` and
   * encoding 'zstd', and whose bases all have records not found unused nor damaged (the others
   * are left alone): encoding 'delta', stored size, level, depth and bases. A NAR's `.nar.zst`
   * sends such a chunk as a raw frame (rawZstdFrame), so the stored size of every NAR that uses
   * one moves by rawFrameSize(size) - oldStoredSize per use in its chunk table. Returns how many
   * chunks it recorded. A base outlives its dependants (deleteUnreferencedChunks); an ingest that
   * writes the chunk again (commitNar, `written`) makes it plain again. Only a chunk whose bases
   * were reserved (reserveDeltaBases), exactly these, is recorded: an ingest that writes a chunk
   * drops its reservation, so a delta pass never records a file a re-push replaced. The chunks
   * already built on a recorded one get their depth raised to match.
   */
  recordDeltas(chunks: DeltaChunk[]): Promise<number>;
  /** Sets the level of chunks found not worth rewriting at it, so they are not tried again. */
  setChunkLevels(ids: Uint8Array[], zstdLevel: number): Promise<void>;

  // Resemblance sketches (src/delta/resemblance.ts): chunks like a new one are found by index lookups.

  /**
   * Up to `limit` chunks that have no sketch recorded, in use and not damaged, with ids above
   * `after`, ascending (for src/maintenance/sketch-backfill.ts).
   */
  chunksWithoutSketch(after: Uint8Array, limit: number): Promise<ChunkRecord[]>;
  /** Records the sketches of these chunks (those deleted meanwhile are left out); a sketch recorded stays. */
  recordSketches(sketches: ChunkSketch[]): Promise<void>;
  /**
   * Up to `limit` chunks whose sketch shares at least one super-feature (same value at the same
   * index) with `sketch`, most shared first (then by id). Bounded work: at most
   * max(limit, SIMILAR_ROWS_PER_FEATURE) chunks are read per super-feature, so a value that very
   * many chunks share yields some of them, not all, and a chunk left out there is counted for its
   * other super-features only.
   */
  similarChunks(sketch: Uint32Array, limit: number): Promise<SimilarChunk[]>;

  // Delta encoding (src/maintenance/delta-encode.ts).

  /**
   * Up to `limit` plain chunks in use, not damaged, that have a sketch, no bases reserved and no
   * mark of markDeltaTried, after `after` in the order newest first (createdAt descending, then id
   * ascending): reverse deltas grow from the newest chunks down.
   */
  deltaCandidates(after: DeltaCursor | undefined, limit: number): Promise<DeltaCandidate[]>;
  /**
   * The chunk's place in chains of chunk_bases rows (reserved ones included): `depth`, the longest
   * chain of bases below it; `height`, the longest chain of chunks built on it, transitively. Both
   * are counted up to one past MAX_DELTA_DEPTH (chunk-content.ts) at most.
   */
  deltaChain(id: Uint8Array): Promise<{ depth: number; height: number }>;
  /**
   * Records the bases of a chunk about to be rewritten as a delta while its record stays plain,
   * so that GC keeps them from then on; recordDeltas records only chunks so reserved. False, and
   * nothing recorded, when the chunk is not plain or has bases recorded already (another pass
   * is encoding it): one pass at a time writes a chunk's delta.
   */
  reserveDeltaBases(id: Uint8Array, bases: Uint8Array[]): Promise<boolean>;
  /** reserveDeltaBases for several chunks (each listed once), in one transaction: whether each was reserved. */
  reserveDeltaBasesOf(chunks: { id: Uint8Array; bases: Uint8Array[] }[]): Promise<boolean[]>;
  /** Up to `limit` plain chunks with bases recorded (reserveDeltaBases), ids above `after`, ascending. */
  pendingDeltas(after: Uint8Array, limit: number): Promise<PendingDelta[]>;
  /** Deletes the bases recorded for those of these chunks that are plain (a delta's stay). */
  dropDeltaBases(ids: Uint8Array[]): Promise<void>;
  /**
   * Marks these plain chunks as found not worth a delta at `at`: deltaCandidates leaves them out
   * until something that could give them a base arrives (putPath recording a newer NAR of their
   * package, recordSketches a chunk sharing a super-feature), which clears the mark.
   */
  markDeltaTried(ids: Uint8Array[], at: number): Promise<void>;

  // Delta bases by place (src/maintenance/delta-bases.ts): a NAR's package is the name of its first path without
  // hash and version (packageName, src/nix/store-path.ts), recorded by putPath.

  /** Up to `limit` NARs with no package recorded (made before packages were), ids above `after`, ascending. */
  narsWithoutPackage(after: number, limit: number): Promise<NarWithoutPackage[]>;
  /** Records the NAR's package, if it has none yet (and retries the chunks of the package's NAR before it). */
  recordNarPackage(narId: number, storePath: string): Promise<void>;
  /**
   * The newest NAR in use that uses the chunk and has a package, and the next NAR in use of that
   * package after it (by creation), if both exist: index lookups only.
   */
  chunkPlace(id: Uint8Array): Promise<{ nar: NarPlace; next: NarPlace } | undefined>;
  /** The NAR's chunk table (NarRecord.chunkTable), or undefined if it is gone. */
  narChunkTable(narId: number): Promise<Uint8Array | undefined>;
  /**
   * Up to `limit` other NARs in use of the NAR's package that a path names, the newest first, each
   * with one such path: for deltas prepared ahead of upgrades (src/serving/upgrade-deltas.ts).
   */
  otherNarsOfPackage(narId: number, limit: number): Promise<(NarPlace & { storePath: string })[]>;

  /** Which of these chunk ids have a record (as lower-case hex). */
  existingChunks(ids: Uint8Array[]): Promise<Set<string>>;
  /**
   * For GC on a chunk store without ConditionalDelete (deleteUnlessNewer): in one transaction,
   * notes at `at` that the files of those of these chunks that have no record are being deleted,
   * and returns them; only their files may then be deleted. A commit that uses a noted chunk is
   * refused until the deletion is finished, and afterwards when its ingest started before the
   * deletion finished.
   */
  noteChunkDeletions(ids: Uint8Array[], at: number): Promise<Uint8Array[]>;
  /** Marks the deletions of these chunks' files finished at `at`. */
  finishChunkDeletions(ids: Uint8Array[], at: number): Promise<void>;
  /**
   * Marks deletions left unfinished (by a GC run that died) finished at `at`, then forgets those
   * finished before `before`, when no ingest that could be refused for them still runs.
   */
  tidyChunkDeletions(before: number, at: number): Promise<void>;
  /** Publishes a process's ingest hold: `busySince` null when it has no ingest running. */
  renewIngestHold(holder: string, busySince: number | null, at: number): Promise<void>;
  releaseIngestHold(holder: string): Promise<void>;
  /**
   * The earliest busySince among holds renewed at or after `aliveSince`, leaving out
   * `exceptHolder` (the caller's own); holds renewed before it belong to dead processes and are
   * forgotten.
   */
  ingestHoldFloor(aliveSince: number, exceptHolder: string): Promise<number | undefined>;

  // Leases: one holder at a time across every process sharing the store (GC takes 'gc').

  /**
   * Takes or renews the lease `name` for `holder` until now + `ttlMs`, atomically: true when
   * there was no lease, it had expired, or `holder` already held it; false (and nothing changes)
   * while another holder's lease runs.
   */
  tryAcquireLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives up the lease if `holder` holds it; does nothing otherwise. */
  releaseLease(name: string, holder: string): Promise<void>;
}
