import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { chunkStream } from '../chunking/chunk-stream.ts';
import { GEAR } from '../delta/resemblance.ts';
import { packageName } from './local-versions.ts';
import { queryPathInfos } from './nix-paths.ts';

/**
 * Chunks of a NAR's previous version at the same relative place, sent along as a delta's
 * dictionary (the server's delta pass found 5 side by side beat 1 or 3 on every series:
 * src/maintenance/delta-bases.ts).
 */
export const PLACE_CHUNKS = 5;
/** Versions of a package looked up on the server, newest first, before giving up on bases. */
const CANDIDATES = 6;

export interface OldChunk {
  id: Uint8Array;
  data: Uint8Array;
}

/** A valid local store path, and its NAR's size. */
export interface PreviousVersion {
  path: string;
  narSize: number;
}

/**
 * The version of `storePath`'s package that its chunks are best sent as deltas of: among the
 * other local store paths of the same package (local-versions.ts names them), the newest one
 * older than it, else the oldest newer one, that `onServer` says the cache has.
 */
export async function previousVersion(
  storePath: string,
  onServer: (path: string) => Promise<boolean>,
): Promise<PreviousVersion | undefined> {
  const storeDir = process.env.NIX_STORE_DIR ?? '/nix/store';
  const own = basename(storePath);
  const name = own.slice(33);
  const pkg = packageName(name);
  const entries = await readdir(storeDir).catch(() => [] as string[]);
  const others = entries.filter(
    (e) =>
      /^[0-9a-z]{32}-/.test(e) &&
      e !== own &&
      packageName(e.slice(33)) === pkg &&
      !e.endsWith('.drv') &&
      !e.endsWith('.lock'),
  );
  const version = versionOf(name);
  const older = others
    .filter((e) => compareVersions(versionOf(e.slice(33)), version) <= 0)
    .sort((a, b) => compareVersions(versionOf(b.slice(33)), versionOf(a.slice(33))));
  const newer = others
    .filter((e) => compareVersions(versionOf(e.slice(33)), version) > 0)
    .sort((a, b) => compareVersions(versionOf(a.slice(33)), versionOf(b.slice(33))));
  for (const entry of [...older, ...newer].slice(0, CANDIDATES)) {
    const path = join(storeDir, entry);
    if (!(await onServer(path))) continue;
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
/** Chunks where the anchors place a chunk, added to those at its relative place (MAX_SENT_BASES at most in all). */
const FOUND_CHUNKS = 3;

interface HeldChunk extends OldChunk {
  start: number;
  /** Its anchors' hashes, to drop them from the index with it. */
  anchors: number[];
}

/**
 * The previous version's NAR, dumped and chunked alongside the NAR pushed, giving for each new
 * chunk the PLACE_CHUNKS old chunks at the same relative offset and, when they lie elsewhere, the
 * FOUND_CHUNKS where anchors (content-defined 32-byte windows, by gear hash) the new chunk shares
 * with the old content held place it: a release moves content by different amounts in different
 * parts of a NAR (measured on node's binary: from -0.9 to +0.15 MB within one file), and either
 * alone missed where the other found (docs/benchmarks.md, "Push with deltas"). Places asked for
 * move forward, so it holds only the old content within REACH_BYTES of them: memory does not
 * grow with the NAR's size.
 */
export class PlaceWindow {
  readonly #ratio: number;
  readonly #dump: ChildProcess;
  readonly #source: AsyncIterator<Uint8Array>;
  #held: HeldChunk[] = [];
  /** Anchor hash -> its old offset, or -1 when it occurs more than once (useless to align with). */
  readonly #anchors = new Map<number, number>();
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
    const chunks = this.#chunksAround(middle, PLACE_CHUNKS);
    const found = this.#locate(data);
    if (found === undefined) return chunks;
    this.#found = found;
    // Anchors can mislead (repeated content), and so can the relative place (content moved): both go.
    const located = this.#chunksAround(found, FOUND_CHUNKS).filter((c) => !chunks.includes(c));
    // Those found last: zstd reaches the end of a dictionary most cheaply.
    return [...chunks, ...located];
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
    const votes = new Map<number, number>();
    let best: number | undefined;
    let bestVotes = 0;
    forEachAnchor(data, (hash, at) => {
      const old = this.#anchors.get(hash);
      if (old === undefined || old < 0) return;
      const bucket = Math.round((old - at) / VOTE_BUCKET);
      votes.set(bucket, (votes.get(bucket) ?? 0) + 1);
    });
    for (const [bucket, count] of votes) {
      const near = count + (votes.get(bucket - 1) ?? 0) + (votes.get(bucket + 1) ?? 0);
      if (near > bestVotes || (near === bestVotes && best !== undefined && count > (votes.get(best) ?? 0))) {
        bestVotes = near;
        best = bucket;
      }
    }
    return best !== undefined && bestVotes >= MIN_VOTES
      ? Math.max(0, best * VOTE_BUCKET + (data.length >> 1))
      : undefined;
  }

  /** Drops the chunks ending before `offset`, and their anchors. */
  #drop(offset: number): void {
    let count = 0;
    while (count < this.#held.length - 1 && this.#held[count].start + this.#held[count].data.length < offset) count++;
    for (const chunk of this.#held.slice(0, count)) for (const hash of chunk.anchors) this.#anchors.delete(hash);
    if (count > 0) this.#held = this.#held.slice(count);
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
      const anchors: number[] = [];
      forEachAnchor(data, (hash, at) => {
        anchors.push(hash);
        this.#anchors.set(hash, this.#anchors.has(hash) ? -1 : start + at);
      });
      this.#held.push({ id: new Uint8Array(createHash('sha256').update(data).digest()), data, start, anchors });
      this.#read += data.length;
    } catch {
      this.#done = true;
    }
  }
}

/** Calls `found` with each anchor of `data`: its gear hash (of the 32 bytes ending there) and position. */
function forEachAnchor(data: Uint8Array, found: (hash: number, at: number) => void): void {
  const gear = GEAR;
  let h = 0;
  for (let i = 0; i < data.length; i++) {
    h = ((h << 1) + gear[data[i]]) | 0;
    if (i >= 31 && (h & ANCHOR_MASK) === 0) found(h, i);
  }
}
