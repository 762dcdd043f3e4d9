import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { NarTokenWriter, writeNar, type NarTree } from '../../src/nix/nar-writer.ts';
import { serializeNarinfo } from '../../src/nix/narinfo.ts';
import { formatSha256Nix32 } from '../../src/nix/hash.ts';
import { encodeNixBase32 } from '../../src/nix/base32.ts';
import { createHash } from 'node:crypto';
import {
  answerOf,
  assertClientError,
  assertNothingStored,
  nix32Sha256,
  startHostileServer,
  type HostileServer,
} from './hostile-server.ts';

const file = (s: string): NarTree => ({ type: 'regular', contents: Buffer.from(s) });
/** A NAR writer positioned inside a root directory, for crafting entries by hand. */
const dir = (): NarTokenWriter => new NarTokenWriter().strs('nix-archive-1', '(', 'type', 'directory');
const entry = (w: NarTokenWriter, name: string | Uint8Array, node: NarTree = file('x')): NarTokenWriter =>
  w.strs('entry', '(', 'name', name, 'node').node(node).str(')');

const valid = writeNar({
  type: 'directory',
  entries: { a: file('alpha'), b: file('beta'), c: { type: 'symlink', target: 'a' } },
});

/** Every way a NAR can be malformed or non-canonical, with what the answer must name. */
const BAD_NARS: [label: string, nar: Uint8Array, pattern: RegExp][] = [
  ['wrong magic', new NarTokenWriter().str('nix-archive-2').node(file('x')).finish(), /invalid NAR.*bad magic/],
  ['not a NAR at all', Buffer.from('<html>hello</html>\n'), /invalid NAR|truncated/],
  ['empty body', new Uint8Array(0), /truncated/],
  ['unsorted entries', entry(entry(dir(), 'b'), 'a').str(')').finish(), /invalid NAR.*not sorted/],
  ['duplicate entries', entry(entry(dir(), 'a'), 'a').str(')').finish(), /invalid NAR.*duplicate/],
  ['entry named ..', entry(dir(), '..').str(')').finish(), /invalid NAR.*'\.' or '\.\.'/],
  ['entry named .', entry(dir(), '.').str(')').finish(), /invalid NAR.*'\.' or '\.\.'/],
  ['entry name with /', entry(dir(), 'etc/passwd').str(')').finish(), /invalid NAR.*'\/'/],
  ['entry name that is /', entry(dir(), '/').str(')').finish(), /invalid NAR.*'\/'/],
  ['entry name with NUL', entry(dir(), Buffer.from('a\0b')).str(')').finish(), /invalid NAR.*NUL/],
  ['empty entry name', entry(dir(), '').str(')').finish(), /invalid NAR.*empty entry name/],
  [
    'symlink target with NUL',
    new NarTokenWriter().str('nix-archive-1').strs('(', 'type', 'symlink', 'target', 'a\0b', ')').finish(),
    /invalid NAR.*NUL/,
  ],
  [
    'non-zero padding',
    new NarTokenWriter().str('nix-archive-1').strs('(', 'type').str('regular', 1).strs('contents', 'x', ')').finish(),
    /invalid NAR.*padding/,
  ],
  [
    'non-zero padding after contents',
    new NarTokenWriter()
      .str('nix-archive-1')
      .strs('(', 'type', 'regular', 'contents')
      .str('abc', 0xff)
      .str(')')
      .finish(),
    /invalid NAR.*padding/,
  ],
  ['truncated in the middle', valid.subarray(0, Math.floor(valid.length / 2)), /truncated/],
  ['truncated inside padding', valid.subarray(0, valid.length - 3), /truncated/],
  ['trailing garbage', Buffer.concat([valid, Buffer.from('garbage!')]), /invalid NAR.*trailing data/],
  ['a second NAR appended', Buffer.concat([valid, valid]), /invalid NAR.*trailing data/],
  [
    'absurd length field',
    new NarTokenWriter()
      .str('nix-archive-1')
      .strs('(', 'type', 'regular', 'contents')
      .u64(2n ** 63n)
      .finish(),
    /invalid NAR.*length field too large/,
  ],
  [
    'huge token length',
    new NarTokenWriter()
      .str('nix-archive-1')
      .u64(1n << 40n)
      .finish(),
    /invalid NAR/,
  ],
  [
    'unknown node type',
    new NarTokenWriter().str('nix-archive-1').strs('(', 'type', 'fifo', ')').finish(),
    /invalid NAR.*unknown node type/,
  ],
  [
    'executable marker with a value',
    new NarTokenWriter()
      .str('nix-archive-1')
      .strs('(', 'type', 'regular', 'executable', 'yes', 'contents', 'x', ')')
      .finish(),
    /invalid NAR.*executable/,
  ],
  [
    'fields out of order',
    new NarTokenWriter()
      .str('nix-archive-1')
      .strs('(', 'type', 'regular', 'contents', 'x', 'executable', '', ')')
      .finish(),
    /invalid NAR/,
  ],
  [
    'too deep',
    (() => {
      const w = new NarTokenWriter().str('nix-archive-1');
      for (let i = 0; i < 2100; i++) w.strs('(', 'type', 'directory', 'entry', '(', 'name', 'd', 'node');
      return w.finish();
    })(),
    /invalid NAR.*nested deeper/,
  ],
];

describe('hostile NAR uploads', () => {
  let h: HostileServer;
  before(async () => {
    h = await startHostileServer();
  });
  after(() => h.close());

  const putNar = async (path: string, body: Uint8Array, headers: Record<string, string> = {}) =>
    answerOf(await fetch(h.url(path), { method: 'PUT', body: Buffer.from(body), headers: { ...h.auth, ...headers } }));

  test('every bad or non-canonical NAR is refused with 400 naming the problem, and nothing is stored', async () => {
    for (const [label, nar, pattern] of BAD_NARS) {
      // The URL names the body's own hash, so only the NAR itself can be at fault.
      await assertNothingStored(h.nw, async () =>
        assertClientError(await putNar(`nar/${nix32Sha256(nar)}.nar`, nar), 400, pattern, label),
      );
    }
  });

  test('the same NARs gzipped to a bare .nar URL (sniffed) are refused the same way', async () => {
    for (const [label, nar, pattern] of BAD_NARS) {
      const body = gzipSync(nar);
      await assertNothingStored(h.nw, async () =>
        assertClientError(await putNar(`nar/${nix32Sha256(body)}.nar`, body), 400, pattern, `gzip: ${label}`),
      );
    }
  });

  test('a NAR whose URL hash is wrong or not nix32 is refused', async () => {
    const other = encodeNixBase32(new Uint8Array(32).fill(7));
    await assertNothingStored(h.nw, async () =>
      assertClientError(await putNar(`nar/${other}.nar`, valid), 400, /does not hash to/, 'wrong hash'),
    );
    // 52 nix32 digits whose top bits do not fit in 32 bytes.
    const excess = 'z' + nix32Sha256(valid).slice(1);
    await assertNothingStored(h.nw, async () =>
      assertClientError(await putNar(`nar/${excess}.nar`, valid), 400, /nix base-32/, 'excess bits'),
    );
    // Letters outside the alphabet, wrong lengths, hex, upper case: no such route.
    const good = nix32Sha256(valid);
    for (const hash of [
      'e' + good.slice(1),
      good.slice(1),
      good + '0',
      createHash('sha256').update(valid).digest('hex'),
      good.toUpperCase(),
      `sha256:${good}`,
      `sha256-${good}`,
    ]) {
      await assertNothingStored(h.nw, async () =>
        assertClientError(await putNar(`nar/${hash}.nar`, valid), 404, /not found/, hash),
      );
    }
    for (const suffix of ['.lzip', '.gz', '.zstd', '.xz.xz', '.nar']) {
      await assertNothingStored(h.nw, async () =>
        assertClientError(await putNar(`nar/${good}.nar${suffix}`, valid), 404, /not found/, suffix),
      );
    }
  });

  test('a narinfo whose NarHash or NarSize differs from the uploaded NAR is refused', async () => {
    const narHash = formatSha256Nix32(createHash('sha256').update(valid).digest());
    assert.equal((await putNar(`nar/${narHash.slice(7)}.nar`, valid)).status, 204);
    const hashPart = '0'.repeat(31) + 'q';
    const info = (fields: { narHash?: string; narSize?: number; references?: string[]; storePath?: string }) =>
      serializeNarinfo({
        storePath: fields.storePath ?? `/nix/store/${hashPart}-hostile`,
        url: `nar/${narHash.slice(7)}.nar`,
        compression: 'none',
        narHash: fields.narHash ?? narHash,
        narSize: fields.narSize ?? valid.length,
        references: fields.references ?? [],
        sigs: [],
      });
    const putInfo = async (text: string) =>
      answerOf(await fetch(h.url(`${hashPart}.narinfo`), { method: 'PUT', body: text, headers: h.auth }));
    const otherHash = formatSha256Nix32(createHash('sha256').update('something else').digest());
    const hex = createHash('sha256').update('something else').digest('hex');
    const cases: [string, string, RegExp][] = [
      ['NarHash of no uploaded NAR', info({ narHash: otherHash }), /no NAR with NarHash/],
      ['NarHash in base16 of no uploaded NAR', info({ narHash: `sha256:${hex}` }), /no NAR with NarHash/],
      ['NarSize one byte short', info({ narSize: valid.length - 1 }), /NarSize .* differs/],
      ['NarSize one byte long', info({ narSize: valid.length + 1 }), /NarSize .* differs/],
      ['NarSize far too large', info({ narSize: 2 ** 52 }), /NarSize .* differs/],
      [
        'a reference that is not in the cache',
        info({ references: [`${'1'.repeat(32)}-missing`] }),
        /references not in this cache/,
      ],
      [
        'StorePath of another hash',
        info({ storePath: `/nix/store/${'2'.repeat(32)}-other` }),
        /does not match the file name/,
      ],
    ];
    for (const [label, text, pattern] of cases) {
      await assertNothingStored(h.nw, async () => assertClientError(await putInfo(text), 400, pattern, label));
    }
    // The consistent narinfo is accepted: the refusals above were about the mismatches alone.
    assert.equal((await putInfo(info({}))).status, 204);
  });
});
