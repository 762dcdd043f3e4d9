/**
 * Where a substituter's hints come from (src/serving/place-hints.ts): the earlier version's chunks
 * at the same place, placed through the chunks both versions share, so that a file added before a
 * changed chunk does not move its hints away from the chunk it changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hintsAround, PlaceMap, placeHints, type PlacedChunk } from '../../../src/serving/place-hints.ts';

/** Chunks of C bytes each, named by `keys` (large, so that the places compared lie far apart). */
const C = 1 << 20;
const list = (keys: string[]): PlacedChunk[] => keys.map((key, i) => ({ key, end: (i + 1) * C }));

test('a chunk changed after an inserted stretch is placed where it was, between the chunks both share', () => {
  const earlier = list(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
  // Four new chunks inserted after "a"; "e" changed to "E".
  const newer = list(['a', 'x', 'y', 'v', 'w', 'b', 'c', 'd', 'E', 'f', 'g', 'h']);
  const map = new PlaceMap(earlier, newer);
  const endAt = (i: number): number => earlier[i].end;
  assert.equal(map.place(8 * C), 4 * C, '"E" starts where "e" did');
  assert.deepEqual(hintsAround(earlier.length, endAt, map.place(8 * C)), [2, 3, 4, 5, 6], 'centred on "e"');
  // The NAR's relative place puts it a chunk off.
  assert.notDeepEqual(placeHints(earlier.length, endAt, 8 * C, 12 * C), [2, 3, 4, 5, 6]);
});

test('a stretch with no shared chunk is placed in proportion between the shared ones around it', () => {
  const earlier = list(['a', 'p', 'q', 'r', 'z', 'k', 'l', 'm']);
  const newer = list(['a', 'P', 'Q', 'R', 'S', 'T', 'U', 'z', 'k', 'l', 'm']); // the middle grew from 3 to 6 chunks
  const map = new PlaceMap(earlier, newer);
  assert.equal(map.place(1 * C), 1 * C);
  assert.equal(map.place(4 * C), 2.5 * C, 'halfway through the grown stretch is halfway through the old one');
  assert.equal(map.place(7 * C), 4 * C, '"z" where it was');
});

test('with nothing shared, the place is the relative one; an empty earlier version gives no hints', () => {
  const earlier = list(['a', 'b', 'c', 'd']);
  const newer = list(['w', 'x', 'y', 'z', 'v', 'u', 't', 's']);
  assert.equal(new PlaceMap(earlier, newer).place(4 * C), 2 * C);
  assert.deepEqual(
    hintsAround(0, () => 0, 0),
    [],
  );
});

test('a shared chunk out of order (moved) does not bend the places of the others', () => {
  const earlier = list(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
  // Two chunks added in front, "g" moved forward, "d" changed.
  const newer = list(['n', 'm', 'a', 'g', 'b', 'c', 'D', 'e', 'f', 'h']);
  const map = new PlaceMap(earlier, newer);
  assert.equal(map.place(6 * C), 3 * C, '"D" starts where "d" did');
});

test('NARs of about one size are placed relatively', () => {
  const earlier = list(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
  const newer = list(['a', 'x', 'b', 'c', 'd', 'E', 'f', 'h']); // "g" dropped, "x" added: one size
  const endAt = (i: number): number => earlier[i].end;
  assert.equal(new PlaceMap(earlier, newer).place(5 * C), 5 * C);
  assert.deepEqual(
    hintsAround(earlier.length, endAt, new PlaceMap(earlier, newer).place(5 * C)),
    placeHints(earlier.length, endAt, 5 * C, 8 * C),
  );
});
