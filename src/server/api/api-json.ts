import { NarwhalError } from '../../errors.ts';
import type { CacheChanges } from '../../tenancy/admin-operations.ts';
import type { NewCacheOptions } from '../../tenancy/caches.ts';
import { parseDuration } from '../../tenancy/duration.ts';
import type { NewToken } from '../../tenancy/tokens.ts';
import type { Permission } from '../../metadata/metadata-store.ts';

/** Request bodies of the management API, checked field by field. */

export function newCacheFromJson(body: unknown): { name: string; options: NewCacheOptions } {
  const o = object(body);
  return {
    name: string(o.name, 'name'),
    options: {
      isPublic: optional(o.public, boolean, 'public'),
      priority: optional(o.priority, integer, 'priority'),
      signingKey: optional(o.signingKey, string, 'signingKey'),
      retention: optional(o.retention, integer, 'retention'),
      upstreams: optional(o.upstreams, stringArray, 'upstreams'),
      upstreamKeys: optional(o.upstreamKeys, stringArray, 'upstreamKeys'),
    },
  };
}

export function cacheChangesFromJson(body: unknown): CacheChanges {
  const o = object(body);
  const changes: CacheChanges = {};
  if (o.public !== undefined) changes.isPublic = boolean(o.public, 'public');
  if (o.priority !== undefined) changes.priority = integer(o.priority, 'priority');
  if (o.signingKey !== undefined) changes.signingKey = string(o.signingKey, 'signingKey');
  if (o.trustedKeys !== undefined) changes.trustedKeys = stringArray(o.trustedKeys, 'trustedKeys');
  if (o.requireSignature !== undefined) changes.requireSignature = boolean(o.requireSignature, 'requireSignature');
  // Seconds, as `cache info` shows it; 0 keeps paths forever.
  if (o.retention !== undefined) changes.retention = integer(o.retention, 'retention');
  if (o.upstreams !== undefined) changes.upstreams = stringArray(o.upstreams, 'upstreams');
  if (o.upstreamKeys !== undefined) changes.upstreamKeys = stringArray(o.upstreamKeys, 'upstreamKeys');
  return changes;
}

export function newTokenFromJson(body: unknown): NewToken {
  const o = object(body);
  const expires = optional(o.expires, string, 'expires');
  return {
    caches: stringArray(o.caches, 'caches'),
    perms: stringArray(o.perms, 'perms') as Permission[],
    name: optional(o.name, string, 'name'),
    expiresInMs: expires === undefined ? undefined : parseDuration(expires),
  };
}

function object(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new NarwhalError('bad-request', 'the body must be a JSON object');
  return value as Record<string, unknown>;
}

function string(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new NarwhalError('bad-request', `${field} must be a string`);
  return value;
}

function boolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw new NarwhalError('bad-request', `${field} must be true or false`);
  return value;
}

function integer(value: unknown, field: string): number {
  if (!Number.isInteger(value)) throw new NarwhalError('bad-request', `${field} must be a whole number`);
  return value as number;
}

function stringArray(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string'))
    throw new NarwhalError('bad-request', `${field} must be a list of strings`);
  return value;
}

function optional<T>(value: unknown, check: (value: unknown, field: string) => T, field: string): T | undefined {
  return value === undefined ? undefined : check(value, field);
}
