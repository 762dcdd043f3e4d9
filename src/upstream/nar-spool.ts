import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { NarwhalError } from '../errors.ts';

/** Bytes read from the spool file at a time. */
const READ_BYTES = 1024 * 1024;

/** What the upstream's narinfo says of its NAR file, checked as the file arrives. */
export interface ExpectedFile {
  fileSize?: number;
  /** SHA-256 of the file (not the NAR), when the narinfo gives one. */
  fileHash?: Uint8Array;
}

/**
 * An upstream's NAR file, as it arrives, kept in a temporary file that is unlinked at once (so a
 * crash leaves nothing behind). The upstream is read once and at its own speed; each reader (the
 * client that asked, clients asking meanwhile, the ingest) reads the file from the start at its
 * own pace, following the upstream. The last byte reaches a reader only once the whole file has
 * arrived and has the size and hash the narinfo gives: a reader never sees a short or wrong file
 * end cleanly; it gets an error instead.
 */
export class NarSpool {
  /** A file descriptor: read and written synchronously (see #read). */
  readonly #fd: number;
  #written = 0;
  #whole = false;
  #failure: Error | undefined;
  #changed = Promise.withResolvers<void>();
  /** The owner (until close()) and the readers not yet done: the file is closed when none are left. */
  #users = 1;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  static create(): NarSpool {
    const path = join(tmpdir(), `narwhal-pull-${process.pid}-${randomBytes(8).toString('hex')}`);
    const fd = openSync(path, 'wx+', 0o600);
    unlinkSync(path);
    return new NarSpool(fd);
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /**
   * Writes the upstream's body into the file; resolves once it is whole and checked, throws (and
   * fails every reader) when the body fails or is not the file expected.
   */
  async fill(body: AsyncIterable<Uint8Array>, expected: ExpectedFile): Promise<void> {
    const hash = expected.fileHash && createHash('sha256');
    try {
      for await (const data of body) {
        if (expected.fileSize !== undefined && this.#written + data.length > expected.fileSize) {
          throw new NarwhalError('bad-nar', `the upstream sent more than the narinfo's FileSize`);
        }
        hash?.update(data);
        let done = 0;
        while (done < data.length) done += writeSync(this.#fd, data, done, data.length - done, this.#written + done);
        this.#written += data.length;
        this.#wake();
      }
      if (expected.fileSize !== undefined && this.#written !== expected.fileSize) {
        throw new NarwhalError(
          'bad-nar',
          `the upstream sent ${this.#written} bytes, the narinfo says ${expected.fileSize}`,
        );
      }
      if (hash && !hash.digest().equals(expected.fileHash!)) {
        throw new NarwhalError('bad-nar', `the upstream's file does not have the narinfo's FileHash`);
      }
      this.#whole = true;
    } catch (err) {
      this.#failure = err instanceof Error ? err : new Error(String(err));
      throw err;
    } finally {
      this.#wake();
    }
  }

  /** Lets the file go once the readers still reading are done; no reader may be made after. */
  close(): void {
    this.#release();
  }

  /** The file from its start, as it arrives (see the class). */
  reader(): Readable {
    // Its descriptor may already number another file.
    if (this.#users === 0) throw new Error('the spool is closed');
    this.#users++;
    return Readable.from(this.#read(), { objectMode: false });
  }

  async *#read(): AsyncGenerator<Uint8Array> {
    let position = 0;
    try {
      for (;;) {
        // Until the file is whole and checked, its last byte waits.
        const readable = this.#whole ? this.#written : this.#written - 1;
        if (position < readable) {
          // Synchronously: the data was just written and sits in the page cache, so a read is a
          // copy, while the thread pool that asynchronous reads queue in may be busy with the
          // ingests' fsyncs for tens of milliseconds at a time.
          const length = Math.min(READ_BYTES, readable - position);
          const buffer = Buffer.allocUnsafe(length);
          const bytesRead = readSync(this.#fd, buffer, 0, length, position);
          position += bytesRead;
          yield buffer.subarray(0, bytesRead);
        } else if (this.#failure) {
          throw this.#failure;
        } else if (this.#whole) {
          return;
        } else {
          await this.#changed.promise;
        }
      }
    } finally {
      this.#release();
    }
  }

  #wake(): void {
    const changed = this.#changed;
    this.#changed = Promise.withResolvers<void>();
    changed.resolve();
  }

  #release(): void {
    if (--this.#users === 0) closeSync(this.#fd);
  }
}
