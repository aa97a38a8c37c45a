import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

// DESIGN.md: imports point down only. Layers from the bottom; a file may import its own layer or lower ones.
const LAYERS = ['mmu', 'cpu', 'mm', 'faults', 'machine', 'trace', 'explore', 'scenarios', 'cli'];
const src = join(import.meta.dirname, '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : name.endsWith('.ts') ? [path] : [];
  });
}

function layerOf(path: string): string {
  return relative(src, path).split(sep)[0]!;
}

describe('layering', () => {
  for (const file of files(src)) {
    const layer = layerOf(file);
    if (!LAYERS.includes(layer)) continue; // src/index.ts re-exports everything
    it(`${relative(src, file)} imports only from its own layer or below`, () => {
      const text = readFileSync(file, 'utf8');
      for (const [, target] of text.matchAll(/from '(\.[^']+)'/g)) {
        // Nothing outside src/ (conformance/, bench/, test/): the package ships src/ alone.
        expect(relative(src, join(file, '..', target!)).startsWith('..'), `${file} imports ${target}`).toBe(false);
        const imported = layerOf(join(file, '..', target!));
        expect(LAYERS.indexOf(imported), `${layer} imports ${imported}`).toBeLessThanOrEqual(LAYERS.indexOf(layer));
      }
    });
  }
});

/** Every relative import and re-export of a TypeScript file, type-only ones included, as absolute paths. */
function importsOf(file: string, known: ReadonlySet<string>): string[] {
  const text = readFileSync(file, 'utf8');
  const targets = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*'(\.[^']+)'/g)].map((m) => m[1]!);
  return targets.map((t) => resolve(dirname(file), t)).filter((path) => known.has(path));
}

/** The strongly connected components of more than one file (Tarjan): each is an import cycle. */
function importCycles(roots: readonly string[]): string[][] {
  const all = roots.flatMap((root) => files(root));
  const known = new Set(all);
  const graph = new Map(all.map((file) => [file, importsOf(file, known)]));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)!) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(relative(join(src, '..'), w));
    } while (w !== v);
    if (component.length > 1) cycles.push(component.sort());
  };
  for (const file of all) if (!index.has(file)) visit(file);
  return cycles;
}

describe('import cycles', () => {
  it('no import cycle under src/ or conformance/, type imports included', () => {
    expect(importCycles([src, join(src, '..', 'conformance')])).toEqual([]);
  });

  it('the cycle finder finds a cycle made of type imports', () => {
    const dir = join(import.meta.dirname, 'fixtures', 'import-cycle');
    expect(importCycles([dir])).toEqual([['test/fixtures/import-cycle/a.ts', 'test/fixtures/import-cycle/b.ts']]);
  });
});
