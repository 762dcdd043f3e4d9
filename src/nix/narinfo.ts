/**
 * .narinfo parsing and serialization. Parsing is stricter than Nix's own parser: it accepts what
 * Nix writes (one `Key: value` per LF-terminated line) and rejects ambiguity (duplicate keys,
 * full paths in References, CR, blank lines) with a message fit for an HTTP 400 body.
 */
import { NarwhalError } from '../errors.ts';
import { normalizeSha256 } from './hash.ts';
import { isValidStorePathBaseName, parseStorePath } from './store-path.ts';

export interface NarInfo {
  /** Full store path, /nix/store/<hash>-<name>. */
  storePath: string;
  url: string;
  /** As written; absent means bzip2 to Nix clients. */
  compression?: string;
  /** `sha256:<nix32>` */
  fileHash?: string;
  fileSize?: number;
  /** `sha256:<nix32>` */
  narHash: string;
  narSize: number;
  /** Store path base names, in file order. */
  references: string[];
  /** Store path base name; "unknown-deriver" parses as absent. */
  deriver?: string;
  system?: string;
  /** Signature values `<keyname>:<base64>`, duplicates dropped. */
  sigs: string[];
  ca?: string;
}

export const NARINFO_MAX_BYTES = 64 * 1024;

const KEY_RE = /^[A-Za-z0-9_.-]+$/;
const SIZE_RE = /^(0|[1-9][0-9]*)$/;
// Any control character other than LF (which separates lines) is refused, as is DEL.
const CONTROL_RE = /[\x00-\x09\x0b-\x1f\x7f]/;

const bad = (message: string): NarwhalError => new NarwhalError('bad-narinfo', message);

function parseSize(key: string, value: string): number {
  if (!SIZE_RE.test(value)) throw bad(`${key} must be a decimal integer`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw bad(`${key} is too large`);
  return n;
}

function parseBaseName(key: string, value: string): string {
  if (value.includes('/')) throw bad(`${key} must be a store path base name, not a full path`);
  if (!isValidStorePathBaseName(value)) throw bad(`${key} has an invalid store path '${value.slice(0, 100)}'`);
  return value;
}

export function parseNarinfo(text: string): NarInfo {
  if (Buffer.byteLength(text, 'utf8') > NARINFO_MAX_BYTES) throw bad(`narinfo exceeds ${NARINFO_MAX_BYTES} bytes`);
  if (text.includes('\r')) throw bad('narinfo must use LF line endings');
  if (CONTROL_RE.test(text)) throw bad('narinfo contains a control character');
  if (text.length === 0) throw bad('narinfo is empty');
  if (!text.endsWith('\n')) throw bad('narinfo must end with a newline');

  const lines = text.slice(0, -1).split('\n');
  const seen = new Set<string>();
  const sigs = new Set<string>();
  let storePath: string | undefined;
  let url: string | undefined;
  let compression: string | undefined;
  let fileHash: string | undefined;
  let fileSize: number | undefined;
  let narHash: string | undefined;
  let narSize: number | undefined;
  let references: string[] | undefined;
  let deriver: string | undefined;
  let system: string | undefined;
  let ca: string | undefined;

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const where = `line ${i + 1}`;
    const colon = line.indexOf(':');
    if (colon <= 0) throw bad(`${where}: expected 'Key: value'`);
    const key = line.slice(0, colon);
    if (!KEY_RE.test(key)) throw bad(`${where}: invalid key`);
    const rest = line.slice(colon + 1);
    // "References: " with nothing after it is the one legitimately empty value.
    if (rest.length === 0 || rest[0] !== ' ') throw bad(`${where}: expected one space after '${key}:'`);
    const value = rest.slice(1);
    if (value.startsWith(' ')) throw bad(`${where}: expected one space after '${key}:'`);
    if (key === 'Sig') {
      if (!/^[^:\s]+:[A-Za-z0-9+/=]+$/.test(value)) throw bad(`${where}: Sig must be <keyname>:<base64>`);
      sigs.add(value);
      continue;
    }
    const known =
      key === 'StorePath' ||
      key === 'URL' ||
      key === 'Compression' ||
      key === 'FileHash' ||
      key === 'FileSize' ||
      key === 'NarHash' ||
      key === 'NarSize' ||
      key === 'References' ||
      key === 'Deriver' ||
      key === 'System' ||
      key === 'CA';
    if (!known) continue;
    if (seen.has(key)) throw bad(`${where}: duplicate ${key}`);
    seen.add(key);
    if (key !== 'References' && value.length === 0) throw bad(`${where}: ${key} is empty`);
    switch (key) {
      case 'StorePath':
        parseStorePath(value, 'bad-narinfo');
        storePath = value;
        break;
      case 'URL':
        url = value;
        break;
      case 'Compression':
        compression = value;
        break;
      case 'FileHash':
        fileHash = normalizeSha256(value, 'bad-narinfo');
        break;
      case 'FileSize':
        fileSize = parseSize(key, value);
        break;
      case 'NarHash':
        narHash = normalizeSha256(value, 'bad-narinfo');
        break;
      case 'NarSize':
        narSize = parseSize(key, value);
        if (narSize === 0) throw bad('NarSize must not be zero');
        break;
      case 'References': {
        references = value.length === 0 ? [] : value.split(' ').map((r) => parseBaseName('References', r));
        if (new Set(references).size !== references.length) throw bad('References lists a path twice');
        break;
      }
      case 'Deriver':
        deriver = value === 'unknown-deriver' ? undefined : parseBaseName('Deriver', value);
        break;
      case 'System':
        system = value;
        break;
      case 'CA':
        if (!value.startsWith('fixed:') && !value.startsWith('text:')) throw bad('CA must start with fixed: or text:');
        ca = value;
        break;
    }
  }

  if (storePath === undefined) throw bad('StorePath missing');
  if (url === undefined) throw bad('URL missing');
  if (narHash === undefined) throw bad('NarHash missing');
  if (narSize === undefined) throw bad('NarSize missing');

  const info: NarInfo = { storePath, url, narHash, narSize, references: references ?? [], sigs: [...sigs] };
  if (compression !== undefined) info.compression = compression;
  if (fileHash !== undefined) info.fileHash = fileHash;
  if (fileSize !== undefined) info.fileSize = fileSize;
  if (deriver !== undefined) info.deriver = deriver;
  if (system !== undefined) info.system = system;
  if (ca !== undefined) info.ca = ca;
  return info;
}

/** Nix's field order: StorePath URL Compression FileHash FileSize NarHash NarSize References Deriver System Sig* CA. */
export function serializeNarinfo(info: NarInfo): string {
  const lines: string[] = [`StorePath: ${info.storePath}`, `URL: ${info.url}`];
  if (info.compression !== undefined) lines.push(`Compression: ${info.compression}`);
  if (info.fileHash !== undefined) lines.push(`FileHash: ${info.fileHash}`);
  if (info.fileSize !== undefined) lines.push(`FileSize: ${info.fileSize}`);
  lines.push(`NarHash: ${info.narHash}`, `NarSize: ${info.narSize}`, `References: ${info.references.join(' ')}`);
  if (info.deriver !== undefined) lines.push(`Deriver: ${info.deriver}`);
  if (info.system !== undefined) lines.push(`System: ${info.system}`);
  for (const sig of info.sigs) lines.push(`Sig: ${sig}`);
  if (info.ca !== undefined) lines.push(`CA: ${info.ca}`);
  const text = lines.join('\n') + '\n';
  if (text.includes('\r') || lines.some((l) => l.includes('\n'))) {
    throw new NarwhalError('bad-narinfo', 'narinfo field contains a line break');
  }
  return text;
}
