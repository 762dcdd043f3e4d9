/**
 * Keeps the benchmark runnable: `bench/run.ts --tiny` on tiny local data (no network) must drive
 * every system and write a complete report. Checks content and sanity, never timings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { SECTIONS } from '../../bench/report.ts';
import type { Results } from '../../bench/results.ts';

const REPO = resolve(import.meta.dirname, '../..');

test('bench/run.ts --tiny measures every system and writes the report with every section', {
  timeout: 600_000,
}, async () => {
  const out = await mkdtemp(join(tmpdir(), 'narwhal-bench-test-'));
  try {
    try {
      await promisify(execFile)(
        process.execPath,
        [join(REPO, 'bench/run.ts'), '--tiny', '--out', out, '--work', join(out, 'work')],
        {
          cwd: REPO,
          maxBuffer: 64 * 1024 * 1024,
        },
      );
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      assert.fail(`the tiny benchmark failed:\n${e.stderr ?? e.message}`);
    }
    assert.equal(existsSync(join(out, 'work')), false, 'the work directory is removed after the run');

    const report = await readFile(join(out, 'benchmarks.md'), 'utf8');
    for (const heading of SECTIONS) assert.ok(report.includes(`\n${heading}\n`), `report has "${heading}"`);
    assert.match(report, /node bench\/run\.ts --tiny/, 'report shows the command that produced it');
    for (const [, , file] of report.matchAll(/!\[([^\]]*)\]\(([^)]+)\)/g)) {
      const svg = await readFile(join(out, file), 'utf8');
      assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, `${file} is an SVG`);
      assert.match(svg, /<rect x="\d+" y="[\d.]+" width="[\d.]+" height="14"/, `${file} draws bars`);
    }
    assert.ok([...report.matchAll(/!\[[^\]]*\]\([^)]+\.svg\)/g)].length >= 6, 'every figure has its chart');

    const r = JSON.parse(await readFile(join(out, 'benchmarks/results.json'), 'utf8')) as Results;
    assert.equal(r.run.mode, 'tiny');
    assert.equal(r.series.length, 2);
    const raw = r.storage.find((s) => s.id === 'raw')!;
    assert.equal(raw.usage.total.apparent, r.totals.narBytes);
    for (const id of [
      'static-zstd',
      'static-xz',
      'static-none',
      'casync',
      'narwhal',
      'narwhal-deltas',
      'narwhal-as-pushed',
    ]) {
      const system = r.storage.find((s) => s.id === id);
      assert.ok(system, `storage of ${id}`);
      for (const s of r.series) {
        const bytes = system.usage.series[s.id].apparent;
        assert.ok(bytes > 0 && bytes < 2 * s.narBytes, `${id} stores ${bytes} B for ${s.narBytes} B of NAR in ${s.id}`);
      }
    }
    assert.equal(r.narwhalStats.nars, r.totals.paths);
    assert.equal(r.narwhalStats.narBytes, r.totals.narBytes);

    assert.deepEqual(
      r.push.map((p) => p.id),
      [
        'static-zstd',
        'static-xz',
        'static-none',
        'narwhal-zstd',
        'narwhal-recompress',
        'narwhal-delta-pass',
        'narwhal-none',
      ],
    );
    const narwhal = (id: string) => r.storage.find((s) => s.id === id)!.usage.total.apparent;
    assert.ok(narwhal('narwhal') < narwhal('narwhal-as-pushed'), 'recompression stores less than the push did');
    assert.ok(narwhal('narwhal-deltas') < narwhal('narwhal'), 'the delta pass stores less than recompression alone');
    for (const s of r.series) {
      const pass = r.deltaPass?.[s.id];
      assert.ok(pass && pass.cpuSeconds > 0 && pass.peakRssBytes > 10e6, `a delta pass ran after ${s.id}`);
    }
    assert.ok(
      Object.values(r.deltaPass ?? {}).some((p) => p.deltas > 0),
      'the edited releases give the pass deltas to make',
    );
    assert.deepEqual(
      r.ingest.map((i) => i.id),
      ['narwhal-put', 'narwhal-put-castr', 'casync', 'casync-sha256'],
    );
    assert.deepEqual(
      r.substitute.map((s) => s.id),
      ['narwhal', 'nginx-zstd', 'nginx-xz'],
    );
    for (const t of [...r.push, ...r.ingest, ...r.substitute]) {
      assert.ok(t.seconds.total > 0, `${t.id} took time`);
      assert.equal(Object.keys(t.seconds.series).length, r.series.length, `${t.id} has a figure per series`);
    }
    for (const t of r.substitute) {
      for (const s of r.series) {
        const steps = t.steps?.[s.id] ?? [];
        assert.equal(steps.length, s.steps.length, `${t.id} timed each release of ${s.id}`);
        assert.ok(steps.every((x) => x > 0));
      }
    }
    const upgrades = r.upgrades!;
    for (const s of r.series) {
      const fetched = upgrades.fetch.filter((f) => f.series === s.id);
      assert.equal(fetched.length, (s.steps.length - 1) * 3 * 2, `each upgrade of ${s.id} by 3 systems on 2 links`);
      for (const f of fetched) assert.ok(f.bytes > 0 && f.seconds > 0, `${f.system} ${f.link} moved bytes`);
      const pushed = upgrades.push.filter((p) => p.series === s.id);
      assert.equal(pushed.length, (s.steps.length - 1) * 2);
      for (const p of pushed) assert.ok(p.bytes > 0, `${p.system} sent bytes`);
    }
    assert.ok(upgrades.wholePushSeconds > 0);
    for (const d of r.downloads)
      assert.ok(d.bytes > 0 && d.narBytes === r.totals.largestNar.narBytes, `download ${d.system} ${d.what}`);
    // Narwhal, Narwhal with a process per core, nginx: each by wrk GET, ab HEAD, ab GET.
    assert.deepEqual(
      [...new Set(r.lookups.map((l) => l.system))],
      ['Narwhal', 'Narwhal --processes auto', 'nginx (static zstd)'],
    );
    assert.equal(r.lookups.length, 9);
    for (const l of r.lookups) {
      assert.ok(l.requests > 0, `${l.system} ${l.method} (${l.tool}) answered requests`);
      assert.equal(l.errors, 0, `${l.system} ${l.method} (${l.tool}) without errors`);
    }
    for (const m of r.memory)
      assert.ok(m.peakRssBytes > 10e6 && m.peakRssBytes < 8e9, `peak RSS of ${m.id}: ${m.peakRssBytes}`);
    assert.ok(r.memory.some((m) => m.id === 'ingest-synthetic' && m.narBytes >= 16 * 1024 * 1024));

    const shipped = r.chunking.filter((c) => c.shipped);
    assert.equal(shipped.length, 1);
    assert.ok(
      r.chunking.some((c) => c.id === 'nar-all') && r.chunking.some((c) => c.zstdLevel !== shipped[0].zstdLevel),
    );
    for (const c of r.chunking)
      assert.ok(c.figures.total.storedBytes > 0 && c.figures.total.chunkBytes <= r.totals.narBytes, c.label);

    // Every target is judged, and a target whose figure is missing is never reported as met.
    assert.ok(r.targets.length >= 7);
    assert.ok(
      r.targets.some((t) => t.issue === 19 && t.status !== 'not measured'),
      'issue 19 targets are judged',
    );
    for (const t of r.targets) {
      assert.ok(['met', 'missed', 'not measured'].includes(t.status), t.name);
      if (t.measured === '-') assert.equal(t.status, 'not measured', t.name);
    }
    const rss = r.targets.find((t) => t.name.startsWith('peak RSS'))!;
    assert.equal(rss.status, 'not measured', 'a tiny synthetic NAR cannot meet the 2 GB memory target');
    for (const t of r.targets)
      assert.ok(report.includes(`| ${t.name.replace(/\|/g, '\\|')} |`), `report lists target ${t.name}`);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
