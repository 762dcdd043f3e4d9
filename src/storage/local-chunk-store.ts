import { execFile } from 'node:child_process';
import { closeSync, fsyncSync, openSync, statSync } from 'node:fs';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NarwhalError } from '../errors.ts';
import { castrKey, type ChunkStore, type StoredChunkInfo } from './chunk-store.ts';
import { WorkerPool } from './worker-pool.ts';
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
export class LocalChunkStore implements ChunkStore {
  readonly root: string;
  readonly #writers = new WorkerPool<WriteRequest, WriteResult>(new URL('./local-write-worker.ts', import.meta.url));
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
        throw new NarwhalError('chunk-missing', `chunk ${hex(id)} is missing from the chunk store`);
      }
      throw err;
    }
  }

  async storedSize(id: Uint8Array): Promise<number | undefined> {
    return statSync(this.path(id), { throwIfNoEntry: false })?.size;
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
    // A buffer of its own is moved to the worker rather than copied.
    const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
    let storedSize: number;
    try {
      storedSize = await this.#writers.run({ dir, path, data, level }, own ? [data.buffer as ArrayBuffer] : []);
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
        if (!name.endsWith('.cacnk') || !HEX_ID.test(idHex)) continue;
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

/**
 * syncfs(2) through coreutils' `sync --file-system` (Node has no binding for it); where that is
 * unavailable, an fsync of each file and directory written.
 */
async function syncFileSystem(root: string, paths: string[]): Promise<void> {
  try {
    await execFileAsync('sync', ['--file-system', root]);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as { code?: unknown }).code !== 1) throw err;
  }
  for (const path of new Set(paths)) {
    const fd = openSync(path, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

function mapWriteError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new NarwhalError('storage-full', 'the chunk store is full', { cause: err });
  return err;
}

function hex(id: Uint8Array): string {
  return Buffer.from(id).toString('hex');
}
