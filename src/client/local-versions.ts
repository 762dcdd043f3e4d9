import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { chunkStream } from '../chunking/chunk-stream.ts';
import type { ChunkCache } from './chunk-cache.ts';

/** A NAR on this machine cut into chunks: each chunk's id (hex) and where it ends. */
export interface LocalChunkList {
  storePath: string;
  chunks: { hex: string; end: number }[];
}

/** Local versions chunked per NAR wanted, at most: each costs a dump of the path. */
const MAX_VERSIONS = 2;

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
 * chunked as the server chunks (their chunks put in the cache, so that they serve as delta bases
 * and as chunks that need no fetching). `storeRoot` is the root of a store other than `/`.
 */
export class LocalVersions {
  readonly #storeRoot: string | undefined;
  readonly #chunks: ChunkCache;
  readonly #lists = new Map<string, Promise<LocalChunkList | undefined>>();

  constructor(storeRoot: string | undefined, chunks: ChunkCache) {
    this.#storeRoot = storeRoot;
    this.#chunks = chunks;
  }

  async like(storePath: string): Promise<LocalChunkList[]> {
    const name = basename(storePath).slice(33);
    const wanted = packageName(name);
    const entries = await readdir(join(this.#storeRoot ?? '/', 'nix/store')).catch(() => [] as string[]);
    const candidates = entries
      .filter((e) => /^[0-9a-z]{32}-/.test(e) && e !== basename(storePath) && packageName(e.slice(33)) === wanted)
      .filter((e) => !e.endsWith('.drv') && !e.endsWith('.lock'))
      .sort()
      .reverse();
    const lists: LocalChunkList[] = [];
    for (const entry of candidates) {
      if (lists.length === MAX_VERSIONS) break;
      const list = await this.#list(`/nix/store/${entry}`);
      if (list) lists.push(list);
    }
    return lists;
  }

  #list(storePath: string): Promise<LocalChunkList | undefined> {
    let list = this.#lists.get(storePath);
    if (!list) {
      list = this.#chunk(storePath).catch(() => undefined);
      this.#lists.set(storePath, list);
    }
    return list;
  }

  /** Dumps a valid path (an invalid one fails the dump) and keeps its chunks. */
  async #chunk(storePath: string): Promise<LocalChunkList | undefined> {
    const args = this.#storeRoot
      ? ['--extra-experimental-features', 'nix-command', 'store', 'dump-path', '--store', this.#storeRoot, storePath]
      : ['--dump', storePath];
    const dump = spawn(this.#storeRoot ? 'nix' : 'nix-store', args, { stdio: ['ignore', 'pipe', 'ignore'] });
    const exited = new Promise<number | null>((resolve) => dump.once('close', resolve));
    const chunks: LocalChunkList['chunks'] = [];
    let end = 0;
    for await (const data of chunkStream(dump.stdout)) {
      const hex = createHash('sha256').update(data).digest('hex');
      await this.#chunks.put(hex, data);
      end += data.length;
      chunks.push({ hex, end });
    }
    return (await exited) === 0 && chunks.length > 0 ? { storePath, chunks } : undefined;
  }
}
