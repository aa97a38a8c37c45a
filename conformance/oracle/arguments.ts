import type { Case } from '../case.ts';

// The arguments `npm run oracle` takes, checked before anything runs: none (record every case and write the
// recording) or `--only REGEX` (record the cases whose id matches and print them, writing nothing).

export class OracleArgumentError extends Error {
  override name = 'OracleArgumentError';
}

export interface OracleArguments {
  /** Only the cases whose id matches, printed instead of written. */
  readonly only?: RegExp;
}

export function parseOracleArguments(argv: readonly string[]): OracleArguments {
  if (argv.length === 0) return {};
  if (argv[0] !== '--only' || argv.length !== 2) {
    throw new OracleArgumentError(
      `npm run oracle: unexpected arguments ${JSON.stringify(argv)}: it takes none (record every case) or ` +
        '--only REGEX (record and print the cases whose id matches)',
    );
  }
  try {
    return { only: new RegExp(argv[1]!) };
  } catch (error) {
    throw new OracleArgumentError(
      `npm run oracle: --only ${JSON.stringify(argv[1])} is not a regular expression: ${(error as Error).message}`,
    );
  }
}

/** The cases to record; a pattern that matches none is refused, naming it. */
export function selectCases(all: readonly Case[], args: OracleArguments): readonly Case[] {
  if (!args.only) return all;
  const only = args.only;
  const cases = all.filter((c) => only.test(c.id));
  if (cases.length === 0) {
    throw new OracleArgumentError(
      `npm run oracle: --only ${String(only)} matches no case id (ids look like ${all[0]?.id})`,
    );
  }
  return cases;
}
