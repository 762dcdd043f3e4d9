/**
 * The metadata contract. Backends (SQLite now, PostgreSQL later) implement it; the cache layer
 * uses nothing else. Every method is atomic on its own: a method either commits all it writes or
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
}

export interface NewChunk {
  id: Uint8Array;
  size: number;
  storedSize: number;
}

export interface NewNar {
  narHash: string;
  narSize: number;
  storedSize: number;
  chunkTable: Uint8Array;
  /** Every distinct chunk the table names, with its sizes. */
  chunks: NewChunk[];
  /** The name the client uploaded it under (`nar/<fileHash>.nar<ext>`), so HEAD on it can answer. */
  upload?: { fileHash: string; suffix: string; fileSize: number };
}

export interface PathRecord {
  cacheId: number;
  hashPart: string;
  storePath: string;
  narId: number;
  narHash: string;
  narSize: number;
  /** Basenames of the referenced store paths. */
  references: string[];
  deriver: string | null;
  system: string | null;
  sigs: string[];
  ca: string | null;
  createdAt: number;
}

export type NewPath = Omit<PathRecord, 'createdAt' | 'narHash' | 'narSize'>;

export interface CacheFile {
  content: Uint8Array;
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

export interface MetadataStore {
  close(): Promise<void>;

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
  /** Whether a NAR that some path of this cache uses contains the chunk. */
  cacheHasChunk(cacheId: number, chunkId: Uint8Array): Promise<boolean>;

  getNar(narHash: string): Promise<NarRecord | undefined>;
  /** Whether a committed NAR uses the chunk. */
  hasChunk(id: Uint8Array): Promise<boolean>;
  /** The NAR that was uploaded as `nar/<fileHash>.nar<suffix>`, if any. */
  getNarByUpload(fileHash: string, suffix: string): Promise<NarRecord | undefined>;
  /**
   * Records a NAR and its chunks. Idempotent: a NAR already recorded is returned as it is (its
   * chunks were recorded with it); the upload name is recorded either way.
   */
  commitNar(nar: NewNar): Promise<NarRecord>;

  getPath(cacheId: number, hashPart: string): Promise<PathRecord | undefined>;
  /** Which of these hash parts this cache holds. */
  existingPaths(cacheId: number, hashParts: string[]): Promise<Set<string>>;
  /** Inserts or replaces the path. */
  putPath(path: NewPath): Promise<void>;

  getFile(cacheId: number, name: string): Promise<CacheFile | undefined>;
  putFile(cacheId: number, name: string, file: CacheFile): Promise<void>;

  stats(): Promise<StoreStats>;
}
