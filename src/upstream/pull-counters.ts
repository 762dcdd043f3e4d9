import type { Narwhal } from '../context/narwhal.ts';

/**
 * What pull-through did in this process, since it started. Plain numbers that only grow, so that
 * /metrics can show them as counters and the web UI as they are.
 */
export interface PullCounters {
  /** Narinfo lookups of a cache with upstreams answered from what it stores. */
  hits: number;
  /** Narinfo lookups it did not store, so the upstreams were asked (or their answer remembered). */
  misses: number;
  /** NARs fetched from an upstream and stored whole. */
  narsPulled: number;
  /** Bytes received from upstreams: narinfos and NARs as sent (compressed). */
  upstreamBytes: number;
  /** Upstream answers that were errors, timeouts, cut short, or refused (bad signature, bad NAR). */
  upstreamErrors: number;
}

const counters = new WeakMap<Narwhal, PullCounters>();

/** The live counters of this Narwhal, for the upstream room to count in. */
export function pullCounters(nw: Narwhal): PullCounters {
  let found = counters.get(nw);
  if (!found) {
    found = { hits: 0, misses: 0, narsPulled: 0, upstreamBytes: 0, upstreamErrors: 0 };
    counters.set(nw, found);
  }
  return found;
}

/** A copy of the counters, for /metrics and the web UI. */
export function pullCountersSnapshot(nw: Narwhal): PullCounters {
  return { ...pullCounters(nw) };
}

/** Puts the counters on /metrics, each as a counter named for what it counts. */
export function exposePullCounters(nw: Narwhal): void {
  const counters = pullCounters(nw);
  const expose = (name: string, help: string, field: keyof PullCounters): void =>
    nw.metrics.countFrom(name, help, () => counters[field]);
  expose('narwhal_pull_hits_total', 'Narinfo lookups of pull-through caches answered from what they store', 'hits');
  expose('narwhal_pull_misses_total', 'Narinfo lookups of pull-through caches that asked the upstreams', 'misses');
  expose('narwhal_pull_nars_total', 'NARs fetched from an upstream and stored whole', 'narsPulled');
  expose('narwhal_upstream_received_bytes_total', 'Bytes received from upstreams, as sent', 'upstreamBytes');
  expose(
    'narwhal_upstream_errors_total',
    'Upstream answers that were errors, timeouts, cut short or refused',
    'upstreamErrors',
  );
}
