/**
 * A real S3 server for tests: the one named by NARWHAL_TEST_S3_ENDPOINT (with AWS_ACCESS_KEY_ID
 * and AWS_SECRET_ACCESS_KEY set; scripts/test.sh starts one for the whole run), or else a Ceph
 * RADOS Gateway of our own started with scripts/ceph-rgw.sh and stopped afterwards. Fails with
 * the reason when neither works: S3 tests never skip.
 */
import { execFile } from 'node:child_process';
import { after, before } from 'node:test';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { S3Location } from '../../src/storage/storage-url.ts';

const execFileAsync = promisify(execFile);
const SCRIPT = new URL('../../scripts/ceph-rgw.sh', import.meta.url).pathname;

export interface S3TestServer {
  endpoint: string;
  stop(): Promise<void>;
}

export async function startS3TestServer(): Promise<S3TestServer> {
  const given = process.env.NARWHAL_TEST_S3_ENDPOINT;
  if (given) {
    if (!process.env.AWS_ACCESS_KEY_ID || !process.env.AWS_SECRET_ACCESS_KEY) {
      throw new Error('NARWHAL_TEST_S3_ENDPOINT is set but AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not');
    }
    return { endpoint: given, stop: async () => undefined };
  }
  const base = await mkdtemp(join(tmpdir(), 'narwhal-rgw-'));
  let stdout: string;
  try {
    // Up to ~25 s when the packages must be installed first; ~2 s otherwise.
    // The script picks free ports itself.
    ({ stdout } = await execFileAsync('bash', [SCRIPT, 'start', base], { timeout: 900_000 }));
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    // Best effort: what the start said is the error worth reporting.
    await execFileAsync('bash', [SCRIPT, 'stop', base]).catch(() => undefined);
    await rm(base, { recursive: true, force: true });
    throw new Error(
      `could not start the test S3 server (Ceph RGW via scripts/ceph-rgw.sh): ${stderr || (err as Error).message}`,
      { cause: err },
    );
  }
  for (const line of stdout.split('\n')) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match) process.env[match[1]] = match[2];
  }
  if (!process.env.NARWHAL_TEST_S3_ENDPOINT) {
    await execFileAsync('bash', [SCRIPT, 'stop', base]);
    throw new Error(`scripts/ceph-rgw.sh printed no endpoint: ${stdout}`);
  }
  return {
    endpoint: process.env.NARWHAL_TEST_S3_ENDPOINT!,
    async stop() {
      delete process.env.NARWHAL_TEST_S3_ENDPOINT;
      await execFileAsync('bash', [SCRIPT, 'stop', base], { timeout: 60_000 });
      await rm(base, { recursive: true, force: true });
    },
  };
}

/** Direct bucket access for test setup and inspection, beside the store under test. */
export class TestBucket {
  readonly name: string;
  readonly endpoint: string;
  readonly client: S3Client;

  constructor(endpoint: string, name = `narwhal-test-${randomBytes(6).toString('hex')}`) {
    this.endpoint = endpoint;
    this.name = name;
    this.client = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  location(prefix: string): S3Location {
    return { kind: 's3', bucket: this.name, prefix, endpoint: this.endpoint, region: 'us-east-1', pathStyle: true };
  }

  url(prefix: string): string {
    return `s3://${this.name}/${prefix}?endpoint=${encodeURIComponent(this.endpoint)}&path-style=1`;
  }

  async create(): Promise<void> {
    await this.client.send(new CreateBucketCommand({ Bucket: this.name }));
  }

  /** Every key under `prefix/` (or the whole bucket for ''), relative to it. */
  async keys(prefix: string): Promise<string[]> {
    const from = prefix === '' ? '' : `${prefix}/`;
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.name, Prefix: from, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) keys.push(object.Key!.slice(from.length));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.name, Key: key, Body: bytes }));
  }

  async deleteUnder(prefix: string): Promise<void> {
    const keys = await this.keys(prefix);
    const from = prefix === '' ? '' : `${prefix}/`;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < keys.length)
        await this.client.send(new DeleteObjectCommand({ Bucket: this.name, Key: from + keys[next++] }));
    };
    await Promise.all(Array.from({ length: 16 }, worker));
  }

  /** Empties and removes the bucket. */
  async destroy(): Promise<void> {
    await this.deleteUnder('');
    await this.client.send(new DeleteBucketCommand({ Bucket: this.name }));
    this.client.destroy();
  }
}

/**
 * For a test file: hooks that start (or find) the S3 server and create a fresh bucket before its
 * tests, and empty and remove the bucket and stop the server after them. Read the fields in tests.
 */
export function useS3TestBucket(): { server: S3TestServer; bucket: TestBucket } {
  const s3 = {} as { server: S3TestServer; bucket: TestBucket };
  before(async () => {
    s3.server = await startS3TestServer();
    s3.bucket = new TestBucket(s3.server.endpoint);
    await s3.bucket.create();
  });
  after(async () => {
    try {
      await s3.bucket?.destroy();
    } finally {
      await s3.server?.stop();
    }
  });
  return s3;
}
