import type { Narwhal } from '../context/narwhal.ts';
import type { PathRecord } from '../metadata/metadata-store.ts';
import { formatBytes, formatTime } from './format.ts';
import { type Html, html } from './html.ts';
import { links } from './links.ts';
import { page } from './page.ts';
import type { WebSession } from './session.ts';
import { visibleCaches } from './visible-caches.ts';

/** Matches shown per cache in a search. */
export const SEARCH_LIMIT = 50;
const MAX_QUERY = 200;

/** `/`: the caches the person may see. */
export async function homePage(nw: Narwhal, session: WebSession): Promise<Html> {
  const caches = await visibleCaches(nw, session.token);
  const rows = caches.map(
    (cache) => html`<tr><td><a href="${links.cache(cache.name)}">${cache.name}</a></td>
      <td>${cache.isPublic ? 'public' : 'private'}</td><td class="num">${cache.priority}</td>
      <td>${cache.retention > 0 ? `${cache.retention} s` : 'forever'}</td></tr>`,
  );
  const body = html`<h1>Caches</h1>
${
  caches.length === 0
    ? html`<p class="muted">No cache to show. Sign in with a token to see private caches.</p>`
    : html`<table class="caches"><thead><tr><th>cache</th><th>access</th><th class="num">priority</th><th>keeps paths</th></tr></thead>
<tbody>${rows}</tbody></table>`
}
${session.token ? '' : html`<p class="muted">Private caches show after signing in with a token that names them.</p>`}`;
  return page(session, 'Caches', body);
}

/** `/?q=TEXT`: the paths whose store path contains TEXT, in every cache the person may see. */
export async function searchPage(nw: Narwhal, session: WebSession, query: string): Promise<Html> {
  const text = query.trim().slice(0, MAX_QUERY);
  const found: { cache: string; path: PathRecord }[] = [];
  const limited: string[] = [];
  if (text !== '') {
    for (const cache of await visibleCaches(nw, session.token)) {
      const paths = await nw.meta.searchPaths(cache.id, text, SEARCH_LIMIT + 1);
      if (paths.length > SEARCH_LIMIT) limited.push(cache.name);
      for (const path of paths.slice(0, SEARCH_LIMIT)) found.push({ cache: cache.name, path });
    }
  }
  const rows = found.map(
    ({ cache, path }) => html`<tr><td><a href="${links.cache(cache)}">${cache}</a></td>
      <td class="mono"><a href="${links.path(cache, path.hashPart)}">${path.storePath}</a></td>
      <td class="num">${formatBytes(path.narSize)}</td><td>${formatTime(path.createdAt)}</td></tr>`,
  );
  const body = html`<h1>Paths matching “${text}”</h1>
${
  found.length === 0
    ? html`<p class="none">No path matches.</p>`
    : html`<table class="results"><thead><tr><th>cache</th><th>store path</th><th class="num">NAR size</th><th>uploaded</th></tr></thead>
<tbody>${rows}</tbody></table>`
}
${limited.length > 0 ? html`<p class="muted">Only the first ${SEARCH_LIMIT} matches are shown for ${limited.join(', ')}; search for more of the name.</p>` : ''}`;
  return page(session, `Search: ${text}`, body, text);
}
