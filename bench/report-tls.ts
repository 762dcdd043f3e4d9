/**
 * Section 9 of the report: TLS and HTTP/2 (issue 21), HTTP/2 and HTTP/1.1 side by side.
 */
import { table } from './format.ts';
import type { Results, TlsFigures } from './results.ts';

export const TLS_SECTION = '## 9. TLS and HTTP/2';

export function renderTlsSection(r: Results): string[] {
  const md = [TLS_SECTION, ''];
  if (!r.tls) return [...md, 'Not measured in this run.', ''];
  return [
    ...md,
    ...renderTls(r.tls),
    '',
    'Narwhal over TLS (`serve --tls-cert --tls-key`, a certificate of a CA made for the run) and over plain HTTP,',
    "both on the data dir of the figures above. Each copy goes into a fresh store by a fresh client (Nix's narinfo",
    "cache is per user). The 20 ms round trip is added by a relay holding data 10 ms each way (this machine's kernel",
    'has no netem for `tc`); Nix opens up to 25 connections (`http-connections`) over HTTP/1.1 and multiplexes',
    'over one connection with HTTP/2.',
    '',
  ];
}

/** The figures as Markdown: HTTP/2 and HTTP/1.1 side by side per link, then TLS against plain HTTP. */
export function renderTls(f: TlsFigures): string[] {
  const rows = (['loopback', '20 ms RTT'] as const).map((link) => {
    const of = (http2: boolean) => f.closure.find((c) => c.link === link && c.http2 === http2)!.seconds;
    return [link, `${of(true).toFixed(2)} s`, `${of(false).toFixed(2)} s`, `${(of(false) / of(true)).toFixed(2)}x`];
  });
  const ratio = f.dataset.tlsSeconds / f.dataset.plainSeconds;
  return [
    `\`nix copy --from https://...\` of a closure of ${f.smallPaths} small paths into a fresh store (median of ${f.rounds}):`,
    '',
    table(['link', 'HTTP/2 (http2 = true)', 'HTTP/1.1 (http2 = false)', 'HTTP/1.1 / HTTP/2'], rows),
    '',
    `\`nix copy --from\` of the dataset: ${f.dataset.tlsSeconds.toFixed(2)} s over TLS (HTTP/2) against ${f.dataset.plainSeconds.toFixed(2)} s over plain HTTP, ${ratio.toFixed(2)}x.`,
  ];
}
