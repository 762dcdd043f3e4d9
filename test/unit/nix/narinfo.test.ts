import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NARINFO_MAX_BYTES, parseNarinfo, serializeNarinfo, type NarInfo } from '../../../src/nix/narinfo.ts';
import { isNarwhalError } from '../../../src/errors.ts';
import { evalPath, scratchNix } from '../../helpers/scratch-nix.ts';

const H1 = 'ab3li50xq0nl4q5lxdyinb8w8y13my9s';
const H2 = 'dkw0fn2kqdqjwg9lwpspsac36gmw9cg6';
const NARHASH = 'sha256:11c86c4k78207p48gyp8yri9c9nnxbsnpsvwg1cc2zsqnj6lbfhg';
const FILEHASH = 'sha256:0caxmqq81gr3djznj8mbz2vrh02c3nj1mgkywz1vj83c7vni7x2b';
const SIG = 'test1:+ZhEbK6jqUd9r0PC3eXf/eGZCRrnHTKfb3Z1Op7mlGlsIYxG2xdnG6coHDmQlHLQHeVejREq11OYH4amOtcJAA==';

const full =
  [
    `StorePath: /nix/store/${H2}-b`,
    `URL: nar/${FILEHASH.slice(7)}.nar.xz`,
    'Compression: xz',
    `FileHash: ${FILEHASH}`,
    'FileSize: 172',
    `NarHash: ${NARHASH}`,
    'NarSize: 160',
    `References: ${H1}-f ${H2}-b`,
    `Deriver: ${H1}-b.drv`,
    'System: x86_64-linux',
    `Sig: ${SIG}`,
    'Sig: other-1:AAAA',
    'CA: text:sha256:0f0iyap1x88q27klalf2nyqy23yja2x4599yh2glfrcckxx97by8',
  ].join('\n') + '\n';

const minimal = `StorePath: /nix/store/${H1}-f\nURL: nar/x.nar\nNarHash: ${NARHASH}\nNarSize: 120\n`;

test('parses every field', () => {
  const info = parseNarinfo(full);
  const expected: NarInfo = {
    storePath: `/nix/store/${H2}-b`,
    url: `nar/${FILEHASH.slice(7)}.nar.xz`,
    compression: 'xz',
    fileHash: FILEHASH,
    fileSize: 172,
    narHash: NARHASH,
    narSize: 160,
    references: [`${H1}-f`, `${H2}-b`],
    deriver: `${H1}-b.drv`,
    system: 'x86_64-linux',
    sigs: [SIG, 'other-1:AAAA'],
    ca: 'text:sha256:0f0iyap1x88q27klalf2nyqy23yja2x4599yh2glfrcckxx97by8',
  };
  assert.deepEqual(info, expected);
  assert.equal(serializeNarinfo(info), full);
});

test('optional fields stay absent; References is always written', () => {
  const info = parseNarinfo(minimal);
  assert.deepEqual(info, {
    storePath: `/nix/store/${H1}-f`,
    url: 'nar/x.nar',
    narHash: NARHASH,
    narSize: 120,
    references: [],
    sigs: [],
  });
  assert.equal(serializeNarinfo(info), minimal.replace('NarSize: 120\n', 'NarSize: 120\nReferences: \n'));
  assert.deepEqual(parseNarinfo(minimal + 'References: \n').references, []);
});

test('normalizes hashes, ignores unknown keys, drops unknown-deriver and repeated sigs', () => {
  const sri =
    'sha256-' +
    Buffer.from(
      execFileSync('nix-hash', ['--type', 'sha256', '--to-base16', NARHASH.slice(7)], { encoding: 'utf8' }).trim(),
      'hex',
    ).toString('base64');
  const hex =
    'sha256:' +
    execFileSync('nix-hash', ['--type', 'sha256', '--to-base16', NARHASH.slice(7)], { encoding: 'utf8' }).trim();
  for (const h of [sri, hex]) assert.equal(parseNarinfo(minimal.replace(NARHASH, h)).narHash, NARHASH);
  const info = parseNarinfo(
    minimal + 'X-Custom: whatever it is\nX-Custom: again\nDeriver: unknown-deriver\nSig: k:AA==\nSig: k:AA==\nFoo: \n',
  );
  assert.equal(info.deriver, undefined);
  assert.deepEqual(info.sigs, ['k:AA==']);
});

test('rejects malformed narinfo with bad-narinfo', () => {
  const cases: [string, string, RegExp][] = [
    ['empty', '', /empty/],
    ['no final newline', minimal.slice(0, -1), /newline/],
    ['CRLF', minimal.replaceAll('\n', '\r\n'), /LF/],
    ['blank line', minimal + '\n', /Key: value/],
    ['no space', minimal.replace('URL: ', 'URL:'), /one space/],
    ['two spaces', minimal.replace('URL: ', 'URL:  '), /one space/],
    ['tab', minimal.replace('URL: ', 'URL:\t'), /control/],
    ['no colon', minimal + 'garbage\n', /Key: value/],
    ['key with space', minimal + 'Bad Key: x\n', /invalid key/],
    ['missing StorePath', minimal.split('\n').slice(1).join('\n'), /StorePath missing/],
    ['missing URL', minimal.replace('URL: nar/x.nar\n', ''), /URL missing/],
    ['empty URL', minimal.replace('URL: nar/x.nar', 'URL: '), /URL is empty/],
    ['missing NarHash', minimal.replace(`NarHash: ${NARHASH}\n`, ''), /NarHash missing/],
    ['missing NarSize', minimal.replace('NarSize: 120\n', ''), /NarSize missing/],
    ['zero NarSize', minimal.replace('NarSize: 120', 'NarSize: 0'), /zero/],
    ['negative NarSize', minimal.replace('NarSize: 120', 'NarSize: -1'), /decimal/],
    ['leading zero', minimal.replace('NarSize: 120', 'NarSize: 0120'), /decimal/],
    ['huge NarSize', minimal.replace('NarSize: 120', 'NarSize: 99999999999999999999'), /too large/],
    ['bad FileSize', minimal + 'FileSize: 1e3\n', /decimal/],
    ['bad NarHash', minimal.replace(NARHASH, NARHASH.slice(0, -1)), /length/],
    ['md5 NarHash', minimal.replace(NARHASH, 'md5:' + NARHASH.slice(7)), /sha256/],
    ['bad FileHash', minimal + 'FileHash: sha256:xyz\n', /length/],
    ['StorePath elsewhere', minimal.replace('/nix/store/', '/gnu/store/'), /not in \/nix\/store/],
    ['StorePath bad hash', minimal.replace(H1, 'e' + H1.slice(1)), /base-32/],
    ['StorePath base name', minimal.replace(`/nix/store/${H1}-f`, `${H1}-f`), /not in/],
    ['full path reference', minimal + `References: /nix/store/${H1}-f\n`, /base name/],
    ['bad reference', minimal + `References: ${H1}\n`, /invalid store path/],
    ['double space in References', minimal + `References: ${H1}-f  ${H2}-b\n`, /invalid store path/],
    ['repeated reference', minimal + `References: ${H1}-f ${H1}-f\n`, /twice/],
    ['full path deriver', minimal + `Deriver: /nix/store/${H1}-f.drv\n`, /base name/],
    ['duplicate StorePath', minimal + `StorePath: /nix/store/${H2}-b\n`, /duplicate StorePath/],
    ['duplicate NarSize', minimal + 'NarSize: 120\n', /duplicate NarSize/],
    ['duplicate References', minimal + 'References: \nReferences: \n', /duplicate References/],
    ['malformed Sig', minimal + 'Sig: nokey\n', /Sig/],
    ['bad CA', minimal + 'CA: sha256:abc\n', /CA/],
    ['too large', minimal + `X-Pad: ${'a'.repeat(NARINFO_MAX_BYTES)}\n`, /exceeds/],
  ];
  for (const [label, text, pattern] of cases) {
    assert.throws(
      () => parseNarinfo(text),
      (e) => isNarwhalError(e, 'bad-narinfo') && pattern.test(e.message),
      label,
    );
  }
});

test('serialize refuses line breaks in values', () => {
  const info = parseNarinfo(minimal);
  assert.throws(
    () => serializeNarinfo({ ...info, url: 'a\nStorePath: x' }),
    (e) => isNarwhalError(e, 'bad-narinfo'),
  );
});

test('round-trips narinfo files written by nix copy byte for byte', () => {
  const nix = scratchNix('narwhal-narinfo-');
  try {
    const a = nix.addText('f', 'hello\n');
    const b = evalPath(nix, `builtins.toFile "b" "\${builtins.storePath "${a}"} \${builtins.toFile "c" "x"}"`);
    const sk = join(nix.dir, 'sk');
    nix.run('nix-store', '--generate-binary-cache-key', 'test-1', sk, join(nix.dir, 'pk'));
    const cache = join(nix.dir, 'cache');
    nix.run('nix', 'copy', '--store', nix.store, '--to', `file://${cache}?compression=xz&secret-key=${sk}`, b);
    const files = readdirSync(cache).filter((f) => f.endsWith('.narinfo'));
    assert.equal(files.length, 3);
    for (const f of files) {
      const text = readFileSync(join(cache, f), 'utf8');
      const info = parseNarinfo(text);
      assert.equal(info.storePath.slice(11, 43), f.slice(0, 32));
      assert.equal(info.sigs.length, 1);
      assert.equal(serializeNarinfo(info), text);
      if (info.storePath === b) assert.equal(info.references.length, 2);
    }
  } finally {
    nix.remove();
  }
});
