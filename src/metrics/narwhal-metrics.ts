import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { type HistogramFigures, RequestCounter, RequestHistogram } from './request-series.ts';

/** What the store holds, as metadata counts it (the figures of `narwhal stats`). */
export interface StoreFigures {
  paths: number;
  nars: number;
  narBytes: number;
  chunks: number;
  chunkBytes: number;
  storedBytes: number;
}

/** How long a scrape reuses the store's figures: reading them counts every chunk row. */
export const STORE_FIGURES_TTL_MS = 15_000;

/** What one finished HTTP request adds. `route` is a route name, never a raw path. */
export interface RequestRecord {
  route: string;
  method: string;
  status: number;
  seconds: number;
  bytesIn: number;
  bytesOut: number;
}

/** What one ingest did: its NAR new or already stored, and its distinct chunks written or reused. */
export interface IngestRecord {
  narNew: boolean;
  narBytes: number;
  newChunks: number;
  newChunkBytes: number;
  reusedChunks: number;
  reusedChunkBytes: number;
}

export interface GcRecord {
  outcome: 'done' | 'skipped' | 'failed';
  paths?: number;
  nars?: number;
  chunks?: number;
  files?: number;
  /** Bytes the store gave back: chunk files deleted and pack space reclaimed. */
  reclaimedBytes?: number;
}

export interface RecompressRecord {
  outcome: 'done' | 'stopped' | 'busy' | 'failed';
  chunks?: number;
  rewritten?: number;
  deltas?: number;
  bytesBefore?: number;
  bytesAfter?: number;
}

/** What a route and method's requests add to, found once (recordRequest). */
interface RouteSeries {
  byStatus: Map<number, { value: number }>;
  duration: HistogramFigures;
  bytesIn: { value: number };
  bytesOut: { value: number };
}

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * One process's figures in one prom-client registry. Operations record into it through the
 * `record*` methods, so the metric names and labels stay in this file; `/metrics` answers
 * `registry.metrics()` (or the sum over processes: cluster-metrics.ts). Counters are summed over
 * processes; the store's gauges are the same in every process, so their maximum is kept.
 */
export class NarwhalMetrics {
  readonly registry = new Registry();
  readonly #requests: RequestCounter;
  readonly #duration: RequestHistogram;
  readonly #bytesIn: RequestCounter;
  readonly #bytesOut: RequestCounter;
  readonly #narinfoLookups: RequestCounter;
  readonly #byRoute = new Map<string, Map<string, RouteSeries>>();
  readonly #nars: Counter<'outcome'>;
  readonly #narBytes: Counter<'outcome'>;
  readonly #chunks: Counter<'outcome'>;
  readonly #chunkBytes: Counter<'outcome'>;
  readonly #gcRuns: Counter<'outcome'>;
  readonly #gcDeleted: Counter<'kind'>;
  readonly #gcReclaimed: Counter;
  readonly #recompressRuns: Counter<'outcome'>;
  readonly #recompressChunks: Counter<'action'>;
  readonly #recompressBytes: Counter<'stage'>;
  readonly #errors: Counter<'kind'>;
  readonly #chunkAnswers: Counter<'kind'>;
  #readStore: (() => Promise<StoreFigures>) | undefined;
  #store: { figures: Promise<StoreFigures | undefined>; at: number } | undefined;

  constructor() {
    const registers = [this.registry];
    // What every request records: series of their own, cheap per request (request-series.ts).
    this.#requests = new RequestCounter(
      'narwhal_http_requests_total',
      'HTTP requests answered, by route name, method and status',
      this.registry,
    );
    this.#duration = new RequestHistogram(
      'narwhal_http_request_duration_seconds',
      'Time from a request arriving to its answer finishing, by route name and method',
      DURATION_BUCKETS,
      this.registry,
    );
    this.#bytesIn = new RequestCounter(
      'narwhal_http_received_bytes_total',
      'Bytes of request bodies received, by route name',
      this.registry,
    );
    this.#bytesOut = new RequestCounter(
      'narwhal_http_sent_bytes_total',
      'Bytes sent in answers (headers and bodies), by route name',
      this.registry,
    );
    this.#narinfoLookups = new RequestCounter(
      'narwhal_narinfo_lookups_total',
      'Narinfo GET and HEAD requests, by result: hit (200) or miss (404)',
      this.registry,
    );
    this.#nars = new Counter({
      name: 'narwhal_nars_ingested_total',
      help: 'NARs ingested, by outcome: new, or deduplicated (already stored)',
      labelNames: ['outcome'],
      registers,
    });
    this.#narBytes = new Counter({
      name: 'narwhal_nar_bytes_ingested_total',
      help: 'Uncompressed bytes of NARs ingested, by outcome: new or deduplicated',
      labelNames: ['outcome'],
      registers,
    });
    this.#chunks = new Counter({
      name: 'narwhal_chunks_ingested_total',
      help: 'Distinct chunks of ingested NARs, by outcome: new (written) or deduplicated (already stored)',
      labelNames: ['outcome'],
      registers,
    });
    this.#chunkBytes = new Counter({
      name: 'narwhal_chunk_bytes_ingested_total',
      help: 'Uncompressed bytes of those chunks, by outcome: new or deduplicated',
      labelNames: ['outcome'],
      registers,
    });
    this.#chunkAnswers = new Counter({
      name: 'narwhal_chunk_answers_total',
      help: 'Answers to chunk-frames requests, by kind: frame, stored-delta, kept-delta (computed earlier), computed-delta, absent',
      labelNames: ['kind'],
      registers,
    });
    this.#gcRuns = new Counter({
      name: 'narwhal_gc_runs_total',
      help: 'GC runs, by outcome: done, skipped (another process was collecting) or failed',
      labelNames: ['outcome'],
      registers,
    });
    this.#gcDeleted = new Counter({
      name: 'narwhal_gc_deleted_total',
      help: 'What GC deleted, by kind: paths, nars, chunks (records) and files (chunk files)',
      labelNames: ['kind'],
      registers,
    });
    this.#gcReclaimed = new Counter({
      name: 'narwhal_gc_reclaimed_bytes_total',
      help: 'Bytes GC gave back to the chunk store: chunk files deleted and pack space compacted',
      registers,
    });
    this.#recompressRuns = new Counter({
      name: 'narwhal_recompress_runs_total',
      help: 'Recompression runs, by outcome: done, stopped (yielded to uploads), busy (another process) or failed',
      labelNames: ['outcome'],
      registers,
    });
    this.#recompressChunks = new Counter({
      name: 'narwhal_recompress_chunks_total',
      help: 'Chunks recompression handled, by action: recompressed (read), rewritten (smaller), delta (stored as a delta)',
      labelNames: ['action'],
      registers,
    });
    this.#recompressBytes = new Counter({
      name: 'narwhal_recompress_bytes_total',
      help: 'Stored bytes of the chunks recompression handled, by stage: before or after',
      labelNames: ['stage'],
      registers,
    });
    this.#errors = new Counter({
      name: 'narwhal_errors_total',
      help: 'Errors answered or met in the background, by kind (the error code, e.g. not-found, bad-nar, internal)',
      labelNames: ['kind'],
      registers,
    });
    const storeGauge = (name: string, help: string, pick: (figures: StoreFigures) => number): void => {
      const metrics = this;
      new Gauge({
        name,
        help,
        registers,
        aggregator: 'max',
        async collect() {
          const figures = await metrics.#storeFigures();
          if (figures) this.set(pick(figures));
        },
      });
    };
    storeGauge('narwhal_store_paths', 'Store paths in all caches', (f) => f.paths);
    storeGauge('narwhal_store_nars', 'NARs stored', (f) => f.nars);
    storeGauge('narwhal_store_nar_bytes', 'Uncompressed bytes of the NARs stored', (f) => f.narBytes);
    storeGauge('narwhal_store_chunks', 'Chunks stored', (f) => f.chunks);
    storeGauge('narwhal_store_chunk_bytes', 'Uncompressed bytes of the chunks stored', (f) => f.chunkBytes);
    storeGauge('narwhal_store_stored_bytes', 'Bytes the chunks take in the chunk store', (f) => f.storedBytes);
  }

  /** Adds Node's own figures (CPU, memory, event loop lag: prom-client's defaults); the server does. */
  addProcessMetrics(): void {
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters, which `promtool check metrics` rejects; their counts by type stay.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'])
      this.registry.removeSingleMetric(name);
  }

  /** Where the store gauges come from; read at scrape time, at most once per STORE_FIGURES_TTL_MS. */
  watchStore(read: () => Promise<StoreFigures>): void {
    this.#readStore = read;
    this.#store = undefined;
  }

  #storeFigures(): Promise<StoreFigures | undefined> {
    const read = this.#readStore;
    if (!read) return Promise.resolve(undefined);
    const now = Date.now();
    if (!this.#store || now - this.#store.at >= STORE_FIGURES_TTL_MS) {
      // A failed read leaves the gauges as they were and is tried again at the next scrape.
      const figures = read().catch(() => {
        this.#store = undefined;
        this.recordError('unavailable');
        return undefined;
      });
      this.#store = { figures, at: now };
    }
    return this.#store.figures;
  }

  recordRequest(r: RequestRecord): void {
    const { route, method, status } = r;
    const series = this.#routeSeries(route, method);
    let requests = series.byStatus.get(status);
    if (!requests) {
      requests = this.#requests.figures(`${route} ${method} ${status}`, () => ({
        route,
        method,
        status: String(status),
      }));
      series.byStatus.set(status, requests);
    }
    requests.value++;
    this.#duration.add(series.duration, r.seconds);
    series.bytesIn.value += r.bytesIn;
    series.bytesOut.value += r.bytesOut;
  }

  /**
   * The figures of a route and method, kept by both names: every request adds to them, and a
   * lookup by the two short strings the router and the HTTP parser hand over (the same string
   * each time) costs less than one by a key made anew for each request.
   */
  #routeSeries(route: string, method: string): RouteSeries {
    let byMethod = this.#byRoute.get(route);
    if (!byMethod) this.#byRoute.set(route, (byMethod = new Map()));
    let series = byMethod.get(method);
    if (!series) {
      series = {
        byStatus: new Map(),
        duration: this.#duration.figures(`${route} ${method}`, () => ({ route, method })),
        bytesIn: this.#bytesIn.figures(route, () => ({ route })),
        bytesOut: this.#bytesOut.figures(route, () => ({ route })),
      };
      byMethod.set(method, series);
    }
    return series;
  }

  recordNarinfoLookup(hit: boolean): void {
    const result = hit ? 'hit' : 'miss';
    this.#narinfoLookups.inc(result, () => ({ result }));
  }

  recordIngest(r: IngestRecord): void {
    const outcome = r.narNew ? 'new' : 'deduplicated';
    this.#nars.inc({ outcome });
    this.#narBytes.inc({ outcome }, r.narBytes);
    this.#chunks.inc({ outcome: 'new' }, r.newChunks);
    this.#chunkBytes.inc({ outcome: 'new' }, r.newChunkBytes);
    this.#chunks.inc({ outcome: 'deduplicated' }, r.reusedChunks);
    this.#chunkBytes.inc({ outcome: 'deduplicated' }, r.reusedChunkBytes);
  }

  recordChunkAnswer(kind: 'frame' | 'stored-delta' | 'kept-delta' | 'computed-delta' | 'absent'): void {
    this.#chunkAnswers.inc({ kind });
  }

  recordGc(r: GcRecord): void {
    this.#gcRuns.inc({ outcome: r.outcome });
    for (const kind of ['paths', 'nars', 'chunks', 'files'] as const) this.#gcDeleted.inc({ kind }, r[kind] ?? 0);
    this.#gcReclaimed.inc(r.reclaimedBytes ?? 0);
  }

  recordRecompression(r: RecompressRecord): void {
    this.#recompressRuns.inc({ outcome: r.outcome });
    this.#recompressChunks.inc({ action: 'recompressed' }, r.chunks ?? 0);
    this.#recompressChunks.inc({ action: 'rewritten' }, r.rewritten ?? 0);
    this.#recompressChunks.inc({ action: 'delta' }, r.deltas ?? 0);
    this.#recompressBytes.inc({ stage: 'before' }, r.bytesBefore ?? 0);
    this.#recompressBytes.inc({ stage: 'after' }, r.bytesAfter ?? 0);
  }

  /**
   * A counter a higher room keeps itself (pull-through's), read at each scrape: `read` must only
   * grow over the life of the process.
   */
  countFrom(name: string, help: string, read: () => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  recordError(kind: string): void {
    this.#errors.inc({ kind });
  }

  /** This process's figures in the Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
