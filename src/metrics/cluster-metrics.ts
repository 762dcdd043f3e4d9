import cluster from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { NarwhalMetrics } from './narwhal-metrics.ts';

const ASK = 'narwhal:metrics-ask';
const ANSWER = 'narwhal:metrics-answer';
/** A scrape waits this long for the sum over processes before it fails. */
const ANSWER_TIMEOUT_MS = 10_000;

interface Answer {
  type: typeof ANSWER;
  id: number;
  text?: string;
  error?: string;
}

/**
 * In the supervisor of `serve --processes N`: answers a server process that asks for the figures of
 * all processes, by asking each for its own (prom-client's AggregatorRegistry) and summing them.
 */
export function answerClusterScrapes(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: { type?: string; id?: number }) => {
    if (message?.type !== ASK) return;
    const reply = (answer: Omit<Answer, 'type' | 'id'>): void => {
      if (worker.isConnected()) worker.send({ type: ANSWER, id: message.id, ...answer });
    };
    aggregator.clusterMetrics().then(
      (text) => reply({ text }),
      (err: unknown) => reply({ error: (err as Error).message }),
    );
  });
}

let asked = 0;
const waiting = new Map<number, { resolve(text: string): void; reject(err: Error): void }>();

/**
 * The text `/metrics` answers in this process: its own figures, or, in a process that
 * superviseServers started, the figures of all of them, which the supervisor gathers.
 */
export function scrapeText(metrics: NarwhalMetrics): Promise<string> {
  if (!cluster.isWorker || !process.send) return metrics.text();
  answerSupervisor();
  const id = asked++;
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      waiting.delete(id);
      reject(new Error('the supervisor did not answer with the figures of all processes'));
    }, ANSWER_TIMEOUT_MS);
    waiting.set(id, {
      resolve: (text) => {
        clearTimeout(timer);
        resolve(text);
      },
      reject: (err) => {
        clearTimeout(timer);
        reject(err);
      },
    });
    process.send!({ type: ASK, id });
  });
}

let listening = false;

/**
 * In a process that superviseServers started: answers the supervisor when it gathers, with
 * nothing until offerToSupervisor names this process's figures (so that a process still opening
 * its stores does not hold a scrape up), and routes the supervisor's answers to the scrapes
 * waiting for them. Called first thing when such a process starts.
 */
export function answerSupervisor(): void {
  if (!cluster.isWorker || listening) return;
  listening = true;
  AggregatorRegistry.setRegistries([]);
  // Constructing one installs prom-client's answering listener in this process.
  new AggregatorRegistry();
  process.on('message', (message: Answer) => {
    if (message?.type !== ANSWER) return;
    const pending = waiting.get(message.id);
    if (!pending) return;
    waiting.delete(message.id);
    if (message.text !== undefined) pending.resolve(message.text);
    else pending.reject(new Error(message.error ?? 'no figures'));
  });
}

/** From now on the supervisor gathers these figures of this process. */
export function offerToSupervisor(metrics: NarwhalMetrics): void {
  if (!cluster.isWorker) return;
  answerSupervisor();
  AggregatorRegistry.setRegistries([metrics.registry]);
}
