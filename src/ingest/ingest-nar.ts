import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NarwhalError } from '../errors.ts';
import { DEFAULT_CHUNKER_PARAMS } from '../chunking/chunker.ts';
import { WASM_BLOCK_BYTES } from '../chunking/wasm-chunker.ts';
import { createDecompressor, sniffCompression } from '../compression/decompress.ts';
import type { Compression } from '../compression/compression.ts';
import { NarValidator } from '../nix/nar-validator.ts';
import { formatSha256Nix32 } from '../nix/hash.ts';
import type { NarRecord } from '../metadata/metadata-store.ts';
import { commitIngestedNar, IngestedChunks } from './nar-commit.ts';
import { NarChunkWriter, ingestBlocks } from './nar-chunk-writer.ts';
import type { SharedSlots } from './shared-slots.ts';
import { StreamChunker, type BlockCuts } from './stream-chunker.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { scavengerByVolume } from '../runtime/v8-scavenge.ts';

export interface IngestRequest {
  /** How the body is compressed; 'auto' tells gzip from an uncompressed NAR by its first bytes. */
  compression: Compression | 'auto';
  /**
   * The name the client uploads it under (`nar/<fileHash>.nar<suffix>`): the body's sha256 must
   * match fileHash, and the name is recorded so that a HEAD on it finds the NAR.
   */
  upload?: { fileHash: Uint8Array; fileHashText: string; suffix: string };
  /** The id of the cache it is uploaded to, which may then name it in narinfos (nar-visibility.ts). */
  uploadedTo?: number;
  /** The NarHash (`sha256:` + nix32) and NarSize the NAR must have, or nothing is committed (pull-through). */
  expected?: { narHash: string; narSize: number };
  /** Called once the whole NAR arrived and passed every check, before it is made durable and committed. */
  verified?: () => void;
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

/**
 * A young-generation collection of the main thread every so many bytes of NAR ingested, for all
 * uploads together. A body passes through the main thread as buffers of 64-128 KiB (socket reads,
 * decompressed output) that are dead once copied into a block, but V8 collects them by their JS
 * objects, which are small: it left 40-100 MB of them waiting (docs/benchmarks.md, "Delta memory
 * and serving speed").
 */
const collectBodyGarbage = scavengerByVolume(16 * 1024 * 1024);

/** Block size handed to the NAR checks and the chunker. */
const COALESCE_BYTES = WASM_BLOCK_BYTES;

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

  const blocks = ingestBlocks(COALESCE_BYTES);
  const chunker = new StreamChunker(blocks);
  const validator = new NarValidator();
  let narSize = 0;
  const checkNar = (data: Uint8Array): void => {
    narSize += data.length;
    if (narSize > nw.options.maxNarSize) {
      throw new NarwhalError('too-large', `NAR exceeds the size limit of ${nw.options.maxNarSize} bytes`);
    }
    validator.push(data);
    collectBodyGarbage(data.length);
  };

  const chunks = new IngestedChunks();
  const writer = new NarChunkWriter(nw);
  const store = async (data: Uint8Array, id: Uint8Array): Promise<void> => {
    const { chunk, first } = chunks.add(id, data.length);
    if (first) await writer.write(chunk, data);
  };
  // An uncompressed body is the NAR itself: its hash is the NarHash, computed once.
  const compression = request.compression === 'auto' ? await sniffBody(body) : request.compression;
  const plain = compression === 'none';
  const stages = plain ? [body] : [body, hashCompressed, createDecompressor(compression)];
  let narHash: Buffer;
  try {
    await pipeline(...(stages as [Readable]), async (source: AsyncIterable<Uint8Array>) => {
      const tail = await cutAndStore(coalesce(source, blocks), blocks, chunker, checkNar, store);
      validator.end();
      const { streamHash, tailId } = await chunker.end();
      if (tailId) await store(tail, tailId);
      narHash = Buffer.from(streamHash);
    });
    await writer.finish();
  } catch (err) {
    await Promise.all([writer.abandon(), chunker.abandon()]);
    throw err;
  }

  if (request.upload && !(plain ? narHash! : fileHasher.digest()).equals(request.upload.fileHash)) {
    throw new NarwhalError(
      'hash-mismatch',
      `the body does not hash to ${request.upload.fileHashText}, the hash in its URL`,
    );
  }
  if (
    request.expected &&
    (request.expected.narSize !== narSize || request.expected.narHash !== formatSha256Nix32(narHash!))
  ) {
    throw new NarwhalError('hash-mismatch', `the NAR is not the one with NarHash ${request.expected.narHash}`);
  }
  request.verified?.();
  return commitIngestedNar(nw, chunks, {
    narHash: formatSha256Nix32(narHash!),
    narSize,
    upload: request.upload && {
      fileHash: request.upload.fileHashText,
      suffix: request.upload.suffix,
      fileSize: plain ? narSize : fileSize,
    },
    uploadedTo: request.uploadedTo,
    ingestStartedAt: startedAt,
  });
}

/** Blocks handed to the chunking thread whose chunks are not stored yet, at most. */
const CHUNKING_AHEAD = 3;

/**
 * Hands each block to the chunking thread as soon as it is checked, and meanwhile stores the
 * chunks of the blocks already cut, in order, as their cuts come back. A chunk inside one block
 * is stored from where it lies; one that straddles blocks is gathered into `carry`. Returns the
 * bytes after the last cut.
 */
async function cutAndStore(
  source: AsyncIterable<Uint8Array>,
  pool: SharedSlots,
  chunker: StreamChunker,
  check: (block: Uint8Array) => void,
  store: (data: Uint8Array, id: Uint8Array) => Promise<void>,
): Promise<Uint8Array> {
  const carry = new Uint8Array(DEFAULT_CHUNKER_PARAMS.max);
  let carried = 0;
  let failed = false;
  const storeBlock = async (block: Uint8Array, cutting: Promise<BlockCuts>): Promise<void> => {
    const { cuts, ids } = await cutting;
    if (failed) return;
    let pos = 0;
    for (let i = 0; i < cuts.length; i++) {
      const cut = cuts[i];
      let data = block.subarray(pos, cut);
      if (carried > 0) {
        carry.set(data, carried);
        data = carry.subarray(0, carried + data.length);
        carried = 0;
      }
      await store(data, ids.subarray(32 * i, 32 * i + 32));
      pos = cut;
    }
    carry.set(block.subarray(pos), carried);
    carried += block.length - pos;
  };

  // One promise per block not yet known stored; each block is stored after the one before it.
  const unstored: Promise<void>[] = [];
  let stored: Promise<void> = Promise.resolve();
  try {
    for await (const block of source) {
      check(block);
      const release = pool.retain(block);
      const cutting = chunker.push(block);
      cutting.catch(() => undefined); // awaited in turn below; a failure before then is not unhandled
      stored = stored.then(() => storeBlock(block, cutting)).finally(() => release?.());
      stored.catch(() => undefined);
      unstored.push(stored);
      if (unstored.length > CHUNKING_AHEAD) await unstored.shift();
    }
    await stored;
  } catch (err) {
    failed = true;
    await stored.catch(() => undefined);
    throw err;
  }
  return carry.subarray(0, carried);
}

/**
 * Request bodies arrive in pieces of 16-64 KiB; each piece costs a trip through every stage
 * below, so pieces are gathered into blocks first, which ingests faster (measured:
 * docs/benchmarks.md, 'Ingest'). The blocks are shared memory, so the chunking thread
 * and the chunk writer's threads read them where they lie; whoever needs a block after the
 * consumer asks for the next one holds it (SharedSlots.retain), and this lets go of it then.
 * When every shared block is held (by slow uploads, say) a block of its own is made instead of
 * waiting for one, which those threads are then handed copies of: so no upload waits on another.
 */
async function* coalesce(source: AsyncIterable<Uint8Array>, pool: SharedSlots): AsyncGenerator<Uint8Array> {
  const size = pool.slotBytes;
  let block: { bytes: Uint8Array; release: () => void } | undefined;
  let filled = 0;
  try {
    for await (const data of source) {
      let pos = 0;
      while (pos < data.length) {
        block ??= pool.tryTake() ?? { bytes: new Uint8Array(size), release: () => {} };
        const n = Math.min(size - filled, data.length - pos);
        block.bytes.set(data.subarray(pos, pos + n), filled);
        filled += n;
        pos += n;
        if (filled === size) {
          yield block.bytes;
          block.release();
          block = undefined;
          filled = 0;
        }
      }
    }
    if (block && filled > 0) yield block.bytes.subarray(0, filled);
  } finally {
    block?.release();
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
