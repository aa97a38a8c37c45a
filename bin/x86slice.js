#!/usr/bin/env node
// The CLI is TypeScript; tsx registers a loader so the bin runs the sources directly (no build step on install).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
