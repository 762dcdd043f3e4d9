/**
 * Web UI page times (issue 21: each page within 50 ms of server time for a cache of 10,000 paths).
 * Builds a cache in-process: `paths` tiny real NARs ingested as uploads are, each path referring to
 * the first path (so it has `paths - 1` referrers) and to the one before it in its group of 100
 * (closures up to 101 paths deep), plus storage samples for the chart. Then serves it with the
 * real server and times each page: server time is from the request's arrival to the last byte of
 * the answer handed to the socket, measured in the server process.
 *
 *   node bench/measure-ui.ts [--paths 10000] [--requests 50]
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { closeNarwhal, type Narwhal } from '../src/context/narwhal.ts';
import { ingestNar } from '../src/ingest/ingest-nar.ts';
import { putNarinfo } from '../src/ingest/put-narinfo.ts';
import { serializeNarinfo } from '../src/nix/narinfo.ts';
import { writeNar } from '../src/nix/nar-writer.ts';
import { createNarwhalServer } from '../src/server/server.ts';
import { configureCache } from '../src/tenancy/caches.ts';
import { openNarwhal } from '../src/tenancy/open-narwhal.ts';
import { Readable } from 'node:stream';
import { table } from './format.ts';
import type { TargetResult } from './results.ts';

export const UI_TARGET_MS = 50;

export interface UiPageTiming {
  page: string;
  url: string;
  /** Paths in the cache. */
  paths: number;
  requests: number;
  medianMs: number;
  p95Ms: number;
}

const GROUP = 100;
const SAMPLES = 500;
/** Distinct NARs at most. */
const NARS = 1000;

/** A hash part for path i: 32 characters of nix-base32, unique per i. */
function hashPartOf(i: number): string {
  const alphabet = '0123456789abcdfghijklmnpqrsvwxyz';
  let text = '';
  for (let n = i + 1, k = 0; k < 32; k++, n = Math.floor(n / 32)) text += alphabet[n % 32];
  return text;
}

const nameOf = (i: number): string => `pkg-${i}-1.0`;

/** Builds the cache; returns when half its paths were stored. */
async function buildCache(nw: Narwhal, paths: number, log: (line: string) => void): Promise<number> {
  const cache = (await nw.meta.getCache('main'))!;
  // Distinct NARs: each ingest commits (and syncs) on its own, so paths share them, NAR i % nars.
  const nars: { narHash: string; narSize: number }[] = new Array(Math.min(paths, NARS));
  let next = 0;
  const ingestWorker = async (): Promise<void> => {
    while (next < nars.length) {
      const i = next++;
      const nar = writeNar({
        type: 'directory',
        entries: {
          bin: {
            type: 'directory',
            entries: {
              [`pkg-${i}`]: { type: 'regular', contents: Buffer.from(`#!/bin/sh\necho ${i}\n`), executable: true },
            },
          },
          'README.txt': {
            type: 'regular',
            contents: Buffer.from(`package ${i}\n${'documentation line\n'.repeat(20)}`),
          },
        },
      });
      nars[i] = await ingestNar(nw, Readable.from([Buffer.from(nar)]), { compression: 'none' });
    }
  };
  await Promise.all(Array.from({ length: 4 }, ingestWorker));
  log(`ui: ${nars.length} NARs stored`);
  let halfAt = Date.now();
  for (let i = 0; i < paths; i++) {
    if (i === Math.floor(paths / 2)) halfAt = Date.now();
    // References: the first path, and the previous one of the group of GROUP.
    const refs = i === 0 ? [] : i % GROUP === 0 ? [0] : [...new Set([0, i - 1])];
    const nar = nars[i % nars.length];
    const text = serializeNarinfo({
      storePath: `/nix/store/${hashPartOf(i)}-${nameOf(i)}`,
      url: 'nar/x.nar',
      narHash: nar.narHash,
      narSize: nar.narSize,
      references: refs.map((r) => `${hashPartOf(r)}-${nameOf(r)}`),
      sigs: [],
    });
    await putNarinfo(nw, cache, hashPartOf(i), text, 'operator');
    if ((i + 1) % 2000 === 0) log(`ui: ${i + 1} of ${paths} paths stored`);
  }
  // Samples a minute apart, ending now: the chart's 30 days hold them all.
  const now = Date.now();
  const usage = await nw.meta.cacheUsage(cache.id);
  for (let s = SAMPLES; s > 0; s--) {
    // Growing to the cache's usage now, as if it had been filled over the samples' time.
    const share = (SAMPLES - s + 1) / SAMPLES;
    await nw.meta.recordStorageSample(cache.id, {
      at: now - s * 60_000,
      paths: Math.round(usage.paths * share),
      narBytes: Math.round(usage.narBytes * share),
      storedBytes: Math.round(usage.storedBytes * share),
    });
  }
  return halfAt;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

export async function measureUi(
  options: { paths: number; requests: number },
  log: (line: string) => void,
): Promise<UiPageTiming[]> {
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-bench-ui-'));
  const nw = await openNarwhal({ dataDir: dir });
  try {
    const started = Date.now();
    const halfAt = await buildCache(nw, options.paths, log);
    const built = Date.now();
    log(`ui: cache of ${options.paths} paths built in ${((built - started) / 1000).toFixed(1)} s`);
    // A retention that the first half of the paths are past, so that "what GC would remove next"
    // walks the closures of the live half (pinned: none).
    await configureCache(nw, 'main', { retention: Math.max(1, Math.floor((Date.now() - halfAt) / 1000)) });
    const server = createNarwhalServer(nw, { log: () => {} });
    const times = new Map<string, number[]>();
    server.prependListener('request', (req, res) => {
      const t0 = performance.now();
      res.once('finish', () => times.get(req.url ?? '')?.push(performance.now() - t0));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // Halfway along a group's chain: its closure is GROUP / 2 + 1 paths deep (less in a cache under 2 groups).
    const mid = Math.min(options.paths - 1, Math.floor(options.paths / 2) + GROUP / 2);
    const pathUrl = (i: number) => `/_ui/c/main/p/${hashPartOf(i)}`;
    const pages: [string, string][] = [
      // Not a page: the cheapest thing the server answers, as a baseline of this machine's load.
      ['baseline: narinfo lookup', `/main/${hashPartOf(mid)}.narinfo`],
      ['cache list', '/'],
      ['search (many matches)', '/?q=pkg-1'],
      ['search (one match)', `/?q=${nameOf(mid)}`],
      ['cache page', '/_ui/c/main'],
      ['path page (a chain of references)', pathUrl(mid)],
      ['path page (every path refers to it)', pathUrl(0)],
      ['file page (text)', `${pathUrl(mid)}/f/README.txt`],
      ['file download', `${pathUrl(mid)}/f/README.txt?download=1`],
    ];
    const rows: UiPageTiming[] = [];
    try {
      const timePage = async (page: string, url: string): Promise<void> => {
        const first = await fetch(`${base}${url}`);
        if (first.status !== 200) throw new Error(`${url} answered ${first.status}: ${await first.text()}`);
        await first.arrayBuffer();
        times.set(url, []);
        for (let n = 0; n < options.requests; n++) await (await fetch(`${base}${url}`)).arrayBuffer();
        const sorted = times.get(url)!.sort((a, b) => a - b);
        rows.push({
          page,
          url,
          paths: options.paths,
          requests: sorted.length,
          medianMs: percentile(sorted, 0.5),
          p95Ms: percentile(sorted, 0.95),
        });
      };
      for (const [page, url] of pages) await timePage(page, url);
      // The same page without retention, so without GC's walk of the live paths: what that walk costs.
      await configureCache(nw, 'main', { retention: 0 });
      await timePage('cache page, no retention (no GC walk)', '/_ui/c/main');
    } finally {
      server.closeAllConnections();
      server.close();
    }
    return rows;
  } finally {
    await closeNarwhal(nw);
    await rm(dir, { recursive: true, force: true });
  }
}

/** The target of issue 21, judged only on a cache of 10,000 paths or more: every page's p95 within UI_TARGET_MS. */
export function judgeUiTargets(rows: UiPageTiming[] | undefined): TargetResult[] {
  const name = `web UI pages: p95 server time at 10,000 paths (slowest page)`;
  const pages = (rows ?? []).filter((r) => !r.page.startsWith('baseline'));
  if (pages.length === 0 || pages[0].paths < 10_000) {
    return [{ issue: 21, name, measured: '-', required: `<= ${UI_TARGET_MS} ms`, status: 'not measured' }];
  }
  const slowest = pages.reduce((a, b) => (b.p95Ms > a.p95Ms ? b : a));
  return [
    {
      issue: 21,
      name,
      measured: `${slowest.p95Ms.toFixed(1)} ms (${slowest.page})`,
      required: `<= ${UI_TARGET_MS} ms`,
      status: slowest.p95Ms <= UI_TARGET_MS ? 'met' : 'missed',
    },
  ];
}

export function uiTable(rows: UiPageTiming[]): string {
  return table(
    ['page', 'median ms', 'p95 ms', `within ${UI_TARGET_MS} ms`],
    rows.map((r) => [
      r.page,
      r.medianMs.toFixed(1),
      r.p95Ms.toFixed(1),
      r.page.startsWith('baseline') ? '' : r.p95Ms <= UI_TARGET_MS ? 'yes' : 'no',
    ]),
  );
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { paths: { type: 'string', default: '10000' }, requests: { type: 'string', default: '50' } },
  });
  const rows = await measureUi({ paths: Number(values.paths), requests: Number(values.requests) }, (line) =>
    process.stderr.write(`${line}\n`),
  );
  process.stdout.write(
    `${rows[0]?.paths} paths, ${rows[0]?.requests} requests per page (server time), load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}\n\n${uiTable(rows)}\n`,
  );
}
