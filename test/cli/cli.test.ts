import { describe, expect, it } from 'vitest';
import { EXIT_USAGE, main } from '../../src/cli/main.ts';

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('x86slice CLI', () => {
  it('list shows every scenario with its parameters', async () => {
    const { code, out } = await cli('list');
    expect(code).toBe(0);
    for (const name of ['pf-in-pf', 'df-triple', 'stale-tlb']) expect(out).toContain(name);
    expect(out).toContain('-p df-ist=<0..2>');
  });

  it('run --json prints one object with scenario, outcome, steps and per-CPU final state', async () => {
    const { code, out } = await cli('run', 'pf-in-pf', '--json');
    expect(code).toBe(0);
    const report = JSON.parse(out);
    expect(report).toMatchObject({ scenario: 'pf-in-pf', outcome: 'double-fault', steps: 6 });
    expect(report.cpus[0]).toMatchObject({ id: 0, state: 'stopped', registers: { cr2: '0xffffc90000007fe8' } });
  });

  it('run takes -p key=value parameters', async () => {
    const { code, out } = await cli('run', 'pf-in-pf', '-p', 'df-ist=0', '--json');
    expect(code).toBe(0);
    expect(JSON.parse(out).outcome).toBe('triple-fault');
    const twice = await cli('run', 'stale-tlb', '-p', 'reads=2', '--json');
    expect(JSON.parse(twice.out).params).toEqual({ reads: 2 });
  });

  it('run without --json prints a per-CPU timeline and the outcome', async () => {
    const { code, out } = await cli('run', 'stale-tlb');
    expect(code).toBe(0);
    expect(out).toMatch(/CPU0 +│ CPU1/);
    expect(out).toContain('outcome: ok');
  });

  it('an unknown scenario is exit code 2 with the valid names', async () => {
    const { code, err } = await cli('run', 'nope');
    expect(code).toBe(EXIT_USAGE);
    expect(err).toContain("unknown scenario 'nope'; valid scenarios: pf-in-pf, df-triple, stale-tlb");
  });

  it('an unknown or out-of-range parameter is exit code 2 naming the rule', async () => {
    const unknown = await cli('run', 'pf-in-pf', '-p', 'colour=red');
    expect(unknown.code).toBe(EXIT_USAGE);
    expect(unknown.err).toContain("unknown parameter 'colour' for scenario pf-in-pf; valid parameters: cpus");
    const range = await cli('run', 'pf-in-pf', '-p', 'df-ist=9');
    expect(range.code).toBe(EXIT_USAGE);
    expect(range.err).toContain('df-ist=9 must be an integer in 0..2');
    const malformed = await cli('run', 'pf-in-pf', '-p', 'df-ist');
    expect(malformed.err).toContain("parameter 'df-ist' must be written key=value");
  });

  it.each([
    ['__proto__=1', "unknown parameter '__proto__' for scenario stale-tlb"],
    ['constructor=1', "unknown parameter 'constructor' for scenario stale-tlb"],
    ['toString=1', "unknown parameter 'toString' for scenario stale-tlb"],
    ['reads=1e3', 'parameter reads=1e3 must be an integer in 1..100'],
    ['reads=0x10', 'parameter reads=0x10 must be an integer in 1..100'],
    ['reads=', 'parameter reads= must be an integer in 1..100'],
    ['=3', "parameter '=3' must be written key=value"],
  ])('-p %s is exit code 2 naming the parameter and the rule', async (pair, message) => {
    const { code, err } = await cli('run', 'stale-tlb', '-p', pair);
    expect(code).toBe(EXIT_USAGE);
    expect(err).toContain(message);
  });

  it.each([
    [['run', 'stale-tlb', '--param.reads', '2'], '--param.reads is not how a parameter is given: write -p reads=2'],
    [['run', 'stale-tlb', '--param.reads=3', '--json'], 'write -p reads=3 (or --param reads=3)'],
    // Beside a -p, cac would drop the dotted one without a word.
    [['run', 'stale-tlb', '-p', 'reads=1', '--param.reads', '2'], '--param.reads is not how a parameter is given'],
    [['run', 'stale-tlb', '--p.reads', '2'], '--p.reads is not how a parameter is given: write -p reads=2'],
    [['run', 'stale-tlb', '--param.reads'], 'write -p reads=<value>'],
    [['explore', 'stale-tlb', '--param.reads', '2'], '--param.reads is not how a parameter is given: write -p reads=2'],
    [['replay', 'stale-tlb', '--schedule', '', '--param.reads', '2'], 'write -p reads=2'],
  ])('%j (a dotted parameter) is exit code 2 naming the parameter, not [object Object]', async (argv, message) => {
    const { code, out, err } = await cli(...argv);
    expect(code).toBe(EXIT_USAGE);
    expect(err).toContain(message);
    expect(err).not.toContain('[object Object]');
    expect(out).toBe('');
  });

  it('a parameter given twice is exit code 2, not silently the last one', async () => {
    const { code, err } = await cli('run', 'stale-tlb', '-p', 'reads=2', '-p', 'reads=3');
    expect(code).toBe(EXIT_USAGE);
    expect(err).toContain('parameter reads is given twice');
  });

  it('an unknown command or option is exit code 2', async () => {
    expect((await cli('frobnicate')).code).toBe(EXIT_USAGE);
    expect((await cli('run', 'pf-in-pf', '--bogus')).code).toBe(EXIT_USAGE);
  });

  it('demo: the naive stack migration double-faults with its timeline, the switcheroo completes', async () => {
    const { code, out } = await cli('demo');
    expect(code).toBe(0);
    expect(out).toContain('#DF(0x0) delivered on ist1');
    expect(out).toContain('outcome: double-fault');
    expect(out).toMatch(/scenario stack-migration \(protocol=ipi-switcheroo[^)]*\)[\s\S]*outcome: ok/);
    expect(out).toContain('oldFrameFreed: true');
  });
});

describe('the version', () => {
  it("is package.json's: a distributed search refuses workers of another version by it", async () => {
    const { VERSION } = await import('../../src/cli/version.ts');
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });
});
