/** Chunks of a local version named as hints per chunk wanted, around the same relative place. */
export const PLACE_HINTS = 5;

/**
 * Which chunks of an earlier version (`count` chunks, the i-th ending at NAR offset `endAt(i)`) a
 * client names as hints for the chunk starting at `start` in a NAR of `narSize` bytes: the chunk
 * at the same relative place and its neighbours, as indices in NAR order, so that a delta's
 * dictionary is one contiguous range of that version. The substituter asks with these and the
 * server prepares deltas for exactly these ahead of the first request (upgrade-deltas.ts).
 */
export function placeHints(count: number, endAt: (i: number) => number, start: number, narSize: number): number[] {
  if (count === 0) return [];
  const place = Math.floor((start / Math.max(1, narSize)) * endAt(count - 1));
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
