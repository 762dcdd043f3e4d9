import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { link, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NarwhalError } from '../errors.ts';
import { castrKey, chunkHex, type ChunkStore, type StoredChunkInfo } from './chunk-store.ts';
import type {
  ConditionalDelete,
  FreeSpace,
  LeftoverCleanup,
  RemovedLeftovers,
  WritePreparation,
} from './chunk-store-capabilities.ts';
import { WorkerPool, transferable } from '../runtime/worker-pool.ts';
import { freeBytesAt, ignoreMissing, mapWriteError, syncPath } from '../runtime/local-fs.ts';
import type { WriteRequest, WriteResult } from './local-write-worker.ts';

const execFileAsync = promisify(execFile);
const HEX_ID = /^[0-9a-f]{64}$/;

/**
 * Chunks as files in casync's castr layout (`<root>/<4hex>/<id>.cacnk`), so casync and desync
 * can read the directory directly. A put writes a temporary name and renames it, so readers see
 * the whole file or none. Durability comes from `flush()`, one syncfs(2) of the file system for
 * everything written before it, which the caller runs before committing metadata that names the
 * chunks: far cheaper than an fsync per chunk. Until then a chunk may be lost in a power cut,
 * which is why ingest rewrites chunks that no committed NAR vouches for.
 *
 * Compression and file creation run on worker threads with synchronous calls: creating a file
 * costs a few hundred microseconds on ext4, and going through libuv's thread pool six times per
 * chunk cost more than the work itself.
 */
export class LocalChunkStore implements ChunkStore, FreeSpace, WritePreparation, ConditionalDelete, LeftoverCleanup {
  readonly root: string;
  /**
   * One writer per core but the main thread's, which chunks and hashes. On 2 cores one writer
   * ingested as fast as two (file creation serializes on the directory and the journal) with a
   * lower peak RSS (measured: docs/benchmarks.md, 'Ingest').
   */
  readonly #writers = new WorkerPool<WriteRequest, WriteResult>(
    new URL('./local-write-worker.ts', import.meta.url),
    Math.max(1, availableParallelism() - 1),
  );
  #unsynced: string[] = [];
  #syncing: Promise<void> | undefined;
  #syncAgain: Promise<void> | undefined;

  constructor(root: string) {
    this.root = root;
  }

  path(id: Uint8Array): string {
    return join(this.root, castrKey(id));
  }

  async get(id: Uint8Array): Promise<Uint8Array> {
    try {
      return await readFile(this.path(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NarwhalError('chunk-missing', `chunk ${chunkHex(id)} is missing from the chunk store`);
      }
      throw err;
    }
  }

  async storedSize(id: Uint8Array): Promise<number | undefined> {
    return statSync(this.path(id), { throwIfNoEntry: false })?.size;
  }

  freeBytes(): Promise<number> {
    return freeBytesAt(this.root);
  }

  prepare(): void {
    this.#writers.start();
  }

  async put(id: Uint8Array, stored: Uint8Array): Promise<void> {
    await this.#write(id, stored, null);
  }

  encodeAndPut(id: Uint8Array, data: Uint8Array, level: number): Promise<number> {
    return this.#write(id, data, level);
  }

  async #write(id: Uint8Array, data: Uint8Array, level: number | null): Promise<number> {
    const path = this.path(id);
    const dir = join(this.root, castrKey(id).slice(0, 4));
    let storedSize: number;
    try {
      storedSize = await this.#writers.run({ dir, path, data, level }, transferable(data));
    } catch (err) {
      throw mapWriteError(err);
    }
    this.#unsynced.push(path, dir);
    return storedSize;
  }

  /** Makes every put that has returned durable. Concurrent calls share one sync. */
  async flush(): Promise<void> {
    if (this.#syncing) {
      // A sync already running may have started before our writes: wait for the next one.
      this.#syncAgain ??= this.#syncing.then(() => {
        this.#syncAgain = undefined;
        return this.flush();
      });
      return this.#syncAgain;
    }
    const files = this.#unsynced;
    this.#unsynced = [];
    if (files.length === 0) return;
    this.#syncing = syncFileSystem(this.root, files).finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  async delete(id: Uint8Array): Promise<void> {
    await rm(this.path(id), { force: true });
  }

  /**
   * Moves the file aside (an atomic rename), then looks at what it moved: an old file is
   * deleted; one written after `notAfter` (a concurrent put that landed first) is put back. A put
   * that lands after the rename is untouched. A crash in between leaves `<name>.<random>.gc`,
   * which removeLeftovers puts back.
   */
  async deleteUnlessNewer(id: Uint8Array, notAfter: number): Promise<number | undefined> {
    const path = this.path(id);
    const aside = `${path}.${randomBytes(6).toString('hex')}${ASIDE_SUFFIX}`;
    try {
      await rename(path, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const info = await stat(aside);
    if (info.mtimeMs <= notAfter) {
      await rm(aside, { force: true });
      return info.size;
    }
    await putBack(aside, path);
    return undefined;
  }

  async removeLeftovers(notAfter: number): Promise<RemovedLeftovers> {
    const removed: RemovedLeftovers = { files: 0, bytes: 0 };
    for (const prefix of await this.#prefixes()) {
      const dir = join(this.root, prefix);
      for (const name of await readdir(dir)) {
        if (name.endsWith(ASIDE_SUFFIX)) {
          await putBack(join(dir, name), join(dir, name.slice(0, name.indexOf('.cacnk') + '.cacnk'.length)));
        } else if (name.endsWith('.tmp')) {
          const info = await stat(join(dir, name)).catch(ignoreMissing);
          if (info && info.mtimeMs <= notAfter) {
            await rm(join(dir, name), { force: true });
            removed.files++;
            removed.bytes += info.size;
          }
        }
      }
    }
    return removed;
  }

  async #prefixes(): Promise<string[]> {
    try {
      return (await readdir(this.root)).filter((name) => /^[0-9a-f]{4}$/.test(name)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async *list(): AsyncIterable<StoredChunkInfo> {
    let prefixes: string[];
    try {
      prefixes = await readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const prefix of prefixes.sort()) {
      if (!/^[0-9a-f]{4}$/.test(prefix)) continue;
      for (const name of (await readdir(join(this.root, prefix))).sort()) {
        const idHex = name.slice(0, -'.cacnk'.length);
        if (!name.endsWith('.cacnk') || !HEX_ID.test(idHex) || !idHex.startsWith(prefix)) continue;
        const info = await stat(join(this.root, prefix, name)).catch(() => undefined);
        if (info) yield { id: Buffer.from(idHex, 'hex'), storedSize: info.size, modifiedAt: info.mtimeMs };
      }
    }
  }

  async close(): Promise<void> {
    await this.flush();
    await this.#writers.close();
  }
}

/** Below this many files an fsync each is cheaper than starting `sync` (docs/benchmarks.md, 'Start-up'). */
const FSYNC_EACH_BELOW = 64;

/**
 * Makes the written files and their directories durable: an fsync of each when they are few,
 * else one syncfs(2) through coreutils' `sync --file-system` (Node has no binding for it), with
 * fsync of each as the fallback where that command is missing.
 */
async function syncFileSystem(root: string, paths: string[]): Promise<void> {
  const unique = [...new Set(paths)];
  if (unique.length >= FSYNC_EACH_BELOW) {
    try {
      await execFileAsync('sync', ['--file-system', root]);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as { code?: unknown }).code !== 1) throw err;
    }
  }
  await Promise.all(unique.map(fsyncPath));
}

async function fsyncPath(path: string): Promise<void> {
  // A file deleted since it was written (GC removes the chunks of failed uploads) needs no sync.
  await syncPath(path).catch(ignoreMissing);
}

/** Suffix of a chunk file deleteUnlessNewer has moved aside. */
const ASIDE_SUFFIX = '.gc';

/** Puts a moved-aside chunk back under its name, unless a newer copy already took it; then drops the aside. */
async function putBack(aside: string, path: string): Promise<void> {
  try {
    await link(aside, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  await rm(aside, { force: true });
}
