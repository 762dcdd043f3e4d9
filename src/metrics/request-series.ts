import type { Metric, Registry } from 'prom-client';

type Labels = Record<string, string>;

interface MetricJson {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: { labels: Labels; value: number; metricName?: string }[];
}

/**
 * Counters and histograms for what every request records, in the shape prom-client's registry
 * reads (`get()`), so that `/metrics` and the sum over processes treat them as its own. A request
 * finds its series by one string key in a Map and adds to plain numbers: prom-client's own
 * metrics hash their labels on every call, which cost about a tenth of a narinfo lookup's CPU.
 */
abstract class RequestSeries<Series> {
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  protected readonly series = new Map<string, { labels: Labels; figures: Series }>();
  constructor(name: string, help: string, type: 'counter' | 'histogram', registry: Registry) {
    this.name = name;
    this.help = help;
    this.type = type;
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series of `key`, made with `labels()` the first time (labels are built once per series). */
  protected find(key: string, labels: () => Labels, fresh: () => Series): Series {
    let found = this.series.get(key);
    if (!found) {
      found = { labels: labels(), figures: fresh() };
      this.series.set(key, found);
    }
    return found.figures;
  }

  abstract get(): Promise<MetricJson>;
}

export class RequestCounter extends RequestSeries<{ value: number }> {
  constructor(name: string, help: string, registry: Registry) {
    super(name, help, 'counter', registry);
  }

  inc(key: string, labels: () => Labels, by = 1): void {
    this.figures(key, labels).value += by;
  }

  /** The series' figure itself, for a caller that keeps it and adds to it directly. */
  figures(key: string, labels: () => Labels): { value: number } {
    return this.find(key, labels, () => ({ value: 0 }));
  }

  async get(): Promise<MetricJson> {
    const values = [...this.series.values()].map(({ labels, figures }) => ({ labels, value: figures.value }));
    return { name: this.name, help: this.help, type: 'counter', aggregator: 'sum', values };
  }
}

export interface HistogramFigures {
  /** Observations per bucket, not cumulative: the last one is above every bound. */
  counts: number[];
  sum: number;
  count: number;
}

export class RequestHistogram extends RequestSeries<HistogramFigures> {
  readonly #bounds: readonly number[];

  constructor(name: string, help: string, bounds: readonly number[], registry: Registry) {
    super(name, help, 'histogram', registry);
    this.#bounds = bounds;
  }

  /** The series' figures themselves, for a caller that keeps them and passes them to add(). */
  figures(key: string, labels: () => Labels): HistogramFigures {
    return this.find(key, labels, () => ({
      counts: new Array(this.#bounds.length + 1).fill(0),
      sum: 0,
      count: 0,
    }));
  }

  add(figures: HistogramFigures, value: number): void {
    let bucket = 0;
    while (bucket < this.#bounds.length && value > this.#bounds[bucket]) bucket++;
    figures.counts[bucket]++;
    figures.sum += value;
    figures.count++;
  }

  async get(): Promise<MetricJson> {
    const values: MetricJson['values'] = [];
    for (const { labels, figures } of this.series.values()) {
      let below = 0;
      for (let i = 0; i <= this.#bounds.length; i++) {
        below += figures.counts[i];
        const le = i < this.#bounds.length ? String(this.#bounds[i]) : '+Inf';
        values.push({ metricName: `${this.name}_bucket`, labels: { le, ...labels }, value: below });
      }
      values.push({ metricName: `${this.name}_sum`, labels, value: figures.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: figures.count });
    }
    return { name: this.name, help: this.help, type: 'histogram', aggregator: 'sum', values };
  }
}
