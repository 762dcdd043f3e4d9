import { NarwhalError } from '../errors.ts';
import type {
  CacheFile,
  CacheRecord,
  ChunkRecord,
  NarOwners,
  NarRecord,
  NewPath,
  PathRecord,
  Permission,
  TokenRecord,
} from './metadata-store.ts';

/**
 * Row-to-record conversion shared by the metadata backends. Rows differ only in how drivers
 * return booleans (SQLite 0/1, PostgreSQL true/false) and blobs (Uint8Array, or pg's Buffer).
 */
export type Row = Record<string, unknown>;

/** Why a commit is refused when GC deleted one of its chunk files meanwhile (NewNar.ingestStartedAt). */
export function chunksDeletedError(): NarwhalError {
  return new NarwhalError(
    'unavailable',
    'garbage collection deleted chunks of this upload while it ran; upload it again',
  );
}

export function fileUploadGoneError(): NarwhalError {
  return new NarwhalError('unavailable', 'garbage collection took this file upload for abandoned; upload it again');
}

export function toCacheFile(row: Row): CacheFile {
  return {
    contentId: Number(row.content_id),
    size: Number(row.size),
    contentType: String(row.content_type),
    contentEncoding: row.content_encoding === null ? null : String(row.content_encoding),
  };
}

function flag(value: unknown): boolean {
  return value === true || Number(value) === 1;
}

/** A blob as a plain Uint8Array of its own (pg hands out Buffers from a shared pool). */
export function blob(value: unknown): Uint8Array {
  return Buffer.isBuffer(value) ? new Uint8Array(value) : (value as Uint8Array);
}

export function splitList(value: unknown, separator: string): string[] {
  const text = String(value);
  return text === '' ? [] : text.split(separator);
}

function nullableNumber(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

function nullableString(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

export function toCache(row: Row): CacheRecord {
  return {
    id: Number(row.id),
    name: String(row.name),
    isPublic: flag(row.is_public),
    priority: Number(row.priority),
    signingKey: String(row.signing_key),
    trustedKeys: splitList(row.trusted_keys, '\n'),
    requireSignature: flag(row.require_signature),
    retention: Number(row.retention),
    upstreams: splitList(row.upstreams, '\n'),
    upstreamKeys: splitList(row.upstream_keys, '\n'),
    createdAt: Number(row.created_at),
  };
}

export function toToken(row: Row): TokenRecord {
  return {
    id: String(row.id),
    name: String(row.name),
    caches: splitList(row.caches, ','),
    perms: splitList(row.perms, ',') as Permission[],
    createdAt: Number(row.created_at),
    expiresAt: nullableNumber(row.expires_at),
    revokedAt: nullableNumber(row.revoked_at),
  };
}

export function toNar(row: Row): NarRecord {
  return {
    id: Number(row.id),
    narHash: String(row.nar_hash),
    narSize: Number(row.nar_size),
    chunkCount: Number(row.chunk_count),
    storedSize: Number(row.stored_size),
    chunkTable: blob(row.chunk_table),
    createdAt: Number(row.created_at),
    damagedAt: nullableNumber(row.damaged_at),
  };
}

export function toChunk(row: Row): ChunkRecord {
  return {
    id: blob(row.id),
    size: Number(row.size),
    storedSize: Number(row.stored_size),
    damagedAt: nullableNumber(row.damaged_at),
    unreferencedSince: nullableNumber(row.unreferenced_since),
    zstdLevel: nullableNumber(row.zstd_level),
    encoding: row.encoding === 'delta' ? 'delta' : 'zstd',
    deltaDepth: Number(row.delta_depth ?? 0),
    createdAt: Number(row.created_at),
  };
}

export function toPath(row: Row): PathRecord {
  return {
    cacheId: Number(row.cache_id),
    hashPart: String(row.hash_part),
    storePath: String(row.store_path),
    narId: Number(row.nar_id),
    narHash: String(row.nar_hash),
    narSize: Number(row.nar_size),
    narStoredSize: Number(row.nar_stored_size),
    references: splitList(row.refs, ' '),
    deriver: nullableString(row.deriver),
    system: nullableString(row.system),
    sigs: splitList(row.sigs, '\n'),
    ca: nullableString(row.ca),
    createdAt: Number(row.created_at),
    lastAccess: Number(row.last_access),
    pinned: flag(row.pinned),
    narDamaged: row.nar_damaged_at !== null && row.nar_damaged_at !== undefined,
  };
}

/**
 * How a NAR's stored size moves when some of its chunks change size: the sum, over the entries
 * of its chunk table (40 bytes each: end offset, then the 32-byte chunk id), of the change of
 * the entry's chunk. `changes` maps chunk ids (lower-case hex) to new minus old stored size.
 */
export function storedSizeDelta(chunkTable: Uint8Array, changes: Map<string, number>): number {
  const table = Buffer.from(chunkTable.buffer, chunkTable.byteOffset, chunkTable.byteLength);
  let delta = 0;
  for (let at = 8; at + 32 <= table.length; at += 40) delta += changes.get(table.toString('hex', at, at + 32)) ?? 0;
  return delta;
}

/**
 * What storing `path` would do to the row now under its hash part (metadata-statements.ts, pathIdentity):
 * insert it, nothing, add signatures (the full list to store), or replace a different path.
 */
export function pathUpload(
  existing: Row | undefined,
  path: NewPath,
): { kind: 'new' | 'unchanged' | 'different' } | { kind: 'more-sigs'; sigs: string[] } {
  if (!existing) return { kind: 'new' };
  const same =
    String(existing.store_path) === path.storePath &&
    Number(existing.nar_id) === path.narId &&
    String(existing.refs) === path.references.join(' ') &&
    nullableString(existing.deriver) === path.deriver &&
    nullableString(existing.system) === path.system &&
    nullableString(existing.ca) === path.ca;
  if (!same) return { kind: 'different' };
  const sigs = splitList(existing.sigs, '\n');
  const added = path.sigs.filter((sig) => !sigs.includes(sig));
  return added.length === 0 ? { kind: 'unchanged' } : { kind: 'more-sigs', sigs: [...sigs, ...added] };
}

/** Rows of (cache_id, used: 1 for a path's use, 0 for an upload) as NarOwners. */
export function toNarOwners(rows: Row[]): NarOwners {
  const owners: NarOwners = { usedBy: [], uploadedTo: [] };
  for (const row of rows) (Number(row.used) === 1 ? owners.usedBy : owners.uploadedTo).push(Number(row.cache_id));
  return owners;
}
