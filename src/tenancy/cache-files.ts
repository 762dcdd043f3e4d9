/**
 * Cache files: build logs (`log/<drv>`), NAR listings (`<hash>.ls`), realisations
 * (`realisations/...doi`, `build-trace-v2/.../<out>.doi`) and debuginfo links, stored as uploaded
 * and served back the same way, streamed both ways.
 */
import { NarwhalError } from '../errors.ts';
import type { CacheFile, CacheRecord } from '../metadata/metadata-store.ts';
import { fixedPieces } from './fixed-pieces.ts';
import type { Narwhal } from '../context/narwhal.ts';

/** Largest build log or listing accepted. */
export const MAX_CACHE_FILE_SIZE = 64 * 1024 * 1024;
/** Largest realisation or debuginfo link: small JSON records, checked whole in memory. */
export const MAX_JSON_FILE_SIZE = 1024 * 1024;
/** Files are stored, and read back, in pieces of this size, so memory never grows with a file. */
export const FILE_PIECE_SIZE = 256 * 1024;

/** What a file is served with: the Content-Type and Content-Encoding the client uploaded it with. */
export type CacheFileType = Pick<CacheFile, 'contentType' | 'contentEncoding'>;

/** Realisations and debuginfo links: JSON records, checked as such. */
function isJsonRecord(name: string): boolean {
  return name.endsWith('.doi') || name.endsWith('.debug');
}

/** The largest upload accepted under this name. */
export function cacheFileLimit(name: string): number {
  return isJsonRecord(name) ? MAX_JSON_FILE_SIZE : MAX_CACHE_FILE_SIZE;
}

/**
 * Stores the body as it arrives, piece by piece, under a new content; only once all of it has
 * arrived and passed the checks does the file switch to it. On any failure (too large, not
 * JSON, body cut off) the previous file stays as it was and the new pieces are deleted.
 */
export async function putCacheFile(
  nw: Narwhal,
  cache: CacheRecord,
  name: string,
  body: AsyncIterable<Uint8Array>,
  type: CacheFileType,
): Promise<void> {
  const limit = cacheFileLimit(name);
  const keep = isJsonRecord(name) && (type.contentEncoding === null || type.contentEncoding === 'identity');
  const kept: Uint8Array[] = [];
  const contentId = await nw.meta.startFileUpload();
  try {
    let size = 0;
    let seq = 0;
    for await (const piece of fixedPieces(body, FILE_PIECE_SIZE)) {
      size += piece.length;
      if (size > limit) throw new NarwhalError('too-large', `${name} is larger than ${limit} bytes`);
      if (keep) kept.push(piece);
      await nw.meta.appendFilePiece(contentId, seq++, piece);
    }
    if (keep) checkJson(name, Buffer.concat(kept));
    await nw.meta.commitFile(cache.id, name, { contentId, size, ...type });
  } catch (err) {
    // What a failed discard leaves, GC removes (deleteAbandonedFileContents).
    await nw.meta.discardFileUpload(contentId).catch(() => undefined);
    throw err;
  }
}

export async function getCacheFile(nw: Narwhal, cache: CacheRecord, name: string): Promise<CacheFile | undefined> {
  return nw.meta.getFile(cache.id, name);
}

/**
 * The file's content, one piece per step: the next piece is read only when the consumer asks
 * for it. Fails when the file is replaced meanwhile (the old content's pieces are deleted).
 */
export async function* readCacheFile(nw: Narwhal, file: CacheFile): AsyncGenerator<Uint8Array> {
  let read = 0;
  for (let seq = 0; read < file.size; seq++) {
    const piece = await nw.meta.getFilePiece(file.contentId, seq);
    if (!piece) throw new NarwhalError('unavailable', 'the file was replaced while it was being read');
    read += piece.length;
    if (read > file.size)
      throw new NarwhalError('internal', `the stored pieces of content ${file.contentId} exceed its size`);
    yield piece;
  }
}

function checkJson(name: string, content: Buffer): void {
  try {
    JSON.parse(content.toString('utf8'));
  } catch {
    throw new NarwhalError('bad-request', `${name} must be a JSON document`);
  }
}
