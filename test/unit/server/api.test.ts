import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createNarwhalServer } from '../../../src/server/server.ts';
import { createToken } from '../../../src/tenancy/tokens.ts';
import { remoteAdmin } from '../../../src/client/remote-admin.ts';
import { generateSigningKey } from '../../../src/nix/signing.ts';
import { tempNarwhal, type TempNarwhal } from '../../helpers/narwhal-fixtures.ts';

describe('management API', () => {
  let t: TempNarwhal;
  let server: Server;
  let base: string;
  let admin: string;

  before(async () => {
    t = await tempNarwhal();
    server = createNarwhalServer(t.nw, { log: () => undefined });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    admin = (await createToken(t.nw, { caches: ['*'], perms: ['admin'] })).secret;
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await t.close();
  });

  test('needs a token, and a global admin for cache creation and tokens', async () => {
    assert.equal((await fetch(`${base}/_api/v1/caches`)).status, 401);
    const narrow = (await createToken(t.nw, { caches: ['main'], perms: ['admin'] })).secret;
    const api = remoteAdmin(base, narrow);
    await assert.rejects(api.createCache('x', {}), /403/);
    await assert.rejects(api.listTokens(), /403/);
    assert.equal((await api.cacheInfo('main')).name, 'main');
    assert.deepEqual(
      (await api.listCaches()).map((c) => c.name),
      ['main'],
    );
  });

  test('cache lifecycle through the API', async () => {
    const api = remoteAdmin(base, admin);
    const key = generateSigningKey('imported-1');
    const created = await api.createCache('team', { priority: 30, signingKey: key.secretKey });
    assert.equal(created.publicKey, key.publicKey);
    assert.equal(created.public, false);
    assert.equal(created.priority, 30);
    await assert.rejects(api.createCache('team', {}), /409/);
    await assert.rejects(api.createCache('Bad Name', {}), /400.*invalid cache name/);
    const configured = await api.configureCache('team', {
      isPublic: true,
      trustedKeys: [key.publicKey],
      requireSignature: true,
    });
    assert.equal(configured.public, true);
    assert.equal(configured.requireSignature, true);
    await assert.rejects(api.configureCache('team', { trustedKeys: ['garbage'] }), /400/);
    await assert.rejects(api.configureCache('team', { trustedKeys: [] }), /400.*at least one trusted key/);
    assert.equal((await fetch(`${base}/team/nix-cache-info`)).status, 200);
    await api.destroyCache('team');
    assert.equal((await fetch(`${base}/team/nix-cache-info`)).status, 404);
    await assert.rejects(api.cacheInfo('team'), /404/);
  });

  test('token lifecycle through the API', async () => {
    const api = remoteAdmin(base, admin);
    const { id, secret } = await api.createToken({
      caches: ['main'],
      perms: ['push'],
      name: 'ci',
      expiresInMs: 86_400_000,
    });
    const listed = (await api.listTokens()).find((tk) => tk.id === id)!;
    assert.equal(listed.name, 'ci');
    assert.ok(listed.expiresAt !== null && Date.parse(listed.expiresAt) > Date.now());
    assert.equal(JSON.stringify(await api.listTokens()).includes(secret), false);
    assert.equal(
      (await fetch(`${base}/main/nix-cache-info`, { headers: { Authorization: `Bearer ${secret}` } })).status,
      200,
    );
    await api.revokeToken(id);
    assert.equal(
      (await fetch(`${base}/main/nix-cache-info`, { headers: { Authorization: `Bearer ${secret}` } })).status,
      401,
    );
    const basic = Buffer.from(`anyone:${secret}`).toString('base64');
    assert.equal(
      (await fetch(`${base}/main/nix-cache-info`, { headers: { Authorization: `Basic ${basic}` } })).status,
      401,
    );
  });
});
