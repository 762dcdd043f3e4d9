/**
 * Nix's narinfo signatures: ed25519 over the fingerprint
 * `1;<store path>;sha256:<nix32 NarHash>;<NarSize>;<sorted comma-joined reference paths>`,
 * with keys in Nix's text format `<name>:<base64>` (secret: seed || public key, 64 bytes; public:
 * 32 bytes) and signatures `<name>:<base64 of 64 bytes>`.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { NarwhalError } from '../errors.ts';
import { normalizeSha256 } from './hash.ts';
import type { NarInfo } from './narinfo.ts';
import { fullStorePath } from './store-path.ts';

export interface SecretKey {
  name: string;
  key: KeyObject;
  /** The 32-byte public key, as stored in the second half of the secret key. */
  publicKey: Uint8Array;
}

export interface PublicKey {
  name: string;
  key: KeyObject;
}

const SIG_BYTES = 64;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
// DER prefixes that wrap a raw 32-byte ed25519 key as PKCS#8 (private) or SPKI (public).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** The string Nix signs for a path; `narHash` may be in any accepted sha256 notation. */
export function fingerprint(
  storePath: string,
  narHash: string,
  narSize: number,
  referencesFullPaths: readonly string[],
): string {
  if (!(Number.isSafeInteger(narSize) && narSize > 0)) {
    throw new NarwhalError('bad-narinfo', 'cannot fingerprint a path whose NarSize is unknown');
  }
  const refs = [...referencesFullPaths].sort();
  return `1;${storePath};${normalizeSha256(narHash, 'bad-narinfo')};${narSize};${refs.join(',')}`;
}

/** Fingerprint of a parsed narinfo (its references are base names). */
export function narinfoFingerprint(info: NarInfo): string {
  return fingerprint(info.storePath, info.narHash, info.narSize, info.references.map(fullStorePath));
}

function splitKey(text: string, what: string): { name: string; bytes: Buffer } {
  const t = text.trim();
  const colon = t.indexOf(':');
  if (colon <= 0 || colon === t.length - 1) throw new NarwhalError('bad-request', `${what} must be <name>:<base64>`);
  const b64 = t.slice(colon + 1);
  if (!BASE64_RE.test(b64)) throw new NarwhalError('bad-request', `${what} is not valid base64`);
  return { name: t.slice(0, colon), bytes: Buffer.from(b64, 'base64') };
}

/** Parses a Nix secret key file's text; checks that its public half belongs to its seed. */
export function parseSecretKey(text: string): SecretKey {
  const { name, bytes } = splitKey(text, 'secret key');
  if (bytes.length !== 64) throw new NarwhalError('bad-request', 'secret key must be 64 bytes');
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, bytes.subarray(0, 32)]),
    format: 'der',
    type: 'pkcs8',
  });
  const derived = rawPublicKey(createPublicKey(key));
  const publicKey = new Uint8Array(bytes.subarray(32));
  if (!derived.equals(publicKey)) throw new NarwhalError('bad-request', 'secret key halves do not match');
  return { name, key, publicKey };
}

/** Parses a Nix public key (`<name>:<base64 of 32 bytes>`). */
export function parsePublicKey(text: string): PublicKey {
  const { name, bytes } = splitKey(text, 'public key');
  if (bytes.length !== 32) throw new NarwhalError('bad-request', 'public key must be 32 bytes');
  return { name, key: createPublicKey({ key: Buffer.concat([SPKI_PREFIX, bytes]), format: 'der', type: 'spki' }) };
}

function rawPublicKey(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

/** A fresh key pair in the text format of `nix-store --generate-binary-cache-key`. */
export function generateSigningKey(name: string): { secretKey: string; publicKey: string } {
  if (name.length === 0 || name.includes(':') || /\s/.test(name)) {
    throw new NarwhalError('bad-request', 'key name must be non-empty, without colons or spaces');
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_PREFIX.length);
  const pub = rawPublicKey(publicKey);
  return {
    secretKey: `${name}:${Buffer.concat([seed, pub]).toString('base64')}`,
    publicKey: `${name}:${pub.toString('base64')}`,
  };
}

/** Signs `fp`, returning the narinfo Sig value `<name>:<base64>`. */
export function signFingerprint(fp: string, secretKey: string | SecretKey): string {
  const sk = typeof secretKey === 'string' ? parseSecretKey(secretKey) : secretKey;
  return `${sk.name}:${sign(null, Buffer.from(fp, 'utf8'), sk.key).toString('base64')}`;
}

/**
 * True when `sig` (a Sig value `<name>:<base64>`) is a valid signature of `fp` by a key of that
 * name among `publicKeys`. A malformed signature is simply not valid; malformed keys throw.
 */
export function verifySignature(fp: string, sig: string, publicKeys: readonly (string | PublicKey)[]): boolean {
  const colon = sig.indexOf(':');
  if (colon <= 0) return false;
  const name = sig.slice(0, colon);
  const b64 = sig.slice(colon + 1);
  if (!BASE64_RE.test(b64)) return false;
  const sigBytes = Buffer.from(b64, 'base64');
  if (sigBytes.length !== SIG_BYTES) return false;
  const data = Buffer.from(fp, 'utf8');
  for (const k of publicKeys) {
    const pk = typeof k === 'string' ? parsePublicKey(k) : k;
    if (pk.name === name && verify(null, data, pk.key, sigBytes)) return true;
  }
  return false;
}

/** The public key, in Nix's text format, that belongs to a secret key. */
export function publicKeyOf(secretKey: string | SecretKey): string {
  const sk = typeof secretKey === 'string' ? parseSecretKey(secretKey) : secretKey;
  return `${sk.name}:${Buffer.from(sk.publicKey).toString('base64')}`;
}
