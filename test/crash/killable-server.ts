import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { REPO } from '../e2e/harness.ts';

/** A port that was free a moment ago, so that every restart can listen on the same one. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

interface Incarnation {
  number: number;
  child: ChildProcess;
  startedAt: number;
  up: Promise<void>;
  killed: boolean;
  exited: Promise<void>;
}

/**
 * The real `narwhal serve` on a fixed port, killed with SIGKILL and started again on the same
 * data directory as often as a test likes. Each start is an incarnation with its own number; a
 * client that lost its connection waits for a later incarnation to be up.
 */
export class KillableServer {
  readonly dataDir: string;
  readonly port: number;
  /** Milliseconds from spawn to listening, one per start. */
  readonly startupMs: number[] = [];
  /** Exits nobody asked for (crashes), with the output of that incarnation. */
  readonly unexpectedExits: string[] = [];
  #current: Incarnation | undefined;
  #count = 0;
  #waiters: { after: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  #lineWatchers: { pattern: RegExp; resolve: (line: string) => void }[] = [];

  constructor(dataDir: string, port: number) {
    this.dataDir = dataDir;
    this.port = port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Number of the current (or last) incarnation; 0 before the first start. */
  get incarnation(): number {
    return this.#count;
  }

  /** Spawns a new incarnation; does not wait for it (see whenUp). */
  start(): void {
    if (this.#current && this.#current.child.exitCode === null && this.#current.child.signalCode === null) {
      throw new Error('the previous incarnation is still running');
    }
    const number = ++this.#count;
    const startedAt = performance.now();
    const child = spawn(
      process.execPath,
      [
        join(REPO, 'bin/narwhal.js'),
        'serve',
        '--data-dir',
        this.dataDir,
        '--listen',
        `127.0.0.1:${this.port}`,
        '--log-requests',
      ],
      {
        stdio: ['ignore', 'inherit', 'pipe'],
      },
    );
    let log = '';
    let pending = '';
    let listening = false;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const incarnation: Incarnation = { number, child, startedAt, killed: false, exited, up: Promise.resolve() };
    incarnation.up = new Promise<void>((resolve, reject) => {
      child.stderr!.on('data', (data: Buffer) => {
        const text = data.toString();
        log += text;
        if (log.length > 1_000_000) log = log.slice(-500_000);
        if (!listening && /narwhal: serving /.test(log)) {
          listening = true;
          this.startupMs.push(performance.now() - startedAt);
          resolve();
          this.#wake();
        }
        pending += text;
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const line of lines) this.#onLine(line);
      });
      child.once('exit', (code, signal) => {
        if (!incarnation.killed)
          this.unexpectedExits.push(`incarnation ${number} exited with ${code ?? signal}:\n${log.slice(-4000)}`);
        if (!listening) {
          const err = new Error(
            `narwhal serve (incarnation ${number}) exited with ${code ?? signal} before listening:\n${log.slice(-4000)}`,
          );
          reject(err);
          for (const w of this.#waiters.splice(0)) w.reject(err);
        }
      });
    });
    incarnation.up.catch(() => undefined);
    this.#current = incarnation;
  }

  /** Resolves when the current incarnation listens; rejects if it died on its own. */
  whenUp(): Promise<void> {
    if (!this.#current) return Promise.reject(new Error('never started'));
    return this.#current.up;
  }

  /** Resolves once an incarnation later than `after` listens. */
  upAfter(after: number): Promise<void> {
    if (this.#current && this.#current.number > after) return this.#current.up;
    return new Promise((resolve, reject) => this.#waiters.push({ after, resolve, reject }));
  }

  /** True when incarnation `number` has been (or is being) killed by us. */
  wasKilled(number: number): boolean {
    return number < this.#count || (this.#current?.number === number && this.#current.killed);
  }

  /** The next stderr line (request log included) matching `pattern`. */
  nextLine(pattern: RegExp): Promise<string> {
    return new Promise((resolve) => this.#lineWatchers.push({ pattern, resolve }));
  }

  /** SIGKILL, and wait until the process is gone. */
  async kill(): Promise<void> {
    const current = this.#current;
    if (!current) return;
    current.killed = true;
    current.child.kill('SIGKILL');
    await current.exited;
  }

  /** A clean shutdown (SIGTERM). */
  async stop(): Promise<void> {
    const current = this.#current;
    if (!current || current.child.exitCode !== null || current.child.signalCode !== null) return;
    current.killed = true;
    current.child.kill('SIGTERM');
    await current.exited;
  }

  #wake(): void {
    const ready = this.#waiters.filter((w) => w.after < this.#count);
    this.#waiters = this.#waiters.filter((w) => w.after >= this.#count);
    for (const w of ready) w.resolve();
  }

  #onLine(line: string): void {
    const matched = this.#lineWatchers.filter((w) => w.pattern.test(line));
    if (matched.length === 0) return;
    this.#lineWatchers = this.#lineWatchers.filter((w) => !matched.includes(w));
    for (const w of matched) w.resolve(line);
  }
}
