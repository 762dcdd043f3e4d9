import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NarTokenWriter, writeNar, type NarTree } from '../../../src/nix/nar-writer.ts';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

function materialize(path: string, tree: NarTree): void {
  switch (tree.type) {
    case 'regular':
      writeFileSync(path, tree.contents);
      chmodSync(path, tree.executable ? 0o755 : 0o644);
      break;
    case 'symlink':
      symlinkSync(tree.target, path);
      break;
    case 'directory':
      mkdirSync(path);
      for (const [name, child] of Object.entries(tree.entries)) materialize(join(path, name), child);
      break;
  }
}

const tree: NarTree = {
  type: 'directory',
  entries: {
    b: { type: 'regular', contents: bytes('1234567') },
    B: { type: 'regular', contents: bytes('12345678'), executable: true },
    a: { type: 'directory', entries: {} },
    'a.b': { type: 'symlink', target: '../somewhere/else' },
    '\u{1F600}': { type: 'regular', contents: new Uint8Array(0) },
    '\uE000': { type: 'regular', contents: new Uint8Array(0), executable: true },
    'caf\u00e9': {
      type: 'directory',
      entries: {
        x: { type: 'regular', contents: new Uint8Array(9).fill(7) },
        y: { type: 'symlink', target: 'x' },
      },
    },
  },
};

test('writeNar is byte-identical to nix-store --dump', () => {
  const dir = mkdtempSync(join(tmpdir(), 'narwhal-writer-'));
  try {
    const cases: [string, NarTree][] = [
      ['tree', tree],
      ['file', { type: 'regular', contents: bytes('hello\n') }],
      ['exe', { type: 'regular', contents: new Uint8Array(0), executable: true }],
      ['link', { type: 'symlink', target: '/nix/store/x' }],
      ['empty', { type: 'directory', entries: {} }],
    ];
    for (const [name, t] of cases) {
      const path = join(dir, name);
      materialize(path, t);
      const dumped = execFileSync('nix-store', ['--dump', path], { maxBuffer: 1 << 30 });
      assert.deepEqual(Buffer.from(writeNar(t)), dumped, name);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('token writer encodes lengths, padding and raw bytes', () => {
  const w = new NarTokenWriter()
    .str('abc')
    .u64(2n ** 40n)
    .padding(3, 0xff)
    .raw(bytes('!'));
  assert.equal(w.length, 8 + 8 + 8 + 5 + 1);
  assert.deepEqual(
    Buffer.from(w.finish()).toString('hex'),
    '0300000000000000' + '6162630000000000' + '0000000000010000' + 'ffffffffff' + '21',
  );
  assert.deepEqual(new NarTokenWriter().str('', 0xff).finish(), new Uint8Array(8));
  assert.deepEqual(new NarTokenWriter().str('12345678', 0xff).finish().length, 16);
});
