import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The published package, as a user gets it: `npm pack` (which builds dist/ through `prepare`), then the tarball
// installed into two fresh projects outside the repository: a plain JavaScript ESM project that imports the
// library and runs the bin with node, and a strict TypeScript project whose vitest test imports it, type-checked
// against the tarball's .d.ts. Nothing here reads the repository's sources or dist/ directly.

const root = join(import.meta.dirname, '..', '..');
const repoModules = join(root, 'node_modules');
const execFileAsync = promisify(execFile);

// Child processes must not inherit what npm and vitest tell the suite about this repository (npm would take
// npm_config_local_prefix as the project to install into; a nested vitest would read our worker's variables).
const env: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    ([key]) =>
      !/^(npm_package_|npm_lifecycle_|VITEST)/.test(key) &&
      !['npm_config_local_prefix', 'npm_command', 'INIT_CWD', 'NODE_OPTIONS', 'NODE_ENV', 'TEST'].includes(key),
  ),
);

async function exec(file: string, args: readonly string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  try {
    return await execFileAsync(file, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed in ${cwd}\n${stdout}\n${stderr}`, { cause: error });
  }
}

function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
}

/** Points dir/node_modules/<name> at the repository's copy, so the temporary project installs nothing else. */
function linkFromRepo(dir: string, name: string): void {
  const target = join(dir, 'node_modules', name);
  mkdirSync(join(target, '..'), { recursive: true });
  symlinkSync(join(repoModules, name), target, 'dir');
}

const JS_DEMO = `import { Machine } from 'x86slice';

const m = Machine.create({ cpus: 1 });
const va = m.map(0xffffc90001000000n, { writable: true });
let loaded;
m.load(0, function* (x) {
  yield x.store(va, 8, 42);
  loaded = yield x.load(va, 8);
});
const result = m.run();
console.log(JSON.stringify({ outcome: result.outcome, loaded, from: import.meta.resolve('x86slice') }));
`;

const TS_TEST = `import { expect, test } from 'vitest';
import { Machine } from 'x86slice';

test('a store and a load on one CPU, through the installed package', () => {
  const m = Machine.create({ cpus: 1 });
  const va: number = m.map(0xffffc90001000000n, { writable: true });
  m.load(0, function* (x) {
    yield x.store(va, 8, 42);
    expect(yield x.load(va, 8)).toBe(42);
  });
  expect(m.run().outcome).toBe('ok');
  // @ts-expect-error the types come from the package: cpus is a number
  expect(() => Machine.create({ cpus: 'two' })).toThrow();
});
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    noEmit: true,
    skipLibCheck: false, // checks the packaged .d.ts too: they may only name what the package depends on
    types: ['node'],
  },
  include: ['*.ts'],
};

describe('the npm package', () => {
  let temp = '';
  let tarball = '';
  let packed: string[] = [];
  const jsProject = () => join(temp, 'js-project');
  const tsProject = () => join(temp, 'ts-project');

  beforeAll(async () => {
    temp = mkdtempSync(join(tmpdir(), 'x86slice-package-'));
    const { stdout } = await exec('npm', ['pack', '--json', '--pack-destination', temp], root);
    const name = readdirSync(temp).find((f) => f.endsWith('.tgz'));
    if (name === undefined) throw new Error(`npm pack wrote no tarball into ${temp}:\n${stdout}`);
    tarball = join(temp, name);
    const report = JSON.parse(stdout.slice(stdout.indexOf('['))) as { files: { path: string }[] }[];
    packed = report[0]!.files.map((f) => f.path);

    const install = async (dir: string) => {
      mkdirSync(dir);
      writeFiles(dir, { 'package.json': JSON.stringify({ name: 'consumer', private: true, type: 'module' }) });
      await exec('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], dir);
    };
    await Promise.all([install(jsProject()), install(tsProject())]);
  }, 120_000);

  afterAll(() => {
    if (temp) rmSync(temp, { recursive: true, force: true });
  });

  it('the tarball holds the compiled library, its types and the bin, not the sources', () => {
    expect(packed).toEqual(
      expect.arrayContaining(['package.json', 'README.md', 'bin/x86slice.js', 'dist/index.js', 'dist/index.d.ts']),
    );
    expect(packed).toContain('dist/cli/main.js');
    expect(packed.filter((p) => !/^(dist\/|bin\/|package\.json$|README\.md$|LICENSE)/.test(p))).toEqual([]);
    expect(packed.filter((p) => p.endsWith('.ts') && !p.endsWith('.d.ts'))).toEqual([]);
  });

  it('a plain JavaScript ESM project imports Machine and runs the x86slice bin with node', async () => {
    const dir = jsProject();
    expect(existsSync(join(dir, 'node_modules', 'tsx'))).toBe(false); // the bin runs without a TS loader
    writeFiles(dir, { 'demo.mjs': JS_DEMO });
    const demo = JSON.parse((await exec(process.execPath, ['demo.mjs'], dir)).stdout);
    expect(demo).toMatchObject({ outcome: 'ok', loaded: 42 });
    expect(demo.from).toMatch(/\/node_modules\/x86slice\/dist\/index\.js$/);

    const bin = join(dir, 'node_modules', '.bin', 'x86slice');
    const list = await exec(bin, ['list'], dir);
    for (const name of ['pf-in-pf', 'df-triple', 'stale-tlb']) expect(list.stdout).toContain(name);
    const run = await exec(bin, ['run', 'pf-in-pf', '--json'], dir);
    expect(JSON.parse(run.stdout)).toMatchObject({ scenario: 'pf-in-pf', outcome: 'double-fault' });
  }, 60_000);

  it('a strict TypeScript project type-checks against the packaged .d.ts and its vitest test passes', async () => {
    const dir = tsProject();
    for (const name of ['vitest', '@types/node']) linkFromRepo(dir, name);
    writeFiles(dir, {
      'tsconfig.json': JSON.stringify(TSCONFIG, null, 2),
      'consumer.test.ts': TS_TEST,
    });
    await exec(join(repoModules, '.bin', 'tsc'), ['--noEmit', '-p', dir], dir);
    const vitest = join(dir, 'node_modules', 'vitest', 'vitest.mjs');
    const { stdout } = await exec(process.execPath, [vitest, 'run', '--reporter=json'], dir);
    const report = JSON.parse(stdout.slice(stdout.indexOf('{')));
    expect(report).toMatchObject({ success: true, numTotalTests: 1, numPassedTests: 1 });
  }, 60_000);
});
