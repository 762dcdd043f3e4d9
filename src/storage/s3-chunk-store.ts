import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type GetObjectCommandOutput,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { setTimeout as sleep } from 'node:timers/promises';
import { NarwhalError } from '../errors.ts';
import { castrKey, chunkHex, type ChunkStore, type StoredChunkInfo } from './chunk-store.ts';
import type { S3Location } from './storage-url.ts';
import { WorkerPool, transferable } from '../runtime/worker-pool.ts';
import type { EncodeRequest, EncodeResult } from './zstd-encode-worker.ts';

/** Requests per operation, first included; the SDK backs off exponentially with jitter between them. */
export const S3_MAX_ATTEMPTS = 5;
/** Reads of an object whose body broke off (the SDK retries only until the headers arrive). */
const BODY_ATTEMPTS = 3;
/** No chunk comes near this (256 KiB at most before compression): a bigger object is not ours. */
const MAX_STORED_CHUNK = 4 * 1024 * 1024;
const CHUNK_NAME = /^([0-9a-f]{4})\/([0-9a-f]{64})\.cacnk$/;

export interface S3ChunkStoreOptions {
  /** Overrides S3_MAX_ATTEMPTS. */
  maxAttempts?: number;
}

/**
 * Chunks as objects `<prefix>/<4hex>/<id>.cacnk` in an S3 bucket (casync's castr layout under a
 * prefix), through the AWS SDK, so any S3-compatible service works: custom endpoint, region,
 * path-style addressing, credentials from the SDK's default chain (AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY first). Only core S3 operations are used (PutObject, GetObject,
 * HeadObject, DeleteObject, ListObjectsV2, HeadBucket) and no optional checksum headers, which
 * older or non-AWS servers may not know. A PutObject is atomic and durable once it succeeds, so
 * `flush` has nothing to do. Compression runs on worker threads: the main thread only does I/O.
 * It has none of the capabilities of chunk-store-capabilities.ts: S3 has no portable conditional
 * delete, a PutObject leaves nothing behind to clean up, and an object holds one chunk.
 */
export class S3ChunkStore implements ChunkStore {
  readonly location: S3Location;
  readonly #client: S3Client;
  readonly #encoders = new WorkerPool<EncodeRequest, EncodeResult>(new URL('./zstd-encode-worker.ts', import.meta.url));

  constructor(location: S3Location, options: S3ChunkStoreOptions = {}) {
    this.location = location;
    const agent = { keepAlive: true, maxSockets: 64 };
    this.#client = new S3Client({
      region: location.region,
      endpoint: location.endpoint,
      forcePathStyle: location.pathStyle,
      maxAttempts: options.maxAttempts ?? S3_MAX_ATTEMPTS,
      retryMode: 'standard',
      // CRC checksums on every request are a recent AWS addition that other services may reject;
      // chunks carry their own hash, checked on every read.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: 10_000, socketTimeout: 60_000, httpAgent: agent, httpsAgent: agent },
    });
  }

  key(id: Uint8Array): string {
    return this.location.prefix === '' ? castrKey(id) : `${this.location.prefix}/${castrKey(id)}`;
  }

  /** Fails with a clear message when the bucket is absent or the credentials are refused. */
  async checkAccess(): Promise<void> {
    const { bucket } = this.location;
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch (err) {
      const status = httpStatus(err);
      if (status === 404) throw new NarwhalError('bad-request', `S3 bucket ${bucket} does not exist`, { cause: err });
      if (status === 403) {
        throw new NarwhalError(
          'bad-request',
          `S3 refused access to bucket ${bucket}: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
          { cause: err },
        );
      }
      if (status === 301)
        throw new NarwhalError('bad-request', `S3 bucket ${bucket} is in another region than ${this.location.region}`, {
          cause: err,
        });
      throw s3Failure('HeadBucket', err);
    }
  }

  async get(id: Uint8Array): Promise<Uint8Array> {
    for (let attempt = 1; ; attempt++) {
      let response: GetObjectCommandOutput;
      try {
        response = await this.#client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(id) }));
      } catch (err) {
        if (httpStatus(err) === 404 && (err as Error).name !== 'NoSuchBucket') {
          throw new NarwhalError('chunk-missing', `chunk ${chunkHex(id)} is missing from the chunk store`);
        }
        throw s3Failure('GetObject', err);
      }
      try {
        return await collectBody(
          response.Body as AsyncIterable<Uint8Array> & { destroy?: () => void },
          response.ContentLength,
          id,
        );
      } catch (err) {
        if (err instanceof NarwhalError || attempt >= BODY_ATTEMPTS) throw s3Failure('GetObject', err);
        await sleep(100 * 2 ** attempt * Math.random());
      }
    }
  }

  async storedSize(id: Uint8Array): Promise<number | undefined> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key: this.key(id) }));
      return head.ContentLength;
    } catch (err) {
      // A HEAD answer has no body, so a missing key cannot be told from a missing bucket here;
      // checkAccess makes sure of the bucket first.
      if (httpStatus(err) === 404) return undefined;
      throw s3Failure('HeadObject', err);
    }
  }

  async put(id: Uint8Array, stored: Uint8Array): Promise<void> {
    try {
      await this.#client.send(
        new PutObjectCommand({
          Bucket: this.location.bucket,
          Key: this.key(id),
          Body: stored,
          ContentLength: stored.byteLength,
        }),
      );
    } catch (err) {
      throw s3Failure('PutObject', err);
    }
  }

  async encodeAndPut(id: Uint8Array, data: Uint8Array, level: number): Promise<number> {
    const frame = await this.#encoders.run({ data, level }, transferable(data));
    await this.put(id, frame);
    return frame.byteLength;
  }

  async flush(): Promise<void> {
    // A successful PutObject is durable already.
  }

  async delete(id: Uint8Array): Promise<void> {
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.location.bucket, Key: this.key(id) }));
    } catch (err) {
      throw s3Failure('DeleteObject', err);
    }
  }

  /** Every chunk under the prefix, in key order; objects that are not chunk files are skipped. */
  async *list(): AsyncIterable<StoredChunkInfo> {
    const prefix = this.location.prefix === '' ? '' : `${this.location.prefix}/`;
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.#client.send(
          new ListObjectsV2Command({ Bucket: this.location.bucket, Prefix: prefix, ContinuationToken: token }),
        );
      } catch (err) {
        throw s3Failure('ListObjectsV2', err);
      }
      for (const object of page.Contents ?? []) {
        const match = CHUNK_NAME.exec(object.Key?.slice(prefix.length) ?? '');
        if (!match?.[2].startsWith(match[1])) continue;
        yield {
          id: Buffer.from(match[2], 'hex'),
          storedSize: object.Size ?? 0,
          modifiedAt: object.LastModified?.getTime() ?? 0,
        };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && !token)
        throw new NarwhalError(
          'unavailable',
          'S3 ListObjectsV2 returned a truncated page without a continuation token',
        );
    } while (token);
  }

  async close(): Promise<void> {
    await this.#encoders.close();
    this.#client.destroy();
  }
}

/** An S3ChunkStore whose bucket has been checked to exist and accept our credentials. */
export async function openS3ChunkStore(location: S3Location, options?: S3ChunkStoreOptions): Promise<S3ChunkStore> {
  const store = new S3ChunkStore(location, options);
  try {
    await store.checkAccess();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

/**
 * Reads a whole object body into one buffer, sized from Content-Length when known, refusing
 * bodies larger than any chunk and bodies that end early.
 */
async function collectBody(
  body: (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined,
  length: number | undefined,
  id: Uint8Array,
): Promise<Uint8Array> {
  if (body === undefined) throw new Error('GetObject returned no body');
  if (length !== undefined && length > MAX_STORED_CHUNK) {
    body.destroy?.();
    throw new NarwhalError('chunk-corrupt', `chunk ${chunkHex(id)} is ${length} bytes, larger than any chunk`);
  }
  let out = new Uint8Array(length ?? 64 * 1024);
  let filled = 0;
  try {
    for await (const piece of body) {
      if (filled + piece.byteLength > out.byteLength) {
        if (length !== undefined) throw new Error('GetObject body is longer than its Content-Length');
        if (filled + piece.byteLength > MAX_STORED_CHUNK)
          throw new NarwhalError('chunk-corrupt', `chunk ${chunkHex(id)} is larger than any chunk`);
        const grown = new Uint8Array(
          Math.min(MAX_STORED_CHUNK, Math.max(out.byteLength * 2, filled + piece.byteLength)),
        );
        grown.set(out.subarray(0, filled));
        out = grown;
      }
      out.set(piece, filled);
      filled += piece.byteLength;
    }
  } catch (err) {
    body.destroy?.();
    throw err;
  }
  if (length !== undefined && filled !== length)
    throw new Error(`GetObject body ended after ${filled} of ${length} bytes`);
  return length === undefined ? out.subarray(0, filled) : out;
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/**
 * Turns what the SDK throws once its retries are spent into our vocabulary. The message names
 * the operation and S3's error code, never the endpoint or bucket: it may reach HTTP clients.
 */
function s3Failure(operation: string, err: unknown): NarwhalError {
  if (err instanceof NarwhalError) return err;
  const name = (err as Error).name;
  if (name === 'CredentialsProviderError') {
    return new NarwhalError('unavailable', 'no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY', {
      cause: err,
    });
  }
  if (err instanceof S3ServiceException || httpStatus(err) !== undefined) {
    if (name === 'QuotaExceeded') return new NarwhalError('storage-full', 'the chunk store is full', { cause: err });
    return new NarwhalError('unavailable', `S3 ${operation} failed: ${name} (HTTP ${httpStatus(err) ?? '?'})`, {
      cause: err,
    });
  }
  const code = (err as NodeJS.ErrnoException).code;
  return new NarwhalError('unavailable', `S3 ${operation} failed: ${code ?? (err as Error).message}`, { cause: err });
}
