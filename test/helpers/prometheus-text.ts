import { execFile } from 'node:child_process';

/**
 * The value of one sample in Prometheus text: the line for `name` whose labels include all of
 * `labels` (others may be there too); 0 when no line matches (a counter not yet moved).
 */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const has = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([key, value]) => has[key] === value)) {
      if (total !== undefined) throw new Error(`more than one ${name} sample matches ${JSON.stringify(labels)}`);
      total = Number(match[3]);
    }
  }
  return total ?? 0;
}

/** The metric names the text declares (its `# TYPE` lines). */
export function metricNames(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]));
}

/** Runs the real `promtool check metrics` on the text; resolves to its complaints ('' when none). */
export function promtoolCheck(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) => {
      const said = `${stdout}${stderr}`.trim();
      if (err && !said) reject(err);
      else resolve(err ? said || 'promtool failed' : said);
    });
    child.stdin?.end(text);
  });
}
