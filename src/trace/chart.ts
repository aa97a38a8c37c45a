// A small SVG bar chart with error bars, for the fragmentation experiment (docs/frag.md): panels in a grid, each
// a group of bars per category (a policy) with one bar per series (a variant), the bar at the mean and a whisker
// for the 95% confidence interval; one legend above all panels. Plain SVG 1.1 text: no scripts, no external fonts.

export interface BarValue {
  readonly mean: number;
  /** Half-width of the confidence interval (NaN: none drawn). */
  readonly ci: number;
}

export interface BarPanel {
  readonly title: string;
  readonly yLabel: string;
  /** Per category (x axis), one value per series, in the order of `series`. */
  readonly groups: readonly { readonly label: string; readonly values: readonly BarValue[] }[];
}

export interface BarChart {
  readonly title: string;
  readonly subtitle: string;
  readonly series: readonly string[];
  readonly panels: readonly BarPanel[];
  /** Panels per row. */
  readonly columns: number;
}

const COLORS = ['#4c72b0', '#dd8452', '#55a868', '#c44e52'];
const PANEL_W = 470;
const PANEL_H = 300;
const PAD = { left: 62, right: 14, top: 34, bottom: 52 };
const HEADER = 78;

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

/** Round numbers for axis ticks: 0 and up to five more, evenly spaced. */
function ticks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const step = 10 ** Math.floor(Math.log10(raw));
  const nice = [1, 2, 2.5, 5, 10].map((k) => k * step).find((s) => max / s <= 5) ?? step * 10;
  const out: number[] = [];
  for (let v = 0; v < max + nice - 1e-9; v += nice) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

/** "high-order+migratable" -> ["high-order", "+migratable"]: the break before the last '+'. */
function splitLabel(text: string): string[] {
  const at = text.lastIndexOf('+');
  return [text.slice(0, at), text.slice(at)];
}

function label(v: number): string {
  if (Math.abs(v) >= 10000) return `${Math.round(v / 1000)}k`;
  return String(v);
}

function panel(p: BarPanel, x0: number, y0: number, seriesCount: number): string {
  const out: string[] = [];
  const top = Math.max(1e-9, ...p.groups.flatMap((g) => g.values.map((v) => v.mean + (Number.isNaN(v.ci) ? 0 : v.ci))));
  const yTicks = ticks(top);
  const yMax = yTicks[yTicks.length - 1]!;
  const plotW = PANEL_W - PAD.left - PAD.right;
  const plotH = PANEL_H - PAD.top - PAD.bottom;
  const sy = (v: number) => y0 + PAD.top + (1 - v / yMax) * plotH;
  const left = x0 + PAD.left;
  out.push(
    `<text x="${x0 + PANEL_W / 2}" y="${y0 + 18}" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(p.title)}</text>`,
  );
  for (const t of yTicks) {
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${left - 6}" y="${sy(t) + 4}" text-anchor="end" font-size="11">${label(t)}</text>`);
  }
  const yMid = y0 + PAD.top + plotH / 2;
  out.push(
    `<text x="${x0 + 14}" y="${yMid}" text-anchor="middle" font-size="11" transform="rotate(-90 ${x0 + 14} ${yMid})">${escapeXml(p.yLabel)}</text>`,
  );
  const groupW = plotW / p.groups.length;
  const barW = Math.min(34, (groupW * 0.8) / seriesCount);
  p.groups.forEach((g, gi) => {
    const gx = left + gi * groupW + (groupW - barW * seriesCount) / 2;
    g.values.forEach((v, si) => {
      if (Number.isNaN(v.mean)) return;
      const x = gx + si * barW;
      const y = sy(v.mean);
      out.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barW - 3).toFixed(1)}" height="${(sy(0) - y).toFixed(1)}" fill="${COLORS[si % COLORS.length]}"/>`,
      );
      if (!Number.isNaN(v.ci) && v.ci > 0) {
        const cx = x + (barW - 3) / 2;
        const lo = sy(Math.max(0, v.mean - v.ci));
        const hi = sy(v.mean + v.ci);
        out.push(
          `<path d="M${cx.toFixed(1)},${lo.toFixed(1)} V${hi.toFixed(1)} M${(cx - 5).toFixed(1)},${lo.toFixed(1)} h10 M${(cx - 5).toFixed(1)},${hi.toFixed(1)} h10" stroke="#222" stroke-width="1.3" fill="none"/>`,
        );
      }
    });
    // A long label breaks after a '+' onto a second line, so it stays under its bars.
    const cx = (left + gi * groupW + groupW / 2).toFixed(1);
    const parts = g.label.length > 14 && g.label.includes('+') ? splitLabel(g.label) : [g.label];
    const lines = parts.map((t, k) => `<tspan x="${cx}" dy="${k === 0 ? 0 : 13}">${escapeXml(t)}</tspan>`).join('');
    out.push(
      `<text x="${cx}" y="${y0 + PANEL_H - PAD.bottom + 16}" text-anchor="middle" font-size="11">${lines}</text>`,
    );
  });
  out.push(
    `<line x1="${left}" x2="${left}" y1="${sy(0)}" y2="${sy(yMax)}" stroke="#333"/>` +
      `<line x1="${left}" x2="${left + plotW}" y1="${sy(0)}" y2="${sy(0)}" stroke="#333"/>`,
  );
  return out.join('\n');
}

/** The chart as an SVG document. */
export function formatBarChart(c: BarChart): string {
  const rows = Math.ceil(c.panels.length / c.columns);
  const width = PANEL_W * c.columns;
  const height = HEADER + rows * PANEL_H + 8;
  const legend = c.series
    .map((name, i) => {
      const x = 20 + i * 230;
      return (
        `<rect x="${x}" y="${HEADER - 24}" width="14" height="14" fill="${COLORS[i % COLORS.length]}"/>` +
        `<text x="${x + 20}" y="${HEADER - 12}" font-size="12">${escapeXml(name)}</text>`
      );
    })
    .join('\n');
  const whisker =
    `<path d="M${width - 220},${HEADER - 24} v14 M${width - 225},${HEADER - 24} h10 M${width - 225},${HEADER - 10} h10" stroke="#222" stroke-width="1.3"/>` +
    `<text x="${width - 205}" y="${HEADER - 12}" font-size="12">95% confidence interval</text>`;
  const body = c.panels
    .map((p, i) => panel(p, (i % c.columns) * PANEL_W, HEADER + Math.floor(i / c.columns) * PANEL_H, c.series.length))
    .join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<title>${escapeXml(c.title)}</title>`,
    '<rect width="100%" height="100%" fill="white"/>',
    `<text x="20" y="24" font-size="16" font-weight="bold">${escapeXml(c.title)}</text>`,
    `<text x="20" y="42" font-size="12" fill="#444">${escapeXml(c.subtitle)}</text>`,
    legend,
    whisker,
    body,
    '</svg>',
    '',
  ].join('\n');
}
