import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findNarEntry, listNar, type NarSource } from '../../../src/nix/nar-listing.ts';
import { writeNar } from '../../../src/nix/nar-writer.ts';

/** The NAR as a source that counts the bytes it was asked for. */
function source(nar: Uint8Array): NarSource & { bytesRead: number } {
  return {
    size: nar.length,
    bytesRead: 0,
    async read(offset, length) {
      this.bytesRead += length;
      if (offset + length > nar.length) throw new Error('read past the end');
      return nar.subarray(offset, offset + length);
    },
  };
}

const big = Buffer.alloc(1_000_000, 7);
const nar = writeNar({
  type: 'directory',
  entries: {
    bin: { type: 'directory', entries: { tool: { type: 'regular', contents: big, executable: true } } },
    'empty.txt': { type: 'regular', contents: new Uint8Array(0) },
    'héllo wörld.txt': { type: 'regular', contents: Buffer.from('hi\n') },
    link: { type: 'symlink', target: 'bin/tool' },
  },
});

test('a listing names every node in NAR order with sizes, flags, targets and content offsets', async () => {
  const { entries, truncated } = await listNar(source(nar), 100);
  assert.equal(truncated, false);
  assert.deepEqual(
    entries.map((e) => [e.path, e.type]),
    [
      ['', 'directory'],
      ['bin', 'directory'],
      ['bin/tool', 'regular'],
      ['empty.txt', 'regular'],
      ['héllo wörld.txt', 'regular'],
      ['link', 'symlink'],
    ],
  );
  const tool = entries[2];
  assert.ok(tool.type === 'regular' && tool.executable && tool.size === big.length);
  assert.deepEqual(
    Buffer.from(nar.subarray(tool.offset, tool.offset + tool.size)),
    big,
    'the offset is where its contents are',
  );
  const hello = entries[4];
  assert.ok(hello.type === 'regular' && !hello.executable);
  assert.equal(Buffer.from(nar.subarray(hello.offset, hello.offset + hello.size)).toString(), 'hi\n');
  assert.deepEqual(entries[5], { path: 'link', type: 'symlink', target: 'bin/tool' });
});

test('listing reads the headers only, never file contents', async () => {
  const counted = source(nar);
  await listNar(counted, 100);
  assert.ok(counted.bytesRead < 2_000, `read ${counted.bytesRead} bytes of a ${nar.length}-byte NAR`);
});

test('a listing stops at its limit and says so; an entry is found by its path', async () => {
  const { entries, truncated } = await listNar(source(nar), 2);
  assert.equal(entries.length, 2);
  assert.equal(truncated, true);
  assert.equal((await findNarEntry(source(nar), 'link'))?.type, 'symlink');
  assert.equal((await findNarEntry(source(nar), ''))?.type, 'directory');
  assert.equal(await findNarEntry(source(nar), 'bin/nope'), undefined);
  assert.equal(await findNarEntry(source(nar), '../etc/passwd'), undefined);
});

test('a single-file NAR lists as its root; damaged or truncated NARs are bad-nar errors', async () => {
  const file = writeNar({ type: 'regular', contents: Buffer.from('x') });
  assert.deepEqual(
    (await listNar(source(file), 10)).entries.map((e) => e.type),
    ['regular'],
  );
  await assert.rejects(listNar(source(nar.subarray(0, nar.length - 40)), 100), { code: 'bad-nar' });
  const wrongMagic = Buffer.from(nar);
  wrongMagic[8] = 'X'.charCodeAt(0);
  await assert.rejects(listNar(source(wrongMagic), 100), { code: 'bad-nar' });
  const hugeLength = Buffer.from(nar);
  hugeLength.writeUInt32LE(0xffffffff, 12);
  await assert.rejects(listNar(source(hugeLength), 100), { code: 'bad-nar' });
});
