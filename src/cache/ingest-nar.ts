import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NarwhalError } from '../errors.ts';
import { chunkViews } from '../chunking/chunk-stream.ts';
import { createDecompressor, sniffCompression } from '../compression/decompress.ts';
import type { Compression } from '../compression/compression.ts';
import { NarValidator } from '../nix/nar-validator.ts';
import { formatSha256Nix32 } from '../nix/hash.ts';
import type { NarRecord, NewChunk } from '../metadata/metadata-store.ts';
import { chunkId } from './chunk-codec.ts';
import { ChunkTableBuilder } from './chunk-table.ts';
import { ChunkWriter } from './chunk-writer.ts';
import type { Narwhal } from './narwhal.ts';

export interface IngestRequest {
  /** How the body is compressed; 'auto' tells gzip from an uncompressed NAR by its first bytes. */
  compression: Compression | 'auto';
  /**
   * The name the client uploads it under (`nar/<fileHash>.nar<suffix>`): the body's sha256 must
   * match fileHash, and the name is recorded so that a HEAD on it finds the NAR.
   */
  upload?: { fileHash: Uint8Array; fileHashText: string; suffix: string };
}

/**
 * Ingests one NAR in a single streaming pass: decompress, validate the grammar, hash, cut into
 * chunks, store the chunks not yet stored. The NAR is committed only after the whole body arrived
 * and passed every check; a failure leaves no NAR record (chunks already written are orphans
 * that GC collects). It runs under this process's ingest hold, so that GC spares the chunks it
 * writes or reuses until it has committed.
 */
export async function ingestNar(nw: Narwhal, body: Readable, request: IngestRequest): Promise<NarRecord> {
  const startedAt = Date.now();
  const release = await nw.holds.begin();
  try {
    return await ingestHeld(nw, body, request, startedAt);
  } finally {
    release();
  }
}

/** Block size handed to the NAR checks and the chunker. */
const COALESCE_BYTES = 1024 * 1024;

async function ingestHeld(nw: Narwhal, body: Readable, request: IngestRequest, startedAt: number): Promise<NarRecord> {
  const fileHasher = createHash('sha256');
  let fileSize = 0;
  const hashCompressed = new Transform({
    transform(data: Buffer, _encoding, done) {
      fileHasher.update(data);
      fileSize += data.length;
      done(null, data);
    },
  });

  const narHasher = createHash('sha256');
  const validator = new NarValidator();
  let narSize = 0;
  const checkNar = (data: Uint8Array): void => {
    narSize += data.length;
    if (narSize > nw.options.maxNarSize) {
      throw new NarwhalError('too-large', `NAR exceeds the size limit of ${nw.options.maxNarSize} bytes`);
    }
    validator.push(data);
    narHasher.update(data);
  };

  const table = new ChunkTableBuilder();
  const distinct = new Map<string, NewChunk>();
  const sequence: NewChunk[] = [];
  const writer = new ChunkWriter(nw);
  // An uncompressed body is the NAR itself: its hash is the NarHash, computed once.
  const compression = request.compression === 'auto' ? await sniffBody(body) : request.compression;
  const plain = compression === 'none';
  const stages = plain ? [body] : [body, hashCompressed, createDecompressor(compression)];
  try {
    await pipeline(...(stages as [Readable]), async (source: AsyncIterable<Uint8Array>) => {
      let end = 0;
      for await (const data of chunkViews(tap(coalesce(source, COALESCE_BYTES), checkNar))) {
        const id = chunkId(data);
        end += data.length;
        table.add(end, id);
        const key = Buffer.from(id).toString('hex');
        let chunk = distinct.get(key);
        if (!chunk) {
          chunk = { id, size: data.length, storedSize: 0 };
          distinct.set(key, chunk);
          await writer.write(chunk, data);
        }
        sequence.push(chunk);
      }
      validator.end();
    });
    await writer.finish();
  } catch (err) {
    await writer.abandon();
    throw err;
  }

  const narHash = narHasher.digest();
  if (request.upload && !(plain ? narHash : fileHasher.digest()).equals(request.upload.fileHash)) {
    throw new NarwhalError('hash-mismatch', `the body does not hash to ${request.upload.fileHashText}, the hash in its URL`);
  }
  await nw.chunks.flush();
  return nw.meta.commitNar({
    narHash: formatSha256Nix32(narHash),
    narSize,
    storedSize: sequence.reduce((sum, chunk) => sum + chunk.storedSize, 0),
    chunkTable: table.finish(),
    chunks: [...distinct.values()],
    upload: request.upload && { fileHash: request.upload.fileHashText, suffix: request.upload.suffix, fileSize: plain ? narSize : fileSize },
    ingestStartedAt: startedAt,
  });
}

/**
 * Request bodies arrive in pieces of 16-64 KiB; each piece costs a trip through every stage
 * below, so pieces are gathered into blocks of at least `size` bytes first (measured: a 32 MB NAR
 * ingests in 296 ms from 1 MiB pieces, 390 ms from 64 KiB ones). One block is reused: the stages
 * below are done with a block when they ask for the next (the chunker copies what it keeps).
 */
async function* coalesce(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  const block = new Uint8Array(size);
  let filled = 0;
  for await (const data of source) {
    if (filled === 0 && data.length >= size) {
      yield data;
      continue;
    }
    let pos = 0;
    while (pos < data.length) {
      const n = Math.min(size - filled, data.length - pos);
      block.set(data.subarray(pos, pos + n), filled);
      filled += n;
      pos += n;
      if (filled === size) {
        yield block;
        filled = 0;
      }
    }
  }
  if (filled > 0) yield block.subarray(0, filled);
}

async function* tap(source: AsyncIterable<Uint8Array>, inspect: (data: Uint8Array) => void): AsyncGenerator<Uint8Array> {
  for await (const data of source) {
    inspect(data);
    yield data;
  }
}

/**
 * Tells gzip from a plain NAR (both are uploaded to a bare `.nar` URL) by the body's first bytes,
 * which are put back for the pipeline to read.
 */
async function sniffBody(body: Readable): Promise<Compression> {
  const head: Buffer[] = [];
  let length = 0;
  for (;;) {
    const part = body.read() as Buffer | null;
    if (part !== null) {
      head.push(part);
      length += part.length;
      if (length >= 2) break;
      continue;
    }
    if (body.readableEnded || body.destroyed) break;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        body.off('readable', done).off('end', done).off('error', done).off('close', done);
        resolve();
      };
      body.on('readable', done).on('end', done).on('error', done).on('close', done);
    });
  }
  const joined = Buffer.concat(head);
  if (joined.length > 0) body.unshift(joined);
  return sniffCompression(joined);
}
