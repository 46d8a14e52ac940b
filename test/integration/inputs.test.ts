// What the programs take from users and peers (issue 9, "Inputs"): a script is bytes and runs as
// given; every refusal is one line naming the field and its limit; numbers are decimal; dates
// exist; values from outside are escaped and cut short in messages. Checked on the client (one
// line, exit 2, before anything is sent) and again on the server (a raw session that skips the
// client's checks).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClientSession } from '../../src/client/session.js';
import { MAX_SCRIPT_BYTES, MAX_TIMEOUT_SEC } from '../../src/protocol/limits.js';
import { Harness, bin, eventually, withTimeout, type ServerHandle } from '../helpers/processes.js';

const t = suite('inputs');
let h: Harness;
t.before.each(() => {
  h = new Harness('builder-inputs-');
  mkdirSync(h.path('etc'), { recursive: true });
});
t.after.each(async () => h.cleanup());

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Exit status and a stderr of exactly one line without a stack frame; returns that line. */
function oneLine(r: { code: number | null; stderr: string }, code: number): string {
  assert.is(r.code, code, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.is(lines.length, 1, `one line expected, got:\n${r.stderr.slice(0, 2000)}`);
  assert.not.match(r.stderr, /^\s+at /m);
  return lines[0]!;
}

async function session(server: ServerHandle): Promise<ClientSession> {
  return ClientSession.open('127.0.0.1', server.port, h.token(server));
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('expected a refusal');
}

t('a 1 MiB binary script runs as given; its stored copy, render and inspect give the same bytes', withTimeout(60_000, async () => {
  const server = await h.server();
  h.worker(server, 'linux');
  // the first line copies what follows it out of the script itself, then ends the shell before
  // it reads a byte of the rest: random bytes, NULs and invalid UTF-8 included
  const payload = randomBytes(1024 * 1024);
  payload[0] = 0xff;
  payload[1] = 0x00;
  let head = Buffer.alloc(0);
  for (let n = 1; head.length + 1 !== n || n === 1;) {
    n = head.length + 1;
    head = Buffer.from(`tail -c +${n} "$0" > payload.bin; exit 0\n`);
  }
  const script = Buffer.concat([head, payload]);
  const file = h.path('binary.sh');
  writeFileSync(file, script);
  const r = await h.client(server, ['schedule', 'bin', 'linux', file, '--period', 'never']);
  assert.is(r.code, 0, r.stderr);

  const render = h.clientProc(server, ['render', 'bin']);
  const chunks: Buffer[] = [];
  render.child.stdout!.on('data', (c: Buffer) => chunks.push(c));
  assert.is((await render.exited).code, 0, render.stderr);
  assert.is(sha(Buffer.concat(chunks)), sha(script), 'render prints the stored bytes');

  assert.is((await h.client(server, ['execute', 'bin'])).code, 0);
  const [run] = await eventually(async () => {
    const runs = await h.history(server, 'bin');
    return runs.length === 1 && runs;
  }, 30_000, 'the run');
  assert.equal(run.result, { kind: 'exited', code: 0 }, JSON.stringify(run));
  const dir = run.dir as string;
  const stored = readFileSync(join(dir, 'script'));
  assert.is(stored.length, script.length, 'stored script has the same length');
  assert.is(sha(stored), sha(script), 'stored script is byte-identical');
  assert.is(sha(readFileSync(join(dir, 'artifacts', 'payload.bin'))), sha(payload), 'the job saw the exact bytes');

  const inspect = h.spawn(bin('inspect'), [dir, '--script'], 'inspect');
  const out: Buffer[] = [];
  inspect.child.stdout!.on('data', (c: Buffer) => out.push(c));
  assert.is((await inspect.exited).code, 0, inspect.stderr);
  assert.is(sha(Buffer.concat(out)), sha(script), 'builder-inspect --script prints the stored bytes');
}));

t('numbers are decimal, in range, and the refusal names the flag and the range', withTimeout(30_000, async () => {
  const server = await h.server();
  const file = h.script('s', 'true\n');
  for (const bad of ['0x10', '1e3', ' 5', '+5', '', '-1', '5.0']) {
    const line = oneLine(await h.client(server, ['schedule', 'j', 'linux', file, `--timeout=${bad}`]), 2);
    assert.match(line, new RegExp(`--timeout must be a decimal integer from 1 to ${MAX_TIMEOUT_SEC}, got `), line);
  }
  for (const big of ['99999999999999999999999', String(MAX_TIMEOUT_SEC + 1), '0']) {
    const line = oneLine(await h.client(server, ['schedule', 'j', 'linux', file, '--timeout', big]), 2);
    assert.match(line, new RegExp(`--timeout must be a decimal integer from 1 to ${MAX_TIMEOUT_SEC}, got "${big}"`), line);
  }
  assert.match(oneLine(await h.client(server, ['history', '--limit', '0x10']), 2), /--limit must be a decimal integer from 1 to 10000/);
  assert.equal((await h.info(server)).schedule, [], 'nothing was scheduled');
  // the server's own check, for a peer that sends what it likes
  const s = await session(server);
  try {
    const err = await refusal(s.request({ op: 'schedule', name: 'j', platform: 'linux', script: 'true\n', timeoutSec: MAX_TIMEOUT_SEC + 1 }));
    assert.is(err.code, 'BAD_TIMEOUT');
    assert.is(err.message, `timeout must be between 1 and ${MAX_TIMEOUT_SEC} seconds, got ${MAX_TIMEOUT_SEC + 1}`);
  } finally {
    s.close();
  }
}));

t('an impossible date is refused by the server, not rolled into the next month', withTimeout(30_000, async () => {
  const server = await h.server();
  const file = h.script('s', 'true\n');
  assert.is((await h.client(server, ['schedule', 'j', 'linux', file, '--period', 'never'])).code, 0);
  for (const bad of ['2030-02-30T03:00:00Z', '2030-01-01T24:00:00Z', '2030-13-01T00:00:00Z', '2030-04-31T00:00:00Z']) {
    const line = oneLine(await h.client(server, ['reschedule', 'j', bad]), 1);
    assert.is(line, `builder-client: invalid time "${bad}": expected RFC 3339 in UTC, a time that exists, e.g. 2026-01-31T03:00:00Z`);
  }
  const s = await session(server);
  try {
    const err = await refusal(s.request({ op: 'reschedule', name: 'j', next: '2030-02-30T03:00:00Z' }));
    assert.is(err.code, 'BAD_TIME');
    assert.match(err.message, /^invalid time "2030-02-30T03:00:00Z"/);
    const ok = await s.request({ op: 'reschedule', name: 'j', next: '2028-02-29T03:00:00Z' });
    assert.is((ok.data as { next: string }).next, '2028-02-29T03:00:00.000Z', 'a real leap day is taken');
  } finally {
    s.close();
  }
  assert.is((await h.info(server)).schedule[0].next, '2028-02-29T03:00:00.000Z');
}));

t('a script over the limit is refused with the limit, by the client before sending and by the server', withTimeout(60_000, async () => {
  const server = await h.server();
  const big = h.path('big.sh');
  writeFileSync(big, Buffer.alloc(100 * 1024 * 1024, 0x61));
  const line = oneLine(await h.client(server, ['schedule', 'big', 'linux', big]), 2);
  assert.match(line, new RegExp(`script too large: .* \\(limit ${MAX_SCRIPT_BYTES}\\)`), line);
  const s = await session(server);
  try {
    const err = await refusal(s.request({ op: 'schedule', name: 'big', platform: 'linux', script: Buffer.alloc(MAX_SCRIPT_BYTES + 1, 0x61) }));
    assert.is(err.code, 'BAD_REQUEST');
    assert.is(err.message, `script too large: ${MAX_SCRIPT_BYTES + 1} bytes (limit ${MAX_SCRIPT_BYTES})`);
  } finally {
    s.close();
  }
  assert.equal((await h.info(server)).schedule, []);
}));

t('newlines and control characters in names and zones are escaped; a huge cron is cut short', withTimeout(30_000, async () => {
  const server = await h.server();
  const file = h.script('s', 'true\n');
  const name = oneLine(await h.client(server, ['schedule', 'bad\nrun finished\u001b[2J', 'linux', file]), 1);
  assert.match(name, /invalid job name "bad\\nrun finished\\u001b\[2J"/, name);
  const zone = oneLine(await h.client(server, ['schedule', 'j', 'linux', file, '--cron', '0 3 * * *', '--tz', 'Europe/Berlin\nforged']), 2);
  assert.match(zone, /unknown time zone "Europe\/Berlin\\nforged"/, zone);
  // as long as one argument may be (128 KiB on Linux); the raw session below sends 1 MiB
  const cron = `0 3 * * * ${'x'.repeat(100_000)}`;
  const line = oneLine(await h.client(server, ['schedule', 'j', 'linux', file, '--cron', cron]), 2);
  assert.ok(line.length < 1000, `message of ${line.length} characters`);
  assert.match(line, /invalid cron expression "0 3 \* \* \* x+\.\.\." \(100010 characters\)/, line.slice(0, 300));
  // the server's own echo of what it refuses, for a peer that skips the client
  const s = await session(server);
  try {
    const huge = await refusal(s.request({ op: 'schedule', name: 'j', platform: 'linux', script: 'true\n', cron: `0 3 * * * ${'x'.repeat(1024 * 1024)}` }));
    assert.ok(huge.message.length < 1000, `message of ${huge.message.length} characters`);
    const err = await refusal(s.request({ op: 'execute', name: 'nope\nforged' }));
    assert.is(err.message, 'no job named "nope\\nforged"');
  } finally {
    s.close();
  }
}));

t.run();
