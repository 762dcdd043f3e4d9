import { createReadStream } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { NarwhalError } from '../errors.ts';
import { type Compression, compressionFromNarinfo } from '../compression/compression.ts';
import { parseNarinfo, type NarInfo } from '../nix/narinfo.ts';
import { parseSha256, formatSha256Nix32 } from '../nix/hash.ts';
import { parseStorePathBaseName } from '../nix/store-path.ts';
import type { CacheRecord } from '../metadata/metadata-store.ts';
import { putCacheFile } from '../tenancy/cache-files.ts';
import { ingestNar } from './ingest-nar.ts';
import { putNarinfo } from './put-narinfo.ts';
import type { Narwhal } from '../context/narwhal.ts';

export interface ImportProgress {
  /** Narinfos found in the directory. */
  total: number;
  /** Narinfos dealt with so far (imported, present or failed). */
  done: number;
  imported: number;
  present: number;
  failed: number;
  /** Bytes of NAR files read. */
  bytesRead: number;
  /** Uncompressed NAR bytes ingested. */
  narBytes: number;
}

export interface ImportFailure {
  /** The store path, or the file name when there is none (unparsable narinfo, log, listing). */
  what: string;
  reason: string;
}

export interface ImportResult extends ImportProgress {
  /** Build logs and NAR listings stored. */
  files: number;
  failures: ImportFailure[];
}

export interface ImportOptions {
  /** Called after each narinfo. */
  onProgress?: (progress: Readonly<ImportProgress>) => void;
}

interface Entry {
  hashPart: string;
  text: string;
  info: NarInfo;
}

const NAR_URL_RE = /^nar\/([0-9a-df-np-sv-z]{52})\.nar((?:\.[a-z0-9]+)?)$/;

/**
 * Imports a static binary cache directory as `nix copy --to file://DIR` writes it into `cache`.
 * Every NAR is ingested with the compression its narinfo names (none = bzip2, as in Nix) and must
 * yield the narinfo's NarHash and NarSize; paths are stored references first, with their
 * signatures, by the same checks an upload passes (putNarinfo). A path whose NAR fails, or whose
 * references are neither in the cache nor imported, is reported and not stored; the rest go on.
 * Build logs (`log/<drv>`) and listings (`<hash>.ls`) are stored as files.
 */
export async function importCache(
  nw: Narwhal,
  cache: CacheRecord,
  dir: string,
  options: ImportOptions = {},
): Promise<ImportResult> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    throw new NarwhalError('not-found', `cannot read ${dir}: ${err.code ?? err.message}`);
  });
  if (!names.includes('nix-cache-info'))
    throw new NarwhalError('bad-request', `${dir} is not a binary cache: it has no nix-cache-info`);

  const result: ImportResult = {
    total: 0,
    done: 0,
    imported: 0,
    present: 0,
    failed: 0,
    bytesRead: 0,
    narBytes: 0,
    files: 0,
    failures: [],
  };

  const entries = new Map<string, Entry>();
  for (const name of names.filter((n) => n.endsWith('.narinfo')).sort()) {
    result.total++;
    const hashPart = name.slice(0, -'.narinfo'.length);
    try {
      const text = await readFile(join(dir, name), 'utf8');
      entries.set(hashPart, { hashPart, text, info: parseNarinfo(text) });
    } catch (err) {
      fail(result, name, err);
      result.done++;
    }
  }

  const stored = new Set<string>(); // hash parts now in the cache, found there or imported
  const alreadyThere = await nw.meta.existingPaths(cache.id, [...entries.keys()]);
  for (const entry of order(entries)) {
    const { info, hashPart } = entry;
    try {
      if (alreadyThere.has(hashPart)) {
        result.present++;
      } else {
        await checkReferences(nw, cache, entry, entries, stored);
        await ingestEntry(nw, cache, dir, entry, result);
        await putNarinfo(nw, cache, hashPart, entry.text, 'operator');
        result.imported++;
      }
      stored.add(hashPart);
    } catch (err) {
      fail(result, info.storePath, err);
    }
    result.done++;
    options.onProgress?.(result);
  }

  await importFiles(nw, cache, dir, names, result);
  return result;
}

/** Dependencies before dependents; self-references are ignored and cycles (which Nix never writes) broken. */
function order(entries: ReadonlyMap<string, Entry>): Entry[] {
  const sorted: Entry[] = [];
  const visited = new Set<string>();
  for (const root of entries.values()) {
    if (visited.has(root.hashPart)) continue;
    visited.add(root.hashPart);
    // Iterative DFS: a deep closure must not exhaust the call stack.
    const stack: { entry: Entry; next: number }[] = [{ entry: root, next: 0 }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const refs = top.entry.info.references;
      if (top.next < refs.length) {
        const ref = entries.get(refs[top.next++].slice(0, 32));
        if (ref && !visited.has(ref.hashPart)) {
          visited.add(ref.hashPart);
          stack.push({ entry: ref, next: 0 });
        }
      } else {
        sorted.push(top.entry);
        stack.pop();
      }
    }
  }
  return sorted;
}

async function checkReferences(
  nw: Narwhal,
  cache: CacheRecord,
  entry: Entry,
  entries: ReadonlyMap<string, Entry>,
  stored: ReadonlySet<string>,
): Promise<void> {
  const others = entry.info.references.filter((ref) => parseStorePathBaseName(ref).hashPart !== entry.hashPart);
  const unresolved = others.filter((ref) => !stored.has(ref.slice(0, 32)));
  const inCache = await nw.meta.existingPaths(
    cache.id,
    unresolved.map((ref) => ref.slice(0, 32)),
  );
  const failedHere = unresolved.filter((ref) => entries.has(ref.slice(0, 32)) && !inCache.has(ref.slice(0, 32)));
  if (failedHere.length > 0)
    throw new NarwhalError('missing-reference', `its reference ${failedHere[0]} was not imported`);
  const missing = unresolved.filter((ref) => !inCache.has(ref.slice(0, 32)));
  if (missing.length > 0) {
    throw new NarwhalError(
      'missing-reference',
      `references neither in the cache nor in the directory: ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}`,
    );
  }
}

async function ingestEntry(
  nw: Narwhal,
  cache: CacheRecord,
  dir: string,
  entry: Entry,
  result: ImportResult,
): Promise<void> {
  const { info } = entry;
  const compression = compressionFromNarinfo(info.compression);
  if (compression === undefined)
    throw new NarwhalError('bad-compression', `unsupported Compression ${info.compression}`);
  if (info.url.startsWith('/') || info.url.split('/').includes('..'))
    throw new NarwhalError('bad-narinfo', `URL ${info.url} points outside the directory`);
  const file = join(dir, info.url);
  const size = (
    await stat(file).catch((err: NodeJS.ErrnoException) => {
      throw new NarwhalError('not-found', `cannot read ${info.url}: ${err.code ?? err.message}`);
    })
  ).size;
  // The name Nix gave the NAR, when it is the usual nar/<FileHash>.nar<ext>: recorded so that a
  // client that pushed it finds it by that name, and checked against the file's own hash.
  const match = NAR_URL_RE.exec(info.url);
  const fileHash = info.fileHash && match ? parseSha256(info.fileHash) : undefined;
  const fileHashText = match && `sha256:${match[1]}`;
  const upload =
    fileHash && fileHashText && formatSha256Nix32(fileHash) === fileHashText
      ? { fileHash, fileHashText, suffix: match![2] }
      : undefined;
  const nar = await ingestNar(nw, createReadStream(file), {
    compression: compression as Compression,
    upload,
    uploadedTo: cache.id,
  });
  result.bytesRead += size;
  const narHash = formatSha256Nix32(parseSha256(info.narHash));
  if (nar.narHash !== narHash)
    throw new NarwhalError('hash-mismatch', `${info.url} holds a NAR with hash ${nar.narHash}, not ${narHash}`);
  if (nar.narSize !== info.narSize)
    throw new NarwhalError('hash-mismatch', `${info.url} holds a NAR of ${nar.narSize} bytes, not ${info.narSize}`);
  result.narBytes += nar.narSize;
}

async function importFiles(
  nw: Narwhal,
  cache: CacheRecord,
  dir: string,
  names: string[],
  result: ImportResult,
): Promise<void> {
  const files: { name: string; contentType: string }[] = names
    .filter((n) => n.endsWith('.ls'))
    .map((name) => ({ name, contentType: 'application/json' }));
  if (names.includes('log')) {
    for (const name of await readdir(join(dir, 'log')))
      files.push({ name: `log/${name}`, contentType: 'text/plain; charset=utf-8' });
  }
  for (const { name, contentType } of files) {
    try {
      const file = join(dir, name);
      await putCacheFile(nw, cache, name, createReadStream(file), {
        contentType,
        contentEncoding: sniffEncoding(await readStart(file, 6)),
      });
      result.files++;
    } catch (err) {
      fail(result, name, err);
    }
  }
}

/** The first `length` bytes of the file (fewer when it is shorter). */
async function readStart(file: string, length: number): Promise<Uint8Array> {
  const handle = await open(file);
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(length), 0, length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function fail(result: ImportResult, what: string, err: unknown): void {
  result.failures.push({ what, reason: message(err) });
  result.failed++;
}

/**
 * Nix writes logs and listings compressed as `log-compression` / `ls-compression` say but records
 * the method nowhere in a file:// cache; the magic bytes tell it, and an HTTP client gets it back
 * as the Content-Encoding Nix itself would have sent on upload.
 */
function sniffEncoding(content: Uint8Array): string | null {
  const starts = (...bytes: number[]): boolean => bytes.every((b, i) => content[i] === b);
  if (starts(0x1f, 0x8b)) return 'gzip';
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  if (starts(0x42, 0x5a, 0x68)) return 'bzip2';
  return null;
}

function message(err: unknown): string {
  if (err instanceof NarwhalError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
