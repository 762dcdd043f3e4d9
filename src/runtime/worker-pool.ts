import { availableParallelism } from 'node:os';
import { Worker, type Transferable } from 'node:worker_threads';

/** The buffer to move along with `data` to a worker: only one `data` fills whole (else posting copies it). */
export function transferable(data: Uint8Array): ArrayBuffer[] {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer
    ? [data.buffer]
    : [];
}

/**
 * What a worker runs: its script, then a write of what it compiled to Node's compile cache, when
 * one is on (bin/narwhal.js). Node writes it when the process exits; a server killed or not yet
 * stopped would leave its threads' modules to be stripped of their types again at the next start.
 */
function workerSource(script: URL): string {
  return `import(${JSON.stringify(script.href)}).then(() => require('node:module').flushCompileCache())`;
}

/** What every worker answers: the request's sequence number and a result or an error. */
export interface WorkerReply<R> {
  seq: number;
  result?: R;
  error?: { message: string; code?: string };
}

/**
 * A fixed set of worker threads running one script, with request/response by sequence number.
 * Workers start on first use and are unref'd while idle, so an idle pool keeps no process alive.
 * With `idleMs`, they end once no request has been pending for that long, and start again on the
 * next: each holds a V8 heap of its own and what it keeps (10-40 MB), which a server that only
 * serves now and then would otherwise hold for good (docs/benchmarks.md, "Delta memory and
 * serving speed").
 */
export class WorkerPool<Q extends object, R> {
  readonly size: number;
  readonly #script: URL;
  #workers: Worker[] = [];
  #next = 0;
  #seq = 0;
  readonly #pending = new Map<number, { resolve: (result: R) => void; reject: (err: Error) => void }>();
  /** Workers whose thread ended with an error: what is sent to them fails at once rather than waiting for ever. */
  readonly #dead = new Map<Worker, Error>();
  readonly #idleMs: number | undefined;
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(script: URL, size = Math.max(1, availableParallelism()), options: { idleMs?: number } = {}) {
    this.#script = script;
    this.size = size;
    this.#idleMs = options.idleMs;
  }

  /** Starts the workers now rather than on first use, which would wait for them to load. */
  start(): void {
    if (this.#workers.length === 0) this.#start();
  }

  /** Sends the request to the next worker in turn, or with `affinity` (an integer), always the same one for it. */
  run(request: Q, transfer: Transferable[] = [], affinity?: number): Promise<R> {
    this.start();
    const index = affinity === undefined ? this.#next++ : affinity;
    return this.#send(this.#workers[index % this.#workers.length], request, transfer);
  }

  /** Sends the request to every worker; each answers after the requests it was sent before. */
  broadcast(request: Q): Promise<R[]> {
    this.start();
    return Promise.all(this.#workers.map((worker) => this.#send(worker, request, [])));
  }

  #send(worker: Worker, request: Q, transfer: Transferable[]): Promise<R> {
    const dead = this.#dead.get(worker);
    if (dead) return Promise.reject(dead);
    const seq = this.#seq++;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    return new Promise<R>((resolve, reject) => {
      if (this.#pending.size === 0) for (const w of this.#workers) w.ref();
      this.#pending.set(seq, { resolve, reject });
      worker.postMessage({ ...request, seq }, transfer);
    });
  }

  async close(): Promise<void> {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    const workers = this.#workers;
    this.#workers = [];
    this.#dead.clear();
    await Promise.all(workers.map((w) => w.terminate()));
  }

  #start(): void {
    for (let i = 0; i < this.size; i++) {
      const worker = new Worker(workerSource(this.#script), { eval: true });
      worker.on('message', (reply: WorkerReply<R>) => this.#settle(reply));
      worker.on('error', (err) => {
        this.#dead.set(worker, err);
        this.#failAll(err);
      });
      worker.unref();
      this.#workers.push(worker);
    }
  }

  #settle({ seq, result, error }: WorkerReply<R>): void {
    const pending = this.#pending.get(seq);
    if (!pending) return;
    this.#pending.delete(seq);
    if (this.#pending.size === 0) {
      for (const w of this.#workers) w.unref();
      if (this.#idleMs !== undefined) {
        this.#idleTimer = setTimeout(() => void this.#endIfIdle(), this.#idleMs);
        this.#idleTimer.unref();
      }
    }
    if (error) pending.reject(Object.assign(new Error(error.message), { code: error.code }));
    else pending.resolve(result as R);
  }

  /** Ends the workers if still idle; the next request starts new ones. */
  async #endIfIdle(): Promise<void> {
    this.#idleTimer = undefined;
    if (this.#pending.size > 0 || this.#workers.length === 0) return;
    await this.close();
  }

  #failAll(err: Error): void {
    for (const pending of this.#pending.values()) pending.reject(err);
    this.#pending.clear();
  }
}
