import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('x86slice frag', () => {
  it('prints a table per workload and writes the JSON and an SVG chart with confidence intervals', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'frag-'));
    const args = ['--memory', '64', '--seeds', '2', '--operations', '150', '--workers', '1', '--out', dir];
    const { code, out } = await cli('frag', ...args);
    expect(code).toBe(0);
    for (const policy of ['order0', 'high-order', 'huge', 'high-order+migratable']) expect(out).toContain(policy);
    expect(out).toMatch(/stress-highalloc:/);
    expect(out).toMatch(/pass 1 %/);
    expect(out).toMatch(/no-2m/);
    const json = JSON.parse(readFileSync(join(dir, 'frag.json'), 'utf8'));
    expect(json.options).toMatchObject({ memory: 64, seeds: 2, operations: 150, workloads: ['stress-highalloc'] });
    expect(json.runs).toHaveLength(2 * 4 * 2); // variants x policies x seeds
    expect(json.summaries).toHaveLength(8);
    expect(json.summaries[0].figures['extfrag events']).toHaveProperty('ci95');
    const svg = readFileSync(join(dir, 'frag.svg'), 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('95% confidence interval');
    expect(svg.match(/<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height/g)!.length).toBeGreaterThanOrEqual(16);
    expect(existsSync(join(dir, 'frag.svg'))).toBe(true);
  }, 120_000);

  it('bad options exit 2, naming the value', async () => {
    expect(await cli('frag', '--memory', '8')).toMatchObject({ code: 2 });
    expect((await cli('frag', '--memory', '8')).err).toMatch(/--memory '8' must be a decimal integer in 64\.\.4096/);
    expect((await cli('frag', '--workload', 'nope')).err).toMatch(
      /--workload 'nope' must be one of stress-highalloc, thpchallenge, both/,
    );
    expect((await cli('frag', '--variant', 'x')).err).toMatch(/--variant 'x' must be one of default, no-2m, both/);
    expect((await cli('frag', '--memory', '66')).err).toMatch(/multiple of 4 MiB/);
    expect((await cli('frag', '--seed', '1x')).code).toBe(2);
  });
});
