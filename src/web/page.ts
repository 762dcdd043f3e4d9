import type { ServerResponse } from 'node:http';
import { type Html, html } from './html.ts';
import type { WebSession } from './session.ts';

/**
 * Every UI answer carries these: no script may run at all (the pages have none), nothing is
 * loaded from elsewhere, forms post only here, no framing; pages may show private caches, so
 * they are not stored.
 */
export const PAGE_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};

/** A whole page: the header (search, sign-in or sign-out) and `body`. */
export function page(session: WebSession, title: string, body: Html, query = ''): Html {
  const who = session.token
    ? html`<span class="who">signed in as <b>${session.token.name}</b></span>
        <form method="post" action="/_ui/sign-out"><input type="hidden" name="csrf" value="${session.csrf}"><button>Sign out</button></form>`
    : html`<form method="post" action="/_ui/sign-in" class="who">
        <input type="password" name="token" placeholder="token" autocomplete="current-password" required aria-label="token">
        <input type="hidden" name="csrf" value="${session.csrf}"><button>Sign in</button></form>`;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} - Narwhal</title><link rel="stylesheet" href="/_ui/style.css"></head>
<body><header><a class="brand" href="/">Narwhal</a>
<form method="get" action="/" role="search"><input type="search" name="q" value="${query}" placeholder="search paths by name" aria-label="search"><button>Search</button></form>
${who}</header>
<main>${body}</main></body></html>
`;
}

export function sendPage(
  res: ServerResponse,
  status: number,
  markup: Html,
  headers: Record<string, string | string[]> = {},
): void {
  const body = markup.text;
  res.writeHead(status, {
    ...PAGE_HEADERS,
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
