/**
 * The web UI in a real browser (Debian's chromium driven by playwright-core) against the real
 * `narwhal serve`, with paths pushed by real `nix copy`. Screenshots go to test-artifacts/ui/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { chromium, type Browser, type Page } from 'playwright-core';
import {
  buildClosure,
  narwhal,
  nixEnv,
  REPO,
  run,
  startServer,
  tempDir,
  writeNetrc,
  type RunningServer,
  type TestClosure,
} from '../e2e/harness.ts';

const ARTIFACTS = join(REPO, 'test-artifacts', 'ui');
const XSS_NAME = '<img src=x onerror=alert(1)>.txt';

describe('web UI in chromium', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let env: NodeJS.ProcessEnv;
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  let closure: TestClosure;
  let hostile: string;
  let teamSecret: string;
  let teamPushedAt: number;
  const dialogs: string[] = [];

  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  const goto = async (path: string) => {
    const res = await page.goto(`${server.url}${path}`);
    return res!.status();
  };

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    work = await tempDir('ui');
    env = nixEnv(work.path);
    server = await startServer(join(work.path, 'data'), ['--stats-interval', '1s']);
    const admin = (
      JSON.parse(
        await narwhal(['token', 'create', '--data-dir', server.dataDir, '--cache', '*', '--perm', 'admin', '--json']),
      ) as { secret: string }
    ).secret;
    const api = (args: string[]) => narwhal([...args, '--server', server.url, '--token', admin]);
    await api(['cache', 'create', 'team', '--retention', '1s', '--json']);
    teamSecret = (
      JSON.parse(
        await api(['token', 'create', '--cache', 'team', '--perm', 'push', '--name', 'team-ci', '--json']),
      ) as {
        secret: string;
      }
    ).secret;
    closure = await buildClosure(env, work.path, `ui-${randomBytes(4).toString('hex')}`);
    const dir = join(work.path, 'hostile');
    await mkdir(dir);
    await writeFile(join(dir, XSS_NAME), 'escaped <b>text</b>\n');
    hostile = (await run('nix-store', ['--add', dir], env)).trim();

    await writeNetrc(work.path, admin);
    await run('nix', ['copy', '--to', `${server.url}/main?compression=zstd`, closure.top, closure.added, hostile], env);
    await writeNetrc(work.path, teamSecret);
    await run('nix', ['copy', '--to', `${server.url}/team?compression=zstd`, closure.dep], env);
    teamPushedAt = Date.now();

    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
    page = await browser.newPage({ acceptDownloads: true });
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await work?.remove();
  });

  test('the cache list shows public caches only, signed out', async () => {
    assert.equal(await goto('/'), 200);
    const names = await page.locator('table.caches tbody td:first-child').allTextContents();
    assert.deepEqual(names, ['main']);
    await shot('home-signed-out');
  });

  test('search lists the matching paths', async () => {
    await goto('/');
    await page.fill('input[name=q]', 'narwhal-top');
    await page.press('input[name=q]', 'Enter');
    await page.waitForURL(/\?q=narwhal-top/);
    const rows = await page.locator('table.results tbody tr').allTextContents();
    assert.equal(rows.length, 1);
    assert.ok(rows[0].includes(closure.top));
    await shot('search');
    await goto('/?q=no-such-thing-anywhere');
    assert.equal(await page.locator('p.none').textContent(), 'No path matches.');
  });

  test("a path's page: narinfo, signatures, references, referrers, closure and files", async () => {
    await goto(`/?q=narwhal-top`);
    await page.click(`table.results a:text("${closure.top}")`);
    assert.equal(await page.locator('h1.store-path').textContent(), closure.top);
    const narinfo = await page.locator('dl.narinfo').textContent();
    assert.match(narinfo!, /NarHash\s*sha256:[0-9a-z]{52}/);
    assert.match(narinfo!, /Compression\s*zstd/);
    const sigs = await page.locator('ul.sigs li').allTextContents();
    assert.ok(
      sigs.some((sig) => /^main-1:[A-Za-z0-9+/]{86}==$/.test(sig)),
      sigs.join(),
    );
    const refs = await page.locator('ul.references li').allTextContents();
    assert.equal(refs.length, 2, 'the dependency and itself');
    assert.match((await page.locator('dd.closure').textContent()) ?? '', /^2 paths/);
    const files = await page.locator('table.files tbody td:first-child').allTextContents();
    assert.deepEqual(files, ['/', 'bin/', 'bin/tool', 'dep', 'self']);
    await shot('path');

    await page.click('ul.references a:has-text("narwhal-dep")');
    assert.equal(await page.locator('h1.store-path').textContent(), closure.dep);
    assert.deepEqual(await page.locator('ul.referrers li').allTextContents(), [closure.top]);
  });

  test("a file's text is shown; a binary is offered as a download of the right bytes", async () => {
    await goto(`/?q=narwhal-top`);
    await page.click(`table.results a:text("${closure.top}")`);
    await page.click('table.files a:text-is("dep")');
    assert.equal((await page.locator('pre.file-text').textContent())?.trim(), closure.dep);
    await shot('file-text');

    await page.goBack();
    await page.click('table.files a:text-is("bin/tool")');
    assert.match((await page.locator('p.binary').textContent()) ?? '', /^Binary file/);
    await shot('file-binary');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('a.download')]);
    assert.equal(download.suggestedFilename(), 'tool');
    const saved = join(work.path, 'downloaded-tool');
    await download.saveAs(saved);
    assert.ok((await readFile(saved)).equals(await readFile('/usr/bin/nix')));
  });

  test('a hostile file name is shown as text, never as markup', async () => {
    await goto(`/?q=hostile`);
    await page.click(`table.results a:text("${hostile}")`);
    const files = await page.locator('table.files tbody td:first-child').allTextContents();
    assert.deepEqual(files, ['/', XSS_NAME]);
    assert.equal(await page.locator('main img').count(), 0);
    await page.click('table.files a:text-is("<img src=x onerror=alert(1)>.txt")');
    assert.equal((await page.locator('pre.file-text').textContent())?.trim(), 'escaped <b>text</b>');
    assert.equal(await page.locator('pre.file-text b').count(), 0);
    await shot('hostile-name');
    assert.deepEqual(dialogs, []);
  });

  test('sign-in reveals the private cache: figures, chart, GC next; pin and unpin by form', async () => {
    await goto('/');
    await page.fill('input[name=token]', teamSecret);
    await page.click('header button:text("Sign in")');
    assert.match((await page.locator('header .who').first().textContent()) ?? '', /signed in as team-ci/);
    assert.deepEqual(await page.locator('table.caches tbody td:first-child').allTextContents(), ['main', 'team']);
    const cookies = await page.context().cookies();
    const tokenCookie = cookies.find((c) => c.name === 'narwhal_token')!;
    assert.equal(tokenCookie.httpOnly, true);
    assert.equal(tokenCookie.sameSite, 'Strict');

    // Retention is 1 s: once past it, the path is what GC would expire next.
    await delay(Math.max(0, teamPushedAt + 1_500 - Date.now()));
    await page.click('table.caches a:text("team")');
    assert.equal(await page.locator('.figures .paths').textContent(), '1');
    assert.match((await page.locator('.figures .dedup').textContent()) ?? '', /^\d+\.\d\dx$/);
    assert.match((await page.locator('pre.nix-conf').textContent()) ?? '', /extra-trusted-public-keys = team-1:/);
    assert.equal(await page.locator('svg.chart polyline.stored').count(), 1, 'the storage chart');
    assert.deepEqual(
      (await page.locator('table.gc-next tbody td:first-child').allTextContents()).map((t) => t.trim()),
      [closure.dep],
    );
    await shot('cache-signed-in');

    await page.fill('form.pin-form input[name=path]', closure.dep);
    await page.click('form.pin-form button');
    assert.deepEqual(await page.locator('table.pins td.mono').allTextContents(), [closure.dep]);
    assert.match((await page.locator('p.gc-next').textContent()) ?? '', /^Nothing/);
    await shot('cache-pinned');
    await page.click('table.pins button:text("Unpin")');
    assert.equal(await page.locator('table.pins').count(), 0);
    assert.equal(await page.locator('table.gc-next tbody tr').count(), 1);
  });

  test('a POST without the CSRF token, or from another page, is refused and changes nothing', async () => {
    const pin = { path: closure.dep, pinned: '1', back: 'cache' };
    // The browser's own cookies, no form token.
    const bare = await page.context().request.post(`${server.url}/_ui/c/team/pin`, {
      form: pin,
      headers: { Origin: server.url },
    });
    assert.equal(bare.status(), 403);
    // A form on another page posting here: no Origin of ours, no session cookie (SameSite=Strict).
    const other = await browser.newPage();
    await other.setContent(
      `<form method="post" action="${server.url}/_ui/c/team/pin"><input name="path" value="${closure.dep}"><input name="pinned" value="1"><input name="csrf" value="guess"><button>go</button></form>`,
    );
    const [answer] = await Promise.all([other.waitForNavigation(), other.click('button')]);
    assert.equal(answer!.status(), 403);
    await other.close();
    await goto('/_ui/c/team');
    assert.equal(await page.locator('table.pins').count(), 0, 'still not pinned');
  });

  test('sign-out hides the private cache again', async () => {
    await goto('/');
    await page.click('header button:text("Sign out")');
    assert.deepEqual(await page.locator('table.caches tbody td:first-child').allTextContents(), ['main']);
    assert.equal(await goto('/_ui/c/team'), 404);
    assert.equal(await page.locator('h1').textContent(), 'Not found');
    await shot('signed-out');
  });
});
