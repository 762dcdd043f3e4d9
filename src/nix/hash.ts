/**
 * SHA-256 hashes as Nix writes them: `sha256:` followed by nix32 (52 chars), base16 (64) or base64
 * (44), told apart by length, or SRI `sha256-<base64>`. Canonical output is `sha256:<nix32>`.
 */
import { NarwhalError, type ErrorCode } from '../errors.ts';
import { decodeNixBase32, encodeNixBase32 } from './base32.ts';

export const SHA256_BYTES = 32;
const NIX32_LEN = 52;
const HEX_LEN = 64;
const BASE64_LEN = 44;

const HEX_RE = /^[0-9a-fA-F]{64}$/;
const BASE64_RE = /^[A-Za-z0-9+/]{43}=$/;

/** Parses any of Nix's sha256 notations; throws NarwhalError(code) on anything else. */
export function parseSha256(s: string, code: ErrorCode = 'bad-request'): Uint8Array {
  let body: string;
  let sri: boolean;
  if (s.startsWith('sha256:')) {
    body = s.slice(7);
    sri = false;
  } else if (s.startsWith('sha256-')) {
    body = s.slice(7);
    sri = true;
  } else {
    throw new NarwhalError(code, 'hash must be sha256 (sha256:... or sha256-...)');
  }
  if (!sri && body.length === NIX32_LEN) {
    try {
      return decodeNixBase32(body);
    } catch (err) {
      throw new NarwhalError(code, 'invalid nix base-32 sha256 hash', { cause: err });
    }
  }
  if (!sri && body.length === HEX_LEN) {
    if (!HEX_RE.test(body)) throw new NarwhalError(code, 'invalid base-16 sha256 hash');
    return new Uint8Array(Buffer.from(body, 'hex'));
  }
  if (body.length === BASE64_LEN) {
    const bytes = BASE64_RE.test(body) ? Buffer.from(body, 'base64') : undefined;
    // Re-encoding rejects strings whose unused trailing bits are set.
    if (bytes === undefined || bytes.length !== SHA256_BYTES || bytes.toString('base64') !== body) {
      throw new NarwhalError(code, 'invalid base-64 sha256 hash');
    }
    return new Uint8Array(bytes);
  }
  throw new NarwhalError(code, `sha256 hash has invalid length ${body.length}`);
}

/** `sha256:<nix32>`, the form Nix writes in narinfo files and fingerprints. */
export function formatSha256Nix32(bytes: Uint8Array): string {
  if (bytes.length !== SHA256_BYTES) {
    throw new NarwhalError('internal', `sha256 digest must be 32 bytes, got ${bytes.length}`);
  }
  return 'sha256:' + encodeNixBase32(bytes);
}

/** Any accepted notation → canonical `sha256:<nix32>`. */
export function normalizeSha256(s: string, code: ErrorCode = 'bad-request'): string {
  return formatSha256Nix32(parseSha256(s, code));
}
