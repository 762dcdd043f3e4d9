import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, open, rm, statfs, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { narwhal, nixEnv, run, startServer, tempDir, writeNetrc, type RunningServer } from '../e2e/harness.ts';
import { pushPath } from '../crash/push-client.ts';
import { checkServedPath } from '../crash/served-path.ts';
import { hashPartFor, loadBinarySource, syntheticPath, type SyntheticPath } from '../crash/synthetic-paths.ts';
import { packStoreContents } from '../helpers/pack-store-contents.ts';

const FS_SIZE = '40m';
const execFileAsync = promisify(execFile);

/**
 * The data directory on a small tmpfs whose free space the test controls with filler files: an
 * upload that cannot be stored must be refused with 507 (not accepted, not left hanging), what is
 * stored must keep being served, and the same upload must work once space is freed.
 */
describe('disk full: a small file system under the data directory', {
  skip: process.getuid?.() !== 0 ? 'needs root to mount a tmpfs' : false,
}, () => {
  let work: { path: string; remove(): Promise<void> };
  let mountPoint: string;
  let mounted = false;
  let server: RunningServer;
  let token: string;

  before(async () => {
    work = await tempDir('diskfull');
    mountPoint = join(work.path, 'fs');
    await mkdir(mountPoint);
    await run('mount', ['-t', 'tmpfs', '-o', `size=${FS_SIZE}`, 'tmpfs', mountPoint]);
    mounted = true;
    const dataDir = join(mountPoint, 'data');
    token = (
      JSON.parse(
        await narwhal(['token', 'create', '--data-dir', dataDir, '--cache', 'main', '--perm', 'push', '--json']),
      ) as { secret: string }
    ).secret;
    server = await startServer(dataDir);
  });

  after(async () => {
    await server?.stop();
    if (mounted) await run('umount', [mountPoint]).catch(() => run('umount', ['-l', mountPoint]));
    await work?.remove();
  });

  test('507 for the upload that does not fit; stored paths keep serving; the upload works after space is freed', async (t) => {
    let cacheUrl = `${server.url}/main`;
    const push = (path: SyntheticPath) => pushPath(path, { cacheUrl, token, timeoutMs: 30_000 });
    const seed = randomBytes(6).toString('hex');
    const source = loadBinarySource(8 * 1024 * 1024);
    const stored = [0, 1, 2].map((i) =>
      syntheticPath(source, { seed, name: `full-stored-${i}`, binarySize: 1024 * 1024 }),
    );
    for (const path of stored) assert.equal((await push(path)).kind, 'acked');
    // A NAR uploaded before the disk fills, whose narinfo comes after.
    const pending = syntheticPath(source, { seed, name: 'full-pending', binarySize: 200 * 1024 });
    assert.equal((await put(cacheUrl, token, pending.uploadName, pending.nar)).status, 204);
    // Random bytes do not compress: 8 MiB of chunks to store.
    const big = syntheticPath(randomBytes(9 * 1024 * 1024), {
      seed,
      name: 'full-big',
      binarySize: 8 * 1024 * 1024,
      references: [`${stored[0].hashPart}-full-stored-0`],
    });
    // As if the paths were last read long ago, so that reading them records an access time: a
    // database write that, on a full disk, must not cost the read.
    await server.stop();
    const db = new DatabaseSync(join(server.dataDir, 'narwhal.sqlite'));
    db.exec('UPDATE paths SET last_access = 0');
    db.close();
    server = await startServer(server.dataDir);
    cacheUrl = `${server.url}/main`;

    const filler = join(mountPoint, 'filler');
    await fill(filler, (await freeBytes(mountPoint)) - 2 * 1024 * 1024);
    const refused = await put(cacheUrl, token, big.uploadName, big.nar);
    assert.equal(refused.status, 507, `NAR upload on a full disk: ${refused.status} ${refused.text}`);
    const orphanInfo = await put(cacheUrl, token, `${big.hashPart}.narinfo`, new TextEncoder().encode(big.narinfo));
    assert.equal(orphanInfo.status, 400, `narinfo of the refused NAR: ${orphanInfo.status} ${orphanInfo.text}`);
    assert.equal(await checkServedPath(cacheUrl, stored[0]), 'served');
    assert.equal(await checkServedPath(cacheUrl, big, { bytes: false }), 'absent');

    // Not a byte left: reads still work, metadata writes fail and say so the same way.
    const fillerToo = join(mountPoint, 'filler-2');
    await fill(fillerToo, Infinity);
    for (const path of stored) assert.equal(await checkServedPath(cacheUrl, path), 'served');
    const log = randomBytes(4 * 1024 * 1024);
    const logName = `log/${hashPartFor(seed, 'drv')}-full.drv`;
    const logPut = await put(cacheUrl, token, logName, log, 'text/plain');
    assert.equal(logPut.status, 507, `build log upload on a full disk: ${logPut.status} ${logPut.text}`);
    const refusedAgain = await put(cacheUrl, token, big.uploadName, big.nar);
    assert.equal(
      refusedAgain.status,
      507,
      `NAR upload on a disk without a free byte: ${refusedAgain.status} ${refusedAgain.text}`,
    );
    // Real Nix retries a PUT that got a 5xx with the same headers and no body: answered only
    // after a body, each retry would wait for one and `nix copy` would hang for minutes. Refused
    // before the body (Expect: 100-continue), it fails at once and says why.
    const nixHome = join(work.path, 'nix-client');
    await mkdir(nixHome, { recursive: true });
    await writeNetrc(nixHome, token);
    const nixEnvironment = nixEnv(nixHome);
    const payload = join(work.path, 'nix-payload');
    await writeFile(payload, randomBytes(3 * 1024 * 1024));
    const storePath = (await run('nix-store', ['--add', payload], nixEnvironment)).trim();
    const copy = await execFileAsync('nix', ['copy', '--to', `${cacheUrl}?compression=none`, storePath], {
      env: nixEnvironment,
      timeout: 120_000,
    }).then(
      () => ({ failed: false, killed: false, stderr: '' }),
      (err: { killed?: boolean; stderr?: string }) => ({
        failed: true,
        killed: err.killed === true,
        stderr: err.stderr ?? '',
      }),
    );
    assert.ok(
      copy.failed && !copy.killed,
      `nix copy to a full server must fail, not hang (killed after 120 s: ${copy.killed})`,
    );
    assert.match(copy.stderr, /507|full/, copy.stderr);
    const pendingInfo = await put(
      cacheUrl,
      token,
      `${pending.hashPart}.narinfo`,
      new TextEncoder().encode(pending.narinfo),
    );
    assert.ok(
      pendingInfo.status === 204 || pendingInfo.status === 507,
      `small narinfo on a full disk: ${pendingInfo.status} ${pendingInfo.text}`,
    );
    assert.equal(await checkServedPath(cacheUrl, pending), pendingInfo.status === 204 ? 'served' : 'absent');
    t.diagnostic(
      `on a full disk: NAR PUT ${refused.status} (${refused.text}), then ${refusedAgain.status}; 4 MiB build log PUT ${logPut.status} (${logPut.text}); small narinfo PUT ${pendingInfo.status}`,
    );
    for (const path of stored) assert.equal(await checkServedPath(cacheUrl, path), 'served');
    assert.deepEqual(
      (await packStoreContents(join(server.dataDir, 'chunks'))).misplaced,
      [],
      'failed chunk writes left index entries without their frames',
    );

    await rm(filler);
    await rm(fillerToo);
    assert.equal((await push(big)).kind, 'acked');
    assert.equal(await checkServedPath(cacheUrl, big), 'served');
    assert.ok(['acked', 'present'].includes((await push(pending)).kind));
    assert.equal(await checkServedPath(cacheUrl, pending), 'served');
    assert.equal((await put(cacheUrl, token, logName, log, 'text/plain')).status, 204);
    const logBack = await fetch(`${cacheUrl}/${logName}`);
    assert.equal(logBack.status, 200);
    assert.ok(Buffer.from(await logBack.arrayBuffer()).equals(log), 'build log served as uploaded');

    const stats = JSON.parse(await narwhal(['stats', '--data-dir', server.dataDir, '--json'])) as Record<
      string,
      number
    >;
    assert.equal(stats.paths, stored.length + 2);
    assert.equal(stats.nars, stored.length + 2);
    await server.stop();
    assert.deepEqual((await packStoreContents(join(server.dataDir, 'chunks'))).misplaced, []);
    const check = new DatabaseSync(join(server.dataDir, 'narwhal.sqlite'), { readOnly: true });
    try {
      assert.deepEqual(
        check
          .prepare('PRAGMA integrity_check')
          .all()
          .map((row) => row.integrity_check),
        ['ok'],
      );
    } finally {
      check.close();
    }
  });
});

async function put(
  cacheUrl: string,
  token: string,
  name: string,
  body: Uint8Array,
  contentType = 'application/octet-stream',
): Promise<{ status: number; text: string }> {
  const response = await fetch(`${cacheUrl}/${name}`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': contentType },
    body,
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, text: (await response.text()).trim() };
}

async function freeBytes(path: string): Promise<number> {
  const info = await statfs(path);
  return info.bavail * info.bsize;
}

/** Writes up to `bytes` into `path`, stopping quietly where the file system is full. */
async function fill(path: string, bytes: number): Promise<void> {
  const file = await open(path, 'w');
  const block = Buffer.alloc(1024 * 1024, 0x5a);
  try {
    for (let written = 0; written < bytes; ) {
      const length = Math.min(block.length, bytes - written);
      try {
        written += (await file.write(block, 0, length)).bytesWritten;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return;
        throw err;
      }
    }
  } finally {
    await file.close();
  }
}
