/** Chunks of a local version named as hints per chunk wanted, around the same place. */
export const PLACE_HINTS = 5;
/**
 * By how much of its size a NAR must differ from the earlier version for its places to be pinned.
 * Of about one size, the relative place did better (node 22.17.1 -> 22.18.0: 7.8 MB fetched against
 * 9.9 MB pinned, the pins about 30 KB off it, and 8.1 MB taking the pinned place only where it lay
 * more than 256 KiB from the relative one); grown by 6%, the pinned one (22.19.0 -> 22.20.0: 15.6 MB
 * against 34.9 MB).
 */
const GROWN = 0.01;

/** A chunk of a NAR's list: a key that is the same for the same content (its id as hex), and its end offset. */
export interface PlacedChunk {
  key: string;
  end: number;
}

/**
 * Which chunks of an earlier version (`count` chunks, the i-th ending at NAR offset `endAt(i)`) a
 * client names as hints for the chunk starting at `start` in a NAR of `narSize` bytes: the chunk
 * at the same relative place and its neighbours (hintsAround). PlaceMap places better where the
 * two versions share chunks.
 */
export function placeHints(count: number, endAt: (i: number) => number, start: number, narSize: number): number[] {
  if (count === 0) return [];
  return hintsAround(count, endAt, Math.floor((start / Math.max(1, narSize)) * endAt(count - 1)));
}

/**
 * The chunk of the earlier version (`count` chunks, the i-th ending at `endAt(i)`) holding NAR
 * offset `place` and its neighbours, as indices in NAR order, so that a delta's dictionary is one
 * contiguous range of that version. The substituter asks with these and the server prepares deltas
 * for exactly these ahead of the first request (upgrade-deltas.ts).
 */
export function hintsAround(count: number, endAt: (i: number) => number, place: number): number[] {
  if (count === 0) return [];
  let lo = 0;
  let hi = count - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (endAt(mid) <= place) lo = mid + 1;
    else hi = mid;
  }
  const out = [];
  for (let i = Math.max(0, lo - (PLACE_HINTS >> 1)); i < Math.min(count, lo + (PLACE_HINTS >> 1) + 1); i++) out.push(i);
  return out;
}

/**
 * Where offsets of a newer NAR lie in an earlier version's NAR, from the chunks both share: each
 * shared chunk (the longest run of them in the same order in both) pins its start and end, and an
 * offset between two pins is placed in proportion between their places in the earlier version. A
 * file that grew or a file added before a place shifts it by what it adds; the NAR's relative place
 * (placeHints), which this is with no shared chunk, shifts every place after it by a share of the
 * whole growth. For NARs within GROWN of one size the relative place is taken. Client and server
 * build it from the same two chunk lists, so they name the same hints.
 */
export class PlaceMap {
  /** Pins: offsets in the newer NAR and the matching ones in the earlier, both increasing. */
  readonly #to: number[] = [0];
  readonly #from: number[] = [0];
  readonly #newerSize: number;
  readonly #earlierSize: number;
  readonly #pinnedPlaces: boolean;

  constructor(earlier: Iterable<PlacedChunk>, newer: Iterable<PlacedChunk>) {
    const starts = new Map<string, { start: number; end: number }>();
    let at = 0;
    for (const { key, end } of earlier) {
      if (!starts.has(key)) starts.set(key, { start: at, end });
      at = end;
    }
    const earlierSize = at;
    const shared: { to: number; toEnd: number; from: number; fromEnd: number }[] = [];
    at = 0;
    for (const { key, end } of newer) {
      const place = starts.get(key);
      if (place) shared.push({ to: at, toEnd: end, from: place.start, fromEnd: place.end });
      at = end;
    }
    const newerSize = at;
    this.#newerSize = newerSize;
    this.#earlierSize = earlierSize;
    this.#pinnedPlaces = Math.abs(newerSize - earlierSize) > GROWN * earlierSize;
    for (const i of longestIncreasing(shared.map((s) => s.from))) {
      const s = shared[i];
      if (s.to < this.#to.at(-1)! || s.from < this.#from.at(-1)!) continue;
      this.#to.push(s.to, s.toEnd);
      this.#from.push(s.from, s.fromEnd);
    }
    if (newerSize > this.#to.at(-1)! && earlierSize >= this.#from.at(-1)!) {
      this.#to.push(newerSize);
      this.#from.push(earlierSize);
    }
  }

  /** The earlier version's offset for offset `start` of the newer NAR. */
  place(start: number): number {
    if (this.#pinnedPlaces) return this.#pinned(start);
    return Math.floor((start / Math.max(1, this.#newerSize)) * this.#earlierSize);
  }

  #pinned(start: number): number {
    const to = this.#to;
    let lo = 0;
    let hi = to.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (to[mid] <= start) lo = mid;
      else hi = mid - 1;
    }
    if (lo + 1 >= to.length) return this.#from[lo] + (start - to[lo]);
    const share = (start - to[lo]) / Math.max(1, to[lo + 1] - to[lo]);
    return Math.floor(this.#from[lo] + share * (this.#from[lo + 1] - this.#from[lo]));
  }
}

/** Indices of a longest strictly increasing subsequence of `values` (patience sorting). */
function longestIncreasing(values: number[]): number[] {
  const tails: number[] = [];
  const previous = new Int32Array(values.length).fill(-1);
  for (let i = 0; i < values.length; i++) {
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (values[tails[mid]] < values[i]) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) previous[i] = tails[lo - 1];
    tails[lo] = i;
  }
  const out: number[] = [];
  for (let i = tails.at(-1) ?? -1; i >= 0; i = previous[i]) out.push(i);
  return out.reverse();
}
