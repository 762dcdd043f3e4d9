import type { MetricsScrapeCost } from './measure-metrics.ts';
import type { UiPageTiming } from './measure-ui.ts';
/** Everything one benchmark run measured; the report and the targets are computed from this. */
import type { PullThroughFigures } from './measure-pull-through.ts';
import type { DiskUsage } from './disk-usage.ts';
import type { ModeName } from './modes.ts';

export interface RunInfo {
  mode: ModeName;
  command: string;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  commit: string;
  machine: Record<string, string>;
  versions: Record<string, string>;
  settings: Record<string, string>;
}

export interface SeriesSummary {
  id: string;
  /** releases, edited or rebuild (absent in results of older runs). */
  kind?: 'releases' | 'edited' | 'rebuild';
  title: string;
  steps: string[];
  paths: number;
  regularFiles: number;
  narBytes: number;
  largestNarBytes: number;
}

/** A figure per series and for the whole dataset. */
export interface PerSeries<T> {
  series: Record<string, T>;
  total: T;
}

export interface StorageSystem {
  id: string;
  label: string;
  /** Per series: what the shared store grew by when the series was added (series in order). */
  usage: PerSeries<DiskUsage>;
}

export interface ChunkingFigures {
  chunks: number;
  chunkBytes: number;
  /** zstd-compressed bytes of the distinct chunks. */
  storedBytes: number;
  /** 40 bytes per chunk reference per NAR, as in a caibx index. */
  indexBytes: number;
}

export interface ChunkingResult {
  id: string;
  label: string;
  zstdLevel: number;
  /** What Narwhal ships: the row the others are compared with. */
  shipped: boolean;
  figures: PerSeries<ChunkingFigures>;
  seconds: number;
}

export interface TimedSystem {
  id: string;
  label: string;
  seconds: PerSeries<number>;
  /** Each round's total, in the order the rounds ran, where a figure is a median of rounds. */
  roundTotals?: number[];
  /** Per series, the figure of each release or generation (in the order of its steps), where measured so. */
  steps?: Record<string, number[]>;
}

export interface IngestSystem {
  id: string;
  label: string;
  seconds: PerSeries<number>;
  narBytes: PerSeries<number>;
}

export interface Download {
  system: string;
  what: string;
  url: string;
  bytes: number;
  narBytes: number;
  seconds: number;
}

export interface Lookup {
  system: string;
  method: 'GET' | 'HEAD';
  /** The load generator and the keys it cycled through. */
  tool: string;
  requestsPerSecond: number;
  requests: number;
  errors: number;
  latencyAvg: string;
}

/** One run of the delta pass (`narwhal recompress --deltas`) after a series was pushed and recompressed. */
export interface DeltaPassFigure {
  seconds: number;
  cpuSeconds: number;
  peakRssBytes: number;
  /** NAR bytes of the series the pass followed. */
  narBytes: number;
  deltas: number;
  sketched: number;
}

export type UpgradeLink = '100mbit' | 'loopback';

/** Release `to` fetched by a machine holding the release before it (measure-upgrades.ts). */
export interface Upgrade {
  series: string;
  to: string;
  system: 'nginx-zstd' | 'narwhal' | 'substituter';
  link: UpgradeLink;
  seconds: number;
  /** Bytes from the server to the machine, counted by the relay. */
  bytes: number;
  narBytes: number;
}

/** Release `to` pushed into a Narwhal holding the releases before it. */
export interface PushUpgrade {
  series: string;
  to: string;
  system: 'nix-copy' | 'narwhal-push';
  seconds: number;
  /** Bytes from the client to the server, counted by the relay. */
  bytes: number;
  narBytes: number;
}

export interface MemoryFigure {
  id: string;
  label: string;
  peakRssBytes: number;
  narBytes: number;
  seconds?: number;
}

export interface TargetResult {
  /** The issue that set the target (3 when absent, in results of older runs). */
  issue?: number;
  name: string;
  measured: string;
  required: string;
  status: 'met' | 'missed' | 'not measured';
}

export interface TlsClosureFigure {
  link: 'loopback' | '20 ms RTT';
  http2: boolean;
  /** Median seconds of `nix copy --from` of the whole closure into a fresh store. */
  seconds: number;
}

export interface TlsFigures {
  /** Store paths in the closure of small paths (its root included). */
  smallPaths: number;
  closure: TlsClosureFigure[];
  /** `nix copy --from` of the dataset into a fresh store: median seconds over plain HTTP and over TLS. */
  dataset: { plainSeconds: number; tlsSeconds: number };
  rounds: number;
}

export interface Results {
  run: RunInfo;
  series: SeriesSummary[];
  totals: { paths: number; narBytes: number; largestNar: { storePath: string; narBytes: number } };
  storage: StorageSystem[];
  /** Narwhal's own `stats --json` after the push, for cross-checking the disk figures. */
  narwhalStats: Record<string, number>;
  /** Fetching and pushing one release after another (absent in results of runs before it existed). */
  upgrades?: { fetch: Upgrade[]; push: PushUpgrade[]; wholePushSeconds: number; wholeCopySeconds?: number };
  /** Pull-through first and second fetch, and storage (absent in results of runs before it existed). */
  pullThrough?: PullThroughFigures;
  /** Per series, the delta pass run after it (absent in results of runs before it existed). */
  deltaPass?: Record<string, DeltaPassFigure>;
  chunking: ChunkingResult[];
  push: TimedSystem[];
  ingest: IngestSystem[];
  substitute: TimedSystem[];
  downloads: Download[];
  lookups: Lookup[];
  /** Web UI page times (bench/measure-ui.ts); absent in results of older runs. */
  ui?: UiPageTiming[];
  lookupSettings: string;
  /** What a 1/s scrape of /metrics costs the lookups (absent in results of runs before it existed). */
  metricsScrape?: MetricsScrapeCost;
  memory: MemoryFigure[];
  targets: TargetResult[];
  notes: string[];
  /** TLS and HTTP/2 (absent in results of runs before it existed). */
  tls?: TlsFigures;
}
