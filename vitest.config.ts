import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import type { Reporter, TestModule } from 'vitest/node';

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
  },
});
