import { setTimeout as delay } from 'node:timers/promises';
import { chunkCount, chunkEntries, chunkEntry } from '../chunking/chunk-table.ts';
import type { Narwhal } from '../context/narwhal.ts';
import type { CacheRecord } from '../metadata/metadata-store.ts';
import { compareVersions } from '../nix/store-path.ts';
import { chunkHex } from '../storage/chunk-store.ts';
import { chunkFrames, MAX_COMPUTED_DELTAS } from './chunk-frames.ts';
import type { WantedChunk } from './chunk-frames-body.ts';
import { hintsAround, PlaceMap } from './place-hints.ts';
import { preparedDeltasOf } from './prepared-deltas.ts';

/** NARs waiting for their deltas at most; more are dropped (their first request computes them). */
const MAX_WAITING = 64;

/** Other NARs of the package looked at for the versions just below and above. */
const OTHERS = 16;
/** How often a preparation waiting for uploads to end looks again. */
const UPLOADS_POLL_MS = 200;
/**
 * How long no upload must have run before a batch starts: `nix copy` uploads path after path with
 * short gaps, and preparing in those gaps adds its memory to the uploads' (the server's peak).
 */
const UPLOADS_QUIET_MS = 1_000;

const waiting: { nw: Narwhal; cache: CacheRecord; narId: number; storePath: string }[] = [];
let running: Promise<void> | undefined;

/**
 * Prepares, in the background and one NAR at a time, the deltas of the upgrades to and from this
 * NAR (`storePath` names it): from the package's version just below to this one (the common
 * upgrade, to the newest), and from this one to the version just above when that came first
 * (`nix copy` uploads versions in no particular order). Called once a path names the NAR in
 * `cache`. Errors are dropped: a delta not prepared is computed when asked. It yields to uploads,
 * as recompression does: a batch starts only once none has run in this process for
 * UPLOADS_QUIET_MS, so that pushing a series of versions is not slowed by preparing their upgrades.
 */
export function prepareUpgradeDeltas(nw: Narwhal, cache: CacheRecord, narId: number, storePath: string): void {
  if (waiting.length >= MAX_WAITING || waiting.some((w) => w.narId === narId && w.cache.id === cache.id)) return;
  waiting.push({ nw, cache, narId, storePath });
  running ??= drain();
}

/** Resolves once every NAR waiting now has its deltas prepared (for tests and the bench). */
export async function upgradeDeltasSettled(): Promise<void> {
  while (running) await running;
}

async function drain(): Promise<void> {
  for (let next = waiting.shift(); next; next = waiting.shift()) {
    const { nw, cache, narId, storePath } = next;
    const name = nameOf(storePath);
    const others = await nw.meta.otherNarsOfPackage(narId, OTHERS).catch(() => []);
    let below: (typeof others)[number] | undefined;
    let above: (typeof others)[number] | undefined;
    for (const other of others) {
      // The same version is a rebuild: the one named before is the one machines hold.
      const order = compareVersions(nameOf(other.storePath), name);
      if (order <= 0 && (!below || compareVersions(nameOf(other.storePath), nameOf(below.storePath)) > 0))
        below = other;
      if (order > 0 && (!above || compareVersions(nameOf(other.storePath), nameOf(above.storePath)) < 0)) above = other;
    }
    if (below) await upgradeDeltas(nw, cache, below.id, narId).catch(() => {});
    if (above) await upgradeDeltas(nw, cache, narId, above.id).catch(() => {});
  }
  running = undefined;
}

const nameOf = (storePath: string): string => storePath.slice(storePath.lastIndexOf('/') + 34);

/**
 * Asks chunkFrames, as a substituter holding `fromNar` would ask for `toNar`, for every chunk of
 * `toNar` that `fromNar` lacks, with the hints it would give (place-hints.ts, PlaceMap), and drops the
 * answers: the deltas decided on go to the upgrade's file of prepared deltas (prepared-deltas.ts)
 * under the keys such requests look up, in NAR order, up to the file's share of the bound (the
 * first chunks of the NAR, those Nix waits for first, when an upgrade's deltas exceed it). An
 * upgrade that has its file already is skipped. Returns the number of chunks asked for.
 */
export async function upgradeDeltas(nw: Narwhal, cache: CacheRecord, fromNar: number, toNar: number): Promise<number> {
  const store = preparedDeltasOf(nw);
  if (!store || (await store.has(fromNar, toNar))) return 0;
  const from = await nw.meta.narChunkTable(fromNar);
  const to = await nw.meta.narChunkTable(toNar);
  if (!from || !to || from.length === 0 || to.length === 0) return 0;
  const fromCount = chunkCount(from);
  const fromEnd = (i: number): number => chunkEntry(from, i).end;
  const held = new Set<string>();
  for (const entry of chunkEntries(from)) held.add(chunkHex(entry.id));
  const placed = (table: Uint8Array) => [...chunkEntries(table)].map((e) => ({ key: chunkHex(e.id), end: e.end }));
  const placeMap = new PlaceMap(placed(from), placed(to));
  const wanted: WantedChunk[] = [];
  for (const entry of chunkEntries(to)) {
    if (held.has(chunkHex(entry.id))) continue;
    const hints = hintsAround(fromCount, fromEnd, placeMap.place(entry.start)).map((j) => chunkEntry(from, j).id);
    if (hints.length > 0) wanted.push({ id: entry.id, hints });
  }
  if (wanted.length === 0) return 0;
  const writer = await store.writer(fromNar, toNar);
  let asked = 0;
  try {
    for (; asked < wanted.length && !writer.full; asked += MAX_COMPUTED_DELTAS) {
      await uploadsPaused(nw);
      // Only what goes to the writer matters.
      for await (const _ of chunkFrames(nw, cache, wanted.slice(asked, asked + MAX_COMPUTED_DELTAS), writer.add));
      await writer.flush();
    }
    await writer.finish();
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return Math.min(asked, wanted.length);
}

/** Resolves once no upload has run in this process for UPLOADS_QUIET_MS. */
async function uploadsPaused(nw: Narwhal): Promise<void> {
  for (;;) {
    const idle = nw.holds.idleSince();
    if (idle !== undefined && Date.now() - idle >= UPLOADS_QUIET_MS) return;
    await delay(UPLOADS_POLL_MS);
  }
}
