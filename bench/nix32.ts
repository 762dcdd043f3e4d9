/** Nix's base-32 (alphabet without e, o, u, t; least significant digit last), for naming NARs. */
const ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

export function nix32(bytes: Uint8Array): string {
  const len = Math.floor((bytes.length * 8 - 1) / 5) + 1;
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const c = (bytes[i] >> j) | (i + 1 < bytes.length ? bytes[i + 1] << (8 - j) : 0);
    out += ALPHABET[c & 0x1f];
  }
  return out;
}

/** NarHash as Nix prints it in narinfos (nix32), from `sha256:<nix32>` or SRI `sha256-<base64>`. */
export function narHashNix32(hash: string): string {
  if (hash.startsWith('sha256:')) return hash.slice('sha256:'.length);
  if (hash.startsWith('sha256-')) return nix32(Buffer.from(hash.slice('sha256-'.length), 'base64'));
  throw new Error(`unexpected hash format ${hash}`);
}
