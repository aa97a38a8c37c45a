import { describe, expect, it } from 'vitest';
import { generateCases } from '../../conformance/generate.ts';
import { OracleArgumentError, parseOracleArguments, selectCases } from '../../conformance/oracle/arguments.ts';

describe('npm run oracle arguments', () => {
  const all = generateCases();

  it('records every case with no arguments, or the matching ones with --only', () => {
    expect(selectCases(all, parseOracleArguments([]))).toHaveLength(all.length);
    const some = selectCases(all, parseOracleArguments(['--only', '^delivery/nmi/']));
    expect(some.length).toBeGreaterThan(0);
    expect(some.every((c) => c.id.startsWith('delivery/nmi/'))).toBe(true);
  });

  it('refuses unknown arguments, a bad pattern and a pattern that matches nothing, naming them', () => {
    expect(() => parseOracleArguments(['--all'])).toThrow(/unexpected arguments \["--all"\]: it takes none/);
    expect(() => parseOracleArguments(['--only'])).toThrow(OracleArgumentError);
    expect(() => parseOracleArguments(['--only', '('])).toThrow(/--only "\(" is not a regular expression/);
    expect(() => selectCases(all, parseOracleArguments(['--only', '^nothing/']))).toThrow(
      /--only \/\^nothing\\\/\/ matches no case id \(ids look like paging\//,
    );
  });
});
