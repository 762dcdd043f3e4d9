import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeNar } from '../../src/nix/nar-writer.ts';
import { formatSha256Nix32 } from '../../src/nix/hash.ts';
import {
  answerOf,
  assertClientError,
  assertNothingStored,
  pieces,
  rawRequest,
  startHostileServer,
  type HostileServer,
} from './hostile-server.ts';

const H1 = '0'.repeat(31) + 'v';
const H2 = '1'.repeat(31) + 'w';

describe('hostile narinfo uploads', () => {
  let h: HostileServer;
  let valid: string;
  let narHash: string;
  let narSize: number;

  before(async () => {
    h = await startHostileServer();
    const nar = writeNar({ type: 'regular', contents: Buffer.from('narinfo target\n') });
    narHash = formatSha256Nix32(createHash('sha256').update(nar).digest());
    narSize = nar.length;
    assert.equal(
      (await fetch(h.url(`nar/${narHash.slice(7)}.nar`), { method: 'PUT', body: Buffer.from(nar), headers: h.auth }))
        .status,
      204,
    );
    valid = `StorePath: /nix/store/${H1}-f\nURL: nar/${narHash.slice(7)}.nar\nCompression: none\nNarHash: ${narHash}\nNarSize: ${narSize}\nReferences: \n`;
  });
  after(() => h.close());

  const putInfo = async (text: string | Uint8Array, name = H1) =>
    answerOf(
      await fetch(h.url(`${name}.narinfo`), {
        method: 'PUT',
        body: typeof text === 'string' ? text : Buffer.from(text),
        headers: h.auth,
      }),
    );

  test('malformed narinfo lines are refused with 400 naming the problem', async () => {
    const cases: [string, string | Uint8Array, RegExp][] = [
      ['empty', '', /empty/],
      ['no final newline', valid.slice(0, -1), /newline/],
      ['CRLF', valid.replaceAll('\n', '\r\n'), /LF/],
      ['blank line', valid + '\n', /Key: value/],
      ['no space', valid.replace('URL: ', 'URL:'), /one space/],
      ['two spaces', valid.replace('URL: ', 'URL:  '), /one space/],
      ['tab', valid.replace('URL: ', 'URL:\t'), /control/],
      ['NUL', valid.replace('URL: nar', 'URL: n\0ar'), /control/],
      ['escape sequence', valid + 'System: \x1b[31mred\n', /control/],
      ['no colon', valid + 'garbage\n', /Key: value/],
      ['only a colon', valid + ':\n', /Key: value/],
      ['key with space', valid + 'Bad Key: x\n', /invalid key/],
      ['binary garbage', Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x0a]), /control|Key: value/],
      ['missing StorePath', valid.split('\n').slice(1).join('\n'), /StorePath missing/],
      ['missing URL', valid.replace(/URL: .*\n/, ''), /URL missing/],
      ['missing NarHash', valid.replace(/NarHash: .*\n/, ''), /NarHash missing/],
      ['missing NarSize', valid.replace(/NarSize: .*\n/, ''), /NarSize missing/],
      ['zero NarSize', valid.replace(/NarSize: \d+/, 'NarSize: 0'), /zero/],
      ['negative NarSize', valid.replace(/NarSize: \d+/, 'NarSize: -1'), /decimal/],
      ['hex NarSize', valid.replace(/NarSize: \d+/, 'NarSize: 0x10'), /decimal/],
      ['huge NarSize', valid.replace(/NarSize: \d+/, 'NarSize: 99999999999999999999'), /too large/],
      ['NarHash too short', valid.replace(narHash, narHash.slice(0, -1)), /length/],
      ['NarHash not nix32', valid.replace(narHash, `sha256:${'e'.repeat(52)}`), /base-32/],
      ['NarHash with excess bits', valid.replace(narHash, `sha256:z${narHash.slice(8)}`), /base-32/],
      ['NarHash md5', valid.replace(narHash, `md5:${'0'.repeat(32)}`), /sha256/],
      ['NarHash without algorithm', valid.replace(narHash, narHash.slice(7)), /sha256/],
      ['bad base16 NarHash', valid.replace(narHash, `sha256:${'g'.repeat(64)}`), /base-16/],
      ['bad FileHash', valid + 'FileHash: sha256:xyz\n', /length/],
      [
        'StorePath outside the store',
        valid.replace('/nix/store/', '/etc/../nix/store/'),
        /not in \/nix\/store|invalid/,
      ],
      ['StorePath of another store', valid.replace('/nix/store/', '/gnu/store/'), /not in \/nix\/store/],
      ['StorePath with a slash in the name', valid.replace(`${H1}-f`, `${H1}-f/../../etc`), /illegal character/],
      ['full path reference', valid.replace('References: ', `References: /nix/store/${H2}-b`), /base name/],
      ['reference with ..', valid.replace('References: ', 'References: ..'), /invalid store path/],
      ['reference without name', valid.replace('References: ', `References: ${H2}`), /invalid store path/],
      [
        'double space in References',
        valid.replace('References: ', `References: ${H1}-f  ${H1}-f`),
        /invalid store path/,
      ],
      ['repeated reference', valid.replace('References: ', `References: ${H1}-f ${H1}-f`), /twice/],
      ['full path Deriver', valid + `Deriver: /nix/store/${H2}-b.drv\n`, /base name/],
      ['duplicate StorePath', valid + `StorePath: /nix/store/${H2}-b\n`, /duplicate StorePath/],
      ['duplicate NarHash', valid + `NarHash: ${narHash}\n`, /duplicate NarHash/],
      ['malformed Sig', valid + 'Sig: nokey\n', /Sig/],
      ['bad CA', valid + 'CA: sha256:abc\n', /CA/],
      ['StorePath of another hash part', valid.replace(`${H1}-f`, `${H2}-f`), /does not match the file name/],
    ];
    for (const [label, text, pattern] of cases) {
      await assertNothingStored(h.nw, async () => assertClientError(await putInfo(text), 400, pattern, label));
    }
  });

  test('an oversized narinfo is refused with 413, announced or streamed', async () => {
    const big = valid + `X-Padding: ${'a'.repeat(70 * 1024)}\n`;
    await assertNothingStored(h.nw, async () =>
      assertClientError(await putInfo(big), 413, /larger than 65536 bytes/, 'announced'),
    );
    const streamed = await assertNothingStored(h.nw, () =>
      rawRequest(h.port, {
        method: 'PUT',
        path: `/main/${H1}.narinfo`,
        headers: h.auth,
        body: pieces(Buffer.from(big), 1000),
      }),
    );
    assertClientError(streamed, 413, /larger than 65536 bytes/, 'streamed');
    // Just under the limit is fine as far as size goes (then the usual checks apply).
    const fits = valid + `X-Padding: ${'a'.repeat(64 * 1024 - valid.length - 20)}\n`;
    assert.equal((await putInfo(fits)).status, 204);
  });

  test('a narinfo naming a missing NAR or reference is refused', async () => {
    const missingNar = formatSha256Nix32(createHash('sha256').update('never uploaded').digest());
    const cases: [string, string, RegExp][] = [
      ['missing NAR', valid.replace(narHash, missingNar), /no NAR with NarHash/],
      [
        'missing reference',
        valid.replace('References: ', `References: ${H2}-dep`),
        /references not in this cache: .*-dep/,
      ],
      [
        'missing references, many',
        valid.replace(
          'References: ',
          `References: ${['2', '3', '4', '5', '6'].map((c) => `${c.repeat(32)}-d`).join(' ')}`,
        ),
        /references not in this cache: .*, \.\.\./,
      ],
    ];
    for (const [label, text, pattern] of cases) {
      await assertNothingStored(h.nw, async () => assertClientError(await putInfo(text), 400, pattern, label));
    }
  });

  test('narinfo names that are not a store hash are 404 and store nothing', async () => {
    for (const name of [H1.slice(1), `${H1}x`, 'e'.repeat(32), H1.toUpperCase(), `${H1}.narinfo`, `${H1}%2F`]) {
      await assertNothingStored(h.nw, async () =>
        assertClientError(await putInfo(valid, name), 404, /not found/, name),
      );
    }
  });
});
