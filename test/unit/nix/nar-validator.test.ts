import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  NarValidator,
  NAR_MAX_DEPTH,
  NAR_MAX_NAME_LENGTH,
  NAR_MAX_TARGET_LENGTH,
} from '../../../src/nix/nar-validator.ts';
import { NarTokenWriter, writeNar, type NarTree } from '../../../src/nix/nar-writer.ts';
import { isNarwhalError } from '../../../src/errors.ts';
import { seededRandom as mulberry32 } from '../../helpers/seeded-random.ts';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const file = (s = 'x', executable = false): NarTree => ({ type: 'regular', contents: bytes(s), executable });

/** Feeds `nar` in pieces whose sizes come from `sizes` (cycled), then ends. */
function validate(nar: Uint8Array, nextSize: () => number = () => nar.length): NarValidator {
  const v = new NarValidator();
  let off = 0;
  while (off < nar.length) {
    const n = Math.max(1, nextSize());
    v.push(nar.subarray(off, Math.min(nar.length, off + n)));
    off += n;
  }
  v.end();
  return v;
}

function assertBad(nar: Uint8Array, pattern: RegExp, label = String(pattern)): void {
  const check = (e: unknown): boolean => isNarwhalError(e, 'bad-nar') && pattern.test(e.message);
  assert.throws(() => validate(nar), check, `${label} (whole)`);
  assert.throws(() => validate(nar, () => 1), check, `${label} (byte by byte)`);
  assert.throws(() => validate(nar, () => 3), check, `${label} (3-byte pieces)`);
}

const sampleTree: NarTree = {
  type: 'directory',
  entries: {
    bin: {
      type: 'directory',
      entries: { hello: file('#!/bin/sh\necho hi\n', true), sh: { type: 'symlink', target: '/bin/sh' } },
    },
    'empty-dir': { type: 'directory', entries: {} },
    'empty-file': file(''),
    eight: file('12345678'),
    nine: file('123456789'),
    share: { type: 'directory', entries: { doc: { type: 'directory', entries: { README: file('read me') } } } },
  },
};

test('accepts canonical NARs and counts their nodes', () => {
  const nar = writeNar(sampleTree);
  const v = validate(nar);
  assert.equal(v.done, true);
  assert.equal(v.bytesSeen, nar.length);
  assert.deepEqual([v.files, v.directories, v.symlinks], [5, 5, 1]);
  assert.equal(v.contentBytes, 18 + 0 + 8 + 9 + 7);
  assert.equal(validate(writeNar(file(''))).files, 1);
  assert.equal(validate(writeNar({ type: 'symlink', target: 'x' })).symlinks, 1);
  assert.equal(validate(writeNar({ type: 'directory', entries: {} })).directories, 1);
});

test('accepts any split of the stream', () => {
  const nar = writeNar(sampleTree);
  for (let cut = 0; cut <= nar.length; cut++) {
    const v = new NarValidator();
    v.push(nar.subarray(0, cut));
    v.push(nar.subarray(cut));
    v.end();
    assert.equal(v.files, 5);
  }
  validate(nar, () => 1);
  const rnd = mulberry32(1);
  for (let i = 0; i < 50; i++) validate(nar, () => 1 + Math.floor(rnd() * 40));
  const v = new NarValidator();
  v.push(new Uint8Array(0));
  v.push(nar);
  v.push(new Uint8Array(0));
  v.end();
});

test('every proper prefix is truncated, and nothing fails before end()', () => {
  const nar = writeNar(sampleTree);
  for (let cut = 0; cut < nar.length; cut++) {
    const v = new NarValidator();
    v.push(nar.subarray(0, cut));
    assert.equal(v.done, false);
    assert.throws(
      () => v.end(),
      (e) => isNarwhalError(e, 'bad-nar') && /truncated/.test(e.message),
      `cut ${cut}`,
    );
  }
});

test('large contents are skipped by counting', () => {
  const size = 50 * 1024 * 1024 + 3;
  const head = new NarTokenWriter().strs('nix-archive-1', '(', 'type', 'regular', 'contents').u64(size).finish();
  const tail = new NarTokenWriter().padding(size).str(')').finish();
  const v = new NarValidator();
  v.push(head);
  const chunk = new Uint8Array(1024 * 1024);
  let left = size;
  while (left > 0) {
    const n = Math.min(left, chunk.length);
    v.push(chunk.subarray(0, n));
    left -= n;
  }
  assert.equal(v.done, false);
  v.push(tail);
  v.end();
  assert.equal(v.contentBytes, size);
  assert.equal(v.bytesSeen, head.length + size + tail.length);
});

// --- invalid NARs -----------------------------------------------------------------------------

const magic = (): NarTokenWriter => new NarTokenWriter().str('nix-archive-1');
const dirWith = (names: (string | Uint8Array)[]): Uint8Array => {
  const w = magic().strs('(', 'type', 'directory');
  for (const n of names) w.strs('entry', '(', 'name', n, 'node').node(file()).str(')');
  return w.str(')').finish();
};

test('rejects bad entry names', () => {
  assertBad(dirWith(['b', 'a']), /not sorted/, 'unsorted');
  assertBad(dirWith(['a', 'c', 'b']), /not sorted/, 'unsorted later');
  assertBad(dirWith(['B', 'a', 'A']), /not sorted/, 'case');
  assertBad(dirWith(['ab', 'a']), /not sorted/, 'prefix after longer');
  assertBad(dirWith(['a', 'a']), /duplicate/, 'duplicate');
  assertBad(dirWith(['a', 'b', 'b']), /duplicate/, 'duplicate later');
  assertBad(dirWith(['']), /empty entry name/, 'empty');
  assertBad(dirWith(['.']), /'\.' or '\.\.'/, 'dot');
  assertBad(dirWith(['..']), /'\.' or '\.\.'/, 'dotdot');
  assertBad(dirWith(['a/b']), /'\/'/, 'slash');
  assertBad(dirWith(['/']), /'\/'/, 'slash alone');
  assertBad(dirWith([new Uint8Array([0x61, 0, 0x62])]), /NUL/, 'NUL');
  assertBad(dirWith(['x'.repeat(NAR_MAX_NAME_LENGTH + 1)]), /name longer/, 'long name');
  // UTF-8 byte order, not UTF-16 order: U+E000 (EE 80 80) sorts before U+1F600 (F0 9F 98 80).
  assertBad(dirWith(['\u{1F600}', '\uE000']), /not sorted/, 'utf-8 order');
  validate(dirWith(['\uE000', '\u{1F600}']));
  validate(dirWith(['...', '.a', 'A', 'a', 'a.', 'ab', 'b', 'x'.repeat(NAR_MAX_NAME_LENGTH), new Uint8Array([0xff])]));
  // The sort check is per directory.
  const nested = magic().strs('(', 'type', 'directory', 'entry', '(', 'name', 'm', 'node');
  nested.strs('(', 'type', 'directory', 'entry', '(', 'name', 'z', 'node').node(file()).strs(')', ')');
  nested.strs(')', 'entry', '(', 'name', 'n', 'node').node(file()).strs(')', ')');
  validate(nested.finish());
});

test('rejects bad magic, unknown types and fields out of order', () => {
  assertBad(new NarTokenWriter().str('nix-archive-2').node(file()).finish(), /magic/, 'magic');
  assertBad(new NarTokenWriter().str('nix-archive-1x').node(file()).finish(), /magic/, 'long magic');
  assertBad(new NarTokenWriter().node(file()).finish(), /magic/, 'no magic');
  assertBad(new Uint8Array(16).fill(0xff), /magic|too large/, 'garbage');
  assertBad(magic().strs('(', 'type', 'fifo', ')').finish(), /unknown node type/, 'fifo');
  assertBad(magic().strs('(', 'type', 'Regular', 'contents', 'x', ')').finish(), /unknown node type/, 'case of type');
  assertBad(magic().strs('type', 'regular', 'contents', 'x', ')').finish(), /expected '\('/, 'missing (');
  assertBad(magic().strs('(', 'regular', 'contents', 'x', ')').finish(), /expected 'type'/, 'missing type');
  assertBad(magic().strs('(', 'type', 'regular', 'x', ')').finish(), /'executable' or 'contents'/, 'missing contents');
  assertBad(
    magic().strs('(', 'type', 'regular', 'contents', 'x', 'executable', '', ')').finish(),
    /expected '\)'/,
    'executable after contents',
  );
  assertBad(
    magic().strs('(', 'type', 'regular', 'executable', 'x', 'contents', 'x', ')').finish(),
    /non-empty/,
    'executable value',
  );
  assertBad(
    magic().strs('(', 'type', 'regular', 'executable', '', 'executable', '', 'contents', 'x', ')').finish(),
    /expected 'contents'/,
    'executable twice',
  );
  assertBad(
    magic().strs('(', 'type', 'regular', 'contents', 'x', 'contents', 'y', ')').finish(),
    /expected '\)'/,
    'contents twice',
  );
  assertBad(magic().strs('(', 'type', 'symlink', 'x', ')').finish(), /expected 'target'/, 'symlink without target');
  assertBad(
    magic().strs('(', 'type', 'symlink', 'target', 'x', 'target', 'y', ')').finish(),
    /expected '\)'/,
    'two targets',
  );
  assertBad(
    magic().strs('(', 'type', 'directory', 'entry', 'name', 'a', 'node').node(file()).strs(')', ')').finish(),
    /'\(' opening an entry/,
    'entry without (',
  );
  assertBad(
    magic().strs('(', 'type', 'directory', 'entry', '(', 'node').node(file()).strs(')', ')').finish(),
    /expected 'name'/,
    'node before name',
  );
  assertBad(
    magic().strs('(', 'type', 'directory', 'entry', '(', 'name', 'a').node(file()).strs(')', ')').finish(),
    /expected 'node'/,
    'missing node',
  );
  assertBad(
    magic().strs('(', 'type', 'directory', 'entry', '(', 'name', 'a', 'node').node(file()).strs(')').finish(),
    /truncated/,
    'unclosed directory',
  );
  assertBad(
    magic().strs('(', 'type', 'directory', 'entry', '(', 'name', 'a', 'node').node(file()).strs('entry').finish(),
    /closing the entry/,
    'unclosed entry',
  );
  assertBad(magic().strs('(', 'type', 'directory', 'name', 'a', ')').finish(), /'entry' or '\)'/, 'name without entry');
  assertBad(magic().strs('(', 'type', 'regular', 'contents', 'x').finish(), /truncated/, 'unclosed file');
});

test('rejects bad symlink targets', () => {
  const link = (t: string | Uint8Array): Uint8Array => magic().strs('(', 'type', 'symlink', 'target', t, ')').finish();
  assertBad(link(''), /empty symlink target/, 'empty');
  assertBad(link(new Uint8Array([0x61, 0])), /NUL/, 'NUL');
  assertBad(link('x'.repeat(NAR_MAX_TARGET_LENGTH + 1)), /target longer/, 'too long');
  assert.equal(validate(link('x'.repeat(NAR_MAX_TARGET_LENGTH))).symlinks, 1);
  assert.equal(validate(link('../a/./b//c')).symlinks, 1);
});

test('rejects non-zero padding, trailing data and absurd lengths', () => {
  assertBad(
    magic().strs('(', 'type').str('regular', 1).strs('contents', 'x', ')').finish(),
    /non-zero padding/,
    'token padding',
  );
  assertBad(
    magic().strs('(', 'type', 'regular', 'contents').str('abc', 0x80).str(')').finish(),
    /non-zero padding/,
    'contents padding',
  );
  assertBad(new NarTokenWriter().str('nix-archive-1', 0x20).node(file()).finish(), /non-zero padding/, 'magic padding');
  const nar = writeNar(sampleTree);
  const withTail = (tail: Uint8Array): Uint8Array => Buffer.concat([nar, tail]);
  assertBad(withTail(new Uint8Array(1)), /trailing data/, 'one trailing zero');
  assertBad(withTail(new Uint8Array(8)), /trailing data/, 'trailing empty token');
  assertBad(withTail(writeNar(file())), /trailing data/, 'second NAR');
  assertBad(
    magic()
      .strs('(', 'type', 'regular', 'contents')
      .u64(2n ** 63n)
      .finish(),
    /too large/,
    'huge contents',
  );
  assertBad(
    magic()
      .str('(')
      .u64(2n ** 53n)
      .finish(),
    /too large/,
    '2^53',
  );
  assertBad(
    magic()
      .str('(')
      .u64(2n ** 40n)
      .finish(),
    /expected 'type'/,
    'long tag',
  );
});

test('nesting is limited', () => {
  const deep = (depth: number): Uint8Array => {
    const w = magic();
    for (let i = 0; i < depth; i++) w.strs('(', 'type', 'directory', 'entry', '(', 'name', 'd', 'node');
    w.node(file());
    for (let i = 0; i < depth; i++) w.strs(')', ')');
    return w.finish();
  };
  assert.equal(validate(deep(NAR_MAX_DEPTH)).directories, NAR_MAX_DEPTH);
  assertBad(deep(NAR_MAX_DEPTH + 1), /nested deeper/, 'too deep');
});

test('a failed validator keeps failing', () => {
  const v = new NarValidator();
  let first: unknown;
  try {
    v.push(dirWith(['b', 'a']));
  } catch (e) {
    first = e;
  }
  assert.ok(isNarwhalError(first, 'bad-nar'));
  assert.throws(
    () => v.push(new Uint8Array(8)),
    (e) => e === first,
  );
  assert.throws(
    () => v.end(),
    (e) => e === first,
  );
  assert.equal(v.done, false);
});

// --- real NARs ----------------------------------------------------------------------------------

function countNodes(path: string): [number, number, number] {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return [0, 0, 1];
  if (st.isFile()) return [1, 0, 0];
  const c: [number, number, number] = [0, 1, 0];
  for (const name of readdirSync(path)) {
    const [f, d, s] = countNodes(join(path, name));
    c[0] += f;
    c[1] += d;
    c[2] += s;
  }
  return c;
}

test('accepts nix-store --dump of real directories, in random splits', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'narwhal-nar-'));
  try {
    // Edge cases a file system can hold: longest names, odd bytes, executables, empty things.
    const root = join(scratch, 'tree');
    mkdirSync(root);
    writeFileSync(join(root, 'n'.repeat(255)), 'long name');
    writeFileSync(join(root, Buffer.from([0x61, 0xff, 0x0a]).toString('latin1')), '');
    writeFileSync(join(root, 'exe'), 'x'.repeat(4097));
    chmodSync(join(root, 'exe'), 0o755);
    mkdirSync(join(root, 'empty'));
    mkdirSync(join(root, '...'));
    symlinkSync('t'.repeat(4000), join(root, 'dangling'));
    symlinkSync('exe', join(root, 'link'));
    const dirs = [root, '/usr/include/linux', '/usr/lib/python3.11', '/usr/share/zoneinfo'].filter((d) =>
      existsSync(d),
    );
    const rnd = mulberry32(42);
    for (const dir of dirs) {
      const nar = execFileSync('nix-store', ['--dump', dir], { maxBuffer: 1 << 30 });
      const expected = countNodes(dir);
      for (const maxPiece of [7, 100, 5000, 1 << 20]) {
        const v = validate(nar, () => 1 + Math.floor(rnd() * maxPiece));
        assert.deepEqual([v.files, v.directories, v.symlinks], expected, `${dir} pieces <= ${maxPiece}`);
        assert.equal(v.bytesSeen, nar.length);
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});

test('accepts exactly what Nix restores and dumps back unchanged (single-byte mutations)', () => {
  const entries: Record<string, NarTree> = {};
  for (const n of ['a', 'b', 'c', 'd']) {
    entries[n] = {
      type: 'directory',
      entries: { x: file('1', true), y: { type: 'symlink', target: 'x' }, z: file('') },
    };
  }
  const nar = writeNar({ type: 'directory', entries });
  // A canonical NAR is a sequence of string tokens. Mutating the high bytes of a length field makes
  // Nix 2.8 preallocate a file of that size on restore, so those mutations skip the oracle.
  const highLengthBytes = new Set<number>();
  for (let off = 0; off < nar.length; ) {
    const len = Number(Buffer.from(nar).readBigUInt64LE(off));
    for (let k = 2; k < 8; k++) highLengthBytes.add(off + k);
    off += 8 + len + ((8 - (len % 8)) % 8);
  }
  const scratch = mkdtempSync(join(tmpdir(), 'narwhal-mut-'));
  const rnd = mulberry32(7);
  let accepted = 0;
  let rejected = 0;
  try {
    for (let i = 0; i < 150; i++) {
      const m = Buffer.from(nar);
      const pos = Math.floor(rnd() * m.length);
      m[pos] = rnd() < 0.5 ? Math.floor(rnd() * 256) : (m[pos] + (rnd() < 0.5 ? 1 : 255)) & 0xff;
      let ours = true;
      try {
        validate(m);
      } catch (e) {
        assert.ok(isNarwhalError(e, 'bad-nar'), String(e));
        ours = false;
      }
      if (highLengthBytes.has(pos) && m[pos] !== nar[pos]) {
        assert.equal(ours, false, `length mutation at ${pos}`);
        continue;
      }
      const out = join(scratch, `r${i}`);
      const restore = spawnSync('nix-store', ['--restore', out], { input: m });
      let canonical = false;
      if (restore.status === 0) {
        canonical = execFileSync('nix-store', ['--dump', out], { maxBuffer: 1 << 30 }).equals(m);
      }
      assert.equal(ours, canonical, `mutation at ${pos} to ${m[pos]}`);
      if (ours) accepted++;
      else rejected++;
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  assert.ok(accepted > 0 && rejected > 0, `accepted ${accepted}, rejected ${rejected}`);
});
