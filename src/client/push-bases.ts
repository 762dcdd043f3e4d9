import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { chunkStream } from '../chunking/chunk-stream.ts';
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

/**
 * The previous version's NAR, dumped and chunked alongside the NAR pushed, giving for each new
 * chunk the PLACE_CHUNKS old chunks around the same relative offset. Offsets asked for only
 * grow, so it keeps a window of a few chunks: memory does not grow with the NAR's size.
 */
export class PlaceWindow {
  readonly #oldSize: number;
  readonly #newSize: number;
  readonly #dump: ChildProcess;
  readonly #source: AsyncIterator<Uint8Array>;
  /** Old chunks held, in order; the first starts at #firstStart. */
  #held: (OldChunk & { start: number })[] = [];
  #read = 0;
  #done = false;

  constructor(previous: PreviousVersion, newSize: number) {
    this.#oldSize = previous.narSize;
    this.#newSize = newSize;
    this.#dump = spawn('nix-store', ['--dump', previous.path], { stdio: ['ignore', 'pipe', 'ignore'] });
    // Piped at once: output that no one reads when the child exits is thrown away (nar-push.ts).
    this.#source = chunkStream(this.#dump.stdout!.pipe(new PassThrough()))[Symbol.asyncIterator]();
  }

  /** The old chunks around the place of a new chunk starting at `start` (none if the dump failed). */
  async around(start: number): Promise<OldChunk[]> {
    const centre = Math.floor((start / this.#newSize) * this.#oldSize);
    const half = PLACE_CHUNKS >> 1;
    let at = this.#indexOf(centre);
    while (!this.#done && (at < 0 || this.#held.length - at <= half)) {
      await this.#pull();
      at = this.#indexOf(centre);
    }
    if (this.#held.length === 0) return [];
    if (at < 0) at = this.#held.length - 1;
    // Chunks before the window will never be asked for again.
    const keepFrom = Math.max(0, at - PLACE_CHUNKS);
    if (keepFrom > 0) {
      this.#held = this.#held.slice(keepFrom);
      at -= keepFrom;
    }
    const from = Math.max(0, Math.min(at - half, this.#held.length - PLACE_CHUNKS));
    return this.#held.slice(from, from + PLACE_CHUNKS);
  }

  close(): void {
    this.#dump.kill();
  }

  /** The held chunk containing `offset`, or -1 when not read yet. */
  #indexOf(offset: number): number {
    for (let i = this.#held.length - 1; i >= 0; i--) {
      const chunk = this.#held[i];
      if (chunk.start <= offset) return offset < chunk.start + chunk.data.length ? i : -1;
    }
    return this.#held.length > 0 ? 0 : -1;
  }

  async #pull(): Promise<void> {
    try {
      const next = await this.#source.next();
      if (next.done) {
        this.#done = true;
        return;
      }
      const data = next.value;
      this.#held.push({ id: new Uint8Array(createHash('sha256').update(data).digest()), data, start: this.#read });
      this.#read += data.length;
    } catch {
      this.#done = true;
    }
  }
}
