import type { Narwhal } from '../context/narwhal.ts';
import { NarwhalError } from '../errors.ts';
import type { CacheRecord, PathRecord } from '../metadata/metadata-store.ts';
import { listNar, type NarEntry } from '../nix/nar-listing.ts';
import { isValidHashPart } from '../nix/store-path.ts';
import { narSource } from '../serving/nar-cursor.ts';
import { servedNarinfo } from '../serving/render-narinfo.ts';
import { pinButton } from './cache-page.ts';
import { formatBytes, formatTime } from './format.ts';
import { type Html, html } from './html.ts';
import { links } from './links.ts';
import { page } from './page.ts';
import type { WebSession } from './session.ts';
import { mayPin } from './visible-caches.ts';

const REFERRERS = 100;
/** Entries of the NAR listed on the page. */
export const LISTED_FILES = 500;

export async function requirePath(nw: Narwhal, cache: CacheRecord, hashPart: string): Promise<PathRecord> {
  const path = isValidHashPart(hashPart) ? await nw.meta.getPath(cache.id, hashPart) : undefined;
  if (!path) throw new NarwhalError('not-found', `${cache.name} has no such path`);
  return path;
}

/** A path's page: its narinfo as served, references and referrers, closure size, pin, and its files. */
export async function pathPage(nw: Narwhal, session: WebSession, cache: CacheRecord, hashPart: string): Promise<Html> {
  const path = await requirePath(nw, cache, hashPart);
  const info = servedNarinfo(nw, cache, path);
  const refHashes = path.references.map((ref) => ref.slice(0, 32));
  const [present, referrers, closure, files] = await Promise.all([
    nw.meta.existingPaths(cache.id, refHashes),
    nw.meta.referrersOf(cache.id, hashPart, REFERRERS + 1),
    nw.meta.closureSize(cache.id, hashPart),
    fileList(nw, cache, path),
  ]);
  const refRows = path.references.map((ref) => {
    const hash = ref.slice(0, 32);
    const self = hash === hashPart ? html` <span class="muted">(itself)</span>` : '';
    return html`<li class="mono">${present.has(hash) ? html`<a href="${links.path(cache.name, hash)}">${ref}</a>` : ref}${self}</li>`;
  });
  const referrerRows = referrers
    .slice(0, REFERRERS)
    .map((p) => html`<li class="mono"><a href="${links.path(cache.name, p.hashPart)}">${p.storePath}</a></li>`);
  const field = (name: string, value: string | number | undefined): Html | string =>
    value === undefined ? '' : html`<dt>${name}</dt><dd class="mono">${value}</dd>`;
  const body = html`<p><a href="${links.cache(cache.name)}">${cache.name}</a></p>
<h1 class="store-path">${path.storePath}</h1>
<p>${path.pinned ? html`<span class="badge pinned">pinned</span> ` : ''}${
    mayPin(session.token, cache) ? pinButton(cache, hashPart, !path.pinned, 'path', session) : ''
  }</p>
<h2>Narinfo</h2>
<dl class="fields narinfo">
${field('StorePath', info.storePath)}${field('URL', info.url)}${field('Compression', info.compression)}
${field('FileSize', info.fileSize)}${field('NarHash', info.narHash)}${field('NarSize', `${info.narSize} (${formatBytes(info.narSize)})`)}
${field('Deriver', info.deriver)}${field('System', info.system)}${field('CA', info.ca)}
<dt>Uploaded</dt><dd>${formatTime(path.createdAt)}</dd><dt>Last used</dt><dd>${formatTime(path.lastAccess)}</dd>
<dt>Closure</dt><dd class="closure">${closure.paths} paths, ${formatBytes(closure.narBytes)}</dd>
</dl>
<h2>Signatures</h2>
<ul class="sigs">${info.sigs.map((sig) => html`<li class="mono">${sig}</li>`)}</ul>
<h2>References (${path.references.length})</h2>
${refRows.length === 0 ? html`<p class="muted">None.</p>` : html`<ul class="references">${refRows}</ul>`}
<h2>Referrers</h2>
${referrerRows.length === 0 ? html`<p class="muted">No path of ${cache.name} refers to it.</p>` : html`<ul class="referrers">${referrerRows}</ul>`}
${referrers.length > REFERRERS ? html`<p class="muted">Only the first ${REFERRERS} are shown.</p>` : ''}
<h2>Files</h2>
${files}`;
  return page(session, path.storePath.slice(44) || path.storePath, body);
}

async function fileList(nw: Narwhal, cache: CacheRecord, path: PathRecord): Promise<Html> {
  if (path.narDamaged) return html`<p class="error">Its NAR is damaged; upload it again to repair it.</p>`;
  const nar = await nw.meta.getNar(path.narHash);
  if (!nar) return html`<p class="error">Its NAR is gone.</p>`;
  let listing: { entries: NarEntry[]; truncated: boolean };
  try {
    listing = await listNar(narSource(nw, nar), LISTED_FILES);
  } catch (err) {
    if (!(err instanceof NarwhalError)) throw err;
    return html`<p class="error">The NAR could not be read: ${err.message}</p>`;
  }
  return html`${fileTable(cache, path.hashPart, listing.entries)}
${listing.truncated ? html`<p class="muted">Only the first ${LISTED_FILES} entries are listed.</p>` : ''}`;
}

/** A table of NAR entries, each linked to its file page. */
export function fileTable(cache: CacheRecord, hashPart: string, entries: NarEntry[]): Html {
  const rows = entries.map((entry) => {
    const name = entry.path === '' ? '/' : entry.type === 'directory' ? `${entry.path}/` : entry.path;
    const link = html`<a href="${links.file(cache.name, hashPart, entry.path)}">${name}</a>`;
    if (entry.type === 'directory') return html`<tr><td class="mono">${link}</td><td>directory</td><td></td></tr>`;
    if (entry.type === 'symlink')
      return html`<tr><td class="mono">${link}</td><td>symlink</td><td class="mono">→ ${entry.target}</td></tr>`;
    return html`<tr><td class="mono">${link}</td><td>${entry.executable ? 'executable' : 'file'}</td><td class="num">${formatBytes(entry.size)}</td></tr>`;
  });
  return html`<table class="files"><thead><tr><th>path</th><th>type</th><th></th></tr></thead><tbody>${rows}</tbody></table>`;
}
