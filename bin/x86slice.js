#!/usr/bin/env node
// The x86slice command: runs the compiled CLI in dist/ with plain node. `npm run build` writes dist/ (npm runs it on
// `npm ci`, `npm install` in a clone, `npm pack` and `npm start`); the published package ships it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(compiled)) {
  const { main } = await import(compiled.href);
  process.exitCode = await main(process.argv.slice(2));
} else {
  const root = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write(`x86slice: the compiled CLI (dist/cli/main.js) is missing; run \`npm run build\` in ${root}\n`);
  process.exitCode = 2;
}
