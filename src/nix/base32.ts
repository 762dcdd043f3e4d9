/**
 * Nix's base-32 ("nix32"): alphabet without e, o, u, t; the string is written most significant
 * digit first, digit k holding bits 5k..5k+4 of the little-endian byte string.
 */
import { NarwhalError } from '../errors.ts';

const ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

const DIGIT_OF = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DIGIT_OF[ALPHABET.charCodeAt(i)] = i;

/** Length of the nix32 text for `byteLength` bytes. */
export function nixBase32Length(byteLength: number): number {
  return byteLength === 0 ? 0 : Math.floor((byteLength * 8 - 1) / 5) + 1;
}

export function encodeNixBase32(bytes: Uint8Array): string {
  const n = bytes.length;
  const len = nixBase32Length(n);
  let out = '';
  for (let k = len - 1; k >= 0; k--) {
    const b = k * 5;
    const i = b >> 3;
    const j = b & 7;
    const c = (bytes[i] >> j) | (i + 1 < n ? bytes[i + 1] << (8 - j) : 0);
    out += ALPHABET[c & 0x1f];
  }
  return out;
}

/** Inverse of encodeNixBase32; rejects foreign characters, impossible lengths and set bits beyond the last byte. */
export function decodeNixBase32(s: string): Uint8Array {
  const len = s.length;
  const n = Math.floor((len * 5) / 8);
  if (nixBase32Length(n) !== len) {
    throw new NarwhalError('bad-request', `invalid nix base-32 length ${len}`);
  }
  const out = new Uint8Array(n);
  for (let k = 0; k < len; k++) {
    const code = s.charCodeAt(len - 1 - k);
    const digit = code < 128 ? DIGIT_OF[code] : -1;
    if (digit < 0) throw new NarwhalError('bad-request', 'invalid character in nix base-32 string');
    const b = k * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i] |= (digit << j) & 0xff;
    const high = digit >> (8 - j);
    if (i + 1 < n) out[i + 1] |= high;
    else if (high !== 0) throw new NarwhalError('bad-request', 'nix base-32 string has excess bits set');
  }
  return out;
}

/** True when every character of `s` is in the nix32 alphabet. */
export function isNixBase32Chars(s: string): boolean {
  for (let k = 0; k < s.length; k++) {
    const code = s.charCodeAt(k);
    if (code >= 128 || DIGIT_OF[code] < 0) return false;
  }
  return true;
}
