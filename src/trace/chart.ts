// A small SVG line chart, for the fragmentation experiment (docs/frag.md): panels side by side, one line per series,
// shared x axis. Plain SVG 1.1 text that opens in any browser; no scripts, no external fonts.

export interface ChartSeries {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
}

export interface ChartPanel {
  readonly title: string;
  readonly series: readonly ChartSeries[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
const W = 440;
const H = 280;
const PAD = { left: 48, right: 12, top: 28, bottom: 40 };

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

/** Round numbers for axis ticks: 0 and up to four more, evenly spaced. */
function ticks(max: number): number[] {
  if (max <= 0) return [0];
  const step = 10 ** Math.floor(Math.log10(max / 4 || 1));
  const nice = [1, 2, 5, 10].map((k) => k * step).find((s) => max / s <= 5) ?? step * 10;
  const out: number[] = [];
  for (let v = 0; v <= max + 1e-9; v += nice) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

function panel(p: ChartPanel, x0: number, xLabel: string): string {
  const all = p.series.flatMap((s) => s.points);
  const maxX = Math.max(1, ...all.map(([x]) => x));
  const maxY = Math.max(1, ...all.map(([, y]) => y));
  const yTicks = ticks(maxY);
  const top = yTicks[yTicks.length - 1]!;
  const sx = (x: number) => x0 + PAD.left + (x / maxX) * (W - PAD.left - PAD.right);
  const sy = (y: number) => PAD.top + (1 - y / top) * (H - PAD.top - PAD.bottom);
  const out: string[] = [];
  out.push(`<text x="${x0 + W / 2}" y="16" text-anchor="middle" font-size="13">${escapeXml(p.title)}</text>`);
  for (const t of yTicks) {
    out.push(`<line x1="${sx(0)}" x2="${sx(maxX)}" y1="${sy(t)}" y2="${sy(t)}" stroke="#ddd"/>`);
    out.push(`<text x="${sx(0) - 6}" y="${sy(t) + 4}" text-anchor="end" font-size="10">${t}</text>`);
  }
  for (const t of ticks(maxX)) {
    out.push(`<text x="${sx(t)}" y="${H - PAD.bottom + 14}" text-anchor="middle" font-size="10">${t}</text>`);
  }
  out.push(`<text x="${x0 + W / 2}" y="${H - 8}" text-anchor="middle" font-size="11">${escapeXml(xLabel)}</text>`);
  out.push(
    `<line x1="${sx(0)}" x2="${sx(0)}" y1="${sy(0)}" y2="${sy(top)}" stroke="#333"/>` +
      `<line x1="${sx(0)}" x2="${sx(maxX)}" y1="${sy(0)}" y2="${sy(0)}" stroke="#333"/>`,
  );
  for (const [i, s] of p.series.entries()) {
    const d = s.points.map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.6"/>`);
  }
  return out.join('\n');
}

/** Panels side by side with one legend below: an SVG document. */
export function formatLineChart(panels: readonly ChartPanel[], xLabel: string, title: string): string {
  const names = panels[0]?.series.map((s) => s.name) ?? [];
  const width = W * panels.length;
  const height = H + 24 + 18 * Math.ceil(names.length / 2);
  const body = panels.map((p, i) => panel(p, i * W, xLabel)).join('\n');
  const legend = names
    .map((name, i) => {
      const x = 20 + (i % 2) * (width / 2);
      const y = H + 20 + 18 * Math.floor(i / 2);
      return (
        `<rect x="${x}" y="${y - 9}" width="14" height="4" fill="${COLORS[i % COLORS.length]}"/>` +
        `<text x="${x + 20}" y="${y - 4}" font-size="11">${escapeXml(name)}</text>`
      );
    })
    .join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<title>${escapeXml(title)}</title>`,
    '<rect width="100%" height="100%" fill="white"/>',
    body,
    legend,
    '</svg>',
    '',
  ].join('\n');
}
