/**
 * Hand-written SVG charts (no dependencies): grouped horizontal bars, one group per data series,
 * one bar per system, with a legend and the value printed at the end of each bar.
 */

export interface BarKey {
  key: string;
  label: string;
  /** Fill colour; by default the next palette colour. */
  color?: string;
}

export interface BarGroup {
  label: string;
  /** Value per key; keys without a value draw no bar. */
  values: Record<string, number | undefined>;
}

export interface ChartSpec {
  title: string;
  /** One line under the title (the unit, and whether more or less is better). */
  subtitle: string;
  keys: BarKey[];
  groups: BarGroup[];
  format: (value: number) => string;
}

/** Okabe-Ito: distinguishable with the common colour-vision deficiencies. */
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#999999', '#000000'];

const WIDTH = 860;
const LEFT = 235;
const RIGHT = 120;
const BAR = 14;
const BAR_GAP = 3;
const GROUP_GAP = 16;
const FONT = 'font-family="DejaVu Sans, Verdana, sans-serif"';

export function groupedBarChart(spec: ChartSpec): string {
  const max = Math.max(
    0,
    ...spec.groups.flatMap((g) =>
      Object.values(g.values).filter((v): v is number => v !== undefined && Number.isFinite(v)),
    ),
  );
  const scale = max > 0 ? (WIDTH - LEFT - RIGHT) / max : 0;
  const parts: string[] = [];
  parts.push(`<text x="16" y="26" font-size="17" font-weight="bold" ${FONT}>${esc(spec.title)}</text>`);
  parts.push(`<text x="16" y="46" font-size="12" fill="#444" ${FONT}>${esc(spec.subtitle)}</text>`);

  // Legend, wrapped into rows.
  let x = 16;
  let y = 70;
  spec.keys.forEach((k, i) => {
    const w = 22 + k.label.length * 6.6;
    if (x + w > WIDTH - 16) {
      x = 16;
      y += 18;
    }
    parts.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${k.color ?? color(i)}"/>`);
    parts.push(`<text x="${x + 17}" y="${y}" font-size="12" ${FONT}>${esc(k.label)}</text>`);
    x += w + 14;
  });

  y += 22;
  const barsTop = y;
  for (const group of spec.groups) {
    const present = spec.keys
      .map((k, i) => ({ k, i, v: group.values[k.key] }))
      .filter((b) => b.v !== undefined && Number.isFinite(b.v));
    const height = Math.max(1, present.length) * (BAR + BAR_GAP) - BAR_GAP;
    parts.push(
      `<text x="${LEFT - 10}" y="${y + height / 2 + 4}" font-size="12" text-anchor="end" ${FONT}>${esc(group.label)}</text>`,
    );
    present.forEach((b, j) => {
      const by = y + j * (BAR + BAR_GAP);
      const w = Math.max(1, (b.v as number) * scale);
      parts.push(
        `<rect x="${LEFT}" y="${by}" width="${w.toFixed(1)}" height="${BAR}" fill="${b.k.color ?? color(b.i)}"><title>${esc(`${b.k.label}: ${spec.format(b.v as number)}`)}</title></rect>`,
      );
      parts.push(
        `<text x="${(LEFT + w + 5).toFixed(1)}" y="${by + BAR - 3}" font-size="11" ${FONT}>${esc(spec.format(b.v as number))}</text>`,
      );
    });
    y += height + GROUP_GAP;
  }
  parts.push(
    `<line x1="${LEFT}" y1="${barsTop - 4}" x2="${LEFT}" y2="${y - GROUP_GAP + 4}" stroke="#333" stroke-width="1"/>`,
  );
  const total = y + 4;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${total}" viewBox="0 0 ${WIDTH} ${total}">
<rect width="100%" height="100%" fill="#fff"/>
${parts.join('\n')}
</svg>
`;
}

function color(i: number): string {
  return PALETTE[i % PALETTE.length];
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
