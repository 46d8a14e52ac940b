// Runs every compiled test file through uvu's own CLI, echoes its output, and ends with the
// one totals line CI reads ("N passed, N failed"), which uvu does not print in that form.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// uvu does not export bin.js, so find it beside the package's main entry
const uvuBin = join(dirname(createRequire(import.meta.url).resolve('uvu')), '..', 'bin.js');
const pattern = process.argv[2] ?? '\\.test\\.js$';

const child = spawn(process.execPath, [uvuBin, here, pattern, '--color', 'false'], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, FORCE_COLOR: '0' },
});
let out = '';
child.stdout.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk);
  out += chunk.toString('utf8');
  if (out.length > 1 << 20) out = out.slice(-(1 << 16));
});
child.on('close', (code) => {
  // eslint-disable-next-line no-control-regex
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (label: string): number => Number(/\s*(\d+)/.exec(plain.split(label).pop() ?? '')?.[1] ?? 0);
  const total = plain.includes('Total:') ? num('Total:') : 0;
  const passed = plain.includes('Passed:') ? num('Passed:') : 0;
  const skipped = plain.includes('Skipped:') ? num('Skipped:') : 0;
  let failed = total - passed - skipped;
  // A crashed test file or a non-zero exit must never read as green.
  if (code !== 0 && failed === 0) failed = 1;
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(code === 0 && failed === 0 ? 0 : 1);
});
