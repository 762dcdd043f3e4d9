import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { chunkStream } from '../chunking/chunk-stream.ts';
import { parseNarinfo } from '../nix/narinfo.ts';
import { compareVersions } from '../nix/store-path.ts';
import { fetchChunkList, type Upstream } from './chunk-list.ts';
import { type NarLayout, narBytes, narLayout, OpenFiles, readNarRange } from './store-layout.ts';

/** A NAR on this machine cut into chunks: each chunk's id (hex) and where it ends; its bytes read from the store. */
export interface LocalChunkList {
  storePath: string;
  chunks: { hex: string; end: number }[];
  /** NAR bytes [start, end), read from the path's files (unchecked: the caller checks them against an id). */
  read(start: number, end: number): Promise<Uint8Array>;
}

/** How the local versions used were indexed, for `GET /_narwhal/stats` and the tests. */
export interface VersionFigures {
  /** Chunk lists taken from the server (the same store path's NAR there), the store read only for chunks used. */
  versionsListed: number;
  /** Chunk lists made by reading and chunking the path here (the server does not have it). */
  versionsChunked: number;
  /** Chunk lists found in the index on disk, made by an earlier request or process. */
  versionsRemembered: number;
}

export function emptyVersionFigures(): VersionFigures {
  return { versionsListed: 0, versionsChunked: 0, versionsRemembered: 0 };
}

/** What the index on disk holds per store path. */
interface IndexEntry {
  storePath: string;
  fingerprint: string;
  chunks: { hex: string; end: number }[];
}

/** Local versions indexed per NAR wanted, at most. */
const MAX_VERSIONS = 2;
/** Chunk lists kept in memory, at most (each with its path's layout; the oldest go first). */
const MAX_IN_MEMORY = 32;
/** Index files kept on disk, at most (the oldest go first). */
const MAX_INDEX_FILES = 256;

/**
 * The package name of a store path name, without its version: up to the first `-` followed by a
 * digit, as Nix splits names (`hello-2.12.1` -> `hello`).
 */
export function packageName(name: string): string {
  const at = name.search(/-\d/);
  return at < 0 ? name : name.slice(0, at);
}

/**
 * Store paths on this machine that are other versions (or builds) of the wanted path's package,
 * as chunk lists whose bytes are read from the store when used: nothing is copied. A path's
 * chunk list is the server's for that store path when it has one (its NAR size equal to the
 * path's here), else made by chunking the path here; it is kept in `indexDir` under the
 * fingerprint of the path's layout (names, sizes, modes, targets), so a changed or removed path
 * is not trusted. Every chunk read from the store is checked against its id by the caller.
 */
export class LocalVersions {
  readonly #root: string;
  readonly #indexDir: string;
  readonly #upstream: Upstream;
  readonly #figures: VersionFigures;
  readonly #lists = new Map<string, Promise<LocalChunkList | undefined>>();

  constructor(storeRoot: string | undefined, indexDir: string, upstream: Upstream, figures: VersionFigures) {
    this.#root = storeRoot ?? '/';
    this.#indexDir = indexDir;
    this.#upstream = upstream;
    this.#figures = figures;
  }

  async like(storePath: string): Promise<LocalChunkList[]> {
    const name = basename(storePath).slice(33);
    const wanted = packageName(name);
    const entries = await readdir(join(this.#root, 'nix/store')).catch(() => [] as string[]);
    const candidates = entries
      .filter((e) => /^[0-9a-z]{32}-/.test(e) && e !== basename(storePath) && packageName(e.slice(33)) === wanted)
      .filter((e) => !e.endsWith('.drv') && !e.endsWith('.lock'))
      // The newest version first: its upgrade is the one the server has deltas ready for.
      .sort((a, b) => compareVersions(b.slice(33), a.slice(33)) || (a < b ? 1 : -1));
    const lists: LocalChunkList[] = [];
    for (const entry of candidates) {
      if (lists.length === MAX_VERSIONS) break;
      const list = await this.#list(`/nix/store/${entry}`);
      if (list) lists.push(list);
    }
    return lists;
  }

  /** The path's chunk list; a path that changed since is indexed again (its layout is walked on each request). */
  async #list(storePath: string): Promise<LocalChunkList | undefined> {
    const layout = await narLayout(this.#root, storePath);
    if (!layout || layout.size === 0) return undefined;
    const key = `${storePath} ${layout.fingerprint}`;
    let list = this.#lists.get(key);
    if (!list) {
      list = this.#index(storePath, layout).catch(() => undefined);
      this.#lists.set(key, list);
      if (this.#lists.size > MAX_IN_MEMORY) this.#lists.delete(this.#lists.keys().next().value!);
    }
    return list;
  }

  async #index(storePath: string, layout: NarLayout): Promise<LocalChunkList | undefined> {
    const file = join(this.#indexDir, `${basename(storePath)}.json`);
    const files = new OpenFiles();
    const read = (start: number, end: number) => readNarRange(this.#root, storePath, layout, start, end, files);
    const kept = await readFile(file, 'utf8')
      .then((text) => JSON.parse(text) as IndexEntry)
      .catch(() => undefined);
    if (
      kept?.storePath === storePath &&
      kept.fingerprint === layout.fingerprint &&
      kept.chunks.at(-1)?.end === layout.size
    ) {
      this.#figures.versionsRemembered++;
      return { storePath, chunks: kept.chunks, read };
    }
    let chunks = await this.#serverList(storePath, layout.size);
    if (chunks) {
      this.#figures.versionsListed++;
    } else {
      chunks = [];
      let end = 0;
      for await (const data of chunkStream(narBytes(this.#root, storePath, layout))) {
        end += data.length;
        chunks.push({ hex: createHash('sha256').update(data).digest('hex'), end });
      }
      this.#figures.versionsChunked++;
    }
    await this.#keep(file, { storePath, fingerprint: layout.fingerprint, chunks });
    return { storePath, chunks, read };
  }

  /** The server's chunk list of this store path, when it has the path with a NAR of this size. */
  async #serverList(storePath: string, narSize: number): Promise<{ hex: string; end: number }[] | undefined> {
    const hashPart = basename(storePath).slice(0, 32);
    const answer = await fetch(`${this.#upstream.cacheUrl}/${hashPart}.narinfo`, { headers: this.#upstream.headers });
    if (!answer.ok) return undefined;
    const info = parseNarinfo(await answer.text());
    if (info.storePath !== storePath || info.narSize !== narSize) return undefined;
    const chunks = await fetchChunkList(this.#upstream, info.narHash.slice('sha256:'.length)).catch(() => undefined);
    if (!chunks || chunks.at(-1)?.end !== narSize) return undefined;
    return chunks.map((c) => ({ hex: Buffer.from(c.id).toString('hex'), end: c.end }));
  }

  async #keep(file: string, entry: IndexEntry): Promise<void> {
    await mkdir(this.#indexDir, { recursive: true });
    const temp = `${file}.tmp-${process.pid}`;
    await writeFile(temp, JSON.stringify(entry));
    await rename(temp, file);
    const names = (await readdir(this.#indexDir)).filter((n) => n.endsWith('.json'));
    if (names.length <= MAX_INDEX_FILES) return;
    const aged = await Promise.all(
      names.map(async (n) => ({ n, used: (await stat(join(this.#indexDir, n)).catch(() => undefined))?.mtimeMs ?? 0 })),
    );
    aged.sort((a, b) => a.used - b.used);
    for (const { n } of aged.slice(0, names.length - MAX_INDEX_FILES))
      await rm(join(this.#indexDir, n), { force: true });
  }
}
