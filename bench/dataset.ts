/**
 * The dataset every system is measured on: per series, the store paths in push order, and each
 * path's NAR dumped to a file (for casync, for direct ingest, for the chunking experiments).
 * Store paths are deterministic (content-addressed adds, input-addressed trivial builds), so a
 * second run reuses what the first one put in the Nix store and in .cache/bench/.
 */
import { mkdir, readdir, lstat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { run } from './exec.ts';
import { makeEditedReleases } from './edited-releases.ts';
import { buildMassRebuild } from './mass-rebuild.ts';
import type { Mode, SeriesSpec } from './modes.ts';
import { narHashNix32 } from './nix32.ts';
import { CACHE_DIR, materialize, sourceKey, sourceLabel } from './sources.ts';

export interface NarFile {
  storePath: string;
  /** The 32-character hash part of the store path (the narinfo's name). */
  hashPart: string;
  /** The NAR as `nix-store --dump` writes it. */
  file: string;
  /** sha256 of the NAR in nix-base32, without the `sha256:` prefix (the name it is PUT under). */
  narHash: string;
  narSize: number;
}

export interface SeriesData {
  id: string;
  kind: SeriesSpec['kind'];
  title: string;
  /** One label per release or generation, in order. */
  steps: string[];
  /** Every store path of the series (for a rebuild, the whole closure), dependencies first. */
  paths: string[];
  /** The store paths of each release or generation, in the order of `steps`. */
  stepPaths: string[][];
  nars: NarFile[];
  regularFiles: number;
  narBytes: number;
}

export interface Dataset {
  series: SeriesData[];
  largest: NarFile;
  totalNarBytes: number;
  totalPaths: number;
}

export async function buildDataset(
  mode: Mode,
  workDir: string,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<Dataset> {
  const narDir = join(workDir, 'nars');
  await mkdir(narDir, { recursive: true });
  const series: SeriesData[] = [];
  for (const spec of mode.series) {
    log(`dataset: ${spec.title}`);
    const { steps, stepPaths } = await seriesPaths(spec, env, log);
    const paths = stepPaths.flat();
    const nars = await dumpNars(paths, narDir, env);
    series.push({
      id: spec.id,
      kind: spec.kind,
      title: spec.title,
      steps,
      paths,
      stepPaths,
      nars,
      regularFiles: await countRegularFiles(paths),
      narBytes: nars.reduce((sum, n) => sum + n.narSize, 0),
    });
  }
  const all = series.flatMap((s) => s.nars);
  const distinct = new Set(all.map((n) => n.storePath));
  if (distinct.size !== all.length) throw new Error('a store path appears in more than one series');
  const largest = all.reduce((a, b) => (b.narSize > a.narSize ? b : a));
  return { series, largest, totalNarBytes: all.reduce((sum, n) => sum + n.narSize, 0), totalPaths: all.length };
}

async function seriesPaths(
  spec: SeriesSpec,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<{ steps: string[]; stepPaths: string[][] }> {
  if (spec.kind === 'releases') {
    const paths: string[] = [];
    for (const release of spec.releases) paths.push(await addToStore(await materialize(release, log), env));
    return {
      steps: spec.releases.map((r) => (r.kind === 'npm' ? r.version : sourceLabel(r))),
      stepPaths: paths.map((p) => [p]),
    };
  }
  if (spec.kind === 'edited') {
    const base = await materialize(spec.base, log);
    const dirs = await makeEditedReleases(base, join(CACHE_DIR, 'unpacked'), spec.id, spec.versions);
    const paths: string[] = [];
    for (const dir of dirs) paths.push(await addToStore(dir, env));
    return { steps: dirs.map((d) => basename(d)), stepPaths: paths.map((p) => [p]) };
  }
  const packages = [];
  for (const p of spec.packages) packages.push({ name: p.name, sourceDir: await materialize(p.source, log) });
  const templates = join(
    CACHE_DIR,
    'unpacked',
    `rebuild-${spec.id}-${spec.packages.map((p) => sourceKey(p.source)).join('+')}`,
  );
  await mkdir(templates, { recursive: true });
  const generations = await buildMassRebuild(packages, spec.generations, templates, env);
  return { steps: generations.map((_, g) => `generation ${g + 1}`), stepPaths: generations };
}

async function addToStore(dir: string, env: NodeJS.ProcessEnv): Promise<string> {
  return (await run('nix-store', ['--add', dir], { env })).stdout.trim();
}

async function dumpNars(paths: string[], narDir: string, env: NodeJS.ProcessEnv): Promise<NarFile[]> {
  const info = JSON.parse((await run('nix', ['path-info', '--json', ...paths], { env })).stdout) as {
    path: string;
    narHash: string;
    narSize: number;
  }[];
  const byPath = new Map(info.map((i) => [i.path, i]));
  const nars: NarFile[] = [];
  for (const storePath of paths) {
    const i = byPath.get(storePath);
    if (i === undefined) throw new Error(`nix path-info did not describe ${storePath}`);
    const hashPart = basename(storePath).slice(0, 32);
    const file = join(narDir, `${hashPart}.nar`);
    await run('nix-store', ['--dump', storePath], { env, stdout: { file } });
    const narHash = narHashNix32(i.narHash);
    if (!/^[0-9a-z]{52}$/.test(narHash)) throw new Error(`unexpected NarHash ${i.narHash} for ${storePath}`);
    const size = (await lstat(file)).size;
    if (size !== i.narSize) throw new Error(`dumped NAR of ${storePath} has ${size} bytes, Nix says ${i.narSize}`);
    nars.push({ storePath, hashPart, file, narHash, narSize: i.narSize });
  }
  return nars;
}

async function countRegularFiles(paths: string[]): Promise<number> {
  let count = 0;
  for (const p of paths) {
    const st = await lstat(p);
    if (st.isFile()) count++;
    else if (st.isDirectory())
      count += (await readdir(p, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length;
  }
  return count;
}
