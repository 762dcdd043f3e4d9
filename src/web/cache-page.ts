import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Narwhal } from '../context/narwhal.ts';
import type { CacheRecord, PathRecord } from '../metadata/metadata-store.ts';
import { publicKeyOf } from '../nix/signing.ts';
import { formatBytes, formatRatio, formatTime } from './format.ts';
import { type Html, html } from './html.ts';
import { links } from './links.ts';
import { page } from './page.ts';
import type { WebSession } from './session.ts';
import { storageChart } from './storage-chart.ts';
import { gcNextView } from './gc-next-view.ts';
import { mayPin } from './visible-caches.ts';
import { pullCountersSnapshot } from '../upstream/pull-counters.ts';

const RECENT = 20;
const PINS = 100;
const GC_NEXT = 20;
/** The chart covers this much time. */
const CHART_SPAN_MS = 30 * 86_400_000;
const CHART_SAMPLES = 1000;

/** A cache's page: its figures, how to use it, storage over time, recent pushes, pins, and what GC would remove next. */
export async function cachePage(
  nw: Narwhal,
  session: WebSession,
  req: IncomingMessage,
  cache: CacheRecord,
): Promise<Html> {
  const now = Date.now();
  const [recent, pins, next, samples] = await Promise.all([
    nw.meta.recentPaths(cache.id, RECENT),
    nw.meta.pinnedPaths(cache.id, PINS),
    gcNextView(nw, cache, GC_NEXT, now),
    nw.meta.storageSamples(cache.id, now - CHART_SPAN_MS, CHART_SAMPLES),
  ]);
  // The figures read every path and chunk of the cache: the latest sample has them (live only before the first).
  const latest = samples.at(-1) ?? { at: now, ...(await nw.meta.cacheUsage(cache.id)) };
  const usage = latest;
  const url = `${(req.socket as TLSSocket).encrypted ? 'https' : 'http'}://${req.headers.host ?? 'localhost'}/${cache.name}`;
  const canPin = mayPin(session.token, cache);
  const body = html`<h1>${cache.name} <span class="badge">${cache.isPublic ? 'public' : 'private'}</span></h1>
<section class="figures">
  <div>paths<b class="paths">${usage.paths}</b></div>
  <div>NAR bytes<b class="nar-bytes">${formatBytes(usage.narBytes)}</b></div>
  <div>stored bytes<b class="stored-bytes">${formatBytes(usage.storedBytes)}</b></div>
  <div>deduplication<b class="dedup">${formatRatio(usage.narBytes, usage.storedBytes)}</b></div>
</section>
<p class="muted as-of">As of ${formatTime(latest.at)}${samples.length > 0 ? ' (the latest storage sample)' : ''}.</p>
<h2>Use it</h2>
<p>Public key: <code class="public-key">${publicKeyOf(cache.signingKey)}</code></p>
<p>Lines for <code>nix.conf</code>:</p>
<pre class="nix-conf">extra-substituters = ${url}
extra-trusted-public-keys = ${publicKeyOf(cache.signingKey)}</pre>
${cache.isPublic ? '' : html`<p>A private cache also needs a token in Nix's <code>netrc-file</code>: <code>machine ${req.headers.host ?? 'localhost'} password TOKEN</code></p>`}
${cache.upstreams.length > 0 ? pullThroughSection(nw, cache) : ''}
<h2>Storage over time</h2>
${storageChart(samples)}
<h2>Recent pushes</h2>
${pathTable(cache, recent, 'recent', (p) => formatTime(p.createdAt), 'uploaded')}
<h2>Pins</h2>
${pins.length === 0 ? html`<p class="muted">No pinned path.</p>` : pinTable(cache, pins, canPin, session)}
${canPin ? pinForm(cache, session) : ''}
<h2>What GC would remove next</h2>
${
  cache.retention === 0
    ? html`<p class="muted gc-next">This cache keeps its paths forever (no retention).</p>`
    : next.paths.length === 0
      ? html`<p class="muted gc-next">Nothing: every path was used within the retention of ${cache.retention} s, is pinned, or is needed by one that is.</p>`
      : html`<p>Paths unused for over ${cache.retention} s, not pinned and not needed by a live path; the next GC run expires them (as of ${formatTime(next.at)}).</p>
${pathTable(cache, next.paths, 'gc-next', (p) => formatTime(p.lastAccess), 'last used')}`
}`;
  return page(session, cache.name, body);
}

/** A pull-through cache's upstreams, and what pull-through did in this server process. */
function pullThroughSection(nw: Narwhal, cache: CacheRecord): Html {
  const counts = pullCountersSnapshot(nw);
  const upstreams = cache.upstreams.map((upstream) => html`<li class="mono">${upstream}</li>`);
  return html`<h2>Pull-through</h2>
<p>Paths this cache lacks are fetched from, in order:</p>
<ol class="upstreams">${upstreams}</ol>
<p class="muted">Since this server process started, for all pull-through caches:</p>
<section class="figures pull-counters">
  <div>hits<b class="pull-hits">${counts.hits}</b></div>
  <div>misses<b class="pull-misses">${counts.misses}</b></div>
  <div>NARs pulled<b class="pull-nars">${counts.narsPulled}</b></div>
  <div>upstream bytes<b class="upstream-bytes">${formatBytes(counts.upstreamBytes)}</b></div>
  <div>upstream errors<b class="upstream-errors">${counts.upstreamErrors}</b></div>
</section>`;
}

function pathTable(
  cache: CacheRecord,
  paths: PathRecord[],
  className: string,
  when: (path: PathRecord) => string,
  whenTitle: string,
): Html {
  if (paths.length === 0) return html`<p class="muted ${className}">None.</p>`;
  const rows = paths.map(
    (p) => html`<tr><td class="mono"><a href="${links.path(cache.name, p.hashPart)}">${p.storePath}</a></td>
      <td class="num">${formatBytes(p.narSize)}</td><td>${when(p)}</td></tr>`,
  );
  return html`<table class="${className}"><thead><tr><th>store path</th><th class="num">NAR size</th><th>${whenTitle}</th></tr></thead>
<tbody>${rows}</tbody></table>`;
}

function pinTable(cache: CacheRecord, pins: PathRecord[], canPin: boolean, session: WebSession): Html {
  const rows = pins.map(
    (p) => html`<tr><td class="mono"><a href="${links.path(cache.name, p.hashPart)}">${p.storePath}</a></td>
      <td>${canPin ? pinButton(cache, p.hashPart, false, 'cache', session) : ''}</td></tr>`,
  );
  return html`<table class="pins"><tbody>${rows}</tbody></table>`;
}

function pinForm(cache: CacheRecord, session: WebSession): Html {
  return html`<form method="post" action="${links.pin(cache.name)}" class="pin-form">
<input type="hidden" name="csrf" value="${session.csrf}"><input type="hidden" name="pinned" value="1">
<input type="hidden" name="back" value="cache">
<input name="path" placeholder="/nix/store/... or hash" required aria-label="path to pin" size="60"> <button>Pin</button></form>`;
}

/** A one-button form that pins or unpins the path. */
export function pinButton(
  cache: CacheRecord,
  hashPart: string,
  pinned: boolean,
  back: 'cache' | 'path',
  session: WebSession,
): Html {
  return html`<form method="post" action="${links.pin(cache.name)}" class="inline">
<input type="hidden" name="csrf" value="${session.csrf}"><input type="hidden" name="path" value="${hashPart}">
<input type="hidden" name="pinned" value="${pinned ? '1' : '0'}"><input type="hidden" name="back" value="${back}">
<button>${pinned ? 'Pin' : 'Unpin'}</button></form>`;
}
