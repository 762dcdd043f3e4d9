/**
 * Properties of the narinfo parser: what serializeNarinfo writes parses back to the same value;
 * anything else, however damaged, either parses to a value that passes the same round trip and
 * satisfies every invariant the rest of Narwhal relies on, or fails with 'bad-narinfo', never
 * with another error.
 */
import fc from 'fast-check';
import { parseNarinfo, serializeNarinfo, type NarInfo } from '../../src/nix/narinfo.ts';
import { formatSha256Nix32 } from '../../src/nix/hash.ts';
import { isValidStorePathBaseName, parseStorePath } from '../../src/nix/store-path.ts';
import { isNarwhalError } from '../../src/errors.ts';

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';
const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?=';

const hashPartArb = fc.string({ unit: fc.constantFrom(...NIX32), minLength: 32, maxLength: 32 });
const storeNameArb = fc
  .tuple(
    fc.constantFrom(...NAME_CHARS.replace('.', '')),
    fc.string({ unit: fc.constantFrom(...NAME_CHARS), maxLength: 40 }),
  )
  .map(([first, rest]) => first + rest);
const baseNameArb = fc.tuple(hashPartArb, storeNameArb).map(([hash, name]) => `${hash}-${name}`);
const sha256Arb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map(formatSha256Nix32);
/** A value as Nix could write it: printable, not starting with a space. */
const valueArb = fc
  .string({ unit: fc.constantFrom(...'abcxyz0123./:-_+= ABC~'), minLength: 1, maxLength: 30 })
  .filter((s) => !s.startsWith(' '));
const sigArb = fc
  .tuple(fc.constantFrom('cache.nixos.org-1', 'main-1', 'k'), fc.uint8Array({ minLength: 64, maxLength: 64 }))
  .map(([key, sig]) => `${key}:${Buffer.from(sig).toString('base64')}`);

export const narinfoArb: fc.Arbitrary<NarInfo> = fc.record(
  {
    storePath: baseNameArb.map((b) => `/nix/store/${b}`),
    url: valueArb,
    compression: fc.constantFrom('none', 'xz', 'zstd', 'bzip2', 'br', 'gzip', 'lz4'),
    fileHash: sha256Arb,
    fileSize: fc.nat(),
    narHash: sha256Arb,
    narSize: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    references: fc.uniqueArray(baseNameArb, { maxLength: 5 }),
    deriver: baseNameArb.map((b) => `${b}.drv`),
    system: valueArb,
    sigs: fc.uniqueArray(sigArb, { maxLength: 3 }),
    ca: fc.constantFrom(`fixed:r:sha256:${'1'.repeat(52)}`, `text:sha256:${'0'.repeat(52)}`),
  },
  { requiredKeys: ['storePath', 'url', 'narHash', 'narSize', 'references', 'sigs'] },
);

/** Every narinfo Narwhal writes reads back as the same value. */
export const narinfoRoundTrips = fc.property(narinfoArb, (info) => {
  const parsed = parseNarinfo(serializeNarinfo(info));
  return JSON.stringify(sortKeys(parsed)) === JSON.stringify(sortKeys(info));
});

function sortKeys(o: object): object {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

/** Text-level damage to a narinfo. */
type Edit =
  | { op: 'insert'; at: number; text: string }
  | { op: 'delete'; at: number; count: number }
  | { op: 'dupLine'; line: number }
  | { op: 'dropLine'; line: number }
  | { op: 'swapLines'; a: number; b: number }
  | { op: 'setValue'; line: number; value: string }
  | { op: 'addLine'; key: string; value: string };

/** Positions spread evenly over the input (fast-check's own numbers favour the ends). */
const fraction = fc.noBias(fc.integer({ min: 0, max: 9999 })).map((n) => n / 10_000);
const nastyText = fc.oneof(
  fc.constantFrom(
    '\n',
    '\r',
    '\r\n',
    ':',
    ' ',
    '  ',
    '\0',
    '\t',
    '\x7f',
    'é',
    '\u2028',
    '\ud800',
    '/',
    '/nix/store/',
    'sha256:',
    'sha256-',
    '..',
    '=',
  ),
  fc.string({ maxLength: 6 }),
  fc.string({ unit: 'grapheme', maxLength: 4 }),
);
const keyArb = fc.constantFrom(
  'StorePath',
  'URL',
  'Compression',
  'FileHash',
  'FileSize',
  'NarHash',
  'NarSize',
  'References',
  'Deriver',
  'System',
  'Sig',
  'CA',
  'X-Other',
  'storepath',
  'Nar Size',
  '',
);
const valueTextArb = fc.oneof(
  nastyText,
  fc.constantFrom(
    '0',
    '-1',
    '1e3',
    '9007199254740993',
    ' 1',
    '1 ',
    `sha256:${'0'.repeat(52)}`,
    `sha256:${'z'.repeat(52)}`,
    `sha256:${'a'.repeat(64)}`,
    `sha256-${'A'.repeat(43)}=`,
    `md5:${'0'.repeat(32)}`,
  ),
  baseNameArb,
  baseNameArb.map((b) => `/nix/store/${b}`),
  fc.tuple(baseNameArb, baseNameArb).map(([a, b]) => `${a} ${b}`),
);
const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constant('insert' as const), at: fraction, text: nastyText }),
  fc.record({ op: fc.constant('delete' as const), at: fraction, count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('dupLine' as const), line: fraction }),
  fc.record({ op: fc.constant('dropLine' as const), line: fraction }),
  fc.record({ op: fc.constant('swapLines' as const), a: fraction, b: fraction }),
  fc.record({ op: fc.constant('setValue' as const), line: fraction, value: valueTextArb }),
  fc.record({ op: fc.constant('addLine' as const), key: keyArb, value: valueTextArb }),
);

function applyEdit(text: string, edit: Edit): string {
  const lines = text.split('\n');
  const pick = (f: number): number => Math.floor(f * lines.length);
  switch (edit.op) {
    case 'insert': {
      const at = Math.floor(edit.at * (text.length + 1));
      return text.slice(0, at) + edit.text + text.slice(at);
    }
    case 'delete': {
      const at = Math.floor(edit.at * (text.length + 1));
      return text.slice(0, at) + text.slice(at + edit.count);
    }
    case 'dupLine':
      lines.splice(pick(edit.line), 0, lines[pick(edit.line)]);
      return lines.join('\n');
    case 'dropLine':
      lines.splice(pick(edit.line), 1);
      return lines.join('\n');
    case 'swapLines': {
      const [a, b] = [pick(edit.a), pick(edit.b)];
      [lines[a], lines[b]] = [lines[b], lines[a]];
      return lines.join('\n');
    }
    case 'setValue': {
      const i = pick(edit.line);
      const colon = lines[i].indexOf(': ');
      if (colon > 0) lines[i] = `${lines[i].slice(0, colon)}: ${edit.value}`;
      return lines.join('\n');
    }
    case 'addLine':
      return `${text}${edit.key}: ${edit.value}\n`;
  }
}

/** What callers rely on in a parsed narinfo. */
function wellFormed(info: NarInfo): boolean {
  const canonicalHash = (h: string): boolean =>
    /^sha256:[0-9a-df-np-sv-z]{52}$/.test(h) && (h[7] === '0' || h[7] === '1');
  parseStorePath(info.storePath, 'bad-narinfo');
  return (
    canonicalHash(info.narHash) &&
    (info.fileHash === undefined || canonicalHash(info.fileHash)) &&
    Number.isSafeInteger(info.narSize) &&
    info.narSize > 0 &&
    (info.fileSize === undefined || (Number.isSafeInteger(info.fileSize) && info.fileSize >= 0)) &&
    info.references.every(isValidStorePathBaseName) &&
    new Set(info.references).size === info.references.length &&
    (info.deriver === undefined || isValidStorePathBaseName(info.deriver)) &&
    new Set(info.sigs).size === info.sigs.length &&
    !/[\r\n]/.test(info.url + (info.system ?? '') + (info.compression ?? '') + (info.ca ?? ''))
  );
}

/** parseNarinfo's contract on any text: a well-formed value that round-trips, or 'bad-narinfo'. */
export function parsesSafely(text: string): boolean {
  let info: NarInfo;
  try {
    info = parseNarinfo(text);
  } catch (err) {
    if (isNarwhalError(err, 'bad-narinfo')) return true;
    throw err;
  }
  const again = parseNarinfo(serializeNarinfo(info));
  return wellFormed(info) && JSON.stringify(sortKeys(again)) === JSON.stringify(sortKeys(info));
}

/** Narinfo texts with one to three edits. */
export const damagedNarinfoArb: fc.Arbitrary<string> = fc
  .tuple(narinfoArb, fc.array(editArb, { minLength: 1, maxLength: 3 }))
  .map(([info, edits]) => edits.reduce(applyEdit, serializeNarinfo(info)));

/** Damaged narinfos are refused or read as something consistent. */
export const damagedNarinfoParsesSafely = fc.property(damagedNarinfoArb, parsesSafely);

/** So is any text at all. */
export const arbitraryTextParsesSafely = fc.property(
  fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc
      .array(fc.tuple(keyArb, valueTextArb), { maxLength: 12 })
      .map((lines) => lines.map(([k, v]) => `${k}: ${v}\n`).join('')),
  ),
  parsesSafely,
);
