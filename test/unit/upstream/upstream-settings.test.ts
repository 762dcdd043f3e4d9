import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createNarwhalServer } from '../../../src/server/server.ts';
import { createToken } from '../../../src/tenancy/tokens.ts';
import { remoteAdmin } from '../../../src/client/remote-admin.ts';
import { generateSigningKey } from '../../../src/nix/signing.ts';
import { parseNetrc } from '../../../src/upstream/netrc.ts';
import { tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';

describe('upstream settings through the management API', () => {
  let t: TempNarwhal;
  let server: Server;
  let base: string;
  let api: ReturnType<typeof remoteAdmin>;
  const key = generateSigningKey('up-1').publicKey;

  before(async () => {
    t = await tempNarwhal();
    server = createNarwhalServer(t.nw, { log: () => undefined });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    api = remoteAdmin(base, (await createToken(t.nw, { caches: ['*'], perms: ['admin'] })).secret);
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await t.close();
  });

  test('a cache is created and reconfigured with upstreams and their keys', async () => {
    const created = await api.createCache('pt', { upstreams: ['https://cache.example.org/'], upstreamKeys: [key] });
    assert.deepEqual(created.upstreams, ['https://cache.example.org']);
    assert.deepEqual(created.upstreamKeys, [key]);
    const changed = await api.configureCache('pt', { upstreams: ['http://127.0.0.1:1/a', 'http://127.0.0.1:2/b'] });
    assert.deepEqual(changed.upstreams, ['http://127.0.0.1:1/a', 'http://127.0.0.1:2/b']);
    assert.deepEqual((await api.configureCache('pt', { upstreams: [] })).upstreams, []);
  });

  test('bad upstream settings are refused with 400 and change nothing', async () => {
    await assert.rejects(api.createCache('nokey', { upstreams: ['https://cache.example.org'] }), /400.*upstream key/);
    await assert.rejects(api.createCache('ftp', { upstreams: ['ftp://x'], upstreamKeys: [key] }), /400/);
    await assert.rejects(
      api.createCache('creds', { upstreams: ['https://user:secret@cache.example.org'], upstreamKeys: [key] }),
      /400.*netrc/,
    );
    await assert.rejects(
      api.createCache('badkey', { upstreams: ['https://x.org'], upstreamKeys: ['nonsense'] }),
      /400/,
    );
    assert.deepEqual(
      (await api.listCaches()).map((c) => c.name).filter((n) => n !== 'main' && n !== 'pt'),
      [],
    );
    await api.configureCache('pt', { upstreams: ['https://x.org'] });
    await assert.rejects(api.configureCache('pt', { upstreams: ['not a url'] }), /400/);
    assert.deepEqual((await api.cacheInfo('pt')).upstreams, ['https://x.org']);
  });
});

test('netrc: machines, the default entry, tokens on one line or many', () => {
  const { machines, fallback } = parseNetrc(
    'machine cache.example.org login alice password s3cret\n\nmachine other\n  login bob\n  password pw\ndefault login anon password x\n',
  );
  assert.deepEqual(machines.get('cache.example.org'), { login: 'alice', password: 's3cret' });
  assert.deepEqual(machines.get('other'), { login: 'bob', password: 'pw' });
  assert.deepEqual(fallback, { login: 'anon', password: 'x' });
  assert.equal(parseNetrc('').machines.size, 0);
});
