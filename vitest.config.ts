import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type Reporter, type TestModule, type TestSpecification } from 'vitest/node';

/** Prints a plain closing line, "tests: N passed, N failed", after vitest's own summary (CI reads it). */
class ClosingLine implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const module of modules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
    }
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  }
}

/**
 * The longest test files (each 20 s to 90 s here), longest first. With no results cache (a fresh clone: CI), vitest
 * runs the largest files first, and these are small: two of them started last and the suite ran a minute longer
 * than its two workers needed.
 */
const LONGEST = [
  'test/explore/soundness.test.ts',
  'test/scenarios/migration-sched-verdicts.test.ts',
  'test/scenarios/migration-verdicts.test.ts',
  'test/scenarios/data-migration-verdicts.test.ts',
  'test/scenarios/mutate-data-migration.test.ts',
  'test/explore/stateful-parallel.test.ts',
  'test/explore/distributed/broker.test.ts',
  'test/scenarios/mutate.test.ts',
];

// A file renamed or removed would silently drop out of the list: say so instead.
for (const file of LONGEST) {
  if (!existsSync(fileURLToPath(new URL(file, import.meta.url)))) {
    throw new Error(`vitest.config.ts: LONGEST names ${file}, which does not exist`);
  }
}

/** Vitest's order (failed first, then longest first by its cache, else largest first), the LONGEST files before. */
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification) => {
      const i = LONGEST.indexOf(relative(f.project.config.root, f.moduleId).split('\\').join('/'));
      return i < 0 ? LONGEST.length : i;
    };
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  // The docs examples import 'x86slice' as users do; package.json exports point into dist/ (the compiled package),
  // so the suite maps the name to the sources and never runs a stale or missing build.
  resolve: { alias: [{ find: /^x86slice$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) }] },
  test: {
    include: ['test/**/*.test.ts', 'docs/**/*.test.ts'],
    // Two test files at a time on a 2-core machine (vitest's default is one fewer than the CPUs: one). The suite's
    // long files are explorations that use one core each; no test asserts on time.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // A timeout guards against a hang, never against slowness: vitest's 5 s default failed an exploration that
    // took 5.3 s while the broker tests' processes shared the cores (no test asserts on time; bench/ measures).
    testTimeout: 60_000,
    reporters: ['default', new ClosingLine()],
    sequence: { sequencer: LongestFirst },
    // Test files share a worker's modules (each file still gets its own test context): a fresh import of the
    // sources for each of the 89 files cost about 130 worker-seconds of the suite's 630. Every test passes either
    // way: no test relies on a module's state left by another file.
    isolate: false,
    // Tests load the sources with Node's own import, through tsx (TypeScript only; no CommonJS), as users load the
    // package: Vite's module runner rewrites every imported binding into a property read of a module object, and
    // the explorations ran about 1.8 times as long under it (mutate-data-migration.test.ts alone: 56 s, and 31 s
    // natively).
    execArgv: ['--import', 'tsx'],
    // No module mocking or in-source tests here, so no module loader hooks (Node 20 has no module.registerHooks, and
    // vitest warned that it would do without them on every run).
    experimental: { viteModuleRunner: false, nodeLoader: false },
  },
});
