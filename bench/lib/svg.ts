/**
 * Horizontal bar charts as plain SVG (no chart library): one row per system, a bar for the median,
 * a whisker for the range of the runs, and the value written at the end of the bar.
 */

export interface Bar {
  value: number;
  min?: number;
  max?: number;
  color: string;
  /** Opacity, to tell series apart within one row. */
  opacity?: number;
  /** Written after the bar. */
  text: string;
}

export interface BarRow {
  label: string;
  bold?: boolean;
  bars: Bar[];
}

export interface BarChart {
  title: string;
  subtitle?: string;
  rows: BarRow[];
  legend?: { label: string; color: string; opacity?: number }[];
  width?: number;
}

export interface Rendered {
  body: string;
  width: number;
  height: number;
}

const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif";
const PAD = 16;
const BAR_H = 18;
const BAR_GAP = 4;
const ROW_GAP = 12;

/** Family colours: Switchboard blue, raw ws slate, Socket.IO orange. */
export const COLORS: Record<string, string> = { switchboard: '#2563eb', raw: '#64748b', socketio: '#ea580c' };

export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Splits `text` into lines of at most `max` characters, at spaces. */
function wrap(text: string, max: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > max) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** A step of 1, 2 or 5 × 10^k giving about `count` ticks up to `max`. */
function niceStep(max: number, count: number): number {
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

function tickLabel(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}

/** Lays out one chart; `body` is placed at (0,0) and sized `width` × `height`. */
export function renderBarChart(chart: BarChart): Rendered {
  const width = chart.width ?? 640;
  const labelW = Math.min(260, Math.max(90, ...chart.rows.map((r) => r.label.length * (r.bold ? 7.9 : 7.1) + 14)));
  const valueW = Math.max(90, ...chart.rows.flatMap((r) => r.bars.map((b) => b.text.length * 6.6 + 12)));
  const x0 = PAD + labelW;
  const plotW = Math.max(80, width - x0 - valueW - PAD);
  let y = PAD - 4;
  const out: string[] = [];
  for (const line of wrap(chart.title, Math.floor((width - 2 * PAD) / 8.6))) {
    y += 20;
    out.push(`<text x="${PAD}" y="${y}" font-size="15" font-weight="600" fill="#111">${esc(line)}</text>`);
  }
  if (chart.subtitle) {
    y += 18;
    out.push(`<text x="${PAD}" y="${y}" font-size="11.5" fill="#555">${esc(chart.subtitle)}</text>`);
  }
  if (chart.legend?.length) {
    y += 20;
    let lx = x0;
    for (const item of chart.legend) {
      out.push(`<rect x="${lx}" y="${y - 10}" width="12" height="12" rx="2" fill="${item.color}" fill-opacity="${item.opacity ?? 1}"/>`);
      out.push(`<text x="${lx + 17}" y="${y}" font-size="11.5" fill="#333">${esc(item.label)}</text>`);
      lx += 30 + item.label.length * 6.6;
    }
  }
  y += 14;
  const top = y;
  const values = chart.rows.flatMap((r) => r.bars.flatMap((b) => [b.value, b.max ?? b.value])).filter((v) => Number.isFinite(v));
  const maxV = Math.max(1e-9, ...values);
  const step = niceStep(maxV, 4);
  const axisMax = Math.ceil(maxV / step) * step;
  const sx = (v: number) => x0 + (Math.max(0, v) / axisMax) * plotW;
  const rowsSvg: string[] = [];
  for (const row of chart.rows) {
    const h = row.bars.length * BAR_H + (row.bars.length - 1) * BAR_GAP;
    rowsSvg.push(
      `<text x="${x0 - 8}" y="${y + h / 2 + 4}" font-size="12.5" text-anchor="end" fill="#111"${row.bold ? ' font-weight="600"' : ''}>${esc(row.label)}</text>`,
    );
    row.bars.forEach((bar, i) => {
      const by = y + i * (BAR_H + BAR_GAP);
      const cy = by + BAR_H / 2;
      if (Number.isFinite(bar.value)) {
        rowsSvg.push(
          `<rect x="${x0}" y="${by}" width="${(sx(bar.value) - x0).toFixed(1)}" height="${BAR_H}" rx="2" fill="${bar.color}" fill-opacity="${bar.opacity ?? 1}"/>`,
        );
      }
      let end = Number.isFinite(bar.value) ? sx(bar.value) : x0;
      if (bar.min !== undefined && bar.max !== undefined && Number.isFinite(bar.min) && Number.isFinite(bar.max) && bar.max > bar.min) {
        const a = sx(bar.min);
        const b = sx(bar.max);
        rowsSvg.push(
          `<path d="M${a.toFixed(1)} ${cy}H${b.toFixed(1)}M${a.toFixed(1)} ${cy - 4}V${cy + 4}M${b.toFixed(1)} ${cy - 4}V${cy + 4}" stroke="#111" stroke-width="1.3" fill="none"/>`,
        );
        end = Math.max(end, b);
      }
      rowsSvg.push(`<text x="${(end + 6).toFixed(1)}" y="${cy + 4}" font-size="11.5" fill="#222">${esc(bar.text)}</text>`);
    });
    y += h + ROW_GAP;
  }
  const bottom = y - ROW_GAP + 6;
  // Grid and axis under the bars.
  for (let v = 0; v <= axisMax + step / 2; v += step) {
    const gx = sx(v).toFixed(1);
    out.push(`<line x1="${gx}" y1="${top - 4}" x2="${gx}" y2="${bottom}" stroke="${v === 0 ? '#999' : '#e5e7eb'}" stroke-width="1"/>`);
    out.push(`<text x="${gx}" y="${bottom + 14}" font-size="10.5" text-anchor="middle" fill="#666">${tickLabel(v)}</text>`);
  }
  out.push(...rowsSvg);
  return { body: out.join('\n'), width, height: bottom + 14 + PAD };
}

/** A standalone SVG document. */
export function svgDocument(width: number, height: number, body: string, title: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${Math.ceil(height)}" viewBox="0 0 ${width} ${Math.ceil(height)}" font-family="${FONT}" role="img">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    body,
    '</svg>',
    '',
  ].join('\n');
}

/** One chart as a document. */
export function chartSvg(chart: BarChart): string {
  const r = renderBarChart(chart);
  return svgDocument(r.width, r.height, r.body, chart.title);
}

/** Several charts in a grid under a heading, with a footer line. */
export function panelsSvg(heading: string, footer: string, charts: BarChart[], columns: number): string {
  const panelW = 560;
  const rendered = charts.map((c) => renderBarChart({ ...c, width: panelW }));
  const headH = 40;
  const rows: Rendered[][] = [];
  for (let i = 0; i < rendered.length; i += columns) rows.push(rendered.slice(i, i + columns));
  const parts: string[] = [`<text x="${PAD}" y="28" font-size="18" font-weight="700" fill="#111">${esc(heading)}</text>`];
  let y = headH;
  for (const row of rows) {
    const h = Math.max(...row.map((r) => r.height));
    row.forEach((r, i) => parts.push(`<g transform="translate(${i * panelW},${y})">${r.body}</g>`));
    y += h;
  }
  parts.push(`<text x="${PAD}" y="${y + 12}" font-size="11" fill="#666">${esc(footer)}</text>`);
  return svgDocument(panelW * Math.min(columns, rendered.length), y + 24, parts.join('\n'), heading);
}
