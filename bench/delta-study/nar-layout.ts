/**
 * How each NAR of a data dir lies in its chunk store, as a download reads it (docs/benchmarks.md,
 * "Serving swc"):
 *
 *   node bench/delta-study/nar-layout.ts DATA_DIR [--package NAME]
 *
 * Per NAR (oldest first, by package): its chunks, those stored as deltas, their chain depths and
 * bases per delta, the distinct bases below its deltas at every depth (frames read besides its
 * own), and how its own frames lie in the pack store: the reads a download in NAR order makes when
 * neighbouring frames of one pack are read together, and how many frames follow the one before in
 * the same pack. Read-only: the server may keep running.
 */
import { DatabaseSync } from 'node:sqlite';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chunkEntries } from '../../src/chunking/chunk-table.ts';
import { FRAME_HEADER_BYTES } from '../../src/storage/pack-format.ts';

interface ChunkRow {
  encoding: string;
  depth: number;
  storedSize: number;
  size: number;
}

interface Place {
  pack: string;
  offset: number;
  length: number;
}

const hex = (id: Uint8Array): string => Buffer.from(id).toString('hex');

function main(argv: string[]): void {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { package: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1) throw new Error('usage: nar-layout.ts DATA_DIR [--package NAME]');
  const dir = resolve(positionals[0]);
  const meta = new DatabaseSync(join(dir, 'narwhal.sqlite'), { readOnly: true });
  const index = new DatabaseSync(join(dir, 'chunks', 'index.sqlite'), { readOnly: true });
  const chunkOf = meta.prepare(
    'SELECT encoding, delta_depth AS depth, stored_size AS storedSize, size FROM chunks WHERE id = ?',
  );
  const basesOf = meta.prepare('SELECT base_id AS id FROM chunk_bases WHERE chunk_id = ? ORDER BY position');
  const placeOf = index.prepare('SELECT pack, offset, length FROM chunks WHERE id = ?');
  const nars = meta
    .prepare(
      `SELECT n.id, n.nar_size AS narSize, n.stored_size AS storedSize, n.chunk_table AS tab, n.package AS package,
              (SELECT store_path FROM paths p WHERE p.nar_id = n.id LIMIT 1) AS path
         FROM nars n ORDER BY n.package, n.created_at, n.id`,
    )
    .all() as {
    id: number;
    narSize: number;
    storedSize: number;
    tab: Uint8Array;
    package: string | null;
    path: string;
  }[];
  const rows: string[][] = [];
  for (const nar of nars) {
    if (values.package !== undefined && nar.package !== values.package) continue;
    const entries = [...chunkEntries(nar.tab)];
    let deltas = 0;
    let bases = 0;
    const depths = [0, 0, 0, 0];
    const below = new Set<string>();
    const places: Place[] = [];
    for (const entry of entries) {
      const chunk = chunkOf.get(entry.id) as unknown as ChunkRow;
      const place = placeOf.get(entry.id) as unknown as Place | undefined;
      if (place) places.push(place);
      if (chunk.encoding !== 'delta') continue;
      deltas++;
      depths[Math.min(chunk.depth, 3)]++;
      const own = basesOf.all(entry.id) as { id: Uint8Array }[];
      bases += own.length;
      const walk = (ids: Uint8Array[]): void => {
        for (const id of ids) {
          const key = hex(id);
          if (below.has(key)) continue;
          below.add(key);
          walk((basesOf.all(id) as { id: Uint8Array }[]).map((b) => b.id));
        }
      };
      walk(own.map((b) => b.id));
    }
    // Reads in NAR order when frames that follow each other in one pack are read together.
    let reads = 0;
    let following = 0;
    for (const [i, p] of places.entries()) {
      const prev = places[i - 1];
      const next =
        prev !== undefined &&
        prev.pack === p.pack &&
        prev.offset + prev.length + FRAME_HEADER_BYTES >= p.offset &&
        prev.offset < p.offset;
      if (next) following++;
      else reads++;
    }
    rows.push([
      nar.path?.slice(44) ?? String(nar.id),
      (nar.narSize / 1e6).toFixed(1),
      (nar.storedSize / 1e6).toFixed(2),
      String(entries.length),
      String(deltas),
      depths.slice(1).join('/'),
      deltas === 0 ? '-' : (bases / deltas).toFixed(2),
      String(below.size),
      String(new Set(places.map((p) => p.pack)).size),
      String(reads),
      `${following}/${places.length}`,
    ]);
  }
  const head = [
    'NAR',
    'MB',
    'served MB',
    'chunks',
    'deltas',
    'depth 1/2/3',
    'bases per delta',
    'bases below',
    'packs',
    'reads in order',
    'frames after the one before',
  ];
  process.stdout.write(`| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|\n`);
  for (const row of rows) process.stdout.write(`| ${row.join(' | ')} |\n`);
}

main(process.argv.slice(2));
