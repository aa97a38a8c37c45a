import { describeValue, InputError } from '../mmu/input-error.ts';

// The `-p key=value` strings a command was given. cac reads a dotted option, `--param.reads 2`, as an object
// ({ reads: 2 }), and next to a `-p` it drops it without a word; so the argv itself is read for one, and it is
// refused with the parameter named and the way to write it.

/** `--param.<name>` or `--p.<name>`, with `=value` or not. */
const DOTTED = /^--?(?:param|p)\.([^=]*)(?:=(.*))?$/s;

/** The `-p` strings as typed; a dotted `--param.<name>` is an InputError naming the parameter. */
export function paramStrings(argv: readonly string[], parsed: unknown): string[] {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    const dotted = DOTTED.exec(arg);
    if (!dotted) continue;
    const name = dotted[1]!;
    const next = argv[i + 1];
    const value = dotted[2] ?? (next !== undefined && !next.startsWith('-') ? next : '<value>');
    const flag = arg.split('=')[0]!;
    throw new InputError(
      `${flag} is not how a parameter is given: write -p ${name}=${value} (or --param ${name}=${value})`,
    );
  }
  if (parsed === undefined) return [];
  return [parsed].flat().map((p) => {
    if (typeof p === 'string' || typeof p === 'number' || typeof p === 'boolean') return String(p);
    throw new InputError(`-p ${describeValue(p)} must be written key=value, such as -p reads=2`);
  });
}
