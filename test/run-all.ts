// Runs every compiled test file, each in its own process, echoes its output, and ends with the
// one totals line CI reads: "N passed, N failed, N skipped".
//
// One process per file, rather than uvu's CLI running all files in one process, so that:
//   - a file that crashes on import, exits non-zero, hangs or leaves handles open fails alone and
//     is counted as failed, never as green, while the other files still run;
//   - each file has a time limit and the whole run has one, so the closing line always appears;
//   - after each file, what it started and left running is found (by the BUILDER_TEST_MARK each
//     file's process tree carries, test/helpers/process-marks.ts), reported as a failure, and killed.
// A test that skipped because Docker or btrfs is missing still returns normally, which uvu counts
// as passed: test/helpers/env.ts writes one line per skip into the file named by
// BUILDER_TEST_SKIPS, and those are moved from passed to skipped here.
//
// Usage: node dist/test/run-all.js [PATTERN]   (PATTERN: a case-insensitive regex on the test
// file's path under dist/test/, e.g. 'unit/scheduler', default every *.test.js)
// BUILDER_TEST_FILE_TIMEOUT_MS (default 600000) and BUILDER_TEST_TIMEOUT_MS (default 2700000)
// bound one file and the whole run.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killMarked, MARK_VAR } from './helpers/process-marks.js';

const here = dirname(fileURLToPath(import.meta.url));
const pattern = new RegExp(process.argv[2] ?? '\\.test\\.js$', 'i');
const envMs = (name: string, fallback: number): number => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const fileLimitMs = envMs('BUILDER_TEST_FILE_TIMEOUT_MS', 10 * 60_000);
const totalLimitMs = envMs('BUILDER_TEST_TIMEOUT_MS', 45 * 60_000);
/** how long a file's process may stay after uvu printed its summary (an open handle keeps it) */
const exitGraceMs = 10_000;

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const file = join(dir, name);
    if (name === 'node_modules') continue;
    if (statSync(file).isDirectory()) out.push(...testFiles(file));
    else if (name.endsWith('.js') && pattern.test(relative(here, file))) out.push(file);
  }
  return out;
}

interface FileResult {
  passed: number;
  failed: number;
  skipped: number;
  skips: string[];
  problems: string[];
}

const startedAt = Date.now();
/** the file's process that runs now, for Ctrl-C */
let running: { pid: number; mark: string } | undefined;
const scratch = mkdtempSync(join(tmpdir(), 'builder-run-all-'));

async function runFile(file: string, index: number): Promise<FileResult> {
  const name = relative(here, file);
  const mark = randomUUID();
  const skipsFile = join(scratch, `${index}.skips`);
  const problems: string[] = [];
  console.log(`\n${name}`);
  const child = spawn(process.execPath, [file], {
    // its own process group, so that one kill reaches whatever did not leave it
    detached: true,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, FORCE_COLOR: '0', [MARK_VAR]: mark, BUILDER_TEST_SKIPS: skipsFile },
  });
  running = { pid: child.pid!, mark };
  let out = '';
  let limit: NodeJS.Timeout | undefined;
  const killAll = (why: string) => {
    problems.push(why);
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const armLimit = (ms: number, why: string) => {
    clearTimeout(limit);
    limit = setTimeout(() => killAll(why), Math.max(0, ms));
  };
  const remaining = () => totalLimitMs - (Date.now() - startedAt);
  if (remaining() < fileLimitMs) armLimit(remaining(), `stopped: the whole run's time limit (${totalLimitMs} ms, BUILDER_TEST_TIMEOUT_MS) ran out`);
  else armLimit(fileLimitMs, `stopped: still running after ${fileLimitMs} ms (BUILDER_TEST_FILE_TIMEOUT_MS)`);
  child.stdout!.on('data', (chunk: Buffer) => {
    process.stdout.write(chunk);
    out += chunk.toString('utf8');
    if (out.length > 1 << 20) out = out.slice(-(1 << 16));
    if (/\n {2}Duration: /.test(out.slice(-4096))) {
      armLimit(exitGraceMs, `did not exit within ${exitGraceMs} ms of its last test (a server, timer or socket left open)`);
    }
  });
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('close', (c, s) => res({ code: c, signal: s })),
  );
  clearTimeout(limit);
  running = undefined;

  const leaked = killMarked(mark);
  if (leaked.length > 0) {
    problems.push(`left ${leaked.length} process(es) running (now killed):\n${leaked.map((p) => `      ${p.pid} ${p.args}`).join('\n')}`);
  }
  if (code !== 0 && problems.length === 0) problems.push(signal ? `ended by ${signal}` : `exited with code ${code}`);

  const skips = existsSync(skipsFile) ? readFileSync(skipsFile, 'utf8').split('\n').filter(Boolean) : [];
  const count = (label: string): number | undefined => {
    const m = new RegExp(`\\n {2}${label}:\\s+(\\d+)`).exec(out);
    return m ? Number(m[1]) : undefined;
  };
  const total = count('Total');
  let passed: number;
  let failed: number;
  let uvuSkipped = 0;
  if (total === undefined) {
    // no summary: it crashed or was stopped; count what it reported as it went, and the crash
    passed = (out.match(/• /g) ?? []).length;
    failed = (out.match(/✘ /g) ?? []).length + 1;
    if (problems.length === 0) problems.push('ended before its summary');
  } else {
    passed = count('Passed') ?? 0;
    uvuSkipped = count('Skipped') ?? 0;
    failed = Math.max(0, total - passed);
  }
  // a skip recorded by a test that failed anyway must not lower another test's pass
  const recorded = Math.min(skips.length, passed);
  passed -= recorded;
  // a crashed file, a leak, a non-zero exit: never green, whatever was counted
  if (problems.length > 0 && failed === 0) failed = 1;
  for (const p of problems) console.log(`  FAIL ${name}: ${p}`);
  return { passed, failed, skipped: recorded + uvuSkipped, skips: skips.map((s) => `${name}: ${s}`), problems };
}

async function main(): Promise<number> {
  const files = testFiles(here).sort((a, b) => a.localeCompare(b));
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const skips: string[] = [];
  const notRun: string[] = [];
  if (files.length === 0) {
    console.log(`no test file under ${here} matches ${pattern}`);
    failed = 1;
  }
  for (const [i, file] of files.entries()) {
    if (Date.now() - startedAt >= totalLimitMs) {
      notRun.push(relative(here, file));
      continue;
    }
    const r = await runFile(file, i);
    passed += r.passed;
    failed += r.failed;
    skipped += r.skipped;
    skips.push(...r.skips);
  }
  if (notRun.length > 0) {
    console.log(`\nnot run, the whole run's time limit (${totalLimitMs} ms) was spent:\n${notRun.map((f) => `  ${f}`).join('\n')}`);
    failed += notRun.length;
  }
  if (skips.length > 0) console.log(`\nskipped:\n${skips.map((s) => `  ${s}`).join('\n')}`);
  rmSync(scratch, { recursive: true, force: true });
  console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
  return failed === 0 ? 0 : 1;
}

// Ctrl-C: stop the file that runs (its own process group does not get the terminal's signal)
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.log(`\nrun-all: ${sig}, stopping`);
    if (running) {
      try {
        process.kill(-running.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      killMarked(running.mark);
    }
    process.exit(130);
  });
}

process.exitCode = await main();
