import type { StorageSample } from '../metadata/metadata-store.ts';
import { formatBytes, formatTime } from './format.ts';
import { type Html, html } from './html.ts';

const WIDTH = 720;
const HEIGHT = 240;
const LEFT = 70;
const RIGHT = 12;
const TOP = 24;
const BOTTOM = 28;

/** NAR bytes and stored bytes over time, as an inline SVG (no script, no external image). */
export function storageChart(samples: StorageSample[]): Html {
  if (samples.length === 0) {
    return html`<p class="muted">No storage samples yet: the server takes one at start and every --stats-interval.</p>`;
  }
  const first = samples[0].at;
  const last = samples[samples.length - 1].at;
  const top = Math.max(1, ...samples.map((s) => Math.max(s.narBytes, s.storedBytes)));
  const x = (at: number): number =>
    last === first ? LEFT : LEFT + ((at - first) / (last - first)) * (WIDTH - LEFT - RIGHT);
  const y = (bytes: number): number => TOP + (1 - bytes / top) * (HEIGHT - TOP - BOTTOM);
  const line = (value: (s: StorageSample) => number): string => {
    const points = samples.map((s) => `${x(s.at).toFixed(1)},${y(value(s)).toFixed(1)}`);
    // One sample: a short flat line, so that it shows.
    if (samples.length === 1) points.push(`${(x(first) + 8).toFixed(1)},${y(value(samples[0])).toFixed(1)}`);
    return points.join(' ');
  };
  const bottom = HEIGHT - BOTTOM;
  return html`<svg class="chart" role="img" viewBox="0 0 ${WIDTH} ${HEIGHT}" xmlns="http://www.w3.org/2000/svg">
<title>NAR bytes and stored bytes from ${formatTime(first)} to ${formatTime(last)}</title>
<line class="axis" x1="${LEFT}" y1="${TOP}" x2="${LEFT}" y2="${bottom}"/>
<line class="axis" x1="${LEFT}" y1="${bottom}" x2="${WIDTH - RIGHT}" y2="${bottom}"/>
<text x="${LEFT - 6}" y="${TOP + 4}" text-anchor="end">${formatBytes(top)}</text>
<text x="${LEFT - 6}" y="${bottom}" text-anchor="end">0</text>
<text x="${LEFT}" y="${HEIGHT - 8}">${formatTime(first)}</text>
<text x="${WIDTH - RIGHT}" y="${HEIGHT - 8}" text-anchor="end">${formatTime(last)}</text>
<polyline class="nar" points="${line((s) => s.narBytes)}"/>
<polyline class="stored" points="${line((s) => s.storedBytes)}"/>
<text x="${LEFT + 8}" y="14" class="legend"><tspan fill="#d9822b">NAR bytes</tspan> <tspan fill="#2a6fb0">stored bytes</tspan></text>
</svg>`;
}
