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
  it('prints the table and writes the JSON and an SVG chart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'frag-'));
    const { code, out } = await cli('frag', '--memory', '16', '--operations', '400', '--out', dir);
    expect(code).toBe(0);
    for (const policy of ['order0', 'high-order', 'huge', 'high-order+compaction']) expect(out).toContain(policy);
    expect(out).toMatch(/order-9 ok/);
    const json = JSON.parse(readFileSync(join(dir, 'frag.json'), 'utf8'));
    expect(json).toMatchObject({ workload: 'mixed', seed: 1, memoryMiB: 16, operations: 400 });
    expect(json.results).toHaveLength(4);
    const svg = readFileSync(join(dir, 'frag.svg'), 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<path /g)).toHaveLength(12); // three panels, four policies
    expect(existsSync(join(dir, 'frag.svg'))).toBe(true);
  }, 60_000);

  it('bad options exit 2, naming the value', async () => {
    expect(await cli('frag', '--memory', '8')).toMatchObject({ code: 2 });
    expect((await cli('frag', '--memory', '8')).err).toMatch(/--memory '8' must be a decimal integer in 16\.\.4096/);
    expect((await cli('frag', '--workload', 'nope')).err).toMatch(/--workload 'nope' must be one of mixed/);
    expect((await cli('frag', '--seed', '1x')).code).toBe(2);
  });
});
