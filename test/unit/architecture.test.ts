import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The import direction of docs/architecture.md, enforced: every room of src/ has a layer, and a
 * file imports only files of its own room or of rooms on lower layers (rooms on one layer do not
 * import each other). No two files import each other, directly or around a circle. Type-only
 * imports count too: they tie the rooms together as much as the others.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ['errors'],
  ['runtime'],
  ['nix', 'compression', 'chunking', 'delta', 'metrics'],
  ['storage', 'metadata'],
  ['context'],
  ['tenancy'],
  ['ingest', 'serving'],
  ['maintenance', 'push', 'upstream'],
  ['web'],
  ['server', 'client'],
  ['cli'],
];

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The room of a file under src/: its folder, or its name for a file at the top (`errors.ts` -> errors). */
function roomOf(file: string): string {
  const [first, ...rest] = file.split('/');
  return rest.length === 0 ? first.replace(/\.ts$/, '') : first;
}

/** The relative specifiers a file imports: static and dynamic imports, re-exports, worker URLs. */
export function importsOf(text: string): string[] {
  const patterns = [
    /\b(?:import|export)\s[^;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\bimport\s+['"]([^'"]+)['"]/g,
    /\bnew URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g,
  ];
  const found = new Set<string>();
  for (const pattern of patterns)
    for (const match of text.matchAll(pattern)) if (match[1].startsWith('.')) found.add(match[1]);
  return [...found];
}

export interface Violations {
  /** `file -> imported file`, against the direction or to a room with no layer. */
  direction: string[];
  /** Each circle as `a -> b -> ... -> a`. */
  cycles: string[];
}

/** Checks files given as path under src/ -> source text. */
export function checkImports(
  files: ReadonlyMap<string, string>,
  layers: readonly (readonly string[])[] = LAYERS,
): Violations {
  const layerOf = new Map<string, number>();
  for (const [layer, rooms] of layers.entries()) for (const room of rooms) layerOf.set(room, layer);
  const edges = new Map<string, string[]>();
  const direction: string[] = [];
  for (const [file, text] of files) {
    const targets: string[] = [];
    for (const specifier of importsOf(text)) {
      const target = posix.normalize(posix.join(posix.dirname(file), specifier));
      if (target.startsWith('..')) continue; // outside src/ (package.json and the like)
      if (target.endsWith('.ts')) targets.push(target);
      const from = roomOf(file);
      const to = roomOf(target);
      const fromLayer = layerOf.get(from);
      const toLayer = layerOf.get(to);
      if (fromLayer === undefined) direction.push(`${file}: room ${from} has no layer`);
      else if (toLayer === undefined) direction.push(`${file} -> ${target}: room ${to} has no layer`);
      else if (from !== to && toLayer >= fromLayer)
        direction.push(`${file} -> ${target} (layer ${fromLayer} ${from} imports layer ${toLayer} ${to})`);
    }
    edges.set(file, targets);
  }
  return { direction, cycles: findCycles(edges) };
}

/** One circle per strongly connected set of files (Tarjan), each shown from its first file round to it again. */
function findCycles(edges: ReadonlyMap<string, readonly string[]>): string[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!edges.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const members = new Set<string>();
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      members.add(w);
    } while (w !== v);
    const selfLoop = (edges.get(v) ?? []).includes(v);
    if (members.size > 1 || selfLoop) cycles.push(circleThrough(v, members, edges));
  };
  for (const v of [...edges.keys()].sort()) if (!index.has(v)) visit(v);
  return cycles;
}

/** A shortest path from `start` back to itself inside `members`. */
function circleThrough(
  start: string,
  members: ReadonlySet<string>,
  edges: ReadonlyMap<string, readonly string[]>,
): string {
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of edges.get(v) ?? []) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let at = v; at !== start; at = previous.get(at)!) path.splice(1, 0, at);
        return [...path, start].join(' -> ');
      }
      if (!previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return start;
}

function sourceFiles(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(dir, path).split('\\').join('/'), readFileSync(path, 'utf8'));
  }
  return files;
}

test('every import in src/ goes down the layers of docs/architecture.md, and none goes round a circle', () => {
  const files = sourceFiles(join(root, 'src'));
  assert.ok(files.size > 100, `found only ${files.size} files under src/`);
  const { direction, cycles } = checkImports(files);
  const report = [...direction.map((d) => `against the direction: ${d}`), ...cycles.map((c) => `cycle: ${c}`)];
  assert.deepEqual(report, [], report.join('\n'));
});

test('every folder of src/ is a room with a layer and a README', () => {
  const rooms = readdirSync(join(root, 'src'), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
  const known = new Set(LAYERS.flat());
  assert.deepEqual(
    rooms.filter((room) => !known.has(room)),
    [],
  );
  for (const room of [
    'context',
    'tenancy',
    'ingest',
    'serving',
    'maintenance',
    'runtime',
    'push',
    'client',
    'upstream',
  ]) {
    assert.ok(readdirSync(join(root, 'src', room)).includes('README.md'), `src/${room}/README.md`);
  }
});

test('docs/architecture.md lists the same layers as this check', () => {
  const doc = readFileSync(join(root, 'docs', 'architecture.md'), 'utf8');
  const block = /<!-- layers -->\n```\n([\s\S]*?)```/.exec(doc);
  assert.ok(block, 'docs/architecture.md has a ```-block after <!-- layers -->');
  const documented = block[1]
    .trim()
    .split('\n')
    .map((line) =>
      line
        .replace(/^\s*\d+\s+/, '')
        .trim()
        .split(/\s*,\s*/),
    )
    .reverse();
  assert.deepEqual(
    documented,
    LAYERS.map((rooms) => [...rooms]),
  );
});

test('the check finds an import up the layers, one between rooms of a layer, and a circle', () => {
  const { direction, cycles } = checkImports(
    new Map([
      ['storage/a.ts', "import { b } from '../tenancy/b.ts';"],
      ['ingest/c.ts', "import type { D } from '../serving/d.ts';"],
      ['tenancy/b.ts', "import { x } from './x.ts';\nexport const b = 1;"],
      ['tenancy/x.ts', "import {\n  b,\n} from './y.ts';"],
      ['tenancy/y.ts', "const w = new URL('./b.ts', import.meta.url);"],
      ['serving/d.ts', "export { b } from '../tenancy/b.ts';\nawait import('../errors.ts');"],
    ]),
  );
  assert.deepEqual(direction, [
    'storage/a.ts -> tenancy/b.ts (layer 3 storage imports layer 5 tenancy)',
    'ingest/c.ts -> serving/d.ts (layer 6 ingest imports layer 6 serving)',
  ]);
  assert.deepEqual(cycles, ['tenancy/b.ts -> tenancy/x.ts -> tenancy/y.ts -> tenancy/b.ts']);
});
