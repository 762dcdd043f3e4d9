import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeNar } from '../../src/nix/nar-writer.ts';
import { ingestNar } from '../../src/ingest/ingest-nar.ts';
import { createCache } from '../../src/tenancy/caches.ts';
import { createToken } from '../../src/tenancy/tokens.ts';
import { addPath, bodyOf, randomHashPart } from '../helpers/narwhal-fixtures.ts';
import { rawRequest, startHostileServer, type HostileServer } from './hostile-server.ts';

const XSS = '<img src=x onerror=alert(1)>';
const SCRIPT = '<script>alert("x")</script>';

/** A browser-like session: keeps cookies, sends them back, reads the CSRF field of the pages it fetched. */
class Browser {
  cookies = new Map<string, string>();
  csrf = '';
  readonly base: string;
  constructor(base: string) {
    this.base = base;
  }
  async get(path: string): Promise<{ status: number; text: string; headers: Headers }> {
    const res = await fetch(`${this.base}${path}`, { headers: { Cookie: this.cookieHeader() }, redirect: 'manual' });
    this.keep(res);
    const text = await res.text();
    const csrf = /name="csrf" value="([^"]*)"/.exec(text);
    if (csrf) this.csrf = csrf[1];
    return { status: res.status, text, headers: res.headers };
  }
  async post(
    path: string,
    fields: Record<string, string>,
    headers: Record<string, string> = { Origin: this.base },
  ): Promise<{ status: number; text: string; headers: Headers }> {
    const res = await fetch(`${this.base}${path}`, {
      method: 'POST',
      headers: { Cookie: this.cookieHeader(), 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(fields).toString(),
      redirect: 'manual',
    });
    this.keep(res);
    return { status: res.status, text: await res.text(), headers: res.headers };
  }
  private keep(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const value = pair.slice(eq + 1);
      if (value === '' || /Max-Age=0/.test(line)) this.cookies.delete(pair.slice(0, eq));
      else this.cookies.set(pair.slice(0, eq), value);
    }
  }
  private cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

describe('web UI against hostile input', () => {
  let h: HostileServer;
  let pushSecret: string;
  let publicPath: string;
  let privatePath: string;

  before(async () => {
    h = await startHostileServer();
    await createCache(h.nw, 'hidden', { isPublic: false });
    pushSecret = (await createToken(h.nw, { caches: ['hidden'], perms: ['push'] })).secret;
    const nar = writeNar({
      type: 'directory',
      entries: {
        [XSS]: { type: 'regular', contents: Buffer.from(`${SCRIPT}\n`) },
        'ok.txt': { type: 'regular', contents: Buffer.from('plain text\n') },
        [`link${XSS}`]: { type: 'symlink', target: `../${SCRIPT}` },
      },
    });
    const record = await ingestNar(h.nw, bodyOf(nar), { compression: 'none' });
    publicPath = await addPath(h.nw, 'main', record);
    privatePath = await addPath(h.nw, 'hidden', record, randomHashPart());
  });
  after(() => h?.close());

  test('file names, symlink targets, file text and the search text are escaped, and no script may run', async () => {
    const b = new Browser(h.base);
    const pathPage = await b.get(`/_ui/c/main/p/${publicPath}`);
    assert.equal(pathPage.status, 200);
    assert.ok(!pathPage.text.includes(XSS) && !pathPage.text.includes(SCRIPT), 'nothing raw');
    assert.ok(pathPage.text.includes('&lt;img src=x onerror=alert(1)&gt;'), 'the name shown escaped');
    assert.ok(pathPage.text.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'), 'the target shown escaped');
    assert.match(pathPage.headers.get('content-security-policy')!, /default-src 'none'/);
    const file = await b.get(`/_ui/c/main/p/${publicPath}/f/${encodeURIComponent(XSS)}`);
    assert.equal(file.status, 200);
    assert.ok(!file.text.includes(SCRIPT) && file.text.includes('&lt;script&gt;alert('), 'the text shown escaped');
    const search = await b.get(`/?q=${encodeURIComponent(SCRIPT)}`);
    assert.ok(!search.text.includes(SCRIPT) && search.text.includes('&lt;script&gt;'));
  });

  test('path traversal in a file URL finds nothing', async () => {
    // Sent as written: fetch would resolve the dots itself.
    const get = (path: string) => rawRequest(h.port, { method: 'GET', path });
    const tails = [
      '..',
      '../../etc/passwd',
      '%2e%2e/%2e%2e/etc/passwd',
      'ok.txt%2F..',
      '.%2fok.txt',
      'ok.txt/..',
      './ok.txt',
      'x%00',
      '/etc/passwd',
    ];
    for (const tail of tails) {
      const res = await get(`/_ui/c/main/p/${publicPath}/f/${tail}`);
      assert.equal(res.status, 404, tail);
      assert.ok(!res.body.includes('root:'), tail);
    }
    assert.equal((await get(`/_ui/c/main/p/${publicPath}/f/ok.txt`)).status, 200);
    assert.equal((await get(`/_ui/c/..%2f..%2fetc/p/${publicPath}`)).status, 404);
    assert.equal((await get('/_ui/c/main/p/..%2f..%2fetc%2fpasswd')).status, 404);
    assert.equal((await get(`/_ui/c/main/../../p/${publicPath}`)).status, 404);
  });

  test('a private cache is invisible without its token: list, page, path, file and search alike', async () => {
    const anonymous = new Browser(h.base);
    assert.ok(!(await anonymous.get('/')).text.includes('/_ui/c/hidden'));
    assert.equal((await anonymous.get('/_ui/c/hidden')).status, 404);
    assert.equal((await anonymous.get(`/_ui/c/hidden/p/${privatePath}`)).status, 404);
    assert.equal((await anonymous.get(`/_ui/c/hidden/p/${privatePath}/f/ok.txt`)).status, 404);
    assert.equal((await anonymous.get(`/_ui/c/hidden/p/${privatePath}/f/ok.txt?download=1`)).status, 404);
    assert.ok(!(await anonymous.get('/?q=fixture')).text.includes(privatePath));
    // The same 404 as a cache that does not exist.
    assert.equal((await anonymous.get('/_ui/c/no-such')).status, 404);

    const signedIn = new Browser(h.base);
    await signedIn.get('/');
    const signIn = await signedIn.post('/_ui/sign-in', { token: pushSecret, csrf: signedIn.csrf });
    assert.equal(signIn.status, 303);
    assert.ok((await signedIn.get('/?q=fixture')).text.includes(privatePath));
    assert.equal((await signedIn.get(`/_ui/c/hidden/p/${privatePath}`)).status, 200);
  });

  test('sign-in sets an HttpOnly, SameSite=Strict cookie; a bad token sets none', async () => {
    const b = new Browser(h.base);
    await b.get('/');
    const bad = await b.post('/_ui/sign-in', { token: 'not-a-token', csrf: b.csrf });
    assert.equal(bad.status, 401);
    assert.ok(!b.cookies.has('narwhal_token'));
    const good = await b.post('/_ui/sign-in', { token: pushSecret, csrf: b.csrf });
    const tokenCookie = good.headers.getSetCookie().find((c) => c.startsWith('narwhal_token='))!;
    assert.match(tokenCookie, /HttpOnly/);
    assert.match(tokenCookie, /SameSite=Strict/);
    assert.match(tokenCookie, /Path=\//);
  });

  test('a form without the CSRF token, with a stale one, or from another origin is refused with 403 and changes nothing', async () => {
    const b = new Browser(h.base);
    await b.get('/');
    await b.post('/_ui/sign-in', { token: pushSecret, csrf: b.csrf });
    await b.get('/_ui/c/hidden');
    const pin = { path: privatePath, pinned: '1', back: 'cache' };
    const stale = b.csrf;
    const attempts = [
      await b.post('/_ui/c/hidden/pin', pin),
      await b.post('/_ui/c/hidden/pin', { ...pin, csrf: 'x'.repeat(stale.length) }),
      await b.post('/_ui/c/hidden/pin', { ...pin, csrf: stale }, { Origin: 'http://evil.example' }),
      await b.post('/_ui/c/hidden/pin', { ...pin, csrf: stale }, {}),
      await b.post('/_ui/c/hidden/pin', { ...pin, csrf: stale }, { Origin: 'null' }),
    ];
    assert.deepEqual(
      attempts.map((a) => a.status),
      [403, 403, 403, 403, 403],
    );
    const cache = (await h.nw.meta.getCache('hidden'))!;
    assert.equal((await h.nw.meta.getPath(cache.id, privatePath))!.pinned, false, 'nothing pinned');
    // Another session's token does not fit this session.
    const other = new Browser(h.base);
    await other.get('/');
    await other.post('/_ui/sign-in', { token: pushSecret, csrf: other.csrf });
    await other.get('/_ui/c/hidden');
    assert.equal((await b.post('/_ui/c/hidden/pin', { ...pin, csrf: other.csrf })).status, 403);
    // The right one works.
    assert.equal((await b.post('/_ui/c/hidden/pin', { ...pin, csrf: stale })).status, 303);
    assert.equal((await h.nw.meta.getPath(cache.id, privatePath))!.pinned, true);
  });

  test('pinning needs push or admin on the cache; a form body over the limit is refused', async () => {
    const b = new Browser(h.base);
    await b.get('/');
    const pullOnly = (await createToken(h.nw, { caches: ['main'], perms: ['pull'] })).secret;
    await b.post('/_ui/sign-in', { token: pullOnly, csrf: b.csrf });
    const page = await b.get('/_ui/c/main');
    assert.ok(!page.text.includes('/_ui/c/main/pin'), 'no pin form shown');
    assert.equal((await b.post('/_ui/c/main/pin', { path: publicPath, pinned: '1', csrf: b.csrf })).status, 403);
    const cache = (await h.nw.meta.getCache('main'))!;
    assert.equal((await h.nw.meta.getPath(cache.id, publicPath))!.pinned, false);
    assert.equal((await b.post('/_ui/sign-out', { csrf: b.csrf, pad: 'x'.repeat(20_000) })).status, 413);
  });
});
