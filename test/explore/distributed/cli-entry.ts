import { main } from '../../../src/cli/main.ts';

// The CLI from its sources, for the broker tests' processes (node --import tsx): the coordinator and every worker
// load the same text the same way, as a program's fingerprint hashes its source (workers check the initial state).
process.exitCode = await main(process.argv.slice(2));
