/**
 * A mass rebuild as nixpkgs makes one when a low-level dependency changes: every package is built
 * again with the same contents, and only the store paths embedded in it (the dependency's, and its
 * own, which changes with it) differ. Modelled with trivial derivations (sandbox off): each
 * generation has a new `bench-base` dependency, and each package copies a template tree in which
 * placeholder store paths sit where real outputs carry references (ELF RPATH and data paths,
 * script shebangs, nix-support files), then rewrites the placeholders to the real paths.
 */
import { cp, mkdir, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { run } from './exec.ts';

const STORE = '/nix/store';
const BASE_NAME = 'bench-base';
/** Same length as the real paths they stand for, so rewriting them shifts no byte. */
const basePlaceholder = (): string => `${STORE}/${'e'.repeat(32)}-${BASE_NAME}`;
const selfPlaceholder = (name: string): string => `${STORE}/${'f'.repeat(32)}-bench-${name}`;

export interface RebuildPackage {
  name: string;
  /** Directory with the package's real files. */
  sourceDir: string;
}

/**
 * Builds `generations` generations and returns, per generation, its store paths with the
 * dependency first.
 */
export async function buildMassRebuild(
  packages: RebuildPackage[],
  generations: number,
  workDir: string,
  env: NodeJS.ProcessEnv,
): Promise<string[][]> {
  const templates: { name: string; dir: string }[] = [];
  for (const pkg of packages) {
    const dir = join(workDir, `template-${pkg.name}`);
    await makeTemplate(pkg.sourceDir, dir, pkg.name);
    templates.push({ name: pkg.name, dir });
  }
  const expr = rebuildExpression(templates, generations);
  const exprFile = join(workDir, 'mass-rebuild.nix');
  await writeFile(exprFile, expr);
  const built = (await run('nix-build', ['--no-out-link', exprFile], { env })).stdout.trim().split('\n');
  if (built.length !== generations * templates.length) {
    throw new Error(`mass rebuild built ${built.length} paths, expected ${generations * templates.length}`);
  }
  const result: string[][] = [];
  for (let g = 0; g < generations; g++) {
    const outputs = built.slice(g * templates.length, (g + 1) * templates.length);
    const refs = (await run('nix-store', ['-q', '--references', outputs[0]], { env })).stdout.trim().split('\n');
    const base = refs.find((p) => p.endsWith(`-${BASE_NAME}`));
    if (base === undefined) throw new Error(`${outputs[0]} does not reference its ${BASE_NAME}`);
    result.push([base, ...outputs]);
  }
  return result;
}

function rebuildExpression(templates: { name: string; dir: string }[], generations: number): string {
  const builder = [
    'set -e',
    '/usr/bin/cp -r "$src" "$out"',
    '/usr/bin/chmod -R u+w "$out"',
    '/usr/bin/grep -rlZ -F -e "$basePlaceholder" -e "$selfPlaceholder" "$out" | /usr/bin/xargs -0 -r /usr/bin/sed -i -e "s|$basePlaceholder|$base|g" -e "s|$selfPlaceholder|$out|g"',
  ].join('\n');
  const pkgs: string[] = [];
  for (let g = 1; g <= generations; g++) {
    for (const t of templates)
      pkgs.push(`(pkg ${g} "${t.name}" ${JSON.stringify(t.dir)} ${JSON.stringify(selfPlaceholder(t.name))})`);
  }
  return `
let
  system = builtins.currentSystem;
  base = gen: derivation {
    name = "${BASE_NAME}"; inherit system; builder = "/bin/sh"; gen = toString gen;
    args = [ "-c" "echo bench base generation $gen > $out" ];
  };
  pkg = gen: name: dir: selfPlaceholder: derivation {
    name = "bench-\${name}"; inherit system selfPlaceholder; builder = "/bin/sh";
    base = base gen;
    basePlaceholder = ${JSON.stringify(basePlaceholder())};
    src = builtins.path { path = dir; name = "bench-src-\${name}"; };
    args = [ "-c" ${JSON.stringify(builder)} ];
  };
in [
  ${pkgs.join('\n  ')}
]
`;
}

/** Copies a package tree and plants placeholder references where real builds carry them. */
async function makeTemplate(sourceDir: string, dir: string, name: string): Promise<void> {
  if (existsSync(dir)) await rm(dir, { recursive: true, force: true });
  await cp(sourceDir, dir, { recursive: true, dereference: true });
  const base = basePlaceholder();
  const self = selfPlaceholder(name);
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const file = join(entry.parentPath, entry.name);
    const rel = relative(dir, file);
    const handle = await open(file, 'r+');
    try {
      const { size } = await handle.stat();
      const head = Buffer.alloc(4);
      await handle.read(head, 0, 4, 0);
      if (head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])) && size >= 64 * 1024) {
        // RPATH near the start, data directories further in: what patchelf and configure leave.
        await handle.write(
          Buffer.from(`${base}/lib:${self}/lib\0`),
          0,
          undefined,
          Math.min(4096, Math.floor(size / 4)),
        );
        await handle.write(Buffer.from(`${base}/share/locale\0`), 0, undefined, Math.floor(size / 3));
        await handle.write(Buffer.from(`${self}/share/${name}\0`), 0, undefined, Math.floor((2 * size) / 3));
        continue;
      }
    } finally {
      await handle.close();
    }
    // patchShebangs-style interpreter lines on a deterministic quarter of the scripts.
    if (/\.(c|m)?js$/.test(rel) && fnv1a(rel) % 4 === 0) {
      const text = await readFile(file);
      const body = text.subarray(0, 2).toString() === '#!' ? text.subarray(text.indexOf(10) + 1) : text;
      await writeFile(file, Buffer.concat([Buffer.from(`#!${base}/bin/node\n`), body]));
    }
  }
  await mkdir(join(dir, 'nix-support'), { recursive: true });
  await writeFile(join(dir, 'nix-support', 'propagated-build-inputs'), `${base}\n`);
  await writeFile(
    join(dir, 'nix-support', 'setup-hook'),
    `export BENCH_${name.replace(/\W/g, '_').toUpperCase()}_HOME=${self}\n`,
  );
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
