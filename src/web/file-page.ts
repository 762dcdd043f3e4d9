import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ServerResponse } from 'node:http';
import type { Narwhal } from '../context/narwhal.ts';
import { NarwhalError } from '../errors.ts';
import type { CacheRecord, NarRecord } from '../metadata/metadata-store.ts';
import { type NarEntry, walkNar } from '../nix/nar-listing.ts';
import { narSource } from '../serving/nar-cursor.ts';
import { readNarBytes } from '../serving/nar-reader.ts';
import { formatBytes } from './format.ts';
import { type Html, html } from './html.ts';
import { links } from './links.ts';
import { PAGE_HEADERS, page } from './page.ts';
import { fileTable, LISTED_FILES, requirePath } from './path-page.ts';
import type { WebSession } from './session.ts';

/** Text shown of a file on its page; the rest is downloaded. */
export const SHOWN_BYTES = 256 * 1024;
/** A file with a NUL in its first bytes is shown as binary. */
const SNIFF_BYTES = 8 * 1024;

export interface FileRequest {
  cache: CacheRecord;
  hashPart: string;
  /** The file's path below the NAR's root, '/'-separated ('' for the root). */
  file: string;
}

/** The NAR of the path and the entry at the file's path in it; reads only headers and the chunks holding them. */
async function findFile(
  nw: Narwhal,
  request: FileRequest,
): Promise<{ nar: NarRecord; entry: NarEntry; children: NarEntry[] }> {
  const path = await requirePath(nw, request.cache, request.hashPart);
  const nar = path.narDamaged ? undefined : await nw.meta.getNar(path.narHash);
  if (!nar) throw new NarwhalError('unavailable', 'the NAR of this path is damaged or gone');
  let entry: NarEntry | undefined;
  const children: NarEntry[] = [];
  const prefix = request.file === '' ? '' : `${request.file}/`;
  await walkNar(narSource(nw, nar), (found) => {
    if (entry === undefined) {
      if (found.path === request.file) entry = found;
      return entry === undefined || entry.type === 'directory';
    }
    // Inside the directory asked for: its children, until the walk leaves it.
    if (!found.path.startsWith(prefix)) return false;
    if (!found.path.slice(prefix.length).includes('/')) children.push(found);
    return children.length < LISTED_FILES;
  });
  if (!entry) throw new NarwhalError('not-found', 'no such file in this path');
  return { nar, entry, children };
}

/** A file's page: a directory's entries, a symlink's target, or a file's text (escaped) or a download link. */
export async function filePage(nw: Narwhal, session: WebSession, request: FileRequest): Promise<Html> {
  const { cache, hashPart, file } = request;
  const { nar, entry, children } = await findFile(nw, request);
  const crumbs = html`<p><a href="${links.cache(cache.name)}">${cache.name}</a> /
<a href="${links.path(cache.name, hashPart)}">${hashPart}</a> / <span class="mono">${file}</span></p>`;
  let content: Html;
  if (entry.type === 'directory') {
    content = fileTable(cache, hashPart, children);
  } else if (entry.type === 'symlink') {
    content = html`<p>Symbolic link to <code class="target">${entry.target}</code></p>`;
  } else {
    const shown = await readRange(nw, nar, entry.offset, Math.min(entry.size, SHOWN_BYTES));
    const binary = shown.subarray(0, SNIFF_BYTES).includes(0);
    const download = html`<a class="download" href="${links.download(cache.name, hashPart, file)}">Download</a>`;
    content = binary
      ? html`<p class="binary">Binary file, ${formatBytes(entry.size)}. ${download}</p>`
      : html`<p>${formatBytes(entry.size)}${entry.executable ? ', executable' : ''}. ${download}</p>
<pre class="file-text">${new TextDecoder().decode(shown)}</pre>
${entry.size > SHOWN_BYTES ? html`<p class="muted">The first ${formatBytes(SHOWN_BYTES)} are shown.</p>` : ''}`;
  }
  return page(
    session,
    file === '' ? hashPart : file,
    html`${crumbs}<h1 class="mono">${file === '' ? '/' : file}</h1>${content}`,
  );
}

/** Sends a regular file's bytes as a download, streamed from the chunks that hold them. */
export async function sendFileDownload(nw: Narwhal, res: ServerResponse, request: FileRequest): Promise<void> {
  const { nar, entry } = await findFile(nw, request);
  if (entry.type !== 'regular') throw new NarwhalError('not-found', 'only a regular file can be downloaded');
  const name = request.file.split('/').pop() || 'file';
  res.writeHead(200, {
    ...PAGE_HEADERS,
    'Content-Type': 'application/octet-stream',
    'Content-Length': entry.size,
    'Content-Disposition': `attachment; filename="${name.replace(/[^A-Za-z0-9._+-]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(name)}`,
  });
  if (res.req.method === 'HEAD') {
    res.end();
    return;
  }
  await pipeline(Readable.from(readNarBytes(nw, nar, entry.offset, entry.offset + entry.size)), res);
}

async function readRange(nw: Narwhal, nar: NarRecord, start: number, length: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of readNarBytes(nw, nar, start, start + length)) parts.push(part);
  return Buffer.concat(parts);
}
