/**
 * Upgrade deltas prepared on disk (src/serving/prepared-deltas.ts): kept under the data dir across
 * a restart and used by the next server on it, used by another process on the same data dir, dropped when GC removes the older version, and held
 * within their bound in bytes.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeNarwhal, type Narwhal } from '../../../src/context/narwhal.ts';
import { runGc } from '../../../src/maintenance/gc.ts';
import type { NarRecord } from '../../../src/metadata/metadata-store.ts';
import { serializeNarinfo } from '../../../src/nix/narinfo.ts';
import { createNarwhalServer } from '../../../src/server/server.ts';
import { chunkFrames } from '../../../src/serving/chunk-frames.ts';
import type { WantedChunk } from '../../../src/serving/chunk-frames-body.ts';
import { upgradeDeltasSettled } from '../../../src/serving/upgrade-deltas.ts';
import { openNarwhal } from '../../../src/tenancy/open-narwhal.ts';
import { createToken } from '../../../src/tenancy/tokens.ts';
import { narHashOf, randomHashPart } from '../../helpers/narwhal-fixtures.ts';
import { versionNar } from '../../helpers/test-data.ts';
import { upgradeRequest } from '../../helpers/upgrade-request.ts';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

/** A server on a data dir; `upload` puts a NAR and a narinfo naming it over HTTP, as `nix copy --to` does. */
async function serve(dataDir: string, upgradeDeltaBytes?: number) {
  const nw = await openNarwhal({ dataDir, options: upgradeDeltaBytes ? { upgradeDeltaBytes } : {} });
  const server = createNarwhalServer(nw, { log: () => undefined });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/main`;
  const headers = { Authorization: `Bearer ${(await createToken(nw, { caches: ['main'], perms: ['push'] })).secret}` };
  const upload = async (nar: Uint8Array, name: string): Promise<{ record: NarRecord; hashPart: string }> => {
    const narHash = narHashOf(nar);
    const put = await fetch(`${base}/nar/${narHash.slice('sha256:'.length)}.nar`, {
      method: 'PUT',
      body: nar,
      headers,
    });
    assert.equal(put.status, 204, await put.text());
    const record = (await nw.meta.getNar(narHash))!;
    const hashPart = randomHashPart();
    const narinfo = serializeNarinfo({
      storePath: `/nix/store/${hashPart}-${name}`,
      url: 'nar/x.nar',
      narHash,
      narSize: record.narSize,
      references: [],
      sigs: [],
    });
    const res = await fetch(`${base}/${hashPart}.narinfo`, { method: 'PUT', body: narinfo, headers });
    assert.equal(res.status, 204, await res.text());
    return { record, hashPart };
  };
  const stop = async (): Promise<void> => {
    await upgradeDeltasSettled();
    server.closeAllConnections();
    server.close();
    await closeNarwhal(nw);
  };
  return { nw, upload, stop };
}

/** The answers of the request by kind, as the server's metrics count them. */
async function answerKinds(nw: Narwhal, wanted: WantedChunk[]): Promise<Record<string, number>> {
  const metric = nw.metrics.registry.getSingleMetric('narwhal_chunk_answers_total')!;
  const count = async () =>
    Object.fromEntries((await metric.get()).values.map((v) => [String(v.labels.kind), v.value])) as Record<
      string,
      number
    >;
  const before = await count();
  const cache = (await nw.meta.getCache('main'))!;
  for await (const _ of chunkFrames(nw, cache, wanted));
  const after = await count();
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}

const deltaFiles = async (dataDir: string): Promise<{ name: string; size: number }[]> => {
  const dir = join(dataDir, 'upgrade-deltas');
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.deltas'));
  return Promise.all(names.map(async (name) => ({ name, size: (await stat(join(dir, name))).size })));
};

const dataDir = async (): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-prepared-'));
  dirs.push(dir);
  return dir;
};

test('a prepared upgrade survives a restart: the next server on the data dir sends its deltas kept', async () => {
  const dir = await dataDir();
  const first = await serve(dir);
  const v1 = await first.upload(versionNar(1000, 200_000), 'tool-1.0');
  const v2 = await first.upload(versionNar(2000, 200_000), 'tool-1.1');
  await first.stop();
  assert.equal((await deltaFiles(dir)).length, 1, 'one upgrade, one file');

  const second = await serve(dir);
  try {
    const kinds = await answerKinds(second.nw, upgradeRequest(v1.record, v2.record));
    assert.equal(kinds['computed-delta'] ?? 0, 0, 'nothing computed after the restart');
    assert.ok(kinds['kept-delta'] > 0, 'the deltas prepared before the restart were sent');
  } finally {
    await second.stop();
  }
});

test('another process on the same data dir sends the deltas one process prepared', async () => {
  const dir = await dataDir();
  const preparing = await serve(dir);
  const other = await serve(dir); // as `serve --processes 2` runs two over one data dir
  try {
    const v1 = await preparing.upload(versionNar(1500, 200_000), 'shared-1.0');
    const v2 = await preparing.upload(versionNar(2500, 200_000), 'shared-1.1');
    await upgradeDeltasSettled();
    const kinds = await answerKinds(other.nw, upgradeRequest(v1.record, v2.record));
    assert.equal(kinds['computed-delta'] ?? 0, 0, 'the other process computed nothing');
    assert.ok(kinds['kept-delta'] > 0, 'it sent the deltas the first one prepared');
  } finally {
    await other.stop();
    await preparing.stop();
  }
});

test('GC of the older version drops the upgrade from it; its request then gets no kept delta', async () => {
  const dir = await dataDir();
  const site = await serve(dir);
  try {
    const v1 = await site.upload(versionNar(3000, 250_000), 'gone-1.0');
    const v2 = await site.upload(versionNar(4000, 250_000), 'gone-1.1');
    await upgradeDeltasSettled();
    assert.equal((await deltaFiles(dir)).length, 1);
    const cache = (await site.nw.meta.getCache('main'))!;
    await site.nw.meta.deletePaths(cache.id, [v1.hashPart]);
    await runGc(site.nw, { graceMs: 0 });
    await runGc(site.nw, { graceMs: 0 });
    assert.equal(await site.nw.meta.getNar(v1.record.narHash), undefined, 'the old version is gone');
    assert.deepEqual(await deltaFiles(dir), [], 'its upgrade went with it');
    const kinds = await answerKinds(site.nw, upgradeRequest(v1.record, v2.record));
    assert.equal(kinds['kept-delta'] ?? 0, 0);
  } finally {
    await site.stop();
  }
});

test('the prepared deltas stay within their bound; the newest upgrade is kept', async () => {
  const dir = await dataDir();
  const bound = 12_000; // about two of these upgrades (5 KB each)
  const site = await serve(dir, bound);
  try {
    const versions = [];
    for (let v = 0; v < 5; v++) {
      versions.push(await site.upload(versionNar(5000 + v * 700, 120_000), `bounded-1.${v}`));
      await upgradeDeltasSettled();
      const files = await deltaFiles(dir);
      const total = files.reduce((sum, f) => sum + f.size, 0);
      assert.ok(total <= bound, `${total} bytes on disk, bound ${bound}`);
    }
    const files = await deltaFiles(dir);
    assert.ok(files.length > 0 && files.length <= 2, `older upgrades went (${files.length} left)`);
    const [older, newest] = versions.slice(-2);
    const kinds = await answerKinds(site.nw, upgradeRequest(older.record, newest.record));
    assert.ok(kinds['kept-delta'] > 0, 'the newest upgrade is still prepared');
  } finally {
    await site.stop();
  }
});
