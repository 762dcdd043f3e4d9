/**
 * Simulated storage of one series under an encoding policy: every distinct chunk stored once,
 * as a plain zstd frame or as a zstd frame whose dictionary is the content of one or more base
 * chunks (a delta). Only sizes are kept; decisions are exactly those an ingest or background
 * pass with the same information would make.
 */
import { constants, zstdCompressSync } from 'node:zlib';
import { SKETCH_SUPER_FEATURES } from '../../src/delta/resemblance.ts';
import type { NarModel, SeriesModel } from './model.ts';

export type Selection = 'sf' | 'prev' | 'pos' | 'best';

export interface Policy {
  /** forward: versions in release order, new chunks against old ones; reverse: newest first. */
  direction: 'forward' | 'reverse';
  /** Longest chain of frames a read decodes through: 1 means every base is a plain frame. */
  depthLimit: number;
  /**
   * sf: the stored chunk with most super-features in common (ties to the newest);
   * prev: the same, preferring chunks of the reference NAR (the same package's previous version
   * in processing order), falling back to sf;
   * pos: the reference NAR's chunk at the same relative offset;
   * best: the smallest of the three.
   */
  selection: Selection;
  /** Chunks in one dictionary: the base and its neighbours in the NAR it was found in. */
  dictChunks: number;
  level: number;
  /** Keep a delta only if at most this share of the plain frame. */
  margin: number;
}

export interface Outcome {
  storedBytes: number;
  deltas: number;
  chunks: number;
  /** Extra frames (bases not part of the NAR itself) per chunk of the NAR, newest / oldest step. */
  readsNewest: number;
  readsOldest: number;
  /** Seconds of base selection and delta compression (the plain frames are timed apart). */
  seconds: number;
}

export function zstdSize(data: Uint8Array, level: number, dictionary?: Uint8Array): number {
  const params = { [constants.ZSTD_c_compressionLevel]: level };
  return (
    dictionary === undefined ? zstdCompressSync(data, { params }) : zstdCompressSync(data, { params, dictionary })
  ).length;
}

/** Plain frame sizes of all distinct chunks at a level, and the seconds it took. */
export function plainSizes(model: SeriesModel, level: number): { sizes: Float64Array; seconds: number } {
  const sizes = new Float64Array(model.chunks.length);
  const t0 = performance.now();
  for (let i = 0; i < model.chunks.length; i++) sizes[i] = zstdSize(model.chunks[i], level);
  return { sizes, seconds: (performance.now() - t0) / 1000 };
}

/** Index entries kept per super-feature value (the newest): bounds lookups on common values. */
const BUCKET_LIMIT = 32;

export function simulate(model: SeriesModel, policy: Policy, plain: Float64Array): Outcome {
  const n = model.chunks.length;
  const S = SKETCH_SUPER_FEATURES;
  const sk = model.sketches;
  const stored = new Uint8Array(n);
  const depth = new Int32Array(n);
  const anchor = new Int32Array(n).fill(-1);
  const deps: (Int32Array | null)[] = new Array<Int32Array | null>(n).fill(null);
  const seq = new Int32Array(n);
  const lastNar = new Int32Array(n).fill(-1);
  const lastPos = new Int32Array(n);
  const refStamp = new Int32Array(n).fill(-1);
  const refPos = new Int32Array(n);
  const index: Map<number, number[]>[] = [];
  for (let j = 0; j < S; j++) index.push(new Map());
  const counts = new Map<number, number>();

  const order = model.nars.map((_, i) => i);
  if (policy.direction === 'reverse') order.reverse();
  const lastOfPackage = new Map<string, number>();
  let storedBytes = 0;
  let deltas = 0;
  let nextSeq = 1;
  const t0 = performance.now();

  /** The stored chunk with most super-features in common with chunk c; preferring the reference NAR's. */
  const findBySketch = (c: number, ref: number): number => {
    counts.clear();
    for (let j = 0; j < S; j++) {
      const bucket = index[j].get(sk[c * S + j]);
      if (bucket === undefined) continue;
      for (const id of bucket) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    let best = -1;
    let bestKey = -1;
    for (const [id, count] of counts) {
      // Rank: in the reference NAR first (when asked), then count, then newest.
      const key = (ref >= 0 && refStamp[id] === ref ? 1e12 : 0) + count * 1e9 + seq[id];
      if (key > bestKey) {
        bestKey = key;
        best = id;
      }
    }
    return best;
  };

  /** Up to k usable chunk ids around position p of NAR m, each resolved to depth < limit. */
  const neighbourhood = (m: number, p: number, k: number): Int32Array => {
    const ids = model.nars[m].ids;
    let from = p - ((k - 1) >> 1);
    if (from + k > ids.length) from = ids.length - k;
    if (from < 0) from = 0;
    const out: number[] = [];
    for (let i = from; i < from + k && i < ids.length; i++) {
      let id = ids[i];
      while (id >= 0 && depth[id] >= policy.depthLimit) id = anchor[id];
      if (id >= 0 && stored[id] === 1 && !out.includes(id)) out.push(id);
    }
    return Int32Array.from(out);
  };

  const centreOf = (m: number, p: number): number => {
    let id = model.nars[m].ids[p];
    while (id >= 0 && depth[id] >= policy.depthLimit) id = anchor[id];
    return id;
  };

  const candidates = (
    c: number,
    narIndex: number,
    pos: number,
    ref: number,
  ): { dict: Int32Array; centre: number }[] => {
    const out: { dict: Int32Array; centre: number }[] = [];
    const sel = policy.selection;
    const k = policy.dictChunks;
    if (sel === 'sf' || sel === 'best') {
      const b = findBySketch(c, -1);
      if (b >= 0) out.push({ dict: neighbourhood(lastNar[b], lastPos[b], k), centre: b });
    }
    if ((sel === 'prev' || sel === 'best') && ref >= 0) {
      const b = findBySketch(c, ref);
      if (b >= 0) {
        const inRef = refStamp[b] === ref;
        out.push({
          dict: inRef ? neighbourhood(ref, refPos[b], k) : neighbourhood(lastNar[b], lastPos[b], k),
          centre: b,
        });
      }
    } else if (sel === 'prev') {
      const b = findBySketch(c, -1);
      if (b >= 0) out.push({ dict: neighbourhood(lastNar[b], lastPos[b], k), centre: b });
    }
    if ((sel === 'pos' || sel === 'best') && ref >= 0) {
      const nar = model.nars[narIndex];
      const r = model.nars[ref];
      const target = (nar.offsets[pos] / nar.size) * r.size;
      let lo = 0;
      let hi = r.offsets.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (r.offsets[mid] <= target) lo = mid;
        else hi = mid - 1;
      }
      out.push({ dict: neighbourhood(ref, lo, k), centre: centreOf(ref, lo) });
    }
    return out;
  };

  for (const m of order) {
    const nar: NarModel = model.nars[m];
    const ref = lastOfPackage.get(nar.pname) ?? -1;
    if (ref >= 0) {
      const rids = model.nars[ref].ids;
      for (let i = 0; i < rids.length; i++) {
        refStamp[rids[i]] = ref;
        refPos[rids[i]] = i;
      }
    }
    for (let p = 0; p < nar.ids.length; p++) {
      const c = nar.ids[p];
      const known = stored[c] === 1;
      lastNar[c] = m;
      lastPos[c] = p;
      if (known) continue;
      let size = plain[c];
      let chosen: Int32Array | null = null;
      let centre = -1;
      const tried = new Set<string>();
      for (const cand of candidates(c, m, p, ref)) {
        if (cand.dict.length === 0) continue;
        const key = cand.dict.join(',');
        if (tried.has(key)) continue;
        tried.add(key);
        const dict =
          cand.dict.length === 1
            ? model.chunks[cand.dict[0]]
            : Buffer.concat(Array.from(cand.dict, (id) => model.chunks[id]));
        const s = zstdSize(model.chunks[c], policy.level, dict);
        if (s <= plain[c] * policy.margin && s < size) {
          size = s;
          chosen = cand.dict;
          centre = cand.centre;
        }
      }
      stored[c] = 1;
      seq[c] = nextSeq++;
      storedBytes += size;
      if (chosen !== null) {
        deltas++;
        deps[c] = chosen;
        let d = 0;
        for (const id of chosen) if (depth[id] > d) d = depth[id];
        depth[c] = d + 1;
        anchor[c] = centre >= 0 && depth[centre] < policy.depthLimit ? centre : chosen[0];
      }
      for (let j = 0; j < S; j++) {
        const key = sk[c * S + j];
        let bucket = index[j].get(key);
        if (bucket === undefined) index[j].set(key, (bucket = []));
        bucket.push(c);
        if (bucket.length > BUCKET_LIMIT) bucket.shift();
      }
    }
    lastOfPackage.set(nar.pname, m);
  }
  const seconds = (performance.now() - t0) / 1000;

  const lastStep = model.nars[model.nars.length - 1].step;
  const reads = (step: number): number => {
    let extra = 0;
    let own = 0;
    for (const nar of model.nars) {
      if (nar.step !== step) continue;
      const mine = new Set<number>(nar.ids);
      const seen = new Set<number>();
      const stack: number[] = [...mine];
      while (stack.length > 0) {
        const id = stack.pop() as number;
        const d = deps[id];
        if (d === null) continue;
        for (const b of d) {
          if (seen.has(b) || mine.has(b)) continue;
          seen.add(b);
          stack.push(b);
        }
      }
      extra += seen.size;
      own += mine.size;
    }
    return own === 0 ? 0 : extra / own;
  };
  return { storedBytes, deltas, chunks: n, readsNewest: reads(lastStep), readsOldest: reads(0), seconds };
}
