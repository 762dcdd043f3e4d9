import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CACHE_ROUTES } from '../../src/server/routes.ts';
import { writeNar } from '../../src/nix/nar-writer.ts';
import { serializeNarinfo } from '../../src/nix/narinfo.ts';
import { createToken } from '../../src/tenancy/tokens.ts';
import { createCache } from '../../src/tenancy/caches.ts';
import {
  answerOf,
  assertClientError,
  assertNothingStored,
  nix32Sha256,
  rawRequest,
  startHostileServer,
  type HostileServer,
} from './hostile-server.ts';

const HASH = '0'.repeat(31) + 'a';
const NAR_HASH = '0'.repeat(51) + 'a';
const CHUNK = 'ab'.repeat(32);

/** One valid name per route, in the order of CACHE_ROUTES; a test below checks that it matches. */
const EXAMPLES = [
  'nix-cache-info',
  `${HASH}.narinfo`,
  `pull/${HASH}.nar`,
  `nar/${NAR_HASH}.nar.xz`,
  `nar/${NAR_HASH}.caibx`,
  `castr/${CHUNK.slice(0, 4)}/${CHUNK}.cacnk`,
  'chunk-frames',
  `${HASH}.ls`,
  `log/${HASH}-hello.drv`,
  `realisations/sha256:${'c'.repeat(64)}!out.doi`,
  `build-trace-v2/${HASH}-hello.drv/out.doi`,
  'debuginfo/0123456789abcdef.debug',
];

/** Ways to name something outside a route's own name, built around one valid name. */
function traversals(name: string): string[] {
  const slash = name.indexOf('/');
  const head = slash < 0 ? name : name.slice(0, slash);
  const tail = slash < 0 ? '' : name.slice(slash + 1);
  return [
    `../${name}`,
    `${head}/../${name}`,
    `${name}/..`,
    `${name}/../../etc/passwd`,
    `./${name}`,
    `%2e%2e/${name}`,
    `%2E%2E%2F${name}`,
    `..%2f..%2f..%2fetc%2fpasswd`,
    `..%5c..%5cetc%5cpasswd`,
    `..\\..\\etc\\passwd`,
    `/etc/passwd`,
    `/${name}`,
    `//${name}`,
    `${name}%00`,
    `${name}%00.png`,
    `${name}/`,
    `${name}?x=/../../etc/passwd`.replace('?', '%3F'),
    `${name}#`.replace('#', '%23'),
    encodeURIComponent(name),
    ...(tail
      ? [
          `${head}%2F${tail}`,
          `${head}%2f${tail}`,
          `${head}//${tail}`,
          `${head}\\${tail}`,
          `${head}/./${tail}`,
          `${head}/%2e/${tail}`,
        ]
      : []),
    name.toUpperCase(),
    name.replace('0', '%30'),
  ].filter((path) => path !== name);
}

describe('hostile paths', () => {
  let h: HostileServer;
  let nar: Uint8Array;
  before(async () => {
    h = await startHostileServer();
    // Something real in the cache, so that a traversal reaching it would be noticed.
    nar = writeNar({ type: 'regular', contents: Buffer.from('secret contents\n') });
    assert.equal(
      (await fetch(h.url(`nar/${nix32Sha256(nar)}.nar`), { method: 'PUT', body: Buffer.from(nar), headers: h.auth }))
        .status,
      204,
    );
    await writeFile(join(h.t.dir, 'secret.txt'), 'secret file next to the database\n');
  });
  after(() => h.close());

  test('the examples cover every route', () => {
    assert.equal(EXAMPLES.length, CACHE_ROUTES.length);
    for (const [i, name] of EXAMPLES.entries()) assert.ok(CACHE_ROUTES[i].pattern.test(name), name);
  });

  test('traversal in every route, with every method, finds nothing and stores nothing', async () => {
    const methods = ['GET', 'HEAD', 'PUT', 'POST'];
    for (const name of EXAMPLES) {
      for (const path of traversals(name)) {
        for (const prefix of ['/main/', '/main/%2e%2e/main/', '/main%2F']) {
          for (const method of methods) {
            const target = `${prefix}${path}`;
            const answer = await assertNothingStored(h.nw, () =>
              rawRequest(h.port, {
                method,
                path: target,
                headers: h.auth,
                body: method === 'PUT' || method === 'POST' ? Buffer.from('{}\n') : undefined,
              }),
            );
            const label = `${method} ${target}`;
            assert.ok([400, 404, 405].includes(answer.status), `${label}: ${answer.status} ${answer.body}`);
            // HEAD answers carry no body; Node's parser refuses some targets itself with a bare 400.
            if (method === 'HEAD' || (answer.status === 400 && answer.body === '')) continue;
            assert.doesNotMatch(answer.body, /secret|root:/, label);
            assertClientError(
              answer,
              [400, 404, 405],
              /not found|no such|method not allowed|Bad Request|invalid/,
              label,
            );
          }
        }
      }
    }
    // Nothing was written anywhere: the only files stored are the ones this test put there.
    for (const name of EXAMPLES) {
      const kind = name.split('/')[0];
      if (['log', 'realisations', 'build-trace-v2', 'debuginfo'].includes(kind) || name.endsWith('.ls')) {
        const file = await h.nw.meta.getFile((await h.nw.meta.getCache('main'))!.id, name);
        assert.equal(file, undefined, name);
      }
    }
  });

  test('odd request targets and cache names are 404 or 400', async () => {
    const targets = [
      '*',
      'main/nix-cache-info',
      'http://127.0.0.1/etc/passwd',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/..',
      '/../main/nix-cache-info',
      '/_api/../main/nix-cache-info',
      '/_api/v1/../../main/x',
      '/_api/v2/caches',
      '/_api/v1/caches/../tokens',
      '/_api/v1/caches/main/extra',
      '/MAIN/nix-cache-info',
      '/main%00/nix-cache-info',
      '/_main/nix-cache-info',
      `/${'a'.repeat(5000)}/nix-cache-info`,
      '/main\\nix-cache-info',
    ];
    for (const target of targets) {
      for (const method of ['GET', 'PUT']) {
        const answer = await assertNothingStored(h.nw, () =>
          rawRequest(h.port, {
            method,
            path: target,
            headers: h.auth,
            body: method === 'PUT' ? Buffer.from('x') : undefined,
          }),
        );
        assert.ok(
          [400, 401, 403, 404, 405].includes(answer.status),
          `${method} ${target}: ${answer.status} ${answer.body}`,
        );
        assert.doesNotMatch(answer.body, /secret|root:/);
      }
    }
  });

  test('PUT without a token, with a bad one, or with one for another cache is refused', async () => {
    await createCache(h.nw, 'other', { isPublic: true });
    const { secret: otherPush } = await createToken(h.nw, { caches: ['other'], perms: ['push'] });
    const { secret: pullOnly } = await createToken(h.nw, { caches: ['main'], perms: ['pull'] });
    const info = serializeNarinfo({
      storePath: `/nix/store/${HASH}-x`,
      url: 'nar/x.nar',
      narHash: `sha256:${nix32Sha256(nar)}`,
      narSize: nar.length,
      references: [],
      sigs: [],
    });
    const uploads: [string, string | Uint8Array][] = [
      [`nar/${nix32Sha256(nar)}.nar`, nar],
      [`${HASH}.narinfo`, info],
      [`${HASH}.ls`, '{}'],
      [`log/${HASH}-hello.drv`, 'log'],
      [`realisations/sha256:${'c'.repeat(64)}!out.doi`, '{}'],
      ['nix-cache-info', 'StoreDir: /nix/store\n'],
    ];
    const auths: [string, Record<string, string>, number, RegExp][] = [
      ['no token', {}, 401, /needs a token/],
      ['unknown bearer token', { Authorization: 'Bearer nwt_0000' }, 401, /token/],
      ['empty bearer token', { Authorization: 'Bearer ' }, 401, /token/],
      ['garbage basic auth', { Authorization: 'Basic !!!not-base64' }, 401, /token/],
      [
        'basic auth without a password',
        { Authorization: `Basic ${Buffer.from('narwhal').toString('base64')}` },
        401,
        /token/,
      ],
      ['unknown scheme', { Authorization: 'Digest foo' }, 401, /token/],
      ['token of another cache', { Authorization: `Bearer ${otherPush}` }, 403, /may not push/],
      ['pull-only token', { Authorization: `Bearer ${pullOnly}` }, 403, /may not push/],
    ];
    for (const [path, body] of uploads) {
      for (const [label, headers, status, pattern] of auths) {
        const answer = await assertNothingStored(h.nw, async () =>
          answerOf(
            await fetch(h.url(path), {
              method: 'PUT',
              body: typeof body === 'string' ? body : Buffer.from(body),
              headers,
            }),
          ),
        );
        assertClientError(answer, status, pattern, `${label}: PUT ${path}`);
        if (status === 401) assert.match(String(answer.headers['www-authenticate']), /^Basic/);
      }
    }
  });

  test('wrong methods: 405 with Allow on a route, 404 elsewhere, never 405 on HEAD', async () => {
    for (const name of EXAMPLES) {
      const postOnly = name === 'chunk-frames';
      const wrong = ['DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', ...(postOnly ? ['GET', 'PUT'] : ['POST'])];
      for (const method of wrong) {
        const answer = await assertNothingStored(h.nw, () =>
          rawRequest(h.port, { method, path: `/main/${name}`, headers: h.auth }),
        );
        assertClientError(answer, 405, /method not allowed/, `${method} ${name}`);
        assert.match(String(answer.headers.allow), postOnly ? /^POST$/ : /^GET, HEAD/);
      }
      if (postOnly) continue;
      const head = await rawRequest(h.port, { method: 'HEAD', path: `/main/${name}`, headers: h.auth });
      assert.notEqual(head.status, 405, `HEAD ${name}`);
    }
    // GET-only routes refuse PUT with 405.
    for (const name of [`nar/${NAR_HASH}.caibx`, `castr/${CHUNK.slice(0, 4)}/${CHUNK}.cacnk`]) {
      const answer = await assertNothingStored(h.nw, () =>
        rawRequest(h.port, { method: 'PUT', path: `/main/${name}`, headers: h.auth, body: Buffer.from('x') }),
      );
      assertClientError(answer, 405, /method not allowed/, `PUT ${name}`);
    }
    // Unknown paths: 404 whatever the method.
    for (const method of ['GET', 'HEAD', 'PUT', 'POST', 'DELETE']) {
      const answer = await assertNothingStored(h.nw, () =>
        rawRequest(h.port, {
          method,
          path: '/main/nar/nothing',
          headers: h.auth,
          body: method === 'PUT' || method === 'POST' ? Buffer.from('x') : undefined,
        }),
      );
      assert.equal(answer.status, 404, method);
    }
  });

  test('invalid hashes in names are 404 (no such route), or 400 when only the value is impossible', async () => {
    const names = [
      `${HASH.slice(1)}.narinfo`,
      `${HASH}0.narinfo`,
      `${'e'.repeat(32)}.narinfo`,
      `${HASH.toUpperCase().replace(/A/, 'A')}X.narinfo`,
      `nar/${NAR_HASH.slice(1)}.nar`,
      `nar/${'t'.repeat(52)}.nar`,
      `castr/abcd/${'ab'.repeat(32)}.cacnk`,
      `castr/ABAB/${'AB'.repeat(32)}.cacnk`,
      `castr/abab/${'ab'.repeat(31)}.cacnk`,
      `log/${HASH}`,
      `log/${'e'.repeat(32)}-x.drv`,
      `realisations/sha256:${'g'.repeat(64)}!out.doi`,
      `realisations/md5:${'c'.repeat(32)}!out.doi`,
      'debuginfo/xyz.debug',
    ];
    for (const name of names) {
      for (const method of ['GET', 'PUT']) {
        const answer = await assertNothingStored(h.nw, async () =>
          answerOf(await fetch(h.url(name), { method, headers: h.auth, body: method === 'PUT' ? '{}' : undefined })),
        );
        // castr is read-only: a PUT there is 405 whatever the name.
        assertClientError(answer, [400, 404, 405], /not found|no such|method not allowed/, `${method} ${name}`);
      }
    }
    // 52 nix32 digits that do not fit in 32 bytes: the route matches, the value is impossible.
    const answer = await assertNothingStored(h.nw, async () =>
      answerOf(
        await fetch(h.url(`nar/z${NAR_HASH.slice(1)}.nar`), { method: 'PUT', headers: h.auth, body: Buffer.from(nar) }),
      ),
    );
    assertClientError(answer, 400, /nix base-32/);
    assert.equal((await fetch(h.url(`nar/z${NAR_HASH.slice(1)}.nar`))).status, 404);
  });
});
