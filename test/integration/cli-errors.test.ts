// The exit policy of the four programs, seen from a shell: usage errors exit 2 with one line that
// ends in a hint, refusals and unreadable files exit 1 with one line, and no stack trace reaches
// the user. Each program is the built one, run in a fresh directory with a scrubbed environment
// (no BUILDER_* variables, HOME in the test directory), so nothing of the machine leaks in.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, bin, repoRoot, withTimeout } from '../helpers/processes.js';

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

t('every program answers --version with the package version, and -h like --help', withTimeout(20_000, async () => {
  const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
  for (const program of ['server', 'worker', 'client', 'inspect'] as const) {
    const r = await run(program, ['--version']);
    assert.is(r.code, 0, `${program}: ${r.stderr}`);
    assert.is(r.stdout, `builder-${program} ${version}\n`);
    const short = await run(program, ['-h']);
    assert.is(short.code, 0, `${program} -h: ${short.stderr}`);
    assert.match(short.stdout, new RegExp(`^usage: builder-${program}`));
  }
  assert.match((await run('client', ['schedule', '-h'])).stdout, /^usage: builder-client schedule NAME PLATFORM SCRIPTFILE/);
}));

t('a bad --cron, --tz or history --limit is a usage error naming it, found before any connection', withTimeout(20_000, async () => {
  const script = h.path('s.sh');
  writeFileSync(script, 'true\n');
  // port 1: nothing listens, so these are refused by the client itself
  const client = (...args: string[]) => run('client', ['--remote', '127.0.0.1:1', ...args]);
  assert.match(oneLine(await client('schedule', 'j', 'p', script, '--cron', '61 * * * *'), 2), /^builder-client: invalid cron expression "61 \* \* \* \*"/);
  assert.match(oneLine(await client('schedule', 'j', 'p', script, '--cron', 'daily'), 2), /^builder-client: invalid cron expression "daily"/);
  assert.match(oneLine(await client('orb-build', 'j', 'pkg', '--cron', '0 3 * * *', '--tz', 'Mars/Olympus'), 2),
    /^builder-client: unknown time zone "Mars\/Olympus" \(try builder-client orb-build --help\)$/);
  assert.match(oneLine(await client('schedule', 'j', 'p', script, '--tz', 'UTC'), 2), /^builder-client: --tz only applies to --cron/);
  assert.match(oneLine(await client('reschedule', 'j', '2030-01-01T00:00:00Z', '--cron', '* *'), 2), /^builder-client: invalid cron expression "\* \*"/);
  assert.match(oneLine(await client('history', '--limit', 'abc'), 2), /^builder-client: --limit must be a decimal integer from 1 to 10000, got "abc"/);
  assert.match(oneLine(await client('history', 'j', '--limit', '0'), 2), /--limit must be a decimal integer/);
}));

t('a worker refuses a bad --capacity, --name or PLATFORM with a usage error naming it', withTimeout(20_000, async () => {
  for (const capacity of ['1e15', '0', '1025', '2.5', '0x10', '']) {
    assert.match(oneLine(await run('worker', ['linux', '--capacity', capacity]), 2),
      new RegExp(`^builder-worker: --capacity must be a decimal integer from 1 to 1024, got "${capacity.replace('.', '\\.')}"`), capacity);
  }
  assert.match(oneLine(await run('worker', ['linux', '--name', '']), 2), /^builder-worker: --name must not be empty/);
  assert.match(oneLine(await run('worker', ['linux', '--name', 'w'.repeat(65)]), 2), /^builder-worker: --name "w{65}" is longer than 64 bytes/);
  assert.match(oneLine(await run('worker', ['linux', '--name', 'tab\there']), 2), /^builder-worker: --name "tab\\x09here" contains a character that is not printable/);
  assert.match(oneLine(await run('worker', ['linux', '--name', 'a b']), 2), /^builder-worker: --name "a b": use letters, digits/);
  assert.match(oneLine(await run('worker', ['no/such']), 2), /^builder-worker: invalid platform name "no\/such"/);
  assert.match(oneLine(await run('worker', ['linux', '--sandbox', 'vm']), 2), /^builder-worker: unknown sandbox "vm"/);
  assert.match(oneLine(await run('worker', ['linux', '--sandbox', 'docker']), 2), /^builder-worker: the docker sandbox needs --image IMAGE/);
}));

t.run();
