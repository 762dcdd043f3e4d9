import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { chunkStream } from '../chunking/chunk-stream.ts';
import { GearAnchors } from '../delta/gear-anchors.ts';
import { packageName } from './local-versions.ts';
import { queryPathInfos } from './nix-paths.ts';

/**
 * Chunks of a NAR's previous version at the same relative place, sent along as a delta's
 * dictionary when anchors do not place the chunk: one, as neighbouring chunks then share a
 * dictionary in more of their groups (nar-push.ts; docs/benchmarks.md, "Push speed").
 */
export const PLACE_CHUNKS = 1;
/** Versions of a package looked up on the server, newest first, before giving up on bases. */
const CANDIDATES = 6;

export interface OldChunk {
  id: Uint8Array;
  data: Uint8Array;
  /** Its offset in the previous version's NAR. */
  start: number;
}

/** A valid local store path, and its NAR's size. */
export interface PreviousVersion {
  path: string;
  narSize: number;
}

/**
 * The store's entries by package name (packageName), read once per push: each path's look for its
 * previous version read and filtered the whole store listing again, tens of thousands of names.
 */
export class StoreVersions {
  readonly #storeDir = process.env.NIX_STORE_DIR ?? '/nix/store';
  #byPackage: Promise<Map<string, string[]>> | undefined;

  get storeDir(): string {
    return this.#storeDir;
  }

  /** The store entries (names) of package `pkg`, derivations and locks left out. */
  async of(pkg: string): Promise<string[]> {
    this.#byPackage ??= readdir(this.#storeDir)
      .catch(() => [] as string[])
      .then((entries) => {
        const byPackage = new Map<string, string[]>();
        for (const e of entries) {
          if (!/^[0-9a-z]{32}-/.test(e) || e.endsWith('.drv') || e.endsWith('.lock')) continue;
          const name = packageName(e.slice(33));
          const list = byPackage.get(name);
          if (list) list.push(e);
          else byPackage.set(name, [e]);
        }
        return byPackage;
      });
    return (await this.#byPackage).get(pkg) ?? [];
  }
}

/**
 * The version of `storePath`'s package that its chunks are best sent as deltas of: among the
 * other local store paths of the same package (local-versions.ts names them), the newest one
 * older than it, else the oldest newer one, that `onServer` says the cache has.
 */
export async function previousVersion(
  storePath: string,
  onServer: (path: string) => Promise<boolean>,
  store = new StoreVersions(),
): Promise<PreviousVersion | undefined> {
  const own = basename(storePath);
  const name = own.slice(33);
  const others = (await store.of(packageName(name))).filter((e) => e !== own);
  const version = versionOf(name);
  const older = others
    .filter((e) => compareVersions(versionOf(e.slice(33)), version) <= 0)
    .sort((a, b) => compareVersions(versionOf(b.slice(33)), versionOf(a.slice(33))));
  const newer = others
    .filter((e) => compareVersions(versionOf(e.slice(33)), version) > 0)
    .sort((a, b) => compareVersions(versionOf(a.slice(33)), versionOf(b.slice(33))));
  const candidates = [...older, ...newer].slice(0, CANDIDATES).map((entry) => join(store.storeDir, entry));
  // Asked together: one after the other, the lookups took a small path most of its push.
  const held = await Promise.all(candidates.map(onServer));
  for (const [i, path] of candidates.entries()) {
    if (!held[i]) continue;
    const info = await queryPathInfos([path], false).catch(() => undefined);
    if (info?.[0] && info[0].narSize > 0) return { path, narSize: info[0].narSize };
  }
  return undefined;
}

/** The version part of a store path name (after the first `-` followed by a digit), or ''. */
function versionOf(name: string): string {
  const at = name.search(/-\d/);
  return at < 0 ? '' : name.slice(at + 1);
}

/** Versions compared as Nix does in spirit: component by component, numbers as numbers. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    if (x === y) continue;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny) return Number(x) - Number(y);
    if (nx !== ny) return nx ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return 0;
}

/** Old content held around the place looked at, each side: how far a release's edits may shift content. */
const REACH_BYTES = 3 * 1024 * 1024;
/** A position is an anchor when its gear hash's low bits are zero: one in 128. */
const ANCHOR_MASK = 127;
/** Anchors of a new chunk that must agree on where it lies in the old NAR. */
const MIN_VOTES = 3;
/** Votes are counted per old position rounded to this (with the neighbouring buckets'). */
const VOTE_BUCKET = 4096;
/** Chunks where the anchors place a chunk: its bases when they do. */
const FOUND_CHUNKS = 3;

interface HeldChunk {
  data: Uint8Array;
  start: number;
  /** Hashed when first chosen as a base, not before. */
  id?: Uint8Array;
}

/**
 * The previous version's NAR, dumped and chunked alongside the NAR pushed, giving for each new
 * chunk the FOUND_CHUNKS old chunks where anchors (content-defined 32-byte windows, by gear hash)
 * the new chunk shares with the old content held place it, else the PLACE_CHUNKS at the same
 * relative offset: a release moves content by different amounts in different parts of a NAR
 * (measured on node's binary: from -0.9 to +0.15 MB within one file; docs/benchmarks.md, "Push
 * with deltas" and "Push speed"). Places asked for move forward, so it holds only the old content
 * within REACH_BYTES of them: memory does not grow with the NAR's size.
 */
export class PlaceWindow {
  readonly #ratio: number;
  readonly #dump: ChildProcess;
  readonly #source: AsyncIterator<Uint8Array>;
  #held: HeldChunk[] = [];
  readonly #anchors = new AnchorIndex();
  readonly #scanner = new GearAnchors(ANCHOR_MASK);
  /** The votes of one new chunk's anchors: old bucket numbers, reused from chunk to chunk. */
  #votes = new Int32Array(4096);
  #read = 0;
  #done = false;
  /** Where the anchors last placed a chunk in the old NAR. */
  #found = 0;

  constructor(previous: PreviousVersion, newSize: number) {
    this.#ratio = previous.narSize / newSize;
    this.#dump = spawn('nix-store', ['--dump', previous.path], { stdio: ['ignore', 'pipe', 'ignore'] });
    // Read from now on: Node drops what a child wrote to a pipe nobody reads when it exits.
    this.#source = chunkStream(this.#dump.stdout!.pipe(new PassThrough()))[Symbol.asyncIterator]();
  }

  /** The old chunks around the place of `data`, a new chunk at `start` (none if the dump failed). */
  async around(start: number, data: Uint8Array): Promise<OldChunk[]> {
    const middle = Math.floor((start + (data.length >> 1)) * this.#ratio);
    // The window spans both places, unless the anchors strayed far: then the relative place alone.
    const last = Math.abs(this.#found - middle) <= 2 * REACH_BYTES ? this.#found : middle;
    while (!this.#done && this.#read < Math.max(middle, last) + REACH_BYTES) await this.#pull();
    this.#drop(Math.min(middle, last) - REACH_BYTES);
    if (this.#held.length === 0) return [];
    const found = this.#locate(data);
    if (found === undefined) return this.#chunksAround(middle, PLACE_CHUNKS).map(withId);
    this.#found = found;
    return this.#chunksAround(found, FOUND_CHUNKS).map(withId);
  }

  /** `count` held chunks side by side around old offset `place`. */
  #chunksAround(place: number, count: number): HeldChunk[] {
    let at = this.#held.findIndex((chunk) => place < chunk.start + chunk.data.length);
    if (at < 0) at = this.#held.length - 1;
    const from = Math.max(0, Math.min(at - (count >> 1), this.#held.length - count));
    return this.#held.slice(from, from + count);
  }

  close(): void {
    this.#dump.kill();
  }

  /** Where the new chunk's middle lies in the old NAR, by its anchors' votes, if they agree. */
  #locate(data: Uint8Array): number | undefined {
    if (this.#votes.length < data.length) this.#votes = new Int32Array(data.length);
    const votes = this.#votes;
    const anchors = this.#anchors;
    let count = 0;
    this.#scanner.scan(data, (hash, at) => {
      const old = anchors.find(hash);
      if (old >= 0) votes[count++] = Math.round((old - at) / VOTE_BUCKET);
    });
    const best = bestBucket(votes.subarray(0, count).sort());
    return best === undefined ? undefined : Math.max(0, best * VOTE_BUCKET + (data.length >> 1));
  }

  /** Drops the chunks ending before `offset`; their anchors lapse with them. */
  #drop(offset: number): void {
    let count = 0;
    while (count < this.#held.length - 1 && this.#held[count].start + this.#held[count].data.length < offset) count++;
    if (count === 0) return;
    this.#held = this.#held.slice(count);
    this.#anchors.forgetBefore(this.#held[0].start);
  }

  async #pull(): Promise<void> {
    try {
      const next = await this.#source.next();
      if (next.done) {
        this.#done = true;
        return;
      }
      const data = next.value;
      const start = this.#read;
      const anchors = this.#anchors;
      this.#scanner.scan(data, (hash, at) => anchors.add(hash, start + at));
      this.#held.push({ data, start });
      this.#read += data.length;
    } catch {
      this.#done = true;
    }
  }
}

const withId = (chunk: HeldChunk): OldChunk => {
  chunk.id ??= new Uint8Array(createHash('sha256').update(chunk.data).digest());
  return { id: chunk.id, data: chunk.data, start: chunk.start };
};

/**
 * The bucket most votes (sorted) fall in or next to, if at least MIN_VOTES do; on a tie, the one
 * with more votes of its own, then the lower.
 */
export function bestBucket(sorted: Int32Array): number | undefined {
  let best: number | undefined;
  let bestNear = 0;
  let bestOwn = 0;
  let previous = Number.NaN;
  let previousCount = 0;
  for (let at = 0; at < sorted.length; ) {
    const bucket = sorted[at];
    let end = at + 1;
    while (end < sorted.length && sorted[end] === bucket) end++;
    const own = end - at;
    const next = end < sorted.length && sorted[end] === bucket + 1 ? countRun(sorted, end) : 0;
    const near = own + (previous === bucket - 1 ? previousCount : 0) + next;
    if (near > bestNear || (near === bestNear && own > bestOwn)) {
      best = bucket;
      bestNear = near;
      bestOwn = own;
    }
    previous = bucket;
    previousCount = own;
    at = end;
  }
  return bestNear >= MIN_VOTES ? best : undefined;
}

function countRun(sorted: Int32Array, from: number): number {
  let end = from + 1;
  while (end < sorted.length && sorted[end] === sorted[from]) end++;
  return end - from;
}

/** Slots of the anchor index: 2^18, some three times the anchors of the most old content held. */
const INDEX_BITS = 18;
/** Slots looked at for one anchor before the last of them is overwritten. */
const INDEX_PROBES = 4;

/**
 * Anchor hash -> its offset in the old NAR, for the old content held, in typed arrays (a Map of
 * them was most of the push's main-thread time). An anchor seen twice is marked as such: it
 * cannot place anything. Entries before the held content lapse rather than being deleted, and
 * their slots are taken again; a slot taken by another anchor only loses that anchor a vote.
 */
export class AnchorIndex {
  readonly #hashes = new Int32Array(1 << INDEX_BITS);
  /** The offset of the anchor's last occurrence, plus one: 0 is an empty slot. */
  readonly #offsets = new Float64Array(1 << INDEX_BITS);
  readonly #repeated = new Uint8Array(1 << INDEX_BITS);
  /** Offsets before this lapsed. */
  #from = 0;

  add(hash: number, offset: number): void {
    const first = Math.imul(hash, 0x9e3779b1) >>> (32 - INDEX_BITS);
    let slot = first;
    let free = -1;
    for (let probe = 0; probe < INDEX_PROBES; probe++) {
      slot = (first + probe) & ((1 << INDEX_BITS) - 1);
      const held = this.#offsets[slot];
      if (held === 0 || held - 1 < this.#from) {
        if (free < 0) free = slot;
        if (held === 0) break;
      } else if (this.#hashes[slot] === hash) {
        this.#repeated[slot] = 1;
        this.#offsets[slot] = offset + 1;
        return;
      }
    }
    if (free < 0) free = slot;
    this.#hashes[free] = hash;
    this.#offsets[free] = offset + 1;
    this.#repeated[free] = 0;
  }

  /** The offset of an anchor seen once in the content held, else -1. */
  find(hash: number): number {
    const first = Math.imul(hash, 0x9e3779b1) >>> (32 - INDEX_BITS);
    for (let probe = 0; probe < INDEX_PROBES; probe++) {
      const slot = (first + probe) & ((1 << INDEX_BITS) - 1);
      const held = this.#offsets[slot];
      if (held === 0) return -1;
      if (this.#hashes[slot] === hash && held - 1 >= this.#from) return this.#repeated[slot] ? -1 : held - 1;
    }
    return -1;
  }

  /** Lets the anchors before `offset` lapse. */
  forgetBefore(offset: number): void {
    this.#from = Math.max(this.#from, offset);
  }
}
