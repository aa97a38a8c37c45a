// The version the CLI reports, and the one a distributed search's coordinator and workers must agree on (kept equal
// to package.json's by test/cli/cli.test.ts).
export const VERSION = '0.1.0';
