import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { NarwhalError } from '../errors.ts';
import { answerClusterScrapes } from '../metrics/cluster-metrics.ts';

/** `--processes`: a count, or `auto` for one per core. */
export function parseProcesses(text: string): number {
  if (text === 'auto') return availableParallelism();
  const count = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(count) || count < 1)
    throw new NarwhalError('bad-request', `--processes takes a count of at least 1, or auto, not ${text}`);
  return count;
}

/** Replacements for crashed processes allowed per minute before the supervisor gives up. */
const RESTARTS_PER_MINUTE = 5;

/**
 * Runs `count` server processes (node:cluster workers re-running this command) that share the
 * listening socket, as nginx's worker processes do: one process answers lookups on one core, so
 * more processes answer more of them. Each is a whole server over the same stores, as replicas
 * are. Calls `announce` with the address once all listen; a process that fails to start stops
 * the others, one that crashes later is replaced. SIGINT or SIGTERM stops them all, each
 * finishing what it has under way. A `/metrics` scrape that reaches any of them is answered with
 * the figures of all, which this process gathers. Resolves to the exit status.
 */
export function superviseServers(
  count: number,
  announce: (address: { address: string; port: number }) => void,
): Promise<number> {
  const log = (message: string): void => void process.stderr.write(`narwhal: ${message}\n`);
  const listening = new Set<Worker>();
  const restarts: number[] = [];
  let stopping = false;
  let status = 0;

  return new Promise<number>((resolve) => {
    const stopAll = (exitStatus: number): void => {
      if (stopping) return;
      stopping = true;
      status = exitStatus;
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
      if (Object.keys(cluster.workers ?? {}).length === 0) resolve(status);
    };
    let announced = false;
    const start = (replacing?: number): void => {
      cluster.fork().once('listening', function (this: Worker, address) {
        listening.add(this);
        if (replacing !== undefined) log(`server process ${this.process.pid} took over from ${replacing}`);
        if (!announced && listening.size === count) {
          announced = true;
          announce({ address: address.address ?? '', port: address.port });
        }
      });
    };
    cluster.on('exit', (worker, code, signal) => {
      const started = listening.delete(worker);
      if (stopping) {
        if (Object.keys(cluster.workers ?? {}).length === 0) resolve(status);
        return;
      }
      const how = signal ? `signal ${signal}` : `status ${code}`;
      if (!started) {
        log(`a server process exited with ${how} before it listened; stopping`);
        stopAll(code || 1);
        return;
      }
      const now = Date.now();
      while (restarts.length > 0 && restarts[0] < now - 60_000) restarts.shift();
      if (restarts.length >= RESTARTS_PER_MINUTE) {
        log(
          `server process ${worker.process.pid} exited with ${how}, the ${RESTARTS_PER_MINUTE + 1}th in a minute; stopping`,
        );
        stopAll(1);
        return;
      }
      restarts.push(now);
      log(`server process ${worker.process.pid} exited with ${how}; starting another`);
      start(worker.process.pid);
    });
    process.once('SIGINT', () => stopAll(0));
    process.once('SIGTERM', () => stopAll(0));
    // Whichever process a scrape reaches answers with the figures of all (metrics room).
    answerClusterScrapes();
    for (let i = 0; i < count; i++) start();
  });
}

/** True in a process that superviseServers started. */
export function isSupervisedServer(): boolean {
  return cluster.isWorker;
}
