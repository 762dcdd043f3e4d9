import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import { Duplex } from 'node:stream';
import { NarwhalError } from '../errors.ts';

/** As decompress.ts: `xz -9` needs 65 MiB; streams that need more are refused. */
const XZ_MEMORY_LIMIT = '80MiB';
/** The end of xz's complaint kept for the error message. */
const MAX_STDERR = 512;

/**
 * xz decompression by the `xz` program in a child process: on another core, and about 4-5x faster
 * than lzma-native in this process (measured: docs/benchmarks.md, 'Pull-through'). Concatenated
 * streams are decoded as xz does; the output ends only once xz exited cleanly, so a corrupt
 * stream is an error ('bad-compression'), never a short output that ends.
 */
export function createXzProcessDecompressor(options: XzProcessOptions = {}): Duplex {
  return new XzProcess(options);
}

export interface XzProcessOptions {
  /**
   * Runs xz at this niceness (0-19): for work behind a client rather than for it, so that on a
   * busy machine the client's own work comes first.
   */
  niceness?: number;
}

class XzProcess extends Duplex {
  readonly #child: ChildProcessWithoutNullStreams;
  #stderr = '';

  constructor({ niceness }: XzProcessOptions) {
    super();
    const child = spawn('xz', ['--decompress', '--stdout', `--memlimit-decompress=${XZ_MEMORY_LIMIT}`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#child = child;
    if (niceness !== undefined && child.pid !== undefined) setPriority(child.pid, niceness);
    child.stdout.on('data', (data: Buffer) => {
      if (!this.push(data)) child.stdout.pause();
    });
    child.stderr.on('data', (data: Buffer) => {
      this.#stderr = (this.#stderr + data.toString()).slice(-MAX_STDERR);
    });
    // Writing after xz gave up fails with EPIPE; its exit status says why.
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => this.destroy(new NarwhalError('internal', `cannot run xz: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (this.destroyed) return;
      if (code === 0) this.push(null);
      else this.destroy(new NarwhalError('bad-compression', `corrupt xz stream: ${this.#stderr.trim() || signal}`));
    });
  }

  override _read(): void {
    this.#child.stdout.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.#child.stdin.write(chunk)) {
      done();
      return;
    }
    const go = (): void => {
      this.#child.stdin.off('drain', go).off('close', go);
      done();
    };
    this.#child.stdin.on('drain', go).on('close', go);
  }

  override _final(done: (error?: Error | null) => void): void {
    this.#child.stdin.end(() => done());
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
    done(error);
  }
}
