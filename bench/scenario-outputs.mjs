// Every catalogue scenario's JSON output, for checking that a refactoring changed no behaviour: run it before and
// after and compare the files (`node bench/scenario-outputs.mjs out.txt`, after `npm run build`). Each scenario runs
// under every value of each choice or boolean parameter (the others at their defaults), plain and timed; each is
// explored with the three strategies at small budgets, and every violation's schedule is replayed.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { SCENARIOS } from '../dist/index.js';

const out = process.argv[2];
if (!out) {
  console.error('usage: node bench/scenario-outputs.mjs <output file>');
  process.exit(2);
}

function cli(args) {
  const r = spawnSync(process.execPath, ['bin/x86slice.js', ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return `$ x86slice ${args.join(' ')}\n${r.stdout}${r.stderr}exit ${r.status}\n`;
}

/** One parameter list per value of each choice/boolean parameter (the rest at defaults), plus all defaults. */
function variants(scenario) {
  const lists = [[]];
  for (const p of scenario.params) {
    const values = p.kind === 'choice' ? p.choices : p.kind === 'boolean' ? [true, false] : [];
    for (const v of values) if (v !== p.default) lists.push(['-p', `${p.name}=${v}`]);
  }
  return lists;
}

const sections = [];
for (const s of SCENARIOS) {
  for (const params of variants(s)) {
    sections.push(cli(['run', s.name, ...params, '--json']));
    sections.push(cli(['run', s.name, ...params, '--timed', '--json']));
    if (s.name === 'vmalloc-orders') continue; // a workload, not an interleaving question
    for (const strategy of ['exhaustive', 'pct', 'random']) {
      const args = ['explore', s.name, ...params, '--strategy', strategy, '--budget', '300', '--json'];
      const text = cli(args);
      sections.push(text);
      const json = text.slice(text.indexOf('\n') + 1, text.lastIndexOf('exit'));
      try {
        for (const v of JSON.parse(json).violations ?? []) {
          sections.push(cli(['replay', s.name, ...params, '--schedule', v.schedule]));
        }
      } catch {
        // Not JSON (an error message): recorded as it is.
      }
    }
  }
}
const text = sections.join('\n');
writeFileSync(out, text);
console.log(`${sections.length} outputs, sha256 ${createHash('sha256').update(text).digest('hex')}`);
