import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
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
