// The exit policy of the four programs, seen from a shell: usage errors exit 2 with one line that
// ends in a hint, refusals and unreadable files exit 1 with one line, and no stack trace reaches
// the user. Each program is the built one, run in a fresh directory with a scrubbed environment
// (no BUILDER_* variables, HOME in the test directory), so nothing of the machine leaks in.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Harness, bin, withTimeout } from '../helpers/processes.js';

type Program = 'server' | 'worker' | 'client' | 'inspect';

const t = suite('cli errors');
let h: Harness;
t.before.each(() => {
  h = new Harness('builder-cli-');
});
t.after.each(async () => h.cleanup());

function run(program: Program, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [bin(program), ...args], {
    cwd: h.root,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: h.root, LANG: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** Exit status and a stderr of exactly one line without a stack frame; returns that line. */
function oneLine(r: { code: number | null; stderr: string }, code: number): string {
  assert.is(r.code, code, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.is(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.not.match(r.stderr, /^\s+at /m);
  return lines[0]!;
}

t('builder-client --remote junk info is a usage error: exit 2, one line naming the remote, no stack', withTimeout(15_000, async () => {
  const line = oneLine(await run('client', ['--remote', 'junk', 'info']), 2);
  assert.is(line, 'builder-client: invalid remote "junk": expected HOST:PORT (try builder-client info --help)');
  // the --flag=value form is read the same
  assert.is(oneLine(await run('client', ['--remote=junk', 'info']), 2), line);
}));

t('an unknown flag exits 2 naming the flag, in each of the four programs', withTimeout(20_000, async () => {
  assert.match(oneLine(await run('client', ['info', '--bogus']), 2), /^builder-client: unknown option --bogus \(try builder-client info --help\)$/);
  assert.match(oneLine(await run('server', ['--bogus', '--dir', h.path('state')]), 2), /^builder-server: unknown option --bogus \(try builder-server --help\)$/);
  assert.match(oneLine(await run('worker', ['linux', '--bogus']), 2), /^builder-worker: unknown option --bogus/);
  assert.match(oneLine(await run('inspect', [h.root, '--bogus']), 2), /^builder-inspect: unknown option --bogus/);
}));

t('a flag without its value, or a value given to a switch, is named', withTimeout(15_000, async () => {
  assert.match(oneLine(await run('client', ['info', '--remote']), 2), /^builder-client: --remote needs a value/);
  assert.match(oneLine(await run('client', ['info', '--json=yes']), 2), /^builder-client: --json takes no value/);
  assert.match(oneLine(await run('server', ['--port']), 2), /^builder-server: --port needs a value/);
  assert.match(oneLine(await run('client', ['execute']), 2),
    /^builder-client: execute: wrong number of arguments \(usage: builder-client execute NAME/);
}));

t('builder-inspect on a result that does not exist exits 1 with one line', withTimeout(15_000, async () => {
  const missing = h.path('results', 'job', '0b6c2a4e-8f3d-4c1a-9e7b-5d2f1a3c4b6d');
  assert.is(oneLine(await run('inspect', [missing]), 1), `builder-inspect: ${missing}: no such file or directory`);
}));

t('a refusal before any connection (an unreadable token) and an unreachable server exit 1 with one line', withTimeout(15_000, async () => {
  assert.match(oneLine(await run('client', ['--remote', '127.0.0.1:1', '--token-file', h.path('nope'), 'info']), 1),
    /^builder-client: no usable token: --token-file .*nope: ENOENT /);
  const token = h.path('token');
  writeFileSync(token, 'a-token-long-enough-for-the-check\n');
  // port 1 on loopback: nothing listens there
  assert.match(oneLine(await run('client', ['--remote', '127.0.0.1:1', '--token-file', token, 'info']), 1),
    /^builder-client: cannot connect to 127\.0\.0\.1:1: /);
}));

t('--help is not an error: usage on stdout, exit 0', withTimeout(15_000, async () => {
  for (const program of ['server', 'worker', 'client', 'inspect'] as const) {
    const r = await run(program, ['--help']);
    assert.is(r.code, 0, `${program}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^usage: builder-${program}`));
  }
}));

t.run();
