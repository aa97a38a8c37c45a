import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// Code shown in README.md and docs/ is marked `<!-- example: path -->` before its ```ts block; the block must be
// verbatim in that file, which runs in the suite. So the docs cannot drift from code that works.

const root = join(import.meta.dirname, '..');

function markdownFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return markdownFiles(path);
    return name.endsWith('.md') ? [path] : [];
  });
}

const files = [join(root, 'README.md'), ...markdownFiles(join(root, 'docs'))];
const marker = /<!-- example: (\S+) -->\s*```ts\n([\s\S]*?)```/g;

describe('documentation examples', () => {
  const examples = files.flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(marker)].map((m) => ({ file, source: m[1]!, code: m[2]! })),
  );

  it('the README and the guide show runnable examples', () => {
    expect(examples.some((e) => e.file.endsWith('README.md'))).toBe(true);
    expect(examples.some((e) => e.file.endsWith('guide.md'))).toBe(true);
  });

  for (const { file, source, code } of examples) {
    it(`${file.slice(root.length + 1)} shows code that runs in ${source}`, () => {
      const text = readFileSync(join(root, source), 'utf8');
      expect(text).toContain(code.trimEnd());
    });
  }
});
